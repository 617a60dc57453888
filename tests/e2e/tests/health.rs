//! The health routes probes call: `/healthz/verify` (verify's component) and
//! `/healthz/management` (list's), each `200 {"status":"ok"}` after one real store read, `503
//! store_unavailable` when the store fails, and silent while the store hangs — which is what
//! tells an orchestrator that a Spin instance is stuck after a Redis outage (deploy/README.md),
//! while verify's answers that need no store still come at once.

use e2e::{on_every_store, on_spin, skip_on_spin, App, Store};
use spin_host::{RedisCasAnswers, RedisServer};
use std::time::{Duration, Instant};

const VERIFY_HEALTH: &str = "/healthz/verify";
const MANAGEMENT_HEALTH: &str = "/healthz/management";
const MANAGEMENT: &[&str] = &["create", "list", "update", "roll", "delete", "events"];

on_every_store!(each_health_route_answers_200_after_one_store_read_and_logs_nothing);

fn each_health_route_answers_200_after_one_store_read_and_logs_nothing(store: Store) {
    let app = App::start_on(store);
    for path in [VERIFY_HEALTH, MANAGEMENT_HEALTH] {
        let reply = app.request("GET", path, &[], None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert_eq!(reply.text, r#"{"status":"ok"}"#, "{path}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        if !on_spin() {
            // One read of one key, nothing written: a probe every few seconds costs that.
            assert_eq!((reply.kv_reads(), reply.kv_writes()), (1, 0), "{path}");
        }
        // Spin's exact routes take one trailing slash; a query changes nothing.
        assert_eq!(
            app.request("GET", &format!("{path}/"), &[], None).status,
            200
        );
        assert_eq!(
            app.request("GET", &format!("{path}?probe=1"), &[], None)
                .status,
            200
        );
        let head = app.request("HEAD", path, &[], None);
        assert_eq!((head.status, head.text.as_str()), (200, ""), "{path}");
    }
    let log = app.component_log();
    assert!(
        !log.contains("/healthz"),
        "a healthy answer was logged:\n{log}"
    );
}

#[test]
fn other_methods_are_405_with_allow_and_read_nothing() {
    let app = App::start();
    for path in [VERIFY_HEALTH, MANAGEMENT_HEALTH] {
        for method in ["POST", "PUT", "DELETE"] {
            let reply = app.request(method, path, &[], Some(b"{}"));
            e2e::assert_error(&reply, 405, "method_not_allowed");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method} {path}");
            e2e::assert_no_store_operation(&reply, path);
        }
    }
}

#[test]
fn each_tier_serves_the_health_route_of_a_component_it_runs() {
    let redis = RedisServer::start().expect("redis-server starts");
    let edge = App::start_on_redis(&redis, RedisCasAnswers::Spin41, &["verify"]);
    let management = App::start_on_redis(&redis, RedisCasAnswers::Spin41, MANAGEMENT);
    assert_eq!(edge.request("GET", VERIFY_HEALTH, &[], None).status, 200);
    assert_eq!(
        edge.request("GET", MANAGEMENT_HEALTH, &[], None).status,
        404
    );
    assert_eq!(
        management
            .request("GET", MANAGEMENT_HEALTH, &[], None)
            .status,
        200
    );
    assert_eq!(
        management.request("GET", VERIFY_HEALTH, &[], None).status,
        404
    );
}

#[test]
fn a_failing_store_is_503_store_unavailable_logged_while_verify_of_garbage_stays_401() {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start();
    app.store.fail_all(true);
    for path in [VERIFY_HEALTH, MANAGEMENT_HEALTH] {
        let reply = app.request("GET", path, &[], None);
        e2e::assert_error(&reply, 503, "store_unavailable");
        assert_eq!(reply.body["status"], "unavailable");
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    // Why the probe reads the store: verify refuses a malformed key unread, so it answers as
    // if all were well.
    let garbage = app.verify("not-a-key", None);
    assert_eq!((garbage.status, garbage.code()), (401, Some("invalid_key")));
    let log = app.component_log();
    for path in [VERIFY_HEALTH, MANAGEMENT_HEALTH] {
        assert!(
            log.contains(&format!("{path}: 503 store_unavailable")),
            "{path} not logged:\n{log}"
        );
    }
    app.store.fail_all(false);
    assert_eq!(app.request("GET", VERIFY_HEALTH, &[], None).status, 200);
}

#[test]
fn a_stopped_redis_is_503_at_once_on_the_local_host() {
    if skip_on_spin(
        "Spin waits for an unreachable Redis (requests hang); see \
         after_a_redis_outage_health_answers_in_time_exactly_when_a_store_read_does",
    ) {
        return;
    }
    let mut app = App::start_on(Store::RedisAsSpin41);
    app.stop_redis();
    for path in [VERIFY_HEALTH, MANAGEMENT_HEALTH] {
        let asked = Instant::now();
        let reply = app.request("GET", path, &[], None);
        e2e::assert_error(&reply, 503, "store_unavailable");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{path}: {:?}",
            asked.elapsed()
        );
    }
}

/// Redis down 3 s, with a request arriving meanwhile, then back. Whatever the runtime does
/// after that, the health route answers within a probe's deadline exactly when a real store
/// read does, while verify of a malformed key answers at once either way. On the local host
/// both answer at once. On real Spin 4.1 both stay silent for about two minutes (one Redis
/// connection per process, whose client retries its reconnect after 1–2 s, then after
/// 60–120 s), and a fresh instance on the same store answers at once: the restart a liveness
/// probe gets.
#[test]
fn after_a_redis_outage_health_answers_in_time_exactly_when_a_store_read_does() {
    let mut redis = RedisServer::start().expect("redis-server starts");
    let edge = App::start_on_redis(&redis, RedisCasAnswers::Spin41, &["verify"]);
    assert_eq!(probe(&edge, "GET", VERIFY_HEALTH, &[]), Some(200));

    redis.stop();
    let fault = Instant::now();
    // A probe while Redis is down, given up after a probe's deadline as a prober would.
    let during = probe(&edge, "GET", VERIFY_HEALTH, &[]);
    assert_ne!(during, Some(200), "healthy while Redis was down");
    if !on_spin() {
        assert_eq!(
            during,
            Some(503),
            "the local host answers 503 when Redis refuses"
        );
    }
    std::thread::sleep(Duration::from_secs(3).saturating_sub(fault.elapsed()));
    redis.start_again().expect("redis-server starts again");

    let health = probe(&edge, "GET", VERIFY_HEALTH, &[]);
    // A well-formed key no one holds: verify reads the store for it (then answers 401).
    let unknown = shared::key::generate("ak").expect("random").secret;
    let read = probe(&edge, "GET", "/v1/keys.verify", &[("x-api-key", &unknown)]);
    let unread = probe(
        &edge,
        "GET",
        "/v1/keys.verify",
        &[("x-api-key", "not-a-key")],
    );
    assert_eq!(
        unread,
        Some(401),
        "a malformed key is refused without the store"
    );
    assert_eq!(
        health.is_some(),
        read.is_some(),
        "health {health:?}, a verify that reads the store {read:?}"
    );
    match health {
        Some(status) => {
            assert_eq!((status, read), (200, Some(401)));
            eprintln!(
                "health: answering {:?} after the outage began",
                fault.elapsed()
            );
        }
        None => {
            assert!(on_spin(), "the local host hung after Redis came back");
            eprintln!(
                "health: the instance is stuck {:?} after the outage began (Spin's Redis \
                 client retries its reconnect only after 60-120 s); a fresh one is started",
                fault.elapsed()
            );
            let fresh = App::start_on_redis(&redis, RedisCasAnswers::Spin41, &["verify"]);
            assert_eq!(probe(&fresh, "GET", VERIFY_HEALTH, &[]), Some(200));
        }
    }
    if !on_spin() {
        assert_eq!(
            health,
            Some(200),
            "the local host reconnects on the next request"
        );
    }
}

/// The status of one request to `app`, or `None` if none came within 3 s (a probe's deadline).
fn probe(app: &App, method: &str, path: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build();
    let mut request = agent.request(method, &format!("{}{path}", app.url));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    match request.call() {
        Ok(response) | Err(ureq::Error::Status(_, response)) => Some(response.status()),
        Err(_) => None,
    }
}

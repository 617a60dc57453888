//! The health routes a prober calls (Kubernetes' liveness and readiness probes, a load
//! balancer's checks): each answers `200` only after one real store read succeeded.
//!
//! Why a real read: on Spin's Redis store, a Redis outage longer than ~2 s can leave an instance
//! whose every store call waits about two minutes (the Redis client retries its reconnect after
//! 1–2 s, then only after 60–120 s), and no component can time a store call out. Meanwhile
//! anything answered without the store still answers at once (verify refuses a malformed key
//! unread), so only a route that reads the store sees what requests see: it answers within a
//! prober's deadline, or not at all, and an orchestrator restarts the instance (a fresh process
//! reconnects at once). See deploy/README.md, *Probes, timeouts and replicas*.
//!
//! Each tier of the app (`spin up -c …`, SpinKube's `components:`) serves the path of a
//! component it runs: [`VERIFY_PATH`] by verify's component, [`MANAGEMENT_PATH`] by list's.
//! Every component of one process shares Spin's one Redis connection, so one component's read
//! speaks for the whole process.
//!
//! The bodies are fixed bytes, not serialised: verify's component carries no more code for
//! them than a few constants.

use crate::http::Reply;
use crate::store::{KeyValue, StoreError};

/// The verify tier's health path, served by verify's component.
pub const VERIFY_PATH: &str = "/healthz/verify";

/// The management tier's health path, served by list's component (every management tier
/// runs list).
pub const MANAGEMENT_PATH: &str = "/healthz/management";

/// The one key a health check reads: in the app's namespace (`apikeys/v1/`, see
/// `protocol::layout`) and never written, so the read finds nothing and costs the least a
/// read can. Whatever it finds, the read went through, and that is all a probe asks.
pub const PROBE_KEY: &str = "apikeys/v1/health";

/// The methods a health path answers; any other is `405`.
const ALLOWED: &str = "GET, HEAD";

const OK: &[u8] = br#"{"status":"ok"}"#;
const UNAVAILABLE: &[u8] = br#"{"status":"unavailable","error":{"code":"store_unavailable","message":"The key store did not answer a read."}}"#;
const METHOD_NOT_ALLOWED: &[u8] =
    br#"{"error":{"code":"method_not_allowed","message":"Use GET or HEAD on this path."}}"#;

/// Whether `path_with_query` (`/healthz/verify?x=1`) asks for the health path `path`: the path
/// itself or with the one trailing slash Spin's exact routes also take. The query is ignored:
/// it changes nothing a probe is told.
pub fn is_request_for(path: &str, path_with_query: &str) -> bool {
    let asked = path_with_query
        .split_once('?')
        .map_or(path_with_query, |(asked, _)| asked);
    asked
        .strip_prefix(path)
        .is_some_and(|rest| rest.is_empty() || rest == "/")
}

/// Answers a health request: for `GET` and `HEAD`, opens the store and reads [`PROBE_KEY`]
/// once; `200 {"status":"ok"}` if both went through, `503` `store_unavailable` if either
/// failed. Any other method is `405` with `Allow`, without the store.
///
/// Nothing here bounds the read: where the store hangs, so does this answer (a prober's
/// timeout is the deadline). A `200` is not logged (probes come every few seconds); a `503` is,
/// as every 5xx is.
pub fn answer<S: KeyValue>(method: &str, open: impl FnOnce() -> Result<S, StoreError>) -> Reply {
    if method != "GET" && method != "HEAD" {
        return fixed(405, Some("method_not_allowed"), METHOD_NOT_ALLOWED)
            .with_header("allow", ALLOWED);
    }
    match open().and_then(|store| store.get(PROBE_KEY)) {
        Ok(_) => fixed(200, None, OK),
        Err(_) => {
            fixed(503, Some("store_unavailable"), UNAVAILABLE).with_header("retry-after", "1")
        }
    }
}

fn fixed(status: u16, code: Option<&'static str>, body: &[u8]) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_vec(),
        code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::store::Swap;
    use std::cell::RefCell;

    /// A store that records every operation asked of it, and fails reads when told to.
    #[derive(Default)]
    struct Recording {
        operations: RefCell<Vec<String>>,
        failing: bool,
    }

    impl Recording {
        fn note(&self, what: String) {
            self.operations.borrow_mut().push(what);
        }
    }

    impl KeyValue for Recording {
        type Cas = ();

        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.note(format!("get {key}"));
            if self.failing {
                Err(StoreError("connection refused".into()))
            } else {
                Ok(None)
            }
        }
        fn set(&self, key: &str, _: &[u8]) -> Result<(), StoreError> {
            self.note(format!("set {key}"));
            Ok(())
        }
        fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.note(format!("delete {key}"));
            Ok(())
        }
        fn increment(&self, key: &str, _: i64) -> Result<i64, StoreError> {
            self.note(format!("increment {key}"));
            Ok(0)
        }
        fn watch(&self, key: &str) -> Result<((), Option<Vec<u8>>), StoreError> {
            self.note(format!("watch {key}"));
            Ok(((), None))
        }
        fn swap(&self, _: (), _: &[u8]) -> Result<Swap, StoreError> {
            self.note("swap".into());
            Ok(Swap::Done)
        }
    }

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).expect("a JSON body")
    }

    #[test]
    fn a_read_that_goes_through_is_200_ok_after_exactly_one_get_of_the_probe_key() {
        let store = Recording::default();
        let reply = answer("GET", || Ok(&store));
        assert_eq!(reply.status, 200);
        assert_eq!(body(&reply), serde_json::json!({"status": "ok"}));
        assert_eq!(reply.code, None, "a healthy answer is not logged");
        assert_eq!(crate::http::reply_log_line(VERIFY_PATH, &reply), None);
        // One read of one fixed key: nothing written, no scan (the trait has no `get_keys`,
        // and no other key is touched).
        assert_eq!(*store.operations.borrow(), [format!("get {PROBE_KEY}")]);
    }

    #[test]
    fn the_probe_key_is_in_the_apps_namespace_and_no_key_of_the_protocol() {
        // `record_key` is the protocol's public way to a key of the namespace.
        let namespace = crate::protocol::record_key("").replace("key/", "");
        assert_eq!(namespace, "apikeys/v1/");
        assert!(PROBE_KEY.starts_with(&namespace));
        let rest = &PROBE_KEY[namespace.len()..];
        assert!(!["key/", "user/"]
            .iter()
            .any(|prefix| rest.starts_with(prefix)));
    }

    #[test]
    fn a_read_found_present_is_healthy_too() {
        let store = MemoryStore::new();
        store.set(PROBE_KEY, b"anything").expect("set");
        let before = store.ops();
        assert_eq!(answer("HEAD", || Ok(&store)).status, 200);
        assert_eq!(store.ops() - before, 1, "one store operation");
    }

    #[test]
    fn a_failed_read_is_503_store_unavailable_and_logged() {
        let store = Recording {
            failing: true,
            ..Recording::default()
        };
        let reply = answer("GET", || Ok(&store));
        assert_eq!(reply.status, 503);
        let json = body(&reply);
        assert_eq!(json["status"], "unavailable");
        assert_eq!(json["error"]["code"], "store_unavailable");
        assert!(json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(reply.headers.contains(&("retry-after", "1".into())));
        assert_eq!(
            crate::http::reply_log_line(MANAGEMENT_PATH, &reply).as_deref(),
            Some("/healthz/management: 503 store_unavailable")
        );
        assert_eq!(store.operations.borrow().len(), 1);
    }

    #[test]
    fn a_store_that_will_not_open_is_503_too() {
        let reply = answer("GET", || -> Result<&Recording, StoreError> {
            Err(StoreError("no such store".into()))
        });
        assert_eq!(reply.status, 503);
        assert_eq!(body(&reply)["error"]["code"], "store_unavailable");
    }

    #[test]
    fn a_failing_memory_store_is_503() {
        let store = MemoryStore::new();
        store.fail_nth(1);
        assert_eq!(answer("GET", || Ok(&store)).status, 503);
        assert_eq!(
            answer("GET", || Ok(&store)).status,
            200,
            "and 200 once it reads again"
        );
    }

    #[test]
    fn other_methods_are_405_without_the_store() {
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
            let reply = answer(method, || -> Result<&Recording, StoreError> {
                panic!("{method} opened the store")
            });
            assert_eq!(reply.status, 405, "{method}");
            assert_eq!(body(&reply)["error"]["code"], "method_not_allowed");
            assert!(reply.headers.contains(&("allow", ALLOWED.into())));
        }
    }

    #[test]
    fn the_health_paths_are_recognised_with_a_trailing_slash_or_a_query_and_nothing_else() {
        for asked in [
            "/healthz/verify",
            "/healthz/verify/",
            "/healthz/verify?probe=1",
            "/healthz/verify/?",
        ] {
            assert!(is_request_for(VERIFY_PATH, asked), "{asked}");
        }
        for asked in [
            "/healthz/verifyx",
            "/healthz/verify/x",
            "/healthz/verify//",
            "/healthz",
            "/v1/keys.verify",
            "/v1/keys.verify/healthz/verify",
            "/healthz/management",
            "",
        ] {
            assert!(!is_request_for(VERIFY_PATH, asked), "{asked}");
        }
        assert!(is_request_for(MANAGEMENT_PATH, "/healthz/management"));
        assert!(!is_request_for(MANAGEMENT_PATH, "/v1/keys.list"));
    }
}

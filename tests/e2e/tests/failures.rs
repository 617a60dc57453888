//! The store failing at each operation of create, delete, update and roll: `503
//! store_unavailable`, nothing half-made, and the user can go on — after a dead request, at
//! worst after the stated wait. What takes rights away reaches verify before list shows it,
//! whatever operation the store stops at.

use e2e::{assert_error, on_every_store, skip_on_spin, unique_user, App, Store};
use serde_json::json;
use shared::protocol::ABANDONED_AFTER_SECS;
use std::time::Duration;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    a_store_failure_at_any_operation_of_create_is_503_and_a_retry_succeeds,
    a_store_failure_at_any_operation_of_delete_is_503_and_a_retry_succeeds,
    a_store_failure_at_any_operation_of_roll_is_503_and_a_retry_succeeds,
    an_unavailable_store_is_503_everywhere_and_changes_nothing,
    a_create_that_dies_midway_holds_its_slot_only_for_the_stated_time,
    a_disabled_key_never_verifies_once_list_shows_it_disabled_whenever_the_store_stops,
    a_roll_cut_short_by_the_store_is_whole_or_undone_by_the_next_read,
);

/// Store operations a request made, from the host's counters.
fn operations(reply: &e2e::Reply) -> u64 {
    reply.kv_reads() + reply.kv_writes()
}

/// Store operations `change` makes on a quiet store, tried on a key made for it and deleted
/// after.
fn operations_of_change(app: &App, user: &str, change: impl Fn(&str) -> e2e::Reply) -> u64 {
    let probe = app.create_ok(user, "probe", &["read"]);
    let id = probe["id"].as_str().unwrap();
    let total = operations(&change(id));
    assert_eq!(app.delete(user, id).status, 200);
    total
}

/// Every listed key verifies, every live key in `secrets` is listed, at most `limit` keys.
fn assert_consistent(app: &App, user: &str, secrets: &[(String, String)]) {
    let listed = app.listed_ids(user);
    assert!(listed.len() <= 20);
    for (id, key) in secrets {
        assert_eq!(
            app.verifies(key),
            listed.contains(id),
            "key {id}: live and listed must agree"
        );
    }
}

fn a_store_failure_at_any_operation_of_create_is_503_and_a_retry_succeeds(store: Store) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    let user = unique_user("unlucky");
    let mut keys = vec![];
    let first = app.create(&user, "first", &["read"]);
    let total = operations(&first);
    keys.push((
        first.body["id"].as_str().unwrap().to_owned(),
        first.body["key"].as_str().unwrap().to_owned(),
    ));
    assert!(total >= 5, "a create makes {total} store operations");
    for n in 1..=total {
        app.store.fail_nth(n);
        let reply = app.create(&user, &format!("attempt {n}"), &["read"]);
        app.store.disarm();
        match reply.status {
            201 => keys.push((
                reply.body["id"].as_str().unwrap().to_owned(),
                reply.body["key"].as_str().unwrap().to_owned(),
            )),
            _ => {
                assert_error(&reply, 503, "store_unavailable");
                assert!(
                    !reply.text.contains("injected"),
                    "store errors never reach the client"
                );
            }
        }
        assert_consistent(&app, &user, &keys);
        let retry = app.create(&user, &format!("retry {n}"), &["read"]);
        assert_eq!(
            retry.status, 201,
            "retry after a failure at operation {n}: {}",
            retry.text
        );
        keys.push((
            retry.body["id"].as_str().unwrap().to_owned(),
            retry.body["key"].as_str().unwrap().to_owned(),
        ));
        assert_consistent(&app, &user, &keys);
        if app.listed_ids(&user).len() >= 18 {
            for id in app.listed_ids(&user) {
                assert_eq!(app.delete(&user, &id).status, 200);
            }
        }
    }
}

fn a_store_failure_at_any_operation_of_delete_is_503_and_a_retry_succeeds(store: Store) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    let user = unique_user("undeletable");
    let probe = app.create_ok(&user, "probe", &["read"]);
    let total = operations(&app.delete(&user, probe["id"].as_str().unwrap()));
    assert!(total >= 4, "a delete makes {total} store operations");
    for n in 1..=total {
        let keep = app.create_ok(&user, "keep", &["read"]);
        let doomed = app.create_ok(&user, "doomed", &["read"]);
        let (id, key) = (
            doomed["id"].as_str().unwrap(),
            doomed["key"].as_str().unwrap(),
        );
        app.store.fail_nth(n);
        let reply = app.delete(&user, id);
        app.store.disarm();
        if reply.status != 200 {
            assert_error(&reply, 503, "store_unavailable");
            let retry = app.delete(&user, id);
            assert_eq!(
                retry.status, 200,
                "retry after a failure at operation {n}: {}",
                retry.text
            );
        }
        assert!(!app.verifies(key), "operation {n}");
        assert!(!app.listed_ids(&user).contains(&id.to_owned()));
        assert!(app.verifies(keep["key"].as_str().unwrap()));
        assert_eq!(app.delete(&user, keep["id"].as_str().unwrap()).status, 200);
    }
}

fn a_store_failure_at_any_operation_of_roll_is_503_and_a_retry_succeeds(store: Store) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    let user = unique_user("unlucky-roller");
    let roll = |id: &str| {
        let body = json!({"id": id, "grace_seconds": 600}).to_string();
        app.as_user(&user, "POST", "/v1/keys.roll", Some(&body))
    };
    let total = operations_of_change(&app, &user, roll);
    assert!(total >= 8, "a roll makes {total} store operations");
    for n in 1..=total {
        let created = app.create_ok(&user, "rolled", &["read"]);
        let (id, original) = (
            created["id"].as_str().unwrap(),
            created["key"].as_str().unwrap(),
        );
        app.store.fail_nth(n);
        let reply = roll(id);
        app.store.disarm();
        let mut secrets = vec![original.to_owned()];
        if reply.status == 201 {
            secrets.push(reply.body["key"].as_str().unwrap().to_owned());
        } else {
            assert_error(&reply, 503, "store_unavailable");
            // The key is still there, and its secret still verifies (within the grace).
            assert_eq!(app.listed_ids(&user), vec![id.to_owned()], "operation {n}");
            assert!(app.verifies(original), "operation {n}");
            let retry = roll(id);
            assert_eq!(
                retry.status, 201,
                "retry after operation {n}: {}",
                retry.text
            );
            secrets.push(retry.body["key"].as_str().unwrap().to_owned());
        }
        // The last secret given out is the one list previews; the original ends with its
        // grace; deleting the key kills every secret.
        let current = secrets.last().unwrap();
        let listed = app.list(&user).body;
        let preview = listed["keys"][0]["preview"].as_str().unwrap();
        assert!(
            current.ends_with(&preview[preview.len() - 4..]),
            "operation {n}"
        );
        assert!(
            app.verifies(current) && app.verifies(original),
            "operation {n}"
        );
        assert_eq!(app.delete(&user, id).status, 200);
        for secret in &secrets {
            assert!(!app.verifies(secret), "operation {n}");
        }
    }
}

fn an_unavailable_store_is_503_everywhere_and_changes_nothing(store: Store) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    let user = unique_user("outage");
    let created = app.create_ok(&user, "k", &["read"]);
    let key = created["key"].as_str().unwrap();
    app.store.fail_all(true);
    assert_every_function_answers_503(&app, &user, &created);
    app.store.fail_all(false);
    assert_eq!(
        app.listed_ids(&user),
        vec![created["id"].as_str().unwrap().to_owned()]
    );
    assert!(app.verifies(key));
}

/// The id of `user`'s listed key called `name`, if any.
fn listed_id_named(app: &App, user: &str, name: &str) -> Option<String> {
    let list = app.list(user);
    list.body["keys"]
        .as_array()?
        .iter()
        .find(|k| k["name"] == name)
        .and_then(|k| k["id"].as_str())
        .map(str::to_owned)
}

fn a_create_that_dies_midway_holds_its_slot_only_for_the_stated_time(store: Store) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    let user = unique_user("phoenix");
    for i in 0..19 {
        app.create_ok(&user, &format!("k{i}"), &["read"]);
    }
    let total = {
        let probe = app.create(&unique_user("probe"), "p", &["read"]);
        operations(&probe)
    };
    for died_after in 1..total {
        // Every operation from this one on fails, clean-up included: the request died.
        app.store.fail_from(died_after + 1);
        let reply = app.create(&user, "dies", &["read"]);
        app.store.disarm();
        assert_eq!(reply.status, 503);
        if let Some(id) = listed_id_named(&app, &user, "dies") {
            // It died after its key went live (reading back the activation): the key is listed
            // like any other and holds its slot until deleted.
            assert_eq!(app.listed_ids(&user).len(), 20);
            assert_eq!(app.delete(&user, &id).status, 200);
            continue;
        }
        let soon = app.create(&user, "twentieth", &["read"]);
        let id = if soon.status == 201 {
            soon.body["id"].as_str().unwrap().to_owned()
        } else {
            assert_error(&soon, 409, "key_limit_reached");
            app.clock
                .advance(Duration::from_secs(ABANDONED_AFTER_SECS as u64));
            let later = app.create(&user, "twentieth", &["read"]);
            assert_eq!(
                later.status, 201,
                "still blocked after {ABANDONED_AFTER_SECS}s: {}",
                later.text
            );
            later.body["id"].as_str().unwrap().to_owned()
        };
        assert_eq!(app.listed_ids(&user).len(), 20);
        assert_eq!(app.delete(&user, &id).status, 200);
    }
}

#[test]
fn a_stopped_redis_is_503_everywhere() {
    if skip_on_spin(
        "Spin waits for an unreachable Redis without end (requests hang, nothing is logged), so no \
         component can answer 503; the local host gives up after 5 s (see README, the local host)",
    ) {
        return;
    }
    let mut app = App::start_on(Store::RedisAsSpin41);
    let user = unique_user("redis-down");
    let created = app.create_ok(&user, "k", &["read"]);
    app.stop_redis();
    assert_every_function_answers_503(&app, &user, &created);
}

/// Create, list, roll, delete and verify (of `created`, `user`'s key) all answer 503
/// `store_unavailable`, with `Retry-After`.
fn assert_every_function_answers_503(app: &App, user: &str, created: &serde_json::Value) {
    assert_error(
        &app.create(user, "new", &["read"]),
        503,
        "store_unavailable",
    );
    assert_error(&app.list(user), 503, "store_unavailable");
    let id = created["id"].as_str().unwrap();
    let roll = json!({"id": id}).to_string();
    assert_error(
        &app.as_user(user, "POST", "/v1/keys.roll", Some(&roll)),
        503,
        "store_unavailable",
    );
    assert_error(
        &app.delete(user, created["id"].as_str().unwrap()),
        503,
        "store_unavailable",
    );
    let verify = app.verify(created["key"].as_str().unwrap(), None);
    assert_eq!(
        (verify.status, verify.body.clone()),
        (503, json!({"valid": false, "code": "store_unavailable"}))
    );
    assert!(verify.header("retry-after").is_some());
}

/// The store down from operation `n` of an update on: the update answers 200 or 503, and
/// whatever it answered, once list shows the key disabled, verify refuses it — also as read
/// before that list (nothing waits for a read to take the right away). The next read once a
/// request that died would be given up makes them agree for good; the retry succeeds.
fn a_disabled_key_never_verifies_once_list_shows_it_disabled_whenever_the_store_stops(
    store: Store,
) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    app.freeze_clock();
    let user = unique_user("disabling");
    let disable = |id: &str| {
        let body = json!({"id": id, "enabled": false}).to_string();
        app.as_user(&user, "POST", "/v1/keys.update", Some(&body))
    };
    let total = operations_of_change(&app, &user, disable);
    let mut published_but_503 = 0;
    for n in 1..=total {
        let created = app.create_ok(&user, "to disable", &["read"]);
        let (id, key) = (
            created["id"].as_str().unwrap(),
            created["key"].as_str().unwrap(),
        );
        app.store.fail_from(n);
        let reply = disable(id);
        app.store.disarm();
        let verified_first = app.verifies(key);
        let listed = app.list(&user).body;
        let enabled = listed["keys"][0]["enabled"].as_bool().unwrap();
        assert!(
            enabled || !verified_first,
            "operation {n}: list shows it disabled, verify took it"
        );
        if reply.status == 200 {
            assert!(!enabled && !verified_first, "operation {n}");
        } else {
            assert_error(&reply, 503, "store_unavailable");
            published_but_503 += usize::from(!enabled);
        }
        app.clock
            .advance(Duration::from_secs(ABANDONED_AFTER_SECS as u64));
        let listed = app.list(&user).body;
        let enabled = listed["keys"][0]["enabled"].as_bool().unwrap();
        assert_eq!(
            app.verifies(key),
            enabled,
            "operation {n}: list and verify agree"
        );
        assert_eq!(disable(id).status, 200, "operation {n}: the retry");
        assert!(!app.verifies(key));
        assert_eq!(app.delete(&user, id).status, 200);
    }
    assert!(published_but_503 > 0, "some outage came after the publish");
}

/// The store down from operation `n` of a roll on: once it is back and a read past the time
/// a request that died is given up, the roll is whole (in the history; the old secret ends
/// with its grace) or undone (not in the history; the old secret the key's current one, with
/// no end) — never the old secret verifying past a grace the history shows, nor a preview of
/// a secret nobody holds.
fn a_roll_cut_short_by_the_store_is_whole_or_undone_by_the_next_read(store: Store) {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start_on(store);
    app.freeze_clock();
    let user = unique_user("cut-short");
    const GRACE: u64 = 60;
    let roll = |id: &str| {
        let body = json!({"id": id, "grace_seconds": GRACE}).to_string();
        app.as_user(&user, "POST", "/v1/keys.roll", Some(&body))
    };
    let rolls_of = |id: &str| {
        let history = app.as_user(&user, "GET", "/v1/keys.events", None).body;
        let events = history["events"].as_array().unwrap().clone();
        events
            .iter()
            .filter(|e| e["type"] == "rolled" && e["key_id"] == id)
            .count()
    };
    let total = operations_of_change(&app, &user, roll);
    for n in 1..=total {
        let created = app.create_ok(&user, "rolled", &["read"]);
        let (id, original) = (
            created["id"].as_str().unwrap(),
            created["key"].as_str().unwrap(),
        );
        app.store.fail_from(n);
        let reply = roll(id);
        app.store.disarm();
        if reply.status != 201 {
            assert_error(&reply, 503, "store_unavailable");
        }
        app.clock
            .advance(Duration::from_secs(ABANDONED_AFTER_SECS as u64));
        let listed = app.list(&user).body;
        let preview = listed["keys"][0]["preview"].as_str().unwrap().to_owned();
        let shows_last_four = |secret: &str| secret.ends_with(&preview[preview.len() - 4..]);
        match rolls_of(id) {
            0 => {
                assert_ne!(
                    reply.status, 201,
                    "operation {n}: a 201 roll left the history"
                );
                assert!(
                    shows_last_four(original),
                    "operation {n}: preview {preview}"
                );
                app.clock.advance(Duration::from_secs(GRACE));
                assert!(
                    app.verifies(original),
                    "operation {n}: undone, the key keeps its secret"
                );
            }
            1 => {
                if reply.status == 201 {
                    assert!(shows_last_four(reply.body["key"].as_str().unwrap()));
                }
                app.clock.advance(Duration::from_secs(GRACE));
                assert!(
                    !app.verifies(original),
                    "operation {n}: past the grace the history shows"
                );
            }
            more => panic!("operation {n}: {more} rolled events for one roll"),
        }
        // The user goes on: the retry gives a working secret.
        let retry = roll(id);
        assert_eq!(retry.status, 201, "operation {n}: {}", retry.text);
        assert!(app.verifies(retry.body["key"].as_str().unwrap()));
        assert_eq!(app.delete(&user, id).status, 200);
    }
}

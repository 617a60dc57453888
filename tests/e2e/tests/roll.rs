//! `POST /v1/keys.roll`: a key gets a new secret, shown once, for the same id, name and scopes;
//! the old secret verifies until its grace period ends and never after, deleting the key kills
//! both, and every 4xx changes nothing.

use e2e::{assert_error, on_every_store, shared_app, skip_on_spin, unique_user, App, Store};
use serde_json::json;
use std::time::Duration;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    a_rolled_key_has_a_new_secret_and_the_old_one_ends_with_its_grace,
    a_roll_without_grace_ends_the_old_secret_at_once_and_delete_kills_every_secret,
    racing_rolls_leave_every_secret_listed_and_one_current,
);

fn roll(app: &App, user: &str, body: serde_json::Value) -> e2e::Reply {
    app.as_user(user, "POST", "/v1/keys.roll", Some(&body.to_string()))
}

fn a_rolled_key_has_a_new_secret_and_the_old_one_ends_with_its_grace(store: Store) {
    if skip_on_spin("moves the app's clock (the local host's test clock; Spin's is the real one)") {
        return;
    }
    let app = App::start_on(store);
    app.freeze_clock();
    let user = unique_user("roller");
    let created = app.create_ok(&user, "deploy", &["read", "write"]);
    let (id, old) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let grace_end = shared::rfc3339(app.now() + 3600);

    let rolled = roll(&app, &user, json!({"id": id, "grace_seconds": 3600}));
    assert_eq!(rolled.status, 201, "{}", rolled.text);
    assert_eq!(rolled.header("cache-control"), Some("no-store"));
    let new = rolled.body["key"].as_str().unwrap();
    assert_ne!(new, old);
    // The same key: id, name, scopes and creation time; a new preview.
    for field in ["id", "name", "scopes", "created_at", "expires_at"] {
        assert_eq!(rolled.body[field], created[field], "{field}");
    }
    assert_eq!(rolled.body["enabled"], true);
    assert_ne!(rolled.body["preview"], created["preview"]);
    assert_eq!(rolled.body["previous_key_expires_at"], grace_end.as_str());

    // list: still one key (the limit counts keys), previewing the new secret.
    let listed = app.list(&user).body;
    assert_eq!(listed["count"], 1);
    let mut shown = rolled.body.clone();
    shown.as_object_mut().unwrap().remove("key");
    assert_eq!(listed["keys"][0], shown);

    // Both secrets verify as the same key, the very next request, until the grace ends.
    for key in [old, new] {
        let valid = app.verify(key, Some("write"));
        assert_eq!(valid.status, 200, "{}", valid.text);
        assert_eq!(valid.body["key_id"], id);
        assert_eq!(valid.body["scopes"], json!(["read", "write"]));
    }
    app.clock.advance(Duration::from_secs(3599));
    assert!(app.verifies(old));
    app.clock.advance(Duration::from_secs(1));
    let refused = app.verify(old, None);
    assert_eq!(
        (refused.status, &refused.body),
        (401, &json!({"valid": false, "code": "invalid_key"}))
    );
    assert!(app.verifies(new));
    app.clock.advance(Duration::from_secs(30 * 86_400));
    assert!(!app.verifies(old));
    assert!(app.verifies(new));
    assert_eq!(
        app.list(&user).body["keys"][0]["previous_key_expires_at"],
        json!(null)
    );

    // The history: `rolled` with the grace end, never a secret or a hash.
    let history = app.as_user(&user, "GET", "/v1/keys.events", None);
    let latest = &history.body["events"][0];
    assert_eq!(
        latest,
        &json!({
            "type": "rolled", "at": latest["at"], "key_id": id, "name": "deploy",
            "previous_key_expires_at": grace_end,
        })
    );
    for secret in [old, new] {
        assert!(!history.text.contains(&secret[3..]));
        assert!(!history.text.contains(&shared::key::key_hash(secret)));
    }
}

fn a_roll_without_grace_ends_the_old_secret_at_once_and_delete_kills_every_secret(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("rotator");
    let created = app.create_ok(&user, "smtp", &["read"]);
    let (id, first) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );

    let rolled = roll(&app, &user, json!({"id": id}));
    assert_eq!(rolled.status, 201, "{}", rolled.text);
    assert_eq!(rolled.body["previous_key_expires_at"], json!(null));
    let second = rolled.body["key"].as_str().unwrap().to_owned();
    assert_eq!(app.verify(first, None).body["code"], "invalid_key");
    assert!(app.verifies(&second));

    // A disabled key rolls to a disabled secret; an update reaches every live secret.
    let rolled = roll(&app, &user, json!({"id": id, "grace_seconds": 600}));
    assert_eq!(rolled.status, 201, "{}", rolled.text);
    let third = rolled.body["key"].as_str().unwrap().to_owned();
    let body = json!({"id": id, "enabled": false}).to_string();
    let disabled = app.as_user(&user, "POST", "/v1/keys.update", Some(&body));
    assert_eq!(disabled.status, 200, "{}", disabled.text);
    for key in [&second, &third] {
        assert_eq!(app.verify(key, None).body["code"], "key_disabled");
    }

    // Deleting the key kills both secrets at once.
    assert_eq!(app.delete(&user, id).status, 200);
    for key in [&second, &third] {
        assert_eq!(app.verify(key, None).body["code"], "invalid_key");
    }
    assert_error(&roll(&app, &user, json!({"id": id})), 404, "key_not_found");
}

fn racing_rolls_leave_every_secret_listed_and_one_current(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("racing-roller");
    let created = app.create_ok(&user, "raced", &["read"]);
    let id = created["id"].as_str().unwrap();
    let answers: Vec<e2e::Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (app, user) = (&app, &user);
                scope.spawn(move || roll(app, user, json!({"id": id, "grace_seconds": 600})))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // A roll that lost a race answers 503 (retry) and its secret never verifies.
    let mut won = Vec::new();
    for answer in &answers {
        match answer.status {
            201 => won.push(answer.body["key"].as_str().unwrap().to_owned()),
            503 => assert_eq!(answer.code(), Some("store_unavailable")),
            other => panic!("{other}: {}", answer.text),
        }
    }
    assert!(!won.is_empty());
    let listed = app.list(&user).body;
    assert_eq!(listed["count"], 1);
    // The key's current secret is the one list previews, and it verifies.
    let preview = listed["keys"][0]["preview"].as_str().unwrap();
    let current: Vec<&String> = won
        .iter()
        .filter(|k| k.ends_with(&preview[preview.len() - 4..]))
        .collect();
    assert_eq!(current.len(), 1, "{preview} among {won:?}");
    assert!(app.verifies(current[0]));
    for answer in answers.iter().filter(|a| a.status == 503) {
        assert!(answer.body.get("key").is_none());
    }
    // Deleting kills whatever secrets the races left.
    assert_eq!(app.delete(&user, id).status, 200);
    for key in won
        .iter()
        .map(String::as_str)
        .chain([created["key"].as_str().unwrap()])
    {
        assert!(!app.verifies(key));
    }
}

#[test]
fn bad_rolls_are_refused_with_a_code_and_change_nothing() {
    let app = shared_app();
    let user = unique_user("bad-roll");
    let created = app.create_ok(&user, "keep", &["read"]);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let before = app.list(&user).body;
    for (body, status, code) in [
        (
            json!({"id": id, "grace_seconds": -1}),
            400,
            "invalid_grace_seconds",
        ),
        (
            json!({"id": id, "grace_seconds": 604_801}),
            400,
            "invalid_grace_seconds",
        ),
        (
            json!({"id": id, "grace_seconds": 1.5}),
            400,
            "invalid_grace_seconds",
        ),
        (
            json!({"id": id, "grace_seconds": "60"}),
            400,
            "invalid_grace_seconds",
        ),
        (json!({"id": "nope"}), 400, "invalid_id"),
        (json!({}), 400, "invalid_id"),
        (json!([id]), 400, "invalid_json"),
        (
            json!({"id": "key_0123456789ABCDEFGHIJKL"}),
            404,
            "key_not_found",
        ),
    ] {
        assert_error(&roll(app, &user, body.clone()), status, code);
    }
    // Someone else's key is not found, as for delete.
    let other = unique_user("other");
    assert_error(&roll(app, &other, json!({"id": id})), 404, "key_not_found");
    assert_eq!(app.list(&user).body, before);
    // Method, token and size, as on every management route.
    assert_error(
        &app.as_user(&user, "GET", "/v1/keys.roll", None),
        405,
        "method_not_allowed",
    );
    let unsigned = app.request("POST", "/v1/keys.roll", &[], Some(b"{}"));
    assert_error(&unsigned, 401, "unauthorized");
    let huge = format!("{{\"id\": \"{id}\", \"pad\": \"{}\"}}", "a".repeat(20_000));
    let reply = app.as_user(&user, "POST", "/v1/keys.roll", Some(&huge));
    assert_error(&reply, 413, "payload_too_large");
    assert_eq!(app.list(&user).body, before);
    assert!(app.verifies(key));
}

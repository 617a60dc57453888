//! Keys that expire: `expires_at` on create, shown by list, refused by verify from the moment it
//! comes (`401 key_expired`, decided from the one record read), and not counted toward the
//! limit: the next create that needs the slot reclaims it.

use e2e::{assert_error, on_every_store, shared_app, skip_on_spin, unique_user, App, Store};
use serde_json::json;
use std::time::Duration;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    an_expiring_key_verifies_until_its_expiry_then_answers_key_expired,
    an_expired_key_gives_its_slot_to_the_next_create,
);

/// `app.now() + seconds` as RFC 3339.
fn in_seconds(app: &App, seconds: i64) -> String {
    shared::rfc3339(app.now() + seconds)
}

fn create_expiring(app: &App, user: &str, name: &str, expires_at: &str) -> e2e::Reply {
    let body = json!({"name": name, "scopes": ["read"], "expires_at": expires_at}).to_string();
    app.as_user(user, "POST", "/v1/keys.create", Some(&body))
}

fn an_expiring_key_verifies_until_its_expiry_then_answers_key_expired(store: Store) {
    if skip_on_spin("moves the app's clock (the local host's test clock; Spin's is the real one)") {
        return;
    }
    let app = App::start_on(store);
    app.freeze_clock();
    let user = unique_user("expiring");
    let expires_at = in_seconds(&app, 120);
    let created = create_expiring(&app, &user, "temporary", &expires_at);
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["expires_at"], expires_at.as_str());
    let key = created.body["key"].as_str().unwrap().to_owned();

    let listed = app.list(&user);
    assert_eq!(listed.body["keys"][0]["expires_at"], expires_at.as_str());
    assert_eq!(listed.body["count"], 1);
    let valid = app.verify(&key, Some("read"));
    assert_eq!(valid.status, 200, "{}", valid.text);
    assert_eq!(valid.body["expires_at"], expires_at.as_str());

    app.clock.advance(Duration::from_secs(119));
    assert_eq!(app.verify(&key, None).status, 200);
    app.clock.advance(Duration::from_secs(1));
    let expired = app.verify(&key, Some("read"));
    assert_eq!(
        (expired.status, &expired.body),
        (401, &json!({"valid": false, "code": "key_expired"}))
    );
    assert_eq!(expired.kv_reads(), 1, "expiry is decided from the one read");
    assert_eq!(expired.kv_writes(), 0);
    // Still listed (so its owner sees what happened), no longer counted; delete still works.
    let listed = app.list(&user);
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["count"], 0);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(app.delete(&user, id).status, 200);
    assert_eq!(app.verify(&key, None).body["code"], "invalid_key");
}

fn an_expired_key_gives_its_slot_to_the_next_create(store: Store) {
    if skip_on_spin("moves the app's clock (the local host's test clock; Spin's is the real one)") {
        return;
    }
    let app = App::start_on(store);
    let user = unique_user("full");
    for n in 0..19 {
        app.create_ok(&user, &format!("key {n}"), &["read"]);
    }
    let expiring = create_expiring(&app, &user, "expiring", &in_seconds(&app, 60));
    assert_eq!(expiring.status, 201, "{}", expiring.text);
    assert_error(
        &app.create(&user, "one too many", &["read"]),
        409,
        "key_limit_reached",
    );

    app.clock.advance(Duration::from_secs(60));
    let next = app.create_ok(&user, "takes the expired slot", &["read"]);
    let ids = app.listed_ids(&user);
    assert_eq!(ids.len(), 20);
    assert!(ids.contains(&next["id"].as_str().unwrap().to_owned()));
    assert!(!ids.contains(&expiring.body["id"].as_str().unwrap().to_owned()));
    // The reclaimed key is gone for good: unknown, not merely expired.
    let old_key = expiring.body["key"].as_str().unwrap();
    assert_eq!(app.verify(old_key, None).body["code"], "invalid_key");
    assert_error(
        &app.create(&user, "still full", &["read"]),
        409,
        "key_limit_reached",
    );
}

#[test]
fn keys_never_expire_unless_asked_to() {
    let app = shared_app();
    let user = unique_user("forever");
    let created = app.create_ok(&user, "forever", &["read"]);
    assert_eq!(created["expires_at"], serde_json::Value::Null);
    assert_eq!(
        app.list(&user).body["keys"][0]["expires_at"],
        serde_json::Value::Null
    );
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        app.verify(key, None).body["expires_at"],
        serde_json::Value::Null
    );
}

#[test]
fn an_expiry_in_the_past_too_far_ahead_or_not_rfc_3339_is_400_and_creates_nothing() {
    let app = shared_app();
    let user = unique_user("bad-expiry");
    let ten_years_and_a_day = in_seconds(app, 3_654 * 86_400);
    for expires_at in [
        json!(in_seconds(app, -1)),
        json!(in_seconds(app, 0)),
        json!(ten_years_and_a_day),
        json!("next tuesday"),
        json!(1_900_000_000),
    ] {
        let body = json!({"name": "k", "scopes": ["read"], "expires_at": expires_at}).to_string();
        let reply = app.as_user(&user, "POST", "/v1/keys.create", Some(&body));
        assert_error(&reply, 400, "invalid_expires_at");
    }
    assert!(app.listed_ids(&user).is_empty());
    // Any offset is accepted and shown in UTC.
    let at = app.now() + 3600;
    let offset = shared::rfc3339(at + 7200).replace('Z', "+02:00");
    let created = create_expiring(app, &user, "offset", &offset);
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["expires_at"], shared::rfc3339(at));
}

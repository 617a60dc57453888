//! `POST /v1/keys.delete`: for good, at once, and only one's own keys.

use e2e::{assert_error, on_every_store, shared_app, unique_user, App, Store};
use serde_json::json;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    a_deleted_key_fails_the_very_next_verification,
    deleting_twice_is_404_the_second_time,
    another_users_key_is_404_and_survives,
);

fn a_deleted_key_fails_the_very_next_verification(store: Store) {
    let app = &App::start_on(store);
    let user = unique_user("deleter");
    let created = app.create_ok(&user, "doomed", &["read"]);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert!(app.verifies(key));
    let reply = app.delete(&user, id);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({"id": id, "deleted": true}));
    let after = app.verify(key, None);
    assert_eq!(after.status, 401);
    assert_eq!(after.body, json!({"valid": false, "code": "invalid_key"}));
    assert!(app.listed_ids(&user).is_empty());
}

fn deleting_twice_is_404_the_second_time(store: Store) {
    let app = &App::start_on(store);
    let user = unique_user("twice");
    let id = app.create_ok(&user, "k", &["read"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.delete(&user, &id).status, 200);
    assert_error(&app.delete(&user, &id), 404, "key_not_found");
}

fn another_users_key_is_404_and_survives(store: Store) {
    let app = &App::start_on(store);
    let (alice, mallory) = (unique_user("alice"), unique_user("mallory"));
    let created = app.create_ok(&alice, "k", &["read"]);
    assert_error(
        &app.delete(&mallory, created["id"].as_str().unwrap()),
        404,
        "key_not_found",
    );
    assert!(app.verifies(created["key"].as_str().unwrap()));
}

#[test]
fn an_unknown_id_is_404() {
    let app = shared_app();
    assert_error(
        &app.delete(&unique_user("nobody"), "key_0123456789abcdefghijkl"),
        404,
        "key_not_found",
    );
}

#[test]
fn a_malformed_id_is_400() {
    let app = shared_app();
    let user = unique_user("ids");
    for id in ["", "nope", "key_", "ak_0123456789"] {
        assert_error(&app.delete(&user, id), 400, "invalid_id");
    }
    let reply = app.as_user(&user, "POST", "/v1/keys.delete", Some(r#"{"id": 42}"#));
    assert_error(&reply, 400, "invalid_id");
    let reply = app.as_user(&user, "POST", "/v1/keys.delete", Some("id=1"));
    assert_error(&reply, 400, "invalid_json");
}

#[test]
fn delete_with_another_method_is_405_and_big_bodies_413() {
    let app = shared_app();
    let reply = app.request("GET", "/v1/keys.delete", &[], None);
    assert_error(&reply, 405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("POST"));
    let body = format!(r#"{{"id": "{}"}}"#, "k".repeat(17 * 1024));
    let reply = app.as_user(&unique_user("big"), "POST", "/v1/keys.delete", Some(&body));
    assert_error(&reply, 413, "payload_too_large");
}

#[test]
fn other_keys_of_the_user_keep_working() {
    let app = shared_app();
    let user = unique_user("keeper");
    let keep = app.create_ok(&user, "keep", &["read"]);
    let drop = app.create_ok(&user, "drop", &["read"]);
    assert_eq!(app.delete(&user, drop["id"].as_str().unwrap()).status, 200);
    assert!(app.verifies(keep["key"].as_str().unwrap()));
    assert_eq!(
        app.listed_ids(&user),
        vec![keep["id"].as_str().unwrap().to_owned()]
    );
}

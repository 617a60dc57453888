//! `GET /v1/keys.list`: only the caller's keys, oldest first, never a secret or a hash.

use e2e::{assert_error, on_every_store, shared_app, unique_user, App, Store};

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(users_see_only_their_own_keys,);

#[test]
fn list_shows_own_keys_oldest_first_with_count_and_limit() {
    let app = shared_app();
    let user = unique_user("lister");
    let created: Vec<String> = (0..3)
        .map(|i| {
            app.create_ok(&user, &format!("key {i}"), &["read"])["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let reply = app.list(&user);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["count"], 3);
    assert_eq!(reply.body["limit"], 20);
    assert_eq!(
        reply.body["allowed_scopes"],
        serde_json::json!(["read", "write", "admin"])
    );
    assert_eq!(app.listed_ids(&user), created);
    let first = &reply.body["keys"][0];
    assert_eq!(first["name"], "key 0");
    assert_eq!(first["scopes"], serde_json::json!(["read"]));
    assert!(first["created_at"].is_string());
    assert!(first["preview"].as_str().unwrap().starts_with("ak_..."));
    assert!(first["last_used_at"].is_null());
}

#[test]
fn list_never_shows_a_secret_or_a_hash() {
    let app = shared_app();
    let user = unique_user("secrets");
    let key = app.create_ok(&user, "k", &["read"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let text = app.list(&user).text;
    assert!(!text.contains(&key));
    assert!(!text.contains(&shared::key::key_hash(&key)));
    let listed = app.list(&user);
    let fields: Vec<&String> = listed.body["keys"][0].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "created_at",
            "enabled",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "preview",
            "previous_key_expires_at",
            "revoked",
            "scopes"
        ]
    );
}

fn users_see_only_their_own_keys(store: Store) {
    let app = &App::start_on(store);
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let alices = app.create_ok(&alice, "a", &["read"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bobs = app.create_ok(&bob, "b", &["read"])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.listed_ids(&alice), vec![alices]);
    assert_eq!(app.listed_ids(&bob), vec![bobs]);
    assert!(app.listed_ids(&unique_user("carol")).is_empty());
}

#[test]
fn last_used_at_appears_after_a_verification() {
    let app = shared_app();
    let user = unique_user("used");
    let key = app.create_ok(&user, "k", &["read"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(app.verifies(&key));
    let used = app.list(&user).body["keys"][0]["last_used_at"].clone();
    assert_eq!(
        used.as_str().map(|s| &s[..10]),
        Some(&shared::rfc3339(app.now())[..10])
    );
}

#[test]
fn list_with_another_method_is_405() {
    let app = shared_app();
    for method in ["POST", "PUT", "DELETE"] {
        let reply = app.request(method, "/v1/keys.list", &[], Some(b"{}"));
        assert_error(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("GET"));
    }
}

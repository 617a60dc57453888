//! `POST /v1/keys.create` through the compiled component: 201, and every 4xx of the contract.

use e2e::{assert_error, on_every_store, shared_app, unique_user, App, Store};
use serde_json::json;
use spin_host::MemoryBackend;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(the_twenty_first_key_is_409,);

#[test]
fn create_returns_the_key_once_with_its_public_parts() {
    let app = shared_app();
    let user = unique_user("creator");
    let reply = app.create(&user, "CI deploy", &["read", "write"]);
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = &reply.body;
    let key = body["key"].as_str().unwrap();
    assert!(key.starts_with("ak_"));
    assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    assert!(body["id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(body["name"], "CI deploy");
    assert_eq!(body["scopes"], json!(["read", "write"]));
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let preview = body["preview"].as_str().unwrap();
    assert!(preview.starts_with("ak_") && preview.ends_with(&key[key.len() - 4..]));
    assert!(!preview.contains(&key[3..20]));
    assert!(app.verifies(key));
}

#[test]
fn created_at_is_the_current_time_in_rfc3339_utc() {
    let app = shared_app();
    let body = app.create_ok(&unique_user("clock"), "k", &["read"]);
    let expected = shared::rfc3339(app.now());
    let got = body["created_at"].as_str().unwrap();
    assert_eq!(got.len(), expected.len());
    assert_eq!(&got[..15], &expected[..15], "{got} vs {expected}");
}

#[test]
fn names_are_trimmed_and_may_be_any_unicode() {
    let app = shared_app();
    let user = unique_user("unicode");
    let name = "Clé d'API — 日本語 🔑";
    let body = app.create_ok(&user, &format!("  {name}\u{3000}"), &["read"]);
    assert_eq!(body["name"], name);
    let listed = app.list(&user);
    assert_eq!(listed.body["keys"][0]["name"], name);
    let verified = app.verify(body["key"].as_str().unwrap(), None);
    assert_eq!(verified.body["name"], name);
}

#[test]
fn emoji_sequences_with_joiners_are_names_too() {
    let app = shared_app();
    let user = unique_user("emoji");
    // Woman technologist (ZWJ) and rainbow flag (VS16, ZWJ): the joiners are part of the emoji.
    let name = "👩\u{200D}💻 🏳\u{FE0F}\u{200D}🌈";
    let body = app.create_ok(&user, name, &["read"]);
    assert_eq!(body["name"], name);
}

#[test]
fn names_need_not_be_unique() {
    let app = shared_app();
    let user = unique_user("twins");
    let first = app.create_ok(&user, "same", &["read"]);
    let second = app.create_ok(&user, "same", &["read"]);
    assert_ne!(first["id"], second["id"]);
    assert_eq!(app.listed_ids(&user).len(), 2);
}

#[test]
fn invalid_json_is_400() {
    let app = shared_app();
    let user = unique_user("json");
    for body in ["", "{", "[]", "null", "\"x\""] {
        let reply = app.as_user(&user, "POST", "/v1/keys.create", Some(body));
        assert_error(&reply, 400, "invalid_json");
    }
}

#[test]
fn a_member_create_does_not_take_is_400_unknown_member_and_creates_nothing() {
    let app = shared_app();
    let user = unique_user("strict-create");
    // An outside check's cases: a limit the key would not have had, an expiry misspelled
    // (which made a key that never expires), and a member named in another case.
    for (body, member) in [
        (
            r#"{"name": "x", "scopes": ["read"], "rate_limits": [{"limit": 10}]}"#,
            "rate_limits",
        ),
        (
            r#"{"name": "x", "scopes": ["read"], "expire_at": "2026-12-08T00:00:00Z"}"#,
            "expire_at",
        ),
        (r#"{"Name": "y", "name": "x", "scopes": ["read"]}"#, "Name"),
        (r#"{"name": "x", "scopes": ["read"], "meta": null}"#, "meta"),
    ] {
        let reply = app.as_user(&user, "POST", "/v1/keys.create", Some(body));
        assert_error(&reply, 400, "unknown_member");
        assert_eq!(reply.body["error"]["member"], member, "{body}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{member}`")), "{message}");
    }
    assert!(
        app.listed_ids(&user).is_empty(),
        "a refused create made a key"
    );
}

#[test]
fn a_member_given_twice_is_400_invalid_json_naming_it_and_creates_nothing() {
    let app = shared_app();
    let user = unique_user("twice-create");
    for (body, member) in [
        (
            r#"{"name": "x", "scopes": ["read"], "expires_at": "2030-01-01T00:00:00Z", "expires_at": null}"#,
            "expires_at",
        ),
        (r#"{"name": "x", "name": "y", "scopes": ["read"]}"#, "name"),
    ] {
        let reply = app.as_user(&user, "POST", "/v1/keys.create", Some(body));
        assert_error(&reply, 400, "invalid_json");
        assert_eq!(reply.body["error"]["member"], member, "{body}");
    }
    assert!(
        app.listed_ids(&user).is_empty(),
        "a refused create made a key"
    );
}

#[test]
fn invalid_names_are_400() {
    let app = shared_app();
    let user = unique_user("names");
    for name in [
        json!(""),
        json!("   "),
        json!("x".repeat(65)),
        json!("a\u{7}b"),
        json!("line\nbreak"),
        json!("\u{202E}dorp"),
        json!("pro\u{200B}d"),
        // Names that look blank, and characters that show nothing inside a name.
        json!("\u{3164}"),
        json!("\u{115F}\u{1160}"),
        json!("\u{2800}"),
        json!("pro\u{00AD}d"),
        json!("pro\u{034F}d"),
        json!("pro\u{2062}d"),
        json!("pro\u{FE0F}d"),
        json!("prod\u{E0041}"),
        json!("pro\u{180B}d"),
        json!(7),
        json!(null),
    ] {
        let body = json!({ "name": name, "scopes": ["read"] }).to_string();
        let reply = app.as_user(&user, "POST", "/v1/keys.create", Some(&body));
        assert_error(&reply, 400, "invalid_name");
    }
    assert!(
        app.listed_ids(&user).is_empty(),
        "bad input changed nothing"
    );
}

#[test]
fn sixty_four_characters_are_the_longest_name() {
    let app = shared_app();
    let name = "é".repeat(64);
    assert_eq!(
        app.create(&unique_user("long"), &name, &["read"]).status,
        201
    );
}

#[test]
fn invalid_scopes_are_400() {
    let app = shared_app();
    let user = unique_user("scopes");
    for scopes in [
        json!([]),
        json!(["read", "read"]),
        json!(["root"]),
        json!("read"),
        json!([1]),
        json!(null),
    ] {
        let body = json!({ "name": "n", "scopes": scopes }).to_string();
        let reply = app.as_user(&user, "POST", "/v1/keys.create", Some(&body));
        assert_error(&reply, 400, "invalid_scopes");
    }
    assert!(app.listed_ids(&user).is_empty());
}

#[test]
fn bodies_over_16_kib_are_413() {
    let app = shared_app();
    let body = format!(
        r#"{{"name": "n", "scopes": ["read"], "pad": "{}"}}"#,
        "x".repeat(16 * 1024)
    );
    let reply = app.as_user(&unique_user("big"), "POST", "/v1/keys.create", Some(&body));
    assert_error(&reply, 413, "payload_too_large");
}

#[test]
fn other_methods_are_405_with_allow() {
    let app = shared_app();
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let reply = app.request(method, "/v1/keys.create", &[], None);
        assert_error(&reply, 405, "method_not_allowed");
        assert_eq!(reply.header("allow"), Some("POST"));
    }
}

fn the_twenty_first_key_is_409(store: Store) {
    let app = &App::start_on(store);
    let user = unique_user("limit");
    for i in 0..20 {
        app.create_ok(&user, &format!("k{i}"), &["read"]);
    }
    assert_error(
        &app.create(&user, "one too many", &["read"]),
        409,
        "key_limit_reached",
    );
    assert_eq!(app.list(&user).body["count"], 20);
}

#[test]
fn variables_configure_scopes_prefix_and_limit() {
    let app = App::start_with(
        MemoryBackend::new(),
        &[
            ("allowed_scopes", "emails:send,contacts:read"),
            ("key_prefix", "zc_live"),
            ("max_keys_per_user", "2"),
        ],
    );
    let user = unique_user("configured");
    let body = app.create_ok(&user, "smtp", &["emails:send"]);
    assert!(body["key"].as_str().unwrap().starts_with("zc_live_"));
    assert_error(&app.create(&user, "x", &["read"]), 400, "invalid_scopes");
    app.create_ok(&user, "second", &["contacts:read"]);
    assert_error(
        &app.create(&user, "third", &["contacts:read"]),
        409,
        "key_limit_reached",
    );
    let listed = app.list(&user).body;
    assert_eq!(listed["limit"], 2);
    assert_eq!(
        listed["allowed_scopes"],
        json!(["emails:send", "contacts:read"])
    );
}

//! Who the user is: every way a bearer token can be wrong gets `401 unauthorized` with
//! `WWW-Authenticate: Bearer`, on create, list and delete alike.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use e2e::{assert_error, skip_on_spin, unique_user, App, JWT_SECRET};
use serde_json::json;
use shared::jwt::sign;
use spin_host::MemoryBackend;
use std::time::Duration;

const PATHS: [(&str, &str); 3] = [
    ("POST", "/v1/keys.create"),
    ("GET", "/v1/keys.list"),
    ("POST", "/v1/keys.delete"),
];

fn assert_refused(app: &App, authorization: Option<&str>) {
    for (method, path) in PATHS {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let body = br#"{"name": "n", "scopes": ["read"], "id": "key_0000000000000000000000"}"#;
        let reply = app.request(
            method,
            path,
            &headers,
            (method == "POST").then_some(&body[..]),
        );
        assert_error(&reply, 401, "unauthorized");
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{path}");
    }
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

#[test]
fn missing_or_non_bearer_authorization_is_401() {
    let app = App::start();
    assert_refused(&app, None);
    assert_refused(&app, Some("Basic dXNlcjpwYXNz"));
    assert_refused(&app, Some("Bearer"));
    assert_refused(&app, Some("Bearer not.a.jwt"));
}

#[test]
fn alg_none_and_other_algorithms_are_401() {
    let app = App::start();
    let claims = b64(&json!({"sub": "mallory", "exp": app.now() + 600}).to_string());
    let none = format!("Bearer {}.{claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
    assert_refused(&app, Some(&none));
    let hs512 = format!(
        "Bearer {}.{claims}.c2lnbmF0dXJl",
        b64(r#"{"alg":"HS512","typ":"JWT"}"#)
    );
    assert_refused(&app, Some(&hs512));
}

#[test]
fn a_token_signed_with_another_secret_is_401() {
    let app = App::start();
    let token = sign(
        &json!({"sub": "mallory", "exp": app.now() + 600}),
        b"not-the-secret",
    );
    assert_refused(&app, Some(&format!("Bearer {token}")));
}

#[test]
fn expiry_and_not_before_follow_the_clock_with_60_seconds_leeway() {
    if skip_on_spin("moves the app's clock (the local host's test clock; Spin's is the real one)") {
        return;
    }
    let app = App::start();
    app.freeze_clock();
    let token = sign(
        &json!({"sub": unique_user("clock"), "exp": app.now() + 600}),
        JWT_SECRET.as_bytes(),
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        app.request("GET", "/v1/keys.list", &[("authorization", &bearer)], None)
            .status,
        200
    );
    app.clock.advance(Duration::from_secs(600 + 60));
    assert_eq!(
        app.request("GET", "/v1/keys.list", &[("authorization", &bearer)], None)
            .status,
        200,
        "within leeway"
    );
    app.clock.advance(Duration::from_secs(2));
    assert_refused(&app, Some(&bearer));

    let future = sign(
        &json!({"sub": "u", "exp": app.now() + 6000, "nbf": app.now() + 120}),
        JWT_SECRET.as_bytes(),
    );
    assert_refused(&app, Some(&format!("Bearer {future}")));
}

#[test]
fn a_token_without_sub_or_exp_is_401() {
    let app = App::start();
    let no_sub = sign(&json!({"exp": app.now() + 600}), JWT_SECRET.as_bytes());
    assert_refused(&app, Some(&format!("Bearer {no_sub}")));
    let no_exp = sign(&json!({"sub": "u"}), JWT_SECRET.as_bytes());
    assert_refused(&app, Some(&format!("Bearer {no_exp}")));
    let long_sub = sign(
        &json!({"sub": "u".repeat(257), "exp": app.now() + 600}),
        JWT_SECRET.as_bytes(),
    );
    assert_refused(&app, Some(&format!("Bearer {long_sub}")));
}

#[test]
fn issuer_and_audience_are_checked_when_configured() {
    let app = App::start_with(
        MemoryBackend::new(),
        &[
            ("jwt_issuer", "https://auth.example"),
            ("jwt_audience", "api-keys"),
        ],
    );
    let good = sign(
        &json!({"sub": "u", "exp": app.now() + 600, "iss": "https://auth.example", "aud": "api-keys"}),
        JWT_SECRET.as_bytes(),
    );
    assert_eq!(
        app.request(
            "GET",
            "/v1/keys.list",
            &[("authorization", &format!("Bearer {good}"))],
            None
        )
        .status,
        200
    );
    let wrong_iss = sign(
        &json!({"sub": "u", "exp": app.now() + 600, "iss": "https://evil", "aud": "api-keys"}),
        JWT_SECRET.as_bytes(),
    );
    assert_refused(&app, Some(&format!("Bearer {wrong_iss}")));
    let wrong_aud = sign(
        &json!({"sub": "u", "exp": app.now() + 600, "iss": "https://auth.example", "aud": "other"}),
        JWT_SECRET.as_bytes(),
    );
    assert_refused(&app, Some(&format!("Bearer {wrong_aud}")));
}

#[test]
fn without_jwt_audience_a_token_naming_any_audience_is_401() {
    // The default: `jwt_audience` empty. A token minted for another service that shares the
    // secret names that service in `aud`, and must not sign anyone in here (RFC 7519 §4.1.3).
    let app = App::start();
    for aud in [json!("billing"), json!(["billing", "api-keys"])] {
        let theirs = sign(
            &json!({"sub": "u", "exp": app.now() + 600, "aud": aud}),
            JWT_SECRET.as_bytes(),
        );
        assert_refused(&app, Some(&format!("Bearer {theirs}")));
    }
    let ours = sign(
        &json!({"sub": "u", "exp": app.now() + 600}),
        JWT_SECRET.as_bytes(),
    );
    let reply = app.request(
        "GET",
        "/v1/keys.list",
        &[("authorization", &format!("Bearer {ours}"))],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn the_user_id_comes_only_from_the_token() {
    let app = App::start();
    let alice = unique_user("alice");
    let key = app.create_ok(&alice, "mine", &["read"]);
    // A body cannot name the owner: such a member is no member of create's, refused (400
    // unknown_member), and no key is made for anyone.
    let bob = unique_user("bob");
    let bob_token = app.token(&bob);
    for member in ["user_id", "sub"] {
        let reply = app.request(
            "POST",
            "/v1/keys.create",
            &[("authorization", &format!("Bearer {bob_token}"))],
            Some(
                json!({"name": "n", "scopes": ["read"], member: alice})
                    .to_string()
                    .as_bytes(),
            ),
        );
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.body["error"]["code"], "unknown_member");
        assert_eq!(reply.body["error"]["member"], member);
    }
    assert_eq!(
        app.listed_ids(&alice),
        vec![key["id"].as_str().unwrap().to_owned()]
    );
    assert!(app.listed_ids(&bob).is_empty());
}

#[test]
fn without_a_signing_secret_management_is_500_and_verify_still_works() {
    // A verify-only deployment holds no secret: the same store, one instance with the secret,
    // one without (as the verify tier), one with a secret too short for HS256.
    let store = MemoryBackend::new();
    let full = App::start_with(store.clone(), &[]);
    let without = App::start_with(store.clone(), &[("jwt_secret", "")]);
    let short = App::start_with(store, &[("jwt_secret", "not-256-bits")]);
    let user = unique_user("secretless");
    let created = full.create_ok(&user, "k", &["read"]);
    for app in [&without, &short] {
        assert_error(
            &app.create(&user, "k", &["read"]),
            500,
            "configuration_error",
        );
        assert_error(&app.list(&user), 500, "configuration_error");
        let reply = app.verify(created["key"].as_str().unwrap(), Some("read"));
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
}

#[test]
fn a_secret_with_a_trailing_newline_signs_as_the_trimmed_secret() {
    let secret_file_content = format!("{JWT_SECRET}\n");
    let app = App::start_with(
        MemoryBackend::new(),
        &[("jwt_secret", &secret_file_content)],
    );
    assert_eq!(app.list(&unique_user("newline")).status, 200);
}

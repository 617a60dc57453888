//! The component log (stderr, which Spin keeps per component): one line per refused token and
//! per 5xx, with the route and the reason, and never a token, key, hash or secret.

use e2e::{skip_on_spin, unique_user, App, JWT_SECRET};
use serde_json::json;
use shared::jwt::sign;

#[test]
fn refused_tokens_and_5xx_are_logged_without_any_secret() {
    if skip_on_spin("injects store failures (the local host's fault injection)") {
        return;
    }
    let app = App::start();
    let user = unique_user("logged");
    let created = app.create_ok(&user, "k", &["read"]);
    let key = created["key"].as_str().unwrap().to_owned();
    let expired = sign(
        &json!({"sub": user, "exp": app.now() - 3600}),
        JWT_SECRET.as_bytes(),
    );
    let forged = sign(
        &json!({"sub": user, "exp": app.now() + 600}),
        b"0123456789abcdef0123456789abcdef-other",
    );
    for token in [&expired, &forged] {
        let reply = app.request(
            "GET",
            "/v1/keys.list",
            &[("authorization", &format!("Bearer {token}"))],
            None,
        );
        assert_eq!(reply.status, 401);
    }
    app.store.fail_all(true);
    assert_eq!(app.create(&user, "k2", &["read"]).status, 503);
    assert_eq!(app.verify(&key, None).status, 503);
    app.store.fail_all(false);
    // Ordinary refusals are not an operator's business.
    assert_eq!(app.verify("ak_nonsense", None).status, 401);
    assert_eq!(
        app.delete(&user, "key_doesnotexist00000000").status / 100,
        4
    );

    let log = app.component_log();
    for line in [
        "/v1/keys.list: 401 unauthorized: bearer token refused: expired",
        "/v1/keys.list: 401 unauthorized: bearer token refused: bad signature",
        // With its cause: here the store failed, as opposed to losing races or an
        // unreadable value.
        "/v1/keys.create: 503 store_unavailable: a store operation failed",
        "/v1/keys.verify: 503 store_unavailable",
    ] {
        assert!(log.contains(line), "missing `{line}` in the log:\n{log}");
    }
    let hash = shared::key::sha256_hex(&key);
    for secret in [JWT_SECRET, &expired, &forged, &key, &hash, &key[3..]] {
        assert!(!log.contains(secret), "the log holds a secret:\n{log}");
    }
    assert!(!log.contains("404"), "a 404 is not logged:\n{log}");
}

//! Leaked keys revoked: GitHub's secret-scanning alerts (`POST /v1/keys.leaked`, signed with a
//! key of the test's own published to the app as GitHub publishes its keys) and RFC 7009
//! revocation by a key's holder (`POST /v1/keys.revoke`), on SQLite and on Redis, each with a
//! verify-only instance on the same store.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use e2e::{shared_app, unique_user, App, Reply, SharedStore, Store};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{json, Value};

const KEY_ID: &str = "e2e-signing-key";

/// The test's signing key (from a fixed scalar) and the document publishing it, as GitHub's
/// `meta/public_keys/secret_scanning` does.
fn signing_key() -> (SigningKey, String) {
    let key = SigningKey::from_bytes(&[42u8; 32].into()).expect("a P-256 scalar");
    let pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("PEM");
    let document = json!({
        "public_keys": [{ "key_identifier": KEY_ID, "key": pem, "is_current": true }]
    });
    (key, document.to_string())
}

/// A management instance and a verify-only one on one store, the first given the signing keys.
struct Deployment {
    app: App,
    edge: App,
    signer: SigningKey,
    _store: SharedStore,
}

fn deploy(store: Store) -> Deployment {
    let shared = SharedStore::new(store).expect("a store two instances can share");
    let (signer, document) = signing_key();
    let variables = [("github_secret_scanning_keys", document.as_str())];
    Deployment {
        app: App::start_instance(&shared, &variables, &[]),
        edge: App::start_instance(&shared, &[], &["verify"]),
        signer,
        _store: shared,
    }
}

fn matches(tokens: &[&str], url: &str) -> Vec<u8> {
    let found: Vec<Value> = tokens
        .iter()
        .map(|token| json!({ "token": token, "type": "api_keys", "url": url, "source": "commit" }))
        .collect();
    serde_json::to_vec(&found).unwrap()
}

/// Posts `body` to the alert endpoint signed by `signer` (as key `KEY_ID`).
fn alert(app: &App, signer: &SigningKey, body: &[u8]) -> Reply {
    let signature: Signature = signer.sign(body);
    let signature = STANDARD.encode(signature.to_der().as_bytes());
    app.request(
        "POST",
        "/v1/keys.leaked",
        &[
            ("content-type", "application/json"),
            ("github-public-key-identifier", KEY_ID),
            ("github-public-key-signature", &signature),
        ],
        Some(body),
    )
}

fn sha256_hex(text: &str) -> String {
    shared::key::sha256_hex(text)
}

fn a_signed_alert_revokes_the_live_keys_it_reports_and_nothing_else(store: Store) {
    let d = deploy(store);
    let user = unique_user("leaky");
    let keys: Vec<Value> = (0..4)
        .map(|n| {
            d.app
                .create_ok(&user, &format!("integration {n}"), &["read"])
        })
        .collect();
    let secret = |n: usize| keys[n]["key"].as_str().unwrap().to_owned();
    let id = |n: usize| keys[n]["id"].as_str().unwrap().to_owned();
    let deleted = d.app.create_ok(&user, "gone", &["read"]);
    assert_eq!(
        d.app.delete(&user, deleted["id"].as_str().unwrap()).status,
        200
    );
    let mut bad_checksum = secret(3);
    bad_checksum.replace_range(bad_checksum.len() - 2.., "00");
    let foreign = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    let tokens = [
        secret(0),
        secret(1),
        secret(2),
        deleted["key"].as_str().unwrap().to_owned(),
        bad_checksum.clone(),
        foreign.to_owned(),
    ];
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let url = "https://github.com/octo/app/blob/4f1c2e/deploy/.env";
    let body = matches(&tokens, url);

    // Unsigned, signed by a stranger, tampered with: refused, and nothing changes.
    let unsigned = d.app.request("POST", "/v1/keys.leaked", &[], Some(&body));
    assert_eq!(
        (unsigned.status, unsigned.body["error"]["code"].as_str()),
        (401, Some("unknown_signing_key")),
        "{}",
        unsigned.text
    );
    let stranger = SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
    let forged = alert(&d.app, &stranger, &body);
    assert_eq!(
        (forged.status, forged.body["error"]["code"].as_str()),
        (400, Some("invalid_signature"))
    );
    let signature: Signature = d.signer.sign(&body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let reply = d.app.request(
        "POST",
        "/v1/keys.leaked",
        &[
            ("github-public-key-identifier", KEY_ID),
            (
                "github-public-key-signature",
                &STANDARD.encode(signature.to_der().as_bytes()),
            ),
        ],
        Some(&tampered),
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    for n in 0..4 {
        assert!(
            d.edge.verifies(&secret(n)),
            "key {n} verifies before any alert"
        );
    }

    // Signed by the published key: three live keys revoked, the rest false positives.
    let reply = alert(&d.app, &d.signer, &body);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let labels: Vec<&str> = reply
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive"
        ]
    );
    for (feedback, token) in reply.body.as_array().unwrap().iter().zip(&tokens) {
        assert_eq!(feedback["token_hash"], sha256_hex(token));
        assert_eq!(feedback["token_type"], "api_keys");
    }
    for token in &tokens {
        assert!(!reply.text.contains(token), "a token came back");
    }
    // The very next request, on either instance: 401 key_revoked.
    for n in 0..3 {
        for instance in [&d.edge, &d.app] {
            let verified = instance.verify(&secret(n), None);
            assert_eq!(
                (verified.status, verified.body["code"].as_str()),
                (401, Some("key_revoked")),
                "key {n}: {}",
                verified.text
            );
        }
    }
    assert!(
        d.edge.verifies(&secret(3)),
        "an unreported key still verifies"
    );

    // The owner sees each revoked key in the list, with why, when and where, and its event.
    let listed = d.app.list(&user);
    let listed = listed.body["keys"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 4);
    for n in 0..3 {
        let shown = listed.iter().find(|k| k["id"] == id(n).as_str()).unwrap();
        assert_eq!(shown["revoked"]["reason"], "leaked", "{shown}");
        assert_eq!(shown["revoked"]["url"], url);
        assert_eq!(shown["revoked"]["source"], "commit");
        assert!(shown["revoked"]["at"].is_string());
    }
    let live = listed.iter().find(|k| k["id"] == id(3).as_str()).unwrap();
    assert_eq!(live["revoked"], Value::Null);
    let history = d.app.as_user(&user, "GET", "/v1/keys.events", None);
    let revoked: Vec<&Value> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "revoked")
        .collect();
    assert_eq!(revoked.len(), 3, "{}", history.text);
    assert!(revoked
        .iter()
        .all(|e| e["reason"] == "leaked" && e["url"] == url));
    assert!(!history.text.contains(&secret(0)));

    // Replayed: the same answer, and nothing more happens.
    let again = alert(&d.app, &d.signer, &body);
    assert_eq!((again.status, &again.body), (200, &reply.body));
    let history_again = d.app.as_user(&user, "GET", "/v1/keys.events", None);
    assert_eq!(history_again.body, history.body);

    // A revoked key can no longer be changed or rolled, and counts toward no limit; its owner
    // removes it once the integration is fixed.
    let update = d.app.as_user(
        &user,
        "POST",
        "/v1/keys.update",
        Some(&json!({ "id": id(0), "name": "back again" }).to_string()),
    );
    assert_eq!(update.status, 404, "{}", update.text);
    let roll = d.app.as_user(
        &user,
        "POST",
        "/v1/keys.roll",
        Some(&json!({ "id": id(0) }).to_string()),
    );
    assert_eq!(roll.status, 404, "{}", roll.text);
    assert_eq!(d.app.delete(&user, &id(0)).status, 200);
    assert!(!d.app.listed_ids(&user).contains(&id(0)));
    assert_eq!(d.edge.verify(&secret(0), None).body["code"], "invalid_key");
}

fn a_holder_revokes_its_own_key_with_rfc_7009(store: Store) {
    let d = deploy(store);
    let user = unique_user("holder");
    let created = d.app.create_ok(&user, "ci runner", &["read"]);
    let key = created["key"].as_str().unwrap();
    let revoke = |token: &str| {
        d.app.request(
            "POST",
            "/v1/keys.revoke",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(format!("token={token}&token_type_hint=access_token").as_bytes()),
        )
    };
    let reply = revoke(key);
    assert_eq!(
        (reply.status, &reply.body),
        (200, &json!({})),
        "{}",
        reply.text
    );
    let verified = d.edge.verify(key, None);
    assert_eq!(
        (verified.status, verified.body["code"].as_str()),
        (401, Some("key_revoked"))
    );
    // Introspection (mail servers, Apache) says inactive, like for any dead key.
    let introspected = d.edge.request(
        "POST",
        "/v1/keys.introspect",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(format!("token={key}").as_bytes()),
    );
    assert_eq!(introspected.body, json!({ "active": false }));
    let listed = d.app.list(&user);
    assert_eq!(listed.body["keys"][0]["revoked"]["reason"], "self");
    // Unknown, mistyped or already revoked: the same answer, telling nothing.
    let unknown = format!("{}A", &key[..key.len() - 1]);
    for token in [key, unknown.as_str(), "hello"] {
        let reply = revoke(token);
        assert_eq!((reply.status, &reply.body), (200, &json!({})));
    }
    let events = d.app.as_user(&user, "GET", "/v1/keys.events", None);
    let revoked = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "revoked")
        .count();
    assert_eq!(revoked, 1);
}

/// Someone rolled away from (a contractor whose secret was replaced, with a week's grace)
/// revokes the secret they hold: it stops verifying at once, and the secret that replaced it,
/// which they never held, keeps working; the key is not revoked, and its history says which
/// secret ended and why.
fn a_holder_rolled_away_from_ends_only_their_own_secret(store: Store) {
    let d = deploy(store);
    let user = unique_user("rolled-away");
    let created = d.app.create_ok(&user, "deploys", &["read"]);
    let old = created["key"].as_str().unwrap().to_owned();
    let body = json!({ "id": created["id"], "grace_seconds": 7 * 24 * 3600 });
    let rolled = d
        .app
        .as_user(&user, "POST", "/v1/keys.roll", Some(&body.to_string()));
    assert_eq!(rolled.status, 201, "{}", rolled.text);
    let new = rolled.body["key"].as_str().unwrap().to_owned();
    assert_eq!(d.edge.verify(&old, None).status, 200, "in its grace");
    let reply = d.app.request(
        "POST",
        "/v1/keys.revoke",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(format!("token={old}").as_bytes()),
    );
    assert_eq!((reply.status, &reply.body), (200, &json!({})));
    let refused = d.edge.verify(&old, None);
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (401, Some("invalid_key"))
    );
    assert_eq!(
        d.edge.verify(&new, None).status,
        200,
        "the new secret lives on"
    );
    let listed = d.app.list(&user);
    let key = &listed.body["keys"][0];
    assert_eq!(key["revoked"], json!(null), "{}", listed.text);
    assert_eq!(key["previous_key_expires_at"], json!(null));
    let events = d.app.as_user(&user, "GET", "/v1/keys.events", None);
    let event = &events.body["events"][0];
    assert_eq!(
        (event["type"].as_str(), event["reason"].as_str()),
        (Some("revoked"), Some("self"))
    );
    let preview = event["secret_preview"].as_str().unwrap();
    assert!(
        old.ends_with(&preview[preview.len() - 4..]),
        "{preview} names the old secret"
    );
    // Its new secret can still be revoked: then the whole key is.
    let reply = d.app.request(
        "POST",
        "/v1/keys.revoke",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(format!("token={new}").as_bytes()),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(d.edge.verify(&new, None).body["code"], "key_revoked");
}

/// Makes `<case>::sqlite` and `<case>::redis` tests of each `fn <case>(store: Store)`: the
/// stores two instances share here (DynamoDB gives each Spin instance a table of its own).
macro_rules! on_shared_stores {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use e2e::Store;
            #[test]
            fn sqlite() {
                Store::Sqlite.run(super::$case)
            }
            #[test]
            fn redis() {
                Store::RedisAsSpin41.run(super::$case)
            }
        }
    )*};
}

on_shared_stores!(
    a_signed_alert_revokes_the_live_keys_it_reports_and_nothing_else,
    a_holder_revokes_its_own_key_with_rfc_7009,
    a_holder_rolled_away_from_ends_only_their_own_secret,
);

#[test]
fn alerts_without_signing_keys_configured_are_refused_and_revoke_nothing() {
    let app = shared_app();
    let user = unique_user("unconfigured");
    let key = app.create_ok(&user, "k", &["read"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (signer, _) = signing_key();
    let reply = alert(app, &signer, &matches(&[&key], "https://example.com/x"));
    assert_eq!(reply.status, 500, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "configuration_error");
    assert!(app.verifies(&key));
}

#[test]
fn an_alert_over_its_cap_is_413_and_a_revocation_without_a_token_or_with_an_empty_one_400() {
    let app = shared_app();
    let body = vec![b' '; 64 * 1024 + 1];
    let reply = app.request("POST", "/v1/keys.leaked", &[], Some(&body));
    assert_eq!(
        (reply.status, reply.body["error"]["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let reply = app.request(
        "POST",
        "/v1/keys.revoke",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"token_type_hint=access_token"),
    );
    assert_eq!(
        (reply.status, &reply.body),
        (400, &json!({ "error": "invalid_request" }))
    );
    // An empty token counts as none (RFC 6749 §3.1), and one is required (RFC 7009 §2.1): an
    // outside check's `token=` was answered `200 {}`.
    for form in ["token=", "token=&token_type_hint=access_token", "token"] {
        let reply = app.request(
            "POST",
            "/v1/keys.revoke",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(form.as_bytes()),
        );
        assert_eq!(
            (reply.status, &reply.body),
            (400, &json!({ "error": "invalid_request" })),
            "{form:?}"
        );
    }
    let reply = app.request("GET", "/v1/keys.revoke", &[], None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = app.request("GET", "/v1/keys.leaked", &[], None);
    assert_eq!(reply.status, 405);
}

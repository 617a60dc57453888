//! Tests of the alert signature check: GitHub's published example, signatures this test makes
//! with its own P-256 key, and every way an alert can be forged or damaged.

use super::*;
use crate::http::Reply;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePublicKey, LineEnding};

/// The example of GitHub's partner-program documentation: its body, key and signature.
const GITHUB_EXAMPLE_BODY: &[u8] = br#"[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]"#;
const GITHUB_EXAMPLE_KEY_ID: &str =
    "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";
const GITHUB_EXAMPLE_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n";
const GITHUB_EXAMPLE_SIGNATURE: &str = "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/AO1RtBY66YcAdjxji410VQV4xg==";

/// A published document holding `keys` (identifier, PEM).
fn document(keys: &[(&str, &str)]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|(id, pem)| serde_json::json!({"key_identifier": id, "key": pem, "is_current": true}))
        .collect();
    serde_json::json!({ "public_keys": keys }).to_string()
}

/// A key of the test's own, from a fixed scalar (so the test needs no random source).
fn own_key(seed: u8) -> (SigningKey, String) {
    let signing = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
    let pem = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    (signing, pem)
}

fn sign(key: &SigningKey, body: &[u8]) -> String {
    let signature: Signature = key.sign(body);
    STANDARD.encode(signature.to_der().as_bytes())
}

#[test]
fn githubs_published_example_verifies_with_its_published_key() {
    let keys =
        SigningKeys::from_document(&document(&[(GITHUB_EXAMPLE_KEY_ID, GITHUB_EXAMPLE_KEY)]))
            .unwrap();
    assert_eq!(
        keys.check(
            GITHUB_EXAMPLE_KEY_ID,
            GITHUB_EXAMPLE_SIGNATURE,
            GITHUB_EXAMPLE_BODY
        ),
        Ok(())
    );
    // The same JSON with one byte of spacing more is another body.
    let respaced =
        String::from_utf8_lossy(GITHUB_EXAMPLE_BODY).replace(",\"token\"", ", \"token\"");
    assert_eq!(
        keys.check(
            GITHUB_EXAMPLE_KEY_ID,
            GITHUB_EXAMPLE_SIGNATURE,
            respaced.as_bytes()
        ),
        Err(Refused::BadSignature)
    );
}

#[test]
fn an_alert_signed_with_any_published_key_is_githubs() {
    let (old, old_pem) = own_key(3);
    let (current, current_pem) = own_key(7);
    let keys =
        SigningKeys::from_document(&document(&[("old", &old_pem), ("current", &current_pem)]))
            .unwrap();
    let body = br#"[{"token":"ak_x","type":"api_key","url":"https://github.com/o/r/blob/c/f","source":"content"}]"#;
    assert_eq!(keys.check("current", &sign(&current, body), body), Ok(()));
    assert_eq!(keys.check("old", &sign(&old, body), body), Ok(()));
    // Signed with one key but naming the other.
    assert_eq!(
        keys.check("old", &sign(&current, body), body),
        Err(Refused::BadSignature)
    );
}

#[test]
fn forged_or_damaged_alerts_are_refused() {
    let (github, pem) = own_key(7);
    let (stranger, _) = own_key(9);
    let keys = SigningKeys::from_document(&document(&[("k", &pem)])).unwrap();
    let body = br#"[{"token":"ak_x","type":"api_key","url":"","source":"commit"}]"#;
    let good = sign(&github, body);
    let tampered = br#"[{"token":"ak_y","type":"api_key","url":"","source":"commit"}]"#;
    let truncated = &good[..good.len() - 8];
    let cases: [(&str, &str, &[u8], Refused); 7] = [
        ("unknown", &good, body, Refused::UnknownKey),
        ("", &good, body, Refused::UnknownKey),
        ("k", &good, tampered, Refused::BadSignature),
        ("k", truncated, body, Refused::BadSignature),
        ("k", "not base64 !", body, Refused::BadSignature),
        ("k", "", body, Refused::BadSignature),
        ("k", &sign(&stranger, body), body, Refused::BadSignature),
    ];
    for (identifier, signature, body, refused) in cases {
        assert_eq!(
            keys.check(identifier, signature, body),
            Err(refused),
            "{identifier:?} {signature:?}"
        );
    }
    assert_eq!(keys.check("k", &good, body), Ok(()));
}

#[test]
fn a_document_that_is_not_githubs_is_a_configuration_error() {
    for json in [
        "",
        "[]",
        "{}",
        r#"{"public_keys": []}"#,
        r#"{"public_keys": {}}"#,
    ] {
        assert_eq!(
            SigningKeys::from_document(json).unwrap_err(),
            KeysError::NotTheDocument,
            "{json}"
        );
    }
    let not_p256 = document(&[(
        "bad",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )]);
    assert_eq!(
        SigningKeys::from_document(&not_p256).unwrap_err(),
        KeysError::BadKey("bad".into())
    );
}

use crate::token_revocation::tests::{live_key, NOW};

fn alert(tokens: &[&str]) -> Vec<u8> {
    let matches: Vec<_> = tokens
        .iter()
        .map(|token| {
            serde_json::json!({
                "token": token,
                "type": "api_keys_key",
                "url": "https://github.com/octo/app/blob/main/config.env",
                "source": "content",
            })
        })
        .collect();
    serde_json::to_vec(&matches).unwrap()
}

#[test]
fn the_signature_headers_decide_401_or_400_before_the_body_is_read() {
    let (signing, pem) = own_key(7);
    let keys = SigningKeys::from_document(&document(&[("k1", &pem)])).unwrap();
    let body = alert(&["ak_whatever"]);
    let signature = sign(&signing, &body);
    assert_eq!(
        authenticate(&keys, Some("k1"), Some(&signature), &body),
        Ok(())
    );
    for (identifier, signature, expected) in [
        (None, Some(signature.as_str()), ApiError::UnknownSigningKey),
        (
            Some("k2"),
            Some(signature.as_str()),
            ApiError::UnknownSigningKey,
        ),
        (Some("k1"), None, ApiError::InvalidSignature),
        (
            Some("k1"),
            Some("bm90IGEgc2lnbmF0dXJl"),
            ApiError::InvalidSignature,
        ),
    ] {
        assert_eq!(
            authenticate(&keys, identifier, signature, &body),
            Err(expected.clone())
        );
        assert_eq!(
            Reply::from_error(&expected).status,
            if expected == ApiError::UnknownSigningKey {
                401
            } else {
                400
            }
        );
    }
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert_eq!(
        authenticate(&keys, Some("k1"), Some(&signature), &tampered),
        Err(ApiError::InvalidSignature)
    );
}

#[test]
fn a_body_that_is_not_an_array_of_matches_is_invalid_json() {
    for body in [
        &b"{}"[..],
        b"[{\"type\": \"x\"}]",
        b"not json",
        b"[1]",
        // A member given twice, known or not, at any depth: which one counts is no guess to make.
        b"[{\"token\": \"ak_a\", \"token\": \"ak_b\"}]",
        b"[{\"token\": \"t\", \"extra\": 1, \"extra\": 2}]",
        b"[{\"token\": \"t\", \"extra\": {\"a\": 1, \"a\": 1}}]",
    ] {
        assert!(matches!(matches(body), Err(ApiError::InvalidJson(_))));
    }
    // Members GitHub may add are ignored.
    let read = matches(br#"[{"token": "t", "secret_type": "new", "extra": {"a": [1]}}]"#).unwrap();
    assert_eq!((read[0].token.as_str(), read[0].url.as_ref()), ("t", None));
}

#[test]
fn every_live_key_reported_is_revoked_and_the_feedback_labels_each_match() {
    let store = crate::memory::MemoryStore::new();
    let live: Vec<String> = (0..2).map(|_| live_key(&store, "alice")).collect();
    let deleted = live_key(&store, "alice");
    let id = protocol::list(&store, "alice", NOW).unwrap()[2]
        .entry
        .id
        .clone();
    protocol::delete(&store, "alice", &id, NOW).unwrap();
    let mut bad_checksum = live[0].clone();
    bad_checksum.replace_range(bad_checksum.len() - 1.., "0");
    let tokens = [
        live[0].as_str(),
        live[1].as_str(),
        deleted.as_str(),
        bad_checksum.as_str(),
        "ghp_someone_elses_token",
    ];
    let found = matches(&alert(&tokens)).unwrap();
    let feedback = revoke_all(&found, || Ok(&store), NOW).unwrap();
    let labels: Vec<&str> = feedback.iter().map(|f| f.label).collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive"
        ]
    );
    // Hashes, never tokens; the type as reported.
    assert_eq!(feedback[0].token_hash, key::sha256_hex(&live[0]));
    assert_eq!(feedback[4].token_type, "api_keys_key");
    let body = serde_json::to_string(&feedback).unwrap();
    assert!(!tokens.iter().any(|t| body.contains(t)), "{body}");
    for secret in &live {
        let record = protocol::verify(&store, &key::key_hash(secret), NOW)
            .unwrap()
            .unwrap();
        let revocation = record.revocation.unwrap();
        assert_eq!(
            (revocation.reason.as_str(), revocation.source.as_deref()),
            ("leaked", Some("content"))
        );
    }
    // Replayed: the same answer, nothing more revoked or recorded.
    let before = store.snapshot();
    assert_eq!(
        revoke_all(&found, || Ok(&store), NOW + 9).unwrap(),
        feedback
    );
    assert_eq!(store.snapshot(), before);
}

#[test]
fn matches_of_no_key_of_this_app_open_no_store() {
    let found = matches(&alert(&["ghp_x", "ak_short"])).unwrap();
    let feedback =
        revoke_all::<&crate::memory::MemoryStore>(&found, || panic!("opened the store"), NOW)
            .unwrap();
    assert!(feedback.iter().all(|f| f.label == "false_positive"));
}

#[test]
fn a_reported_url_is_kept_only_if_it_is_safe_to_show_as_a_link() {
    let kept = |url: &str| Revocation::new("leaked", Some(url), None, NOW).url;
    assert!(kept("https://github.com/o/r/blob/main/.env").is_some());
    assert!(kept("javascript:alert(1)").is_none());
    assert!(kept("https://example.com/a b").is_none());
    assert!(kept(&format!("https://{}", "x".repeat(protocol::MAX_URL_BYTES))).is_none());
    let source = Revocation::new("leaked", None, Some(&"s".repeat(65)), NOW).source;
    assert!(source.is_none());
}

#[test]
fn a_store_failure_on_one_token_stops_none_of_the_others_and_the_alert_is_503() {
    let store = crate::memory::MemoryStore::new();
    let secrets: Vec<String> = (0..3).map(|_| live_key(&store, "alice")).collect();
    let tokens: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let found = matches(&alert(&tokens)).unwrap();
    let revoked = |secret: &str| {
        protocol::verify(&store, &key::key_hash(secret), NOW)
            .unwrap()
            .unwrap()
            .revocation
            .is_some()
    };
    // The first token's read fails; the two after it are revoked all the same.
    store.fail_nth(1);
    assert_eq!(
        revoke_all(&found, || Ok(&store), NOW),
        Err(ApiError::StoreUnavailable(crate::error::cause::STORE_ERROR))
    );
    assert_eq!(
        secrets.iter().map(|s| revoked(s)).collect::<Vec<_>>(),
        [false, true, true]
    );
    // GitHub's retry revokes the one left, and those revoked already answer as before.
    let feedback = revoke_all(&found, || Ok(&store), NOW).unwrap();
    assert!(feedback.iter().all(|f| f.label == "true_positive"));
    assert!(secrets.iter().all(|s| revoked(s)));
}

#[test]
fn a_store_that_does_not_open_is_tried_again_for_the_next_token() {
    let store = crate::memory::MemoryStore::new();
    let secrets: Vec<String> = (0..2).map(|_| live_key(&store, "alice")).collect();
    let found = matches(&alert(&[&secrets[0], "ghp_not_ours", &secrets[1]])).unwrap();
    let opened = std::cell::Cell::new(0);
    let open = || {
        opened.set(opened.get() + 1);
        match opened.get() {
            1 => Err(StoreError("not now".into())),
            _ => Ok(&store),
        }
    };
    assert_eq!(
        revoke_all(&found, open, NOW),
        Err(ApiError::StoreUnavailable(crate::error::cause::STORE_ERROR))
    );
    // Opened twice: once failing (the first token), once for the last token, which is revoked.
    assert_eq!(opened.get(), 2);
    let record = protocol::verify(&store, &key::key_hash(&secrets[1]), NOW)
        .unwrap()
        .unwrap();
    assert!(record.revocation.is_some());
}

#[test]
fn the_feedback_labels_are_those_openapi_yaml_documents() {
    let store = crate::memory::MemoryStore::new();
    let live = live_key(&store, "alice");
    let found = matches(&alert(&[&live, "ghp_x"])).unwrap();
    let mut labels: Vec<String> = revoke_all(&found, || Ok(&store), NOW)
        .unwrap()
        .iter()
        .map(|f| f.label.to_owned())
        .collect();
    labels.sort();
    let mut documented = crate::error::openapi::values("LeakFeedback", "label");
    documented.sort();
    assert_eq!(documented, labels);
}

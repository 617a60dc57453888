//! Tests of the alert signature check: GitHub's published example, signatures this test makes
//! with its own P-256 key, and every way an alert can be forged or damaged.

use super::*;
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

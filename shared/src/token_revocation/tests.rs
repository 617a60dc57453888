//! Tests of RFC 7009 revocation: the form, the answers, and what a revocation changes.

use super::*;
use crate::memory::MemoryStore;
use crate::protocol::{self, NewKeyRecord};

pub(crate) const NOW: i64 = 1_800_000_000;

/// A live key of `user`'s in `store` (scope `read`, made at [`NOW`] with the default prefix):
/// its secret. The leak-alert tests revoke their keys from here too.
pub(crate) fn live_key(store: &MemoryStore, user: &str) -> String {
    let made = key::generate("ak").unwrap();
    let record = NewKeyRecord {
        hash: &made.hash,
        id: &made.id,
        preview: &made.preview,
        name: "ci",
        scopes: &["read".to_owned()],
        expires_at: None,
    };
    protocol::create(store, user, &record, 20, NOW).unwrap();
    made.secret
}

/// A live key of alice's in a fresh store: the store and the key.
fn store_with_key() -> (MemoryStore, String) {
    let store = MemoryStore::new();
    let secret = live_key(&store, "alice");
    (store, secret)
}

fn form(text: &str) -> CappedBody {
    CappedBody::from_bytes(text.as_bytes())
}

#[test]
fn a_holder_revokes_its_key_and_every_answer_is_the_same_empty_200() {
    let (store, secret) = store_with_key();
    let body = form(&format!("token={secret}&token_type_hint=access_token"));
    let token = read("POST", || &body).unwrap();
    let reply = answer(&token, || Ok(&store), NOW);
    assert_eq!((reply.status, reply.body_json()), (200, json!({})));
    let record = protocol::verify(&store, &key::key_hash(&secret), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(record.revocation.unwrap().reason, REASON);
    let listed = protocol::list(&store, "alice", NOW).unwrap();
    assert!(listed[0].entry.revocation.is_some());
    // Again, a stranger's token, and a token of no key: the same answer.
    for token in [
        secret.clone(),
        key::generate("ak").unwrap().secret,
        "nonsense".into(),
    ] {
        let reply = answer(&token, || Ok(&store), NOW);
        assert_eq!((reply.status, reply.body_json()), (200, json!({})));
    }
}

#[test]
fn a_token_not_of_the_format_opens_no_store() {
    let reply = answer::<MemoryStore>("ak_short", || panic!("opened the store"), NOW);
    assert_eq!(reply.status, 200);
}

#[test]
fn malformed_requests_are_invalid_request_and_change_nothing() {
    let (store, secret) = store_with_key();
    for body in [
        "",
        "token_type_hint=access_token",
        &format!("token={secret}&token={secret}"),
        // RFC 6749 §3.1: a parameter without a value counts as omitted, and `token` is
        // required (RFC 7009 §2.1); an outside check's `token=` was answered `200 {}`.
        "token=",
        "token",
        "token=&token_type_hint=access_token",
        &format!("token=&token={secret}"),
        &format!("token={secret}&token_type_hint=a&token_type_hint=b"),
    ] {
        let form = form(body);
        let refusal = read("POST", || &form).unwrap_err();
        assert_eq!(refusal.status, 400, "{body}");
        assert_eq!(refusal.body_json(), json!({ "error": "invalid_request" }));
    }
    let refusal = read("GET", || panic!("read the body of a GET")).unwrap_err();
    assert_eq!(refusal.status, 405);
    assert!(refusal.headers.contains(&("allow", "POST".into())));
    let too_large = "x".repeat(crate::http::MAX_BODY_BYTES + 1);
    let too_large = form(&too_large);
    assert_eq!(read("POST", || &too_large).unwrap_err().status, 413);
    let record = protocol::verify(&store, &key::key_hash(&secret), NOW)
        .unwrap()
        .unwrap();
    assert!(record.revocation.is_none());
}

#[test]
fn a_store_failure_is_503_temporarily_unavailable() {
    let (_, secret) = store_with_key();
    let reply = answer::<MemoryStore>(&secret, || Err(StoreError("down".into())), NOW);
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.body_json(),
        json!({ "error": "temporarily_unavailable" })
    );
    assert!(reply.headers.contains(&("retry-after", "1".into())));
}

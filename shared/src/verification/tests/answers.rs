//! Tests of verify's answers for keys found in the store: expiry, disabled keys, scopes, and
//! malformed keys that never open it.

use super::*;

#[test]
fn an_expiring_key_is_valid_with_its_expiry_until_then_and_key_expired_after() {
    let key = crate::key::generate("ak").unwrap();
    let ask = |now| {
        let store = store_with(&key, Some(1_800_000_060));
        let presented = Presentation {
            key: Some(key.secret.clone()),
            scopes: vec!["read".into()],
        };
        answer(presented, || Ok(store), now)
    };
    let valid = ask(1_800_000_059);
    assert_eq!(valid.status, 200);
    assert_eq!(valid.body_json()["expires_at"], "2027-01-15T08:01:00Z");
    let expired = ask(1_800_000_060);
    assert_eq!(
        (expired.status, &expired.body_json()),
        (401, &json!({"valid": false, "code": "key_expired"}))
    );
    assert!(expired
        .headers
        .contains(&("www-authenticate", "Bearer".into())));
}

#[test]
fn a_disabled_key_answers_key_disabled_and_an_enabled_one_is_valid_again() {
    use crate::protocol::{update, Settings};
    let key = crate::key::generate("ak").unwrap();
    let ask = |enabled: &[bool]| {
        let store = store_with(&key, None);
        for enabled in enabled {
            let wanted = Settings {
                enabled: Some(*enabled),
                ..Settings::default()
            };
            let event = crate::key::event_id().unwrap();
            update(&store, "alice", &key.id, &wanted, &event, 1_800_000_000).unwrap();
        }
        let presented = Presentation {
            key: Some(key.secret.clone()),
            scopes: vec![],
        };
        answer(presented, || Ok(store), 1_800_000_000)
    };
    let disabled = ask(&[false]);
    assert_eq!(
        (disabled.status, &disabled.body_json()),
        (401, &json!({"valid": false, "code": "key_disabled"}))
    );
    assert_eq!(ask(&[false, true]).status, 200);
}

#[test]
fn malformed_keys_never_open_the_store() {
    for key in [None, Some(""), Some("garbage"), Some("ak_123")] {
        let presented = Presentation {
            key: key.map(str::to_owned),
            scopes: vec![],
        };
        let reply = answer::<crate::memory::MemoryStore>(presented, || panic!("store opened"), 0);
        assert_eq!(reply.status, 401);
        assert_eq!(
            reply.body_json(),
            json!({"valid": false, "code": "invalid_key"})
        );
        assert!(reply
            .headers
            .contains(&("www-authenticate", "Bearer".into())));
    }
}

#[test]
fn every_required_scope_counts_and_odd_ones_fail_closed() {
    let p = present("GET", Some("k"), None, "scope=read&scope=admin", b"").unwrap();
    assert_eq!(p.scopes, ["read", "admin"]);
    let p = present("GET", Some("k"), None, "scope=%zz", b"").unwrap();
    assert_eq!(p.scopes, ["%zz"]);
    let p = present(
        "POST",
        None,
        None,
        "scope=read",
        br#"{"key": "k", "scope": "write"}"#,
    )
    .unwrap();
    assert_eq!(p.scopes, ["read", "write"]);
    let refused = present(
        "POST",
        None,
        None,
        "",
        br#"{"key": "k", "scope": ["admin"]}"#,
    )
    .unwrap_err();
    assert_eq!(
        (refused.status, refused.body_json()["code"].as_str()),
        (400, Some("invalid_json"))
    );
}

#[test]
fn header_values_stay_ascii() {
    assert_eq!(header_safe("user-42@example.com"), "user-42@example.com");
    assert_eq!(header_safe("Zoë 1%"), "Zo%C3%AB%201%25");
    assert_eq!(header_safe("a\r\nb"), "a%0D%0Ab");
}

#[test]
fn a_revoked_key_answers_key_revoked_whatever_else_it_is_and_records_no_use() {
    use crate::protocol::{revoke, Revocation};
    let key = crate::key::generate("ak").unwrap();
    // Revoked while it would also have expired by the time it is presented.
    let store = store_with(&key, Some(1_800_000_060));
    let revocation = Revocation::new("leaked", Some("https://example.com/x"), None, 1_800_000_000);
    assert_eq!(
        revoke(&store, &key.hash, &revocation, 1_800_000_000),
        Ok(true)
    );
    for now in [1_800_000_001, 1_800_000_060] {
        let presented = Presentation {
            key: Some(key.secret.clone()),
            scopes: vec![],
        };
        let reply = answer(presented, || Ok(&store), now + 2 * 3600);
        assert_eq!(
            (reply.status, &reply.body_json()),
            (401, &json!({"valid": false, "code": "key_revoked"}))
        );
        assert!(reply
            .headers
            .contains(&("www-authenticate", "Bearer".into())));
    }
    let record = crate::protocol::verify(&store, &key.hash, 1_900_000_000)
        .unwrap()
        .unwrap();
    assert_eq!(
        record.last_used_at, None,
        "a refused key's use is not recorded"
    );
}

#[test]
fn every_refusal_is_one_openapi_yaml_documents_for_its_status() {
    use crate::error::openapi;
    use crate::protocol::{revoke, update, Revocation, Settings};
    const NOW: i64 = 1_800_000_000;
    let key = crate::key::generate("ak").unwrap();
    let ask = |store: crate::memory::MemoryStore, scopes: &[&str], now: i64| {
        let presented = Presentation {
            key: Some(key.secret.clone()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        };
        answer(presented, || Ok(store), now)
    };
    let revoked = store_with(&key, None);
    let revocation = Revocation::new("self", None, None, NOW);
    revoke(&revoked, &key.hash, &revocation, NOW).unwrap();
    let disabled = store_with(&key, None);
    let off = Settings {
        enabled: Some(false),
        ..Settings::default()
    };
    let event = crate::key::event_id().unwrap();
    update(&disabled, "alice", &key.id, &off, &event, NOW).unwrap();
    let body = |body: &[u8]| answer_without_store(present("POST", None, None, "", body));
    let query = |query: &str| answer_without_store(present("GET", None, None, query, b""));
    let replies = [
        ask(revoked, &[], NOW),
        ask(disabled, &[], NOW),
        ask(store_with(&key, Some(NOW + 60)), &[], NOW + 60),
        ask(store_with(&key, None), &["admin"], NOW),
        answer::<crate::memory::MemoryStore>(
            Presentation {
                key: Some(key.secret.clone()),
                scopes: vec![],
            },
            || Err(StoreError("down".into())),
            NOW,
        ),
        answer_without_store(Ok(Presentation::default())),
        body(b"{nope"),
        body(br#"{"key": "k", "scope": "read", "scope": null}"#),
        body(br#"{"key": "k", "scopes": ["admin"]}"#),
        body(br#"{"key": "k", "scope": ""}"#),
        body(&vec![b' '; crate::http::MAX_BODY_BYTES + 1]),
        query("scopes=read"),
    ];
    let mut seen = Vec::new();
    for reply in replies {
        let (status, code) = status_and_code(&reply);
        let code = code.expect("a refusal's code");
        let schema = match status {
            400 => "VerifyBadRequest",
            401 => "VerifyUnauthorized",
            403 => "VerifyInsufficientScope",
            413 => "VerifyPayloadTooLarge",
            503 => "VerifyStoreUnavailableBody",
            other => panic!("{other} {code}"),
        };
        for schema in ["VerifyRefusal", schema] {
            assert!(
                openapi::values(schema, "code").contains(&code),
                "openapi.yaml's {schema} does not allow {status} {code}"
            );
        }
        seen.push(code);
    }
    // And the description allows no code that verify never answers.
    seen.sort();
    seen.dedup();
    let mut documented = openapi::values("VerifyRefusal", "code");
    documented.sort();
    assert_eq!(documented, seen);
}

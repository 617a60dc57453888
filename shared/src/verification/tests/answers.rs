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

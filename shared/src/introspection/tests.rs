//! Tests of introspection: the form, the query, caller authentication and the answers.

use super::*;
use crate::http::CappedBody;
use crate::memory::MemoryStore;
use crate::protocol::{self, NewKeyRecord};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

/// A request on the introspection path (method, query without `?`, headers, body),
/// answered from `store` by an endpoint open to any caller.
fn introspect(
    store: MemoryStore,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    introspect_requiring(None, store, method, query, headers, body)
}

/// The same, by an endpoint that requires the client secret `required`, if any.
fn introspect_requiring(
    required: Option<&str>,
    store: MemoryStore,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let body = CappedBody::from_bytes(body);
    let header = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, value)| value.as_bytes().to_vec())
            .collect()
    };
    let path = format!("{PATH}?{query}");
    let parsed = read(&VerifyRequest {
        method: &|| method,
        header: &header,
        path_with_query: &path,
        body: &|| &body,
    });
    match parsed {
        Ok(introspection) => answer(introspection, required, || Ok(store), NOW),
        Err(refusal) => refusal,
    }
}

/// A store holding one live key of `alice` with `scopes`, expiring at `expires_at`, and
/// that key.
fn alice_with(scopes: &[&str], expires_at: Option<i64>) -> (MemoryStore, String) {
    let store = MemoryStore::new();
    let key = crate::key::generate("ak").unwrap();
    let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    let record = NewKeyRecord {
        hash: &key.hash,
        id: &key.id,
        preview: "ak_...test",
        name: "smtp",
        scopes: &scopes,
        expires_at,
    };
    protocol::create(&store, "alice", &record, 20, NOW - 60).unwrap();
    (store, key.secret)
}

fn form(token: &str) -> Vec<u8> {
    format!("token={token}&token_type_hint=access_token&client_id=&client_secret=").into_bytes()
}

#[test]
fn a_live_key_is_active_with_its_owner_id_and_space_separated_scopes() {
    let (store, secret) = alice_with(&["smtp", "read"], Some(NOW + 3600));
    let reply = introspect(store, "POST", "", &[], &form(&secret));
    assert_eq!(reply.status, 200);
    let body = reply.body_json();
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "smtp read");
    assert_eq!(
        (&body["sub"], &body["username"]),
        (&json!("alice"), &json!("alice"))
    );
    assert!(body["client_id"].as_str().unwrap().starts_with("key_"));
    assert_eq!(body["exp"], NOW + 3600);
    assert_eq!(body["iat"], NOW - 60);
    // The key is never echoed back.
    assert!(!String::from_utf8_lossy(&reply.body).contains(&secret));
}

#[test]
fn a_required_scope_the_key_lacks_and_every_bad_key_are_inactive_and_nothing_more() {
    type Case = fn(&str) -> String;
    let cases: [(&str, Case); 4] = [
        ("scope=smtp", |secret| secret.to_owned()),
        // One character mistyped: the checksum fails.
        ("", |secret| {
            let mut typo = secret.to_owned().into_bytes();
            let last = typo.len() - 1;
            typo[last] = if typo[last] == b'A' { b'B' } else { b'A' };
            String::from_utf8(typo).unwrap()
        }),
        ("", |_| "not-a-key".to_owned()),
        ("", |_| "x".to_owned()),
    ];
    for (query, token) in cases {
        let (store, secret) = alice_with(&["read"], None);
        let reply = introspect(store, "POST", query, &[], &form(&token(&secret)));
        assert_eq!(
            (reply.status, reply.body_json()),
            (200, json!({"active": false}))
        );
    }
    let (store, secret) = alice_with(&["read"], None);
    let reply = introspect(store, "POST", "scope=read", &[], &form(&secret));
    assert_eq!(reply.body_json()["active"], true);
}

#[test]
fn without_a_form_token_the_key_may_come_as_a_bearer_token_as_dovecot_sends_it() {
    let (store, secret) = alice_with(&["smtp"], None);
    let bearer = format!("Bearer {secret}");
    let reply = introspect(
        store,
        "GET",
        "scope=smtp",
        &[("authorization", &bearer)],
        b"",
    );
    assert_eq!(reply.body_json()["active"], true);
    // The form's token wins: the Authorization header is then the caller's own.
    let (store, secret) = alice_with(&["smtp"], None);
    let other = format!("Bearer {}", "x".repeat(10));
    let reply = introspect(
        store,
        "POST",
        "",
        &[("authorization", &other)],
        &form(&secret),
    );
    assert_eq!(reply.body_json()["active"], true);
    // Two credentials are no key.
    let (store, secret) = alice_with(&["smtp"], None);
    let bearer = format!("Bearer {secret}");
    let headers = [("authorization", bearer.as_str()), ("x-api-key", &secret)];
    let reply = introspect(store, "GET", "", &headers, b"");
    assert_eq!(reply.body_json(), json!({"active": false}));
}

#[test]
fn bad_requests_are_refused_with_oauth_errors() {
    let (store, secret) = alice_with(&["smtp"], None);
    let twice = format!("token={secret}&token={secret}");
    let reply = introspect(store, "POST", "", &[], twice.as_bytes());
    let refused = (reply.status, reply.body_json());
    assert_eq!(refused, (400, json!({"error": "invalid_request"})));
    let reply = introspect(
        MemoryStore::new(),
        "POST",
        "scopes=smtp",
        &[],
        &form(&secret),
    );
    assert_eq!(reply.status, 400);
    let huge = vec![b'a'; crate::http::MAX_BODY_BYTES + 1];
    assert_eq!(
        introspect(MemoryStore::new(), "POST", "", &[], &huge).status,
        413
    );
}

#[test]
fn a_fixed_login_is_answered_as_the_username_and_the_owner_stays_in_sub() {
    let (store, secret) = alice_with(&["smtp"], None);
    let reply = introspect(
        store,
        "POST",
        "scope=smtp&username=apikey",
        &[],
        &form(&secret),
    );
    let body = reply.body_json();
    assert_eq!(body["active"], true);
    assert_eq!(
        (&body["username"], &body["sub"]),
        (&json!("apikey"), &json!("alice"))
    );
    // A dead key stays inactive whatever login is asked for.
    let (store, _) = alice_with(&["smtp"], None);
    let reply = introspect(store, "POST", "username=apikey", &[], &form("not-a-key"));
    assert_eq!(reply.body_json(), json!({"active": false}));
    // A login that is empty, repeated, too long or odd is the caller's mistake.
    let long = format!("username={}", "a".repeat(MAX_USERNAME_CHARS + 1));
    for query in [
        "username=",
        "username=a&username=a",
        long.as_str(),
        "username=api%20key",
        "username=%C3%A9",
        "scope=",
    ] {
        let (store, secret) = alice_with(&["smtp"], None);
        let reply = introspect(store, "POST", query, &[], &form(&secret));
        assert_eq!(
            (reply.status, reply.body_json()),
            (400, json!({"error": "invalid_request"})),
            "{query}"
        );
    }
}

#[test]
fn a_configured_client_secret_must_be_shown_in_the_form_or_with_basic_authentication() {
    const SECRET: &str = "gateway secret+/=";
    let with = |body: String, headers: &[(&str, &str)]| {
        let (store, secret) = alice_with(&["smtp"], None);
        let body = body.replace("KEY", &secret);
        introspect_requiring(Some(SECRET), store, "POST", "", headers, body.as_bytes())
    };
    // In the form (form-encoded), as Dovecot and client_secret_post send it.
    let shown = with(
        "token=KEY&client_id=dovecot&client_secret=gateway+secret%2B%2F%3D".into(),
        &[],
    );
    assert_eq!(shown.body_json()["active"], true);
    // As HTTP Basic's password, as mod_auth_openidc's client_secret_basic sends it.
    let basic = format!("Basic {}", STANDARD.encode("gw:gateway+secret%2B%2F%3D"));
    let shown = with("token=KEY".into(), &[("authorization", &basic)]);
    assert_eq!(shown.body_json()["active"], true);
    // Missing, wrong, a prefix of it, or a Basic header without a password: refused before
    // any key is looked at.
    let wrong_basic = format!("Basic {}", STANDARD.encode("gw:gateway secret"));
    let no_password = format!("Basic {}", STANDARD.encode("gw"));
    for (body, headers) in [
        ("token=KEY".to_owned(), vec![]),
        ("token=KEY&client_secret=wrong".to_owned(), vec![]),
        ("token=KEY&client_secret=gateway".to_owned(), vec![]),
        (
            "token=KEY".to_owned(),
            vec![("authorization", wrong_basic.as_str())],
        ),
        (
            "token=KEY".to_owned(),
            vec![("authorization", no_password.as_str())],
        ),
    ] {
        let refused = with(body.clone(), &headers);
        assert_eq!(
            (refused.status, refused.body_json()),
            (401, json!({"error": "invalid_client"})),
            "{body} {headers:?}"
        );
        assert!(refused
            .headers
            .iter()
            .any(|(name, value)| *name == "www-authenticate" && value.starts_with("Basic")));
    }
    // Without a configured secret the form's is ignored.
    let (store, secret) = alice_with(&["smtp"], None);
    let open = introspect(
        store,
        "POST",
        "",
        &[],
        format!("token={secret}&client_secret=x").as_bytes(),
    );
    assert_eq!(open.body_json()["active"], true);
}

#[test]
fn a_store_failure_is_a_temporary_error_not_an_inactive_key() {
    let (_, secret) = alice_with(&["smtp"], None);
    let introspection = Introspection {
        presented: Presentation {
            key: Some(secret),
            scopes: Vec::new(),
        },
        username: None,
        client_secret: None,
    };
    let reply = answer::<MemoryStore>(introspection, None, || Err(StoreError("down".into())), NOW);
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.body_json(),
        json!({"error": "temporarily_unavailable"})
    );
    assert!(reply.headers.contains(&("retry-after", "1".to_owned())));
}

#[test]
fn a_method_other_than_get_or_post_is_405_with_allow_and_reads_nothing() {
    for method in [
        "TRACE", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "post", "QUERY",
    ] {
        let refused = read(&VerifyRequest {
            method: &|| method,
            header: &|_| panic!("read a header"),
            path_with_query: "/v1/keys.introspect?scope=a",
            body: &|| panic!("read the body"),
        })
        .err()
        .expect("refused");
        assert_eq!(refused.status, 405, "{method}");
        assert_eq!(refused.body_json(), json!({"error": "invalid_request"}));
        assert!(refused.headers.contains(&("allow", "GET, POST".into())));
        assert_eq!(refused.code, Some("method_not_allowed"));
    }
    // An outside run's case: TRACE with a form body was `200 {"active": false}`.
    let (store, secret) = alice_with(&["read"], None);
    let reply = introspect(store, "TRACE", "", &[], &form(&secret));
    assert_eq!(reply.status, 405);
}

#[test]
fn no_token_or_an_empty_one_is_invalid_request_as_any_repeated_parameter() {
    let invalid = (400, json!({"error": "invalid_request"}));
    let (_, secret) = alice_with(&["read"], None);
    let empty_bearer = "Bearer ";
    for (method, headers, body) in [
        ("POST", vec![], "token="),
        ("POST", vec![], "token"),
        ("POST", vec![], "client_id=x&token_type_hint=access_token"),
        ("POST", vec![], ""),
        ("GET", vec![], ""),
        ("GET", vec![("authorization", empty_bearer)], ""),
        ("GET", vec![("x-api-key", "")], ""),
        // RFC 6749 §3.1: no parameter may come twice, whether it is read or not.
        ("POST", vec![], "token=&token=x"),
        (
            "POST",
            vec![],
            "token=KEY&token_type_hint=a&token_type_hint=a",
        ),
        ("POST", vec![], "token=KEY&client_id=a&client_id="),
    ] {
        let (store, _) = alice_with(&["read"], None);
        let body = body.replace("KEY", &secret);
        let reply = introspect(store, method, "", &headers, body.as_bytes());
        assert_eq!(
            (reply.status, reply.body_json()),
            invalid,
            "{method} {body}"
        );
    }
    // An empty form token counts as absent: the key in a header is judged.
    let (store, secret) = alice_with(&["read"], None);
    let bearer = format!("Bearer {secret}");
    let reply = introspect(store, "POST", "", &[("authorization", &bearer)], b"token=");
    assert_eq!(reply.body_json()["active"], true);
    // An empty client secret too: Basic's password is the one shown.
    let (store, secret) = alice_with(&["read"], None);
    let basic = format!("Basic {}", STANDARD.encode("gw:s3cret"));
    let body = format!("token={secret}&client_secret=");
    let reply = introspect_requiring(
        Some("s3cret"),
        store,
        "POST",
        "",
        &[("authorization", &basic)],
        body.as_bytes(),
    );
    assert_eq!(reply.body_json()["active"], true);
}

#[test]
fn every_oauth_error_is_one_openapi_yaml_documents() {
    use crate::error::openapi;
    let (_, secret) = alice_with(&["read"], None);
    let replies = [
        introspect(MemoryStore::new(), "POST", "", &[], b""),
        introspect_requiring(
            Some("s"),
            MemoryStore::new(),
            "POST",
            "",
            &[],
            &form(&secret),
        ),
        introspect(MemoryStore::new(), "TRACE", "", &[], b""),
        answer::<MemoryStore>(
            Introspection {
                presented: Presentation {
                    key: Some(secret.clone()),
                    scopes: Vec::new(),
                },
                username: None,
                client_secret: None,
            },
            None,
            || Err(StoreError("down".into())),
            NOW,
        ),
        crate::token_revocation::answer::<MemoryStore>(
            &secret,
            || Err(StoreError("down".into())),
            NOW,
        ),
    ];
    let mut seen: Vec<String> = replies
        .iter()
        .map(|reply| reply.body_json()["error"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    let mut documented = openapi::values("OAuthError", "error");
    documented.sort();
    assert_eq!(documented, seen);
}

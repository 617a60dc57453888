//! Tests of how a key and its required scopes are presented to verify, and the refusals of
//! every malformed presentation.

use super::*;
use serde_json::json;

/// Verify's view of a request: `headers` as (lowercase name, value) pairs, repeats kept.
fn present_at(
    method: &str,
    path_with_query: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<Presentation, Reply> {
    let body = CappedBody::from_bytes(body);
    let header = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, value)| value.to_vec())
            .collect()
    };
    presentation(&VerifyRequest {
        method: &|| method,
        header: &header,
        path_with_query,
        body: &|| &body,
    })
}

/// A request on the exact verify path with this query (without `?`).
fn present(
    method: &str,
    x_api_key: Option<&str>,
    authorization: Option<&str>,
    query: &str,
    body: &[u8],
) -> Result<Presentation, Reply> {
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    if let Some(key) = x_api_key {
        headers.push(("x-api-key", key.as_bytes()));
    }
    if let Some(authorization) = authorization {
        headers.push(("authorization", authorization.as_bytes()));
    }
    present_at(method, &format!("{PATH}?{query}"), &headers, body)
}

/// What the component answers: the presentation's refusal, or the answer to it from a
/// store that must not be opened.
fn answer_without_store(presented: Result<Presentation, Reply>) -> Reply {
    match presented {
        Ok(presented) => {
            answer::<crate::memory::MemoryStore>(presented, || panic!("store opened"), 0)
        }
        Err(refusal) => refusal,
    }
}

fn status_and_code(reply: &Reply) -> (u16, Option<String>) {
    let code = reply.body_json()["code"].as_str().map(str::to_owned);
    (reply.status, code)
}

fn refused(result: Result<Presentation, Reply>) -> (u16, Option<String>) {
    status_and_code(&result.expect_err("should be refused"))
}

#[test]
fn the_key_may_come_from_the_body() {
    let p = present("POST", None, None, "", br#"{"key": "k", "scope": "read"}"#).unwrap();
    assert_eq!(
        p,
        Presentation {
            key: Some("k".into()),
            scopes: vec!["read".into()]
        }
    );
}

#[test]
fn forward_auth_headers_work_with_any_method_and_win_over_the_body() {
    for method in ["GET", "POST", "DELETE", "PATCH", "HEAD"] {
        let p = present(
            method,
            None,
            Some("Bearer k1"),
            "scope=write",
            br#"{"key": "other"}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            Presentation {
                key: Some("k1".into()),
                scopes: vec!["write".into()]
            }
        );
        let p = present(method, Some("k2"), None, "", br#"{"key": "other"}"#).unwrap();
        assert_eq!(p.key.as_deref(), Some("k2"));
    }
}

#[test]
fn a_key_in_x_api_key_is_answered_without_the_method_or_body_in_three_header_lookups() {
    let asked = std::cell::RefCell::new(Vec::new());
    let presented = presentation(&VerifyRequest {
        method: &|| panic!("the method was asked for"),
        header: &|name| {
            asked.borrow_mut().push(name.to_owned());
            match name {
                "x-api-key" => vec![b"k".to_vec()],
                _ => vec![],
            }
        },
        path_with_query: PATH,
        body: &|| panic!("the body was read"),
    });
    assert_eq!(presented.unwrap().key.as_deref(), Some("k"));
    // The key, a second credential that would make it ambiguous, the gateway's scopes.
    let mut asked = asked.into_inner();
    asked.sort();
    assert_eq!(asked, ["authorization", "x-api-key", REQUIRED_SCOPE_HEADER]);
}

#[test]
fn a_key_in_authorization_is_answered_without_the_method_or_body() {
    let presented = presentation(&VerifyRequest {
        method: &|| panic!("the method was asked for"),
        header: &|name| match name {
            "authorization" => vec![b"Bearer k".to_vec()],
            _ => vec![],
        },
        path_with_query: PATH,
        body: &|| panic!("the body was read"),
    });
    assert_eq!(presented.unwrap().key.as_deref(), Some("k"));
}

#[test]
fn two_credentials_or_an_undecodable_one_are_invalid_key_without_the_store() {
    // Well-formed keys, so that only the refusal keeps the store closed.
    let k1 = crate::key::generate("ak").unwrap().secret;
    let k2 = crate::key::generate("ak").unwrap().secret;
    let (bearer1, bearer2) = (format!("Bearer {k1}"), format!("Bearer {k2}"));
    let lower_bearer1 = format!("bearer {k1}");
    let not_utf8 = [k1.as_bytes(), b"\xff"].concat();
    let bearer_not_utf8 = [bearer1.as_bytes(), b"\xff"].concat();
    let (k1, k2) = (k1.as_bytes(), k2.as_bytes());
    let cases: [&[(&str, &[u8])]; 9] = [
        &[("x-api-key", k1), ("x-api-key", k2)],
        // The same key twice too: see `key_from_headers`.
        &[("x-api-key", k1), ("x-api-key", k1)],
        &[
            ("authorization", bearer1.as_bytes()),
            ("authorization", bearer2.as_bytes()),
        ],
        &[
            ("authorization", bearer1.as_bytes()),
            ("authorization", b"Basic dTpw"),
        ],
        &[("x-api-key", k1), ("authorization", bearer2.as_bytes())],
        &[
            ("x-api-key", k1),
            ("authorization", lower_bearer1.as_bytes()),
        ],
        // Not UTF-8: never skipped in favour of the other header.
        &[
            ("x-api-key", &not_utf8),
            ("authorization", bearer1.as_bytes()),
        ],
        &[("x-api-key", k1), ("authorization", &bearer_not_utf8)],
        &[("x-api-key", k1), ("authorization", b"Basic \xc3\x28")],
    ];
    for headers in cases {
        for method in ["GET", "POST"] {
            let body = serde_json::to_vec(&json!({ "key": std::str::from_utf8(k1).unwrap() }));
            let reply = answer_without_store(present_at(method, PATH, headers, &body.unwrap()));
            assert_eq!(
                status_and_code(&reply),
                (401, Some("invalid_key".into())),
                "{headers:?}"
            );
            assert!(reply
                .headers
                .contains(&("www-authenticate", "Bearer".into())));
        }
    }
    // Another scheme is no second key: the one key is the one verified.
    let one = std::str::from_utf8(k1).unwrap();
    let p = present("GET", Some(one), Some("Basic dTpw"), "", b"").unwrap();
    assert_eq!(p.key.as_deref(), Some(one));
}

#[test]
fn unknown_query_parameters_on_the_verify_path_are_invalid_query() {
    for query in [
        "scopes=admin",
        "Scope=admin",
        "SCOPE=admin",
        "scope=read&x=1",
        "utm_source=mail&scope=read",
        "%zz=1",
        "key=ak_x",
    ] {
        for (method, key, body) in [
            ("GET", Some("k"), &b""[..]),
            ("POST", None, &br#"{"key": "k"}"#[..]),
            ("GET", None, &b""[..]),
        ] {
            assert_eq!(
                refused(present(method, key, None, query, body)),
                (400, Some("invalid_query".into())),
                "{query}"
            );
        }
        // Spin routes `/v1/keys.verify/` to the exact route too; a path verify does not
        // know (`spin.toml` changed) is checked as strictly.
        for path in [&format!("{PATH}/"), "/auth", "/v1/keys.verifyx"] {
            assert_eq!(
                refused(present_at("GET", &format!("{path}?{query}"), &[], b"")),
                (400, Some("invalid_query".into())),
                "{path}?{query}"
            );
        }
    }
    // A bare `?` or empty segments hold no parameter.
    assert!(present("GET", Some("k"), None, "", b"").is_ok());
    assert!(present("GET", Some("k"), None, "&&scope=read&", b"").is_ok());
}

#[test]
fn an_empty_required_scope_is_invalid_scope() {
    for query in ["scope=", "scope", "scope=read&scope=", "scope=&scope=read"] {
        assert_eq!(
            refused(present("GET", Some("k"), None, query, b"")),
            (400, Some("invalid_scope".into())),
            "{query}"
        );
    }
    assert_eq!(
        refused(present(
            "POST",
            None,
            None,
            "",
            br#"{"key": "k", "scope": ""}"#
        )),
        (400, Some("invalid_scope".into()))
    );
    let header_values: [&[u8]; 6] = [b"", b" ", b"read,", b"read, ,write", b",", b"r\xffad"];
    for value in header_values {
        for path in [PATH, "/v1/keys.verify/api/orders"] {
            let headers = [("x-api-key", &b"k"[..]), (REQUIRED_SCOPE_HEADER, value)];
            assert_eq!(
                refused(present_at("GET", path, &headers, b"")),
                (400, Some("invalid_scope".into())),
                "{value:?} on {path}"
            );
        }
    }
}

#[test]
fn a_gateway_requires_scopes_by_header_repeated_or_comma_separated() {
    let headers = [
        ("x-api-key", &b"k"[..]),
        (REQUIRED_SCOPE_HEADER, b"read, write"),
        (REQUIRED_SCOPE_HEADER, b"emails:send"),
    ];
    // On either route; under `/v1/keys.verify/...` the client's query adds nothing.
    for path in [PATH, "/v1/keys.verify/api/orders?scope=admin"] {
        let p = present_at("GET", path, &headers, b"").unwrap();
        assert_eq!(p.scopes, ["read", "write", "emails:send"], "{path}");
    }
    // On the exact path, the query's scopes are required as well as the header's.
    let both = [("x-api-key", &b"k"[..]), (REQUIRED_SCOPE_HEADER, b"read")];
    let p = present_at("GET", &format!("{PATH}?scope=admin"), &both, b"").unwrap();
    assert_eq!(p.scopes, ["read", "admin"]);
}

#[test]
fn under_the_wildcard_path_the_query_and_body_are_the_clients_and_ignored() {
    let key = [("x-api-key", &b"k"[..])];
    for path in [
        "/v1/keys.verify/api/orders?scopes=admin&Scope=x&scope=&utm=1",
        "/v1/keys.verify/api/orders?scope=admin",
        "/v1/keys.verify/x/?%zz",
        "/v1/keys.verify//?scope=",
    ] {
        let p = present_at("GET", path, &key, b"").unwrap();
        assert_eq!(
            p,
            Presentation {
                key: Some("k".into()),
                scopes: vec![]
            },
            "{path}"
        );
    }
    // Without a key header, the client's body is not read for a key or a scope.
    let presented = presentation(&VerifyRequest {
        method: &|| "POST",
        header: &|_| vec![],
        path_with_query: "/v1/keys.verify/api/orders?scope=admin",
        body: &|| panic!("the client's body was read"),
    });
    assert_eq!(presented.unwrap(), Presentation::default());
}

#[test]
fn header_and_query_scopes_are_all_checked_against_the_key() {
    let key = crate::key::generate("ak").unwrap();
    let ask = |path: &str, required: &[u8]| {
        let headers = [
            ("x-api-key", key.secret.as_bytes()),
            (REQUIRED_SCOPE_HEADER, required),
        ];
        let presented = present_at("GET", path, &headers, b"").unwrap();
        answer(presented, || Ok(store_with(&key, None)), 1_800_000_000).status
    };
    // The key holds `read` only.
    assert_eq!(ask(PATH, b"read"), 200);
    assert_eq!(ask(PATH, b"admin"), 403);
    assert_eq!(ask(&format!("{PATH}?scope=admin"), b"read"), 403);
    assert_eq!(ask(&format!("{PATH}?scope=read"), b"read, admin"), 403);
    assert_eq!(ask("/v1/keys.verify/x?scope=admin", b"read"), 200);
    assert_eq!(ask("/v1/keys.verify/x?scope=read", b"admin"), 403);
}

#[test]
fn no_key_anywhere_is_a_missing_key_not_an_error() {
    assert_eq!(
        present("GET", None, None, "", b"").unwrap(),
        Presentation::default()
    );
    assert_eq!(
        present("GET", None, Some("Basic abc"), "", b"").unwrap(),
        Presentation::default()
    );
    assert_eq!(present("POST", None, None, "", br#"{}"#).unwrap().key, None);
}

#[test]
fn bad_bodies_are_refused_with_a_code() {
    let bad = present("POST", None, None, "", b"{nope").unwrap_err();
    assert_eq!(
        (bad.status, bad.body_json()["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let big = vec![b' '; crate::http::MAX_BODY_BYTES + 1];
    let too_big = present("POST", None, None, "", &big).unwrap_err();
    assert_eq!(
        (too_big.status, too_big.body_json()["code"].as_str()),
        (413, Some("payload_too_large"))
    );
}

/// A store holding `key` of alice's (scope `read`), created at 1_800_000_000.
fn store_with(key: &crate::key::NewKey, expires_at: Option<i64>) -> crate::memory::MemoryStore {
    let store = crate::memory::MemoryStore::new();
    let scopes = vec!["read".to_string()];
    let record = crate::protocol::NewKeyRecord {
        hash: &key.hash,
        id: &key.id,
        preview: &key.preview,
        name: "k",
        scopes: &scopes,
        expires_at,
    };
    crate::protocol::create(&store, "alice", &record, 20, 1_800_000_000).unwrap();
    store
}

mod answers;

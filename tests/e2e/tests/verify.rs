//! `/v1/keys.verify`: the three ways to present a key, the three answers, the gateway headers,
//! and the store reads each costs.

use e2e::{assert_no_store_operation, shared_app, skip_on_spin, unique_user, App};
use serde_json::json;

fn new_key(app: &App, scopes: &[&str]) -> (String, serde_json::Value) {
    let user = unique_user("owner");
    let created = app.create_ok(&user, "gateway key", scopes);
    (user, created)
}

/// A `GET` of `path` with `headers` written exactly as given, repeats and bytes that are not
/// UTF-8 included (the HTTP client of [`App::request`] sends neither), on a connection of its
/// own. Returns the status and the whole response as text (head, then the body as sent).
fn raw_get(app: &App, path: &str, headers: &[(&str, &[u8])]) -> (u16, String) {
    use std::io::{Read, Write};
    let address = app.url.trim_start_matches("http://");
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the app");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("read timeout");
    stream.write_all(&request).expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("read the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    (status, response)
}

#[test]
fn a_valid_key_in_the_body_answers_who_and_what() {
    let app = shared_app();
    let (user, created) = new_key(app, &["read", "write"]);
    let reply = app.verify(created["key"].as_str().unwrap(), Some("write"));
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"valid": true, "user_id": user, "key_id": created["id"], "name": "gateway key", "scopes": ["read", "write"], "expires_at": null})
    );
    assert_eq!(reply.header("x-api-key-user"), Some(user.as_str()));
    assert_eq!(reply.header("x-api-key-id"), created["id"].as_str());
    assert_eq!(reply.header("x-api-key-scopes"), Some("read,write"));
}

#[test]
fn forward_auth_takes_the_key_from_authorization_or_x_api_key_with_any_method() {
    let app = shared_app();
    let (user, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let bearer = format!("Bearer {key}");
        let by_bearer = app.request(
            method,
            "/v1/keys.verify?scope=read",
            &[("authorization", &bearer)],
            None,
        );
        assert_eq!(by_bearer.status, 200, "{method}");
        assert_eq!(by_bearer.header("x-api-key-user"), Some(user.as_str()));
        let by_header = app.request(method, "/v1/keys.verify", &[("x-api-key", key)], None);
        assert_eq!(by_header.status, 200, "{method}");
        assert_eq!(by_header.header("x-api-key-scopes"), Some("read"));
    }
}

#[test]
fn forward_auth_ignores_the_forwarded_body() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let reply = app.request(
        "POST",
        "/v1/keys.verify",
        &[("x-api-key", created["key"].as_str().unwrap())],
        Some(b"upstream payload, not JSON"),
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn a_missing_scope_is_403() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    let reply = app.verify(key, Some("admin"));
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.body,
        json!({"valid": false, "code": "insufficient_scope"})
    );
    let forwarded = app.request(
        "GET",
        "/v1/keys.verify?scope=write",
        &[("x-api-key", key)],
        None,
    );
    assert_eq!(forwarded.status, 403);
    assert_eq!(forwarded.code(), Some("insufficient_scope"));
}

#[test]
fn missing_malformed_mistyped_and_unknown_keys_get_one_answer_without_a_store_read() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    let mut typo = key.to_owned().into_bytes();
    let last = typo.len() - 10;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    for bad in [
        "",
        "garbage",
        &key[..key.len() - 1],
        &typo,
        &format!("{key}x"),
    ] {
        let reply = app.verify(bad, None);
        assert_eq!(reply.status, 401, "{bad}");
        assert_eq!(reply.body, json!({"valid": false, "code": "invalid_key"}));
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_no_store_operation(&reply, "malformed keys never reach the store");
    }
    let none = app.request("GET", "/v1/keys.verify", &[], None);
    assert_eq!((none.status, none.code()), (401, Some("invalid_key")));
    assert_no_store_operation(&none, "no key");
    let empty_body = app.request("POST", "/v1/keys.verify", &[], Some(b"{}"));
    assert_eq!(empty_body.status, 401);
    assert_no_store_operation(&empty_body, "an empty body");
}

#[test]
fn a_well_formed_unknown_key_costs_exactly_one_read() {
    if skip_on_spin("counts store operations (the local host's X-Kv-Reads header)") {
        return;
    }
    let app = shared_app();
    let stranger = shared::key::generate("ak").unwrap().secret;
    let reply = app.verify(&stranger, None);
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, json!({"valid": false, "code": "invalid_key"}));
    assert_eq!((reply.kv_reads(), reply.kv_writes()), (1, 0));
}

#[test]
fn a_valid_key_costs_one_read_and_records_its_use_only_once_an_hour() {
    if skip_on_spin("counts store operations and moves the clock an hour (the local host's)") {
        return;
    }
    let app = App::start();
    let (_, created) = new_key(&app, &["read"]);
    let key = created["key"].as_str().unwrap();
    // The first verification of the hour also records last_used_at, by compare-and-swap of the
    // record (its read and its write); every other one is a single read.
    let first = app.verify(key, None);
    assert_eq!(
        (first.status, first.kv_reads(), first.kv_writes()),
        (200, 2, 1),
        "first use records last_used_at"
    );
    for _ in 0..5 {
        let again = app.verify(key, None);
        assert_eq!(
            (again.status, again.kv_reads(), again.kv_writes()),
            (200, 1, 0)
        );
    }
    app.clock.advance(std::time::Duration::from_secs(3600));
    let later = app.verify(key, None);
    assert_eq!((later.kv_reads(), later.kv_writes()), (2, 1));
}

#[test]
fn verify_needs_no_jwt_and_ignores_one() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let reply = app.request(
        "POST",
        "/v1/keys.verify",
        &[("authorization", "Basic Zm9vOmJhcg==")],
        Some(json!({"key": created["key"]}).to_string().as_bytes()),
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn bad_verify_bodies_are_refused_with_a_code() {
    let app = shared_app();
    let reply = app.request("POST", "/v1/keys.verify", &[], Some(b"{not json"));
    assert_eq!((reply.status, reply.code()), (400, Some("invalid_json")));
    let big = vec![b' '; 16 * 1024 + 1];
    let reply = app.request("POST", "/v1/keys.verify", &[], Some(&big));
    assert_eq!(
        (reply.status, reply.code()),
        (413, Some("payload_too_large"))
    );
}

#[test]
fn a_body_member_given_twice_or_unknown_is_400_never_a_check_skipped() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    let post = |body: String| app.request("POST", "/v1/keys.verify", &[], Some(body.as_bytes()));
    // An outside check's case: the last `scope` would have counted, and required none.
    let reply = post(format!(
        r#"{{"scope": "admin", "key": "{key}", "scope": null}}"#
    ));
    assert_eq!(
        (reply.status, &reply.body),
        (400, &json!({"valid": false, "code": "invalid_json"}))
    );
    for body in [
        format!(r#"{{"key": "{key}", "key": "{key}"}}"#),
        format!(r#"{{"key": "{key}", "scope": {{"a": 1, "a": 2}}}}"#),
    ] {
        let reply = post(body.clone());
        assert_eq!(
            (reply.status, reply.code()),
            (400, Some("invalid_json")),
            "{body}"
        );
    }
    // A misspelled `scope` must not pass as "no scope required".
    let reply = post(format!(r#"{{"key": "{key}", "scopes": ["admin"]}}"#));
    assert_eq!(
        (reply.status, &reply.body),
        (400, &json!({"valid": false, "code": "unknown_member"}))
    );
    assert_eq!(
        post(format!(r#"{{"key": "{key}", "scope": "read"}}"#)).status,
        200
    );
}

#[test]
fn unicode_user_ids_are_percent_encoded_in_the_header_only() {
    let app = shared_app();
    let user = format!("Zoë {}", unique_user("u"));
    let key = app.create_ok(&user, "k", &["read"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app.verify(&key, None);
    assert_eq!(reply.body["user_id"], user);
    assert_eq!(
        reply.header("x-api-key-user"),
        Some(shared::verification::header_safe(&user).as_str())
    );
    assert!(reply
        .header("x-api-key-user")
        .unwrap()
        .starts_with("Zo%C3%AB%20"));
}

#[test]
fn scope_checks_fail_closed_on_repeated_or_odd_scopes() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    for query in [
        "scope=read&scope=admin",
        "scope=%zz",
        "scope=read&scope=%E2%28",
    ] {
        let reply = app.request(
            "GET",
            &format!("/v1/keys.verify?{query}"),
            &[("x-api-key", key)],
            None,
        );
        assert_eq!(
            (reply.status, reply.code()),
            (403, Some("insufficient_scope")),
            "{query}"
        );
    }
    let both = app.request(
        "GET",
        "/v1/keys.verify?scope=read&scope=read",
        &[("x-api-key", key)],
        None,
    );
    assert_eq!(both.status, 200);
    let odd = app.request(
        "POST",
        "/v1/keys.verify",
        &[],
        Some(
            json!({"key": key, "scope": ["admin"]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!((odd.status, odd.code()), (400, Some("invalid_json")));
}

#[test]
fn envoy_style_paths_under_verify_are_forward_auth_too() {
    // Envoy's ext_authz HTTP service sends the original path after its `path_prefix`.
    let app = shared_app();
    let (user, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    let reply = app.request(
        "GET",
        "/v1/keys.verify/api/orders/42?scope=read",
        &[("x-api-key", key)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("x-api-key-user"), Some(user.as_str()));
    let none = app.request("POST", "/v1/keys.verify/api/orders", &[], None);
    assert_eq!((none.status, none.code()), (401, Some("invalid_key")));
}

#[test]
fn two_credentials_are_401_without_a_store_read_and_an_undecodable_one_never_reaches_verify() {
    // An upstream behind the gateway might read the other value (the last header, the other
    // name): a key nobody checked. Both keys are valid on their own.
    let app = shared_app();
    let (_, first) = new_key(app, &["read"]);
    let (_, second) = new_key(app, &["read"]);
    let (k1, k2) = (
        first["key"].as_str().unwrap(),
        second["key"].as_str().unwrap(),
    );
    let (bearer1, bearer2) = (format!("Bearer {k1}"), format!("Bearer {k2}"));
    let not_utf8 = [k1.as_bytes(), b"\xff"].concat();
    let cases: [&[(&str, &[u8])]; 5] = [
        &[("X-API-Key", k1.as_bytes()), ("X-API-Key", k2.as_bytes())],
        &[("X-API-Key", k1.as_bytes()), ("X-API-Key", k1.as_bytes())],
        &[
            ("Authorization", bearer1.as_bytes()),
            ("Authorization", bearer2.as_bytes()),
        ],
        &[
            ("X-API-Key", k1.as_bytes()),
            ("Authorization", bearer2.as_bytes()),
        ],
        &[
            ("X-API-Key", k1.as_bytes()),
            ("Authorization", bearer1.as_bytes()),
        ],
    ];
    for headers in cases {
        let (status, response) = raw_get(app, "/v1/keys.verify", headers);
        assert_eq!(status, 401, "{headers:?}: {response}");
        let response = response.to_ascii_lowercase();
        assert!(response.contains(r#""code":"invalid_key""#), "{response}");
        assert!(
            response.contains("www-authenticate: bearer\r\n"),
            "{response}"
        );
        // The store-operation counters are the local host's (Spin counts nothing).
        assert!(
            e2e::on_spin() || response.contains("x-kv-reads: 0\r\n"),
            "{response}"
        );
    }
    // A header value that is not UTF-8 never reaches verify: Spin answers an empty 500 itself
    // (and so does the local host). Verify's own refusal of one is a unit test of `shared`.
    let undecodable: &[(&str, &[u8])] = &[
        ("X-API-Key", &not_utf8),
        ("Authorization", bearer1.as_bytes()),
    ];
    let (status, response) = raw_get(app, "/v1/keys.verify", undecodable);
    assert_eq!(status, 500, "{response}");
    for key in [k1, k2] {
        let (status, response) = raw_get(app, "/v1/keys.verify", &[("X-API-Key", key.as_bytes())]);
        assert_eq!(status, 200, "{response}");
    }
}

#[test]
fn unknown_query_parameters_and_empty_scopes_are_400_not_skipped_checks() {
    // A gateway that misspells `scope` or forgets its value must not accept every key.
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    for (query, code) in [
        ("scopes=admin", "invalid_query"),
        ("Scope=admin", "invalid_query"),
        ("scope=read&utm_source=mail", "invalid_query"),
        ("scope=", "invalid_scope"),
        ("scope", "invalid_scope"),
        ("scope=read&scope=", "invalid_scope"),
    ] {
        for path in ["/v1/keys.verify", "/v1/keys.verify/"] {
            let reply = app.request(
                "GET",
                &format!("{path}?{query}"),
                &[("x-api-key", key)],
                None,
            );
            assert_eq!(reply.status, 400, "{path}?{query}: {}", reply.text);
            assert_eq!(reply.body, json!({"valid": false, "code": code}), "{query}");
            assert_no_store_operation(&reply, query);
        }
    }
    let in_body = app.verify(key, Some(""));
    assert_eq!(
        (in_body.status, in_body.code()),
        (400, Some("invalid_scope"))
    );
    // An empty header value, as a gateway sends when its scope variable is unset.
    for value in [&b""[..], b"read,", b" , "] {
        let (status, response) = raw_get(
            app,
            "/v1/keys.verify",
            &[
                ("X-API-Key", key.as_bytes()),
                ("X-Api-Key-Required-Scope", value),
            ],
        );
        assert_eq!(status, 400, "{value:?}: {response}");
        assert!(response.contains(r#""code":"invalid_scope""#), "{response}");
    }
}

#[test]
fn a_gateway_requires_scopes_by_header_on_either_route_and_the_query_adds_to_them() {
    let app = shared_app();
    let (_, created) = new_key(app, &["read", "write"]);
    let key = created["key"].as_str().unwrap();
    let status = |path: &str, required: &[&str]| {
        let mut headers = vec![("x-api-key", key)];
        for scopes in required {
            headers.push(("x-api-key-required-scope", *scopes));
        }
        app.request("GET", path, &headers, None).status
    };
    for path in ["/v1/keys.verify", "/v1/keys.verify/api/orders/42"] {
        assert_eq!(status(path, &["read, write"]), 200, "{path}");
        assert_eq!(status(path, &["read", "write"]), 200, "{path}: repeated");
        assert_eq!(status(path, &["read, admin"]), 403, "{path}");
        assert_eq!(status(path, &["read", "admin"]), 403, "{path}");
    }
    // On verify's own path the query's scopes are required too: all of them, fail closed.
    assert_eq!(status("/v1/keys.verify?scope=admin", &["read"]), 403);
    assert_eq!(status("/v1/keys.verify?scope=read", &["admin"]), 403);
    assert_eq!(status("/v1/keys.verify?scope=write", &["read"]), 200);
}

#[test]
fn under_verify_the_clients_query_and_body_are_ignored() {
    // Envoy's ext_authz appends the client's path and query: they are the client's, so they
    // neither require nor refuse anything; only the gateway's header requires a scope.
    let app = shared_app();
    let (_, created) = new_key(app, &["read"]);
    let key = created["key"].as_str().unwrap();
    for query in [
        "scope=admin",
        "scopes=admin&Scope=x",
        "scope=",
        "page=2&sort=-id",
    ] {
        let path = format!("/v1/keys.verify/ext-authz/api/orders?{query}");
        let reply = app.request("GET", &path, &[("x-api-key", key)], None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        let required = app.request(
            "GET",
            &path,
            &[("x-api-key", key), ("x-api-key-required-scope", "admin")],
            None,
        );
        assert_eq!(required.status, 403, "{path}");
    }
    // The client's JSON body is no key presentation there.
    let body = json!({ "key": key }).to_string();
    let reply = app.request(
        "POST",
        "/v1/keys.verify/ext-authz/api/orders",
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!((reply.status, reply.code()), (401, Some("invalid_key")));
    assert_no_store_operation(&reply, "a key-less request under the wildcard path");
}

//! What verify answers: how a key is presented (JSON body or forward-auth headers), and the
//! three answers of the contract with the headers a gateway passes upstream.
//!
//! A malformed key, or one whose checksum does not match, is answered without opening the
//! store. A well-formed one costs exactly one store read ([`crate::protocol::verify`]).
//!
//! Two credentials, or one that is not UTF-8, are `401 invalid_key`: an upstream might read the
//! one nobody checked.

use crate::http::{query_params, CappedBody, Reply};
use crate::key;
use crate::protocol::{self, KeyRecord};
use crate::store::{KeyValue, StoreError};
use crate::validate;
use serde::Serialize;

/// A key presented for verification and the scopes the caller requires (all of them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Presentation {
    pub key: Option<String>,
    pub scopes: Vec<String>,
}

/// The request as verify sees it. Each part is asked of the host only when it is needed: the
/// method and the body only for a key that came in no header (each a round trip through the
/// host on the hot path).
pub struct VerifyRequest<'a> {
    pub method: &'a dyn Fn() -> &'a str,
    /// Every value of a request header by its lowercase name, as the bytes that came.
    pub header: &'a dyn Fn(&str) -> Vec<Vec<u8>>,
    pub query: &'a str,
    pub body: &'a dyn Fn() -> &'a CappedBody,
}

/// Finds the presented key and the required scopes.
///
/// Forward-auth headers win over the body: a gateway forwards the client's own request, whose
/// body belongs to the upstream API; the scopes then come from `?scope=` only. Every `scope`
/// parameter is required (a repeated one is not silently reduced to its first value), and one
/// that does not percent-decode is kept as written, so no key holds it: scope checks fail
/// closed.
pub fn presentation(request: &VerifyRequest) -> Result<Presentation, Reply> {
    let key = key_from_headers(request.header)?;
    let mut scopes: Vec<String> = query_params(request.query, "scope")
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if key.is_some() {
        return Ok(Presentation { key, scopes });
    }
    if (request.method)() != "POST" {
        return Ok(Presentation { key: None, scopes });
    }
    let body = (request.body)();
    if body.is_empty() {
        return Ok(Presentation { key: None, scopes });
    }
    let body = body
        .bytes()
        .map_err(|_| refusal(413, "payload_too_large"))?;
    let input = validate::verify_input(body).map_err(|_| refusal(400, "invalid_json"))?;
    scopes.extend(input.scope);
    Ok(Presentation {
        key: input.key,
        scopes,
    })
}

/// The key in `X-API-Key` or `Authorization: Bearer`, if there is one.
///
/// Exactly one credential may come. Two `X-API-Key` headers, two `Authorization` headers
/// (whatever their schemes), or an `X-API-Key` next to an `Authorization: Bearer` are refused
/// as `invalid_key`, and so is a credential header that is not UTF-8: a gateway passes the
/// request on, and an upstream that reads the other value (the last header, the other name,
/// its own decoding) would trust a key nobody checked. The same key given twice is refused
/// too: "the same" would have to be judged as every upstream judges it (whitespace, a proxy
/// that joins repeated headers with commas), and no client needs to send a key twice.
///
/// Both headers are asked for even when `X-API-Key` has the key: that is one host call more on
/// the hot path (`fields.get`), the price of seeing a second credential.
fn key_from_headers(header: &dyn Fn(&str) -> Vec<Vec<u8>>) -> Result<Option<String>, Reply> {
    let utf8 = |value: Vec<u8>| String::from_utf8(value).map_err(|_| invalid_key());
    let mut keys = Vec::new();
    for value in header("x-api-key") {
        keys.push(utf8(value)?.trim().to_owned());
    }
    let authorization = header("authorization");
    if authorization.len() > 1 {
        return Err(invalid_key());
    }
    for value in authorization {
        let value = utf8(value)?;
        // Another scheme (`Basic`, ...) is no API key: it is not this service's to judge.
        if let Some((scheme, token)) = value.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                keys.push(token.trim().to_owned());
            }
        }
    }
    match keys.len() {
        0 | 1 => Ok(keys.pop()),
        _ => Err(invalid_key()),
    }
}

/// Answers a presentation; `open` is called only for a well-formed key.
pub fn answer<S: KeyValue>(
    presented: Presentation,
    open: impl FnOnce() -> Result<S, StoreError>,
    now: i64,
) -> Reply {
    // Shape and checksum first: a typo or a random string costs no store access.
    let Some(hash) = presented.key.as_deref().and_then(key::parse) else {
        return invalid_key();
    };
    let looked_up = open().and_then(|store| protocol::verify(&store, &hash, now));
    match looked_up {
        Err(_) => refusal(503, "store_unavailable").with_header("retry-after", "1"),
        Ok(None) => invalid_key(),
        // Only someone holding this exact secret learns that it expired or was disabled.
        Ok(Some(record)) if record.is_expired(now) => {
            refusal(401, "key_expired").with_header("www-authenticate", "Bearer")
        }
        Ok(Some(record)) if !record.enabled => {
            refusal(401, "key_disabled").with_header("www-authenticate", "Bearer")
        }
        Ok(Some(record)) if presented.scopes.iter().all(|s| record.scopes.contains(s)) => {
            valid(&record)
        }
        Ok(Some(_)) => refusal(403, "insufficient_scope"),
    }
}

/// The body of a `200`: whose the key is and what it may do. A plain struct, not a
/// `serde_json::Value`, so that verify carries none of `Value`'s code.
#[derive(Serialize)]
struct Valid<'a> {
    valid: bool,
    user_id: &'a str,
    key_id: &'a str,
    name: &'a str,
    scopes: &'a [String],
    expires_at: Option<String>,
}

/// The body of every refusal: `{"valid": false, "code": …}`.
#[derive(Serialize)]
struct Refusal {
    valid: bool,
    code: &'static str,
}

fn valid(record: &KeyRecord) -> Reply {
    Reply::json(
        200,
        Valid {
            valid: true,
            user_id: &record.user_id,
            key_id: &record.key_id,
            name: &record.name,
            scopes: &record.scopes,
            expires_at: record.expires_at.map(crate::rfc3339),
        },
    )
    .with_header("x-api-key-user", header_safe(&record.user_id))
    .with_header("x-api-key-id", record.key_id.clone())
    .with_header("x-api-key-scopes", record.scopes.join(","))
}

/// One answer for a missing, malformed, mistyped, unknown or deleted key, and for credentials
/// that are ambiguous.
fn invalid_key() -> Reply {
    refusal(401, "invalid_key").with_header("www-authenticate", "Bearer")
}

fn refusal(status: u16, code: &'static str) -> Reply {
    Reply::refusal(status, code, Refusal { valid: false, code })
}

/// User ids may hold any Unicode; header values may not. Bytes outside visible ASCII, and `%`
/// itself, are percent-encoded (as in URLs), so ASCII ids pass through unchanged.
pub fn header_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_graphic() && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Verify's view of a request: `headers` as (lowercase name, value) pairs, repeats kept.
    fn present_with(
        method: &str,
        query: &str,
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
            query,
            body: &|| &body,
        })
    }

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
        present_with(method, query, &headers, body)
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
    fn a_key_in_x_api_key_is_answered_without_the_method_or_body_in_two_header_lookups() {
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
            query: "",
            body: &|| panic!("the body was read"),
        });
        assert_eq!(presented.unwrap().key.as_deref(), Some("k"));
        // The key, and a second credential that would make it ambiguous.
        let mut asked = asked.into_inner();
        asked.sort();
        assert_eq!(asked, ["authorization", "x-api-key"]);
    }

    #[test]
    fn a_key_in_authorization_is_answered_without_the_method_or_body() {
        let presented = presentation(&VerifyRequest {
            method: &|| panic!("the method was asked for"),
            header: &|name| match name {
                "authorization" => vec![b"Bearer k".to_vec()],
                _ => vec![],
            },
            query: "",
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
                let reply = answer_without_store(present_with(method, "", headers, &body.unwrap()));
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
            let reply =
                answer::<crate::memory::MemoryStore>(presented, || panic!("store opened"), 0);
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
        let p = present("GET", Some("k"), None, "scope=", b"").unwrap();
        assert!(p.scopes.is_empty());
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
}

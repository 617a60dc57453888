//! OAuth 2.0 token introspection (RFC 7662) of an API key, for the callers that speak it rather
//! than verify's own contract: Dovecot's `oauth2` passdb (a mail server's SMTP AUTH), Apache
//! mod_auth_openidc, Kong's and Envoy's introspection filters, oauth2-proxy.
//!
//! Served by verify's component on [`PATH`], with verify's judgement and its one store read:
//! - the key comes as the form parameter `token` of a `POST`
//!   (`application/x-www-form-urlencoded`; `token_type_hint`, `client_id` and `client_secret`
//!   are ignored), or, without one, in `Authorization: Bearer` or `X-API-Key` as at verify
//!   (Dovecot's `introspection_mode = auth` sends a `GET` so);
//! - the query may require scopes with `scope`, as at verify, and holds nothing else;
//! - a live key with every required scope is `200 {"active": true, …}`: `scope` (its scopes,
//!   space-separated), `sub` and `username` (the owner's user id), `client_id` (the key id),
//!   `token_type`, `iat`, and `exp` if it expires;
//! - anything else a key can be — unknown, malformed, deleted, disabled, expired, lacking a
//!   scope — is `200 {"active": false}`, as the RFC requires, telling the caller nothing more;
//! - the store unavailable is `503 {"error": "temporarily_unavailable"}` with `Retry-After`: a
//!   mail server then answers "try again later", not "wrong password".
//!
//! The RFC's caller authentication is not required: the key is its own proof, as at verify.
//! Whoever wants the endpoint reachable by gateways only routes it so (see the README).

use crate::http::{query_pairs, Reply};
use crate::protocol::KeyRecord;
use crate::store::{KeyValue, StoreError};
use crate::verification::{self, Judgement, Presentation, VerifyRequest};
use serde::Serialize;

/// The introspection endpoint's path.
pub const PATH: &str = "/v1/keys.introspect";

/// The key and the required scopes of an introspection request, or the answer that refuses it.
pub fn presentation(request: &VerifyRequest) -> Result<Presentation, Reply> {
    let query = request
        .path_with_query
        .split_once('?')
        .map_or("", |(_, query)| query);
    // A bad query is the caller's mistake, answered in OAuth's words.
    let scopes = verification::scopes_from_query(query).map_err(|_| invalid_request(400))?;
    let from_form = if (request.method)() == "POST" {
        let body = (request.body)().bytes().map_err(|_| invalid_request(413))?;
        token_of_form(body)?
    } else {
        None
    };
    let key = match from_form {
        Some(token) => Some(token),
        // A credential header that is ambiguous is no key: inactive, as for any bad key.
        None => verification::key_from_headers(request.header).unwrap_or(None),
    };
    Ok(Presentation { key, scopes })
}

/// The `token` of a form body; more than one, or a body that is not a form, is
/// `400 invalid_request` (RFC 6749's error, which RFC 7662 uses).
fn token_of_form(body: &[u8]) -> Result<Option<String>, Reply> {
    let form = std::str::from_utf8(body).map_err(|_| invalid_request(400))?;
    let mut tokens = query_pairs(form.trim()).filter(|(name, _)| name == "token");
    let token = tokens.next().map(|(_, value)| value);
    if tokens.next().is_some() {
        return Err(invalid_request(400));
    }
    Ok(token)
}

/// Answers a presentation; `open` is called only for a well-formed key.
pub fn answer<S: KeyValue>(
    presented: Presentation,
    open: impl FnOnce() -> Result<S, StoreError>,
    now: i64,
) -> Reply {
    match verification::judge(&presented, open, now) {
        Judgement::Valid(record) => Reply::json(200, Active::of(&record)),
        Judgement::Refused(503, code) => Reply::refusal(
            503,
            code,
            OAuthError {
                error: "temporarily_unavailable",
            },
        )
        .with_header("retry-after", "1"),
        Judgement::Refused(_, code) => Reply::refusal(200, code, Inactive { active: false }),
    }
}

/// The answer for a live key (RFC 7662 §2.2).
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    scope: String,
    client_id: &'a str,
    username: &'a str,
    sub: &'a str,
    token_type: &'static str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

impl<'a> Active<'a> {
    fn of(record: &'a KeyRecord) -> Active<'a> {
        Active {
            active: true,
            scope: record.scopes.join(" "),
            client_id: &record.key_id,
            username: &record.user_id,
            sub: &record.user_id,
            token_type: "Bearer",
            iat: record.created_at,
            exp: record.expires_at,
        }
    }
}

#[derive(Serialize)]
struct Inactive {
    active: bool,
}

#[derive(Serialize)]
struct OAuthError {
    error: &'static str,
}

fn invalid_request(status: u16) -> Reply {
    let code = if status == 413 {
        "payload_too_large"
    } else {
        "invalid_request"
    };
    Reply::refusal(
        status,
        code,
        OAuthError {
            error: "invalid_request",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::CappedBody;
    use crate::memory::MemoryStore;
    use crate::protocol::{self, NewKeyRecord};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    /// A request on the introspection path (method, query without `?`, headers, body),
    /// answered from `store`.
    fn introspect(
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
        let presented = presentation(&VerifyRequest {
            method: &|| method,
            header: &header,
            path_with_query: &path,
            body: &|| &body,
        });
        match presented {
            Ok(presented) => answer(presented, || Ok(store), NOW),
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
            ("", |_| String::new()),
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
    fn a_store_failure_is_a_temporary_error_not_an_inactive_key() {
        let (_, secret) = alice_with(&["smtp"], None);
        let presented = Presentation {
            key: Some(secret),
            scopes: Vec::new(),
        };
        let reply = answer::<MemoryStore>(presented, || Err(StoreError("down".into())), NOW);
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.body_json(),
            json!({"error": "temporarily_unavailable"})
        );
        assert!(reply.headers.contains(&("retry-after", "1".to_owned())));
    }
}

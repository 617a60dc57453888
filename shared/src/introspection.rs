//! OAuth 2.0 token introspection (RFC 7662) of an API key, for the callers that speak it rather
//! than verify's own contract: Dovecot's `oauth2` passdb (a mail server's SMTP AUTH), Apache
//! mod_auth_openidc, Kong's and Envoy's introspection filters, oauth2-proxy.
//!
//! Served by verify's component on [`PATH`], with verify's judgement and its one store read:
//! - the key comes as the form parameter `token` of a `POST`
//!   (`application/x-www-form-urlencoded`; `token_type_hint` and `client_id` are ignored), or,
//!   without one, in `Authorization: Bearer` or `X-API-Key` as at verify (Dovecot's
//!   `introspection_mode = auth` sends a `GET` so);
//! - the query may require scopes with `scope` (repeatable), as at verify, and may name the
//!   fixed login the caller's users log in with, `username` (see [`Introspection::username`]);
//!   nothing else;
//! - a live key with every required scope is `200 {"active": true, …}`: `scope` (its scopes,
//!   space-separated), `sub` (the owner's user id), `username` (the owner's user id, or the
//!   fixed login asked for), `client_id` (the key id), `token_type`, `iat`, and `exp` if it
//!   expires;
//! - anything else a key can be — unknown, malformed, deleted, disabled, expired, lacking a
//!   scope — is `200 {"active": false}`, as the RFC requires, telling the caller nothing more;
//! - the store unavailable is `503 {"error": "temporarily_unavailable"}` with `Retry-After`: a
//!   mail server then answers "try again later", not "wrong password".
//!
//! The RFC's caller authentication is optional here: the key is its own proof, as at verify.
//! Whoever wants RFC-strict behaviour sets the variable `introspection_client_secret`; then
//! every caller must show it, as the form's `client_secret` or as the password of HTTP Basic
//! authentication (RFC 6749 §2.3.1), or gets `401 {"error": "invalid_client"}` before any key
//! is looked at.

use crate::http::{form_decoded, query_pairs, Reply};
use crate::protocol::KeyRecord;
use crate::store::{KeyValue, StoreError};
use crate::verification::{self, Judgement, Presentation, VerifyRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The introspection endpoint's path.
pub const PATH: &str = "/v1/keys.introspect";

/// The Spin variable that, when set, restricts the endpoint to callers that know it.
pub const CLIENT_SECRET_VARIABLE: &str = "introspection_client_secret";

/// Longest fixed login `?username=` may name.
const MAX_USERNAME_CHARS: usize = 64;

/// An introspection request, parsed: what to judge, and what the caller asked for and showed.
pub struct Introspection {
    pub presented: Presentation,
    /// `?username=NAME`: the login every user of the caller logs in with (a mail server's fixed
    /// `apikey`, as SendGrid's), answered as `username` for a live key so that the caller's
    /// "does the login match the token's user" check passes for that name and no other. The
    /// owner stays in `sub`, for the caller to take the user from.
    pub username: Option<String>,
    /// The client secret the caller showed, in the form or with HTTP Basic authentication.
    pub client_secret: Option<String>,
}

/// Parses an introspection request, or answers the refusal of a malformed one.
pub fn read(request: &VerifyRequest) -> Result<Introspection, Reply> {
    let query = request
        .path_with_query
        .split_once('?')
        .map_or("", |(_, query)| query);
    let (scopes, username) = query_parameters(query)?;
    let form = if (request.method)() == "POST" {
        let body = (request.body)().bytes().map_err(|_| invalid_request(413))?;
        Form::of(body)?
    } else {
        Form::default()
    };
    let key = match form.token {
        Some(token) => Some(token),
        // A credential header that is ambiguous is no key: inactive, as for any bad key.
        None => verification::key_from_headers(request.header).unwrap_or(None),
    };
    let client_secret = form
        .client_secret
        .or_else(|| basic_password(request.header));
    Ok(Introspection {
        presented: Presentation { key, scopes },
        username,
        client_secret,
    })
}

/// The query's required scopes and fixed login; anything else in it, an empty scope, or a
/// login that is empty, too long, repeated or holds other than letters, digits and `._@+-`, is
/// `400 invalid_request`: a caller's configuration mistake must not pass as "no scope
/// required" or as another login.
fn query_parameters(query: &str) -> Result<(Vec<String>, Option<String>), Reply> {
    let mut scopes = Vec::new();
    let mut username = None;
    for (name, value) in query_pairs(query) {
        match name.as_str() {
            "scope" if !value.is_empty() => scopes.push(value),
            "username" if username.is_none() && is_login(&value) => username = Some(value),
            _ => return Err(invalid_request(400)),
        }
    }
    Ok((scopes, username))
}

fn is_login(name: &str) -> bool {
    (1..=MAX_USERNAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b))
}

/// What an introspection form carries that this endpoint reads.
#[derive(Default)]
struct Form {
    token: Option<String>,
    client_secret: Option<String>,
}

impl Form {
    /// Each parameter at most once; a body that is not a form, or one that repeats `token` or
    /// `client_secret`, is `400 invalid_request` (RFC 6749's error, which RFC 7662 uses).
    fn of(body: &[u8]) -> Result<Form, Reply> {
        let text = std::str::from_utf8(body).map_err(|_| invalid_request(400))?;
        let mut form = Form::default();
        for (name, value) in query_pairs(text.trim()) {
            let slot = match name.as_str() {
                "token" => &mut form.token,
                "client_secret" => &mut form.client_secret,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(invalid_request(400));
            }
        }
        Ok(form)
    }
}

/// The password of `Authorization: Basic`, form-decoded as RFC 6749 §2.3.1 asks; `None` for
/// any other or malformed header.
fn basic_password(header: &dyn Fn(&str) -> Vec<Vec<u8>>) -> Option<String> {
    let values = header("authorization");
    let [value] = values.as_slice() else {
        return None;
    };
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (_client_id, secret) = decoded.split_once(':')?;
    Some(form_decoded(secret))
}

/// Whether the caller showed the configured secret, compared in constant time (as digests, so
/// that not even its length shows in the time taken).
fn caller_is_known(shown: Option<&str>, required: &str) -> bool {
    let digest = |text: &str| Sha256::digest(text.as_bytes());
    shown.is_some_and(|shown| bool::from(digest(shown).ct_eq(&digest(required))))
}

/// Answers an introspection request; `required_secret` is the configured client secret, if
/// any. `open` is called only for a known caller and a well-formed key.
pub fn answer<S: KeyValue>(
    introspection: Introspection,
    required_secret: Option<&str>,
    open: impl FnOnce() -> Result<S, StoreError>,
    now: i64,
) -> Reply {
    if let Some(required) = required_secret {
        if !caller_is_known(introspection.client_secret.as_deref(), required) {
            return Reply::refusal(
                401,
                "invalid_client",
                OAuthError {
                    error: "invalid_client",
                },
            )
            .with_header("www-authenticate", "Basic realm=\"api-keys introspection\"");
        }
    }
    match verification::judge(&introspection.presented, open, now) {
        Judgement::Valid(record) => {
            let mut active = Active::of(&record);
            if let Some(login) = introspection.username.as_deref() {
                active.username = login;
            }
            Reply::json(200, active)
        }
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
        let reply =
            answer::<MemoryStore>(introspection, None, || Err(StoreError("down".into())), NOW);
        assert_eq!(reply.status, 503);
        assert_eq!(
            reply.body_json(),
            json!({"error": "temporarily_unavailable"})
        );
        assert!(reply.headers.contains(&("retry-after", "1".to_owned())));
    }
}

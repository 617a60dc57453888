//! OAuth 2.0 token introspection (RFC 7662) of an API key, for the callers that speak it rather
//! than verify's own contract: Dovecot's `oauth2` passdb (a mail server's SMTP AUTH), Apache
//! mod_auth_openidc, Kong's and Envoy's introspection filters, oauth2-proxy.
//!
//! Served by verify's component on [`PATH`], with verify's judgement and its one store read:
//! - `GET` and `POST` only; any other method is `405` with `Allow`;
//! - the key comes as the form parameter `token` of a `POST`
//!   (`application/x-www-form-urlencoded`; `token_type_hint` and `client_id` are ignored), or,
//!   without one, in `Authorization: Bearer` or `X-API-Key` as at verify (Dovecot's
//!   `introspection_mode = auth` sends a `GET` so); no token at all, or an empty one, is `400
//!   invalid_request` (the RFC requires it), and so is any form parameter given twice;
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

/// The methods the endpoint takes: `POST` with the form (RFC 7662 §2.1), and `GET` with the key
/// in a header (Dovecot's `introspection_mode = auth`).
pub const ALLOWED_METHODS: &str = "GET, POST";

/// Parses an introspection request, or answers the refusal of a malformed one: `405` for a
/// method other than [`ALLOWED_METHODS`] (with `Allow`), `400 invalid_request` for a bad query
/// or form, or for no token at all (RFC 7662 §2.1: `token` is required; an empty one counts as
/// absent, RFC 6749 §3.1), `413` for a body over the limit.
pub fn read(request: &VerifyRequest) -> Result<Introspection, Reply> {
    let method = (request.method)();
    if method != "GET" && method != "POST" {
        return Err(method_not_allowed(ALLOWED_METHODS));
    }
    let query = request
        .path_with_query
        .split_once('?')
        .map_or("", |(_, query)| query);
    let (scopes, username) = query_parameters(query)?;
    let form = if method == "POST" {
        let body = (request.body)().bytes().map_err(|_| invalid_request(413))?;
        Form::of(body)?
    } else {
        Form::default()
    };
    let key = match form.token {
        Some(token) => Some(token),
        None => match verification::key_from_headers(request.header) {
            Ok(Some(key)) if !key.is_empty() => Some(key),
            // Two credentials, or one that is not UTF-8: a token came, and it is no key, so
            // inactive, as for any bad key.
            Err(_) => None,
            Ok(_) => return Err(invalid_request(400)),
        },
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
pub(crate) struct Form {
    pub(crate) token: Option<String>,
    pub(crate) client_secret: Option<String>,
}

impl Form {
    /// Reads a form as RFC 6749 §3.1 (which RFC 7662 and RFC 7009 build on) asks: a parameter
    /// sent without a value counts as omitted, one this endpoint does not read is ignored, and
    /// none may come twice. A body that is not a form, or that repeats a parameter, is `400
    /// invalid_request`.
    pub(crate) fn of(body: &[u8]) -> Result<Form, Reply> {
        let text = std::str::from_utf8(body).map_err(|_| invalid_request(400))?;
        let mut form = Form::default();
        let mut names: Vec<String> = Vec::new();
        for (name, value) in query_pairs(text.trim()) {
            if names.contains(&name) {
                return Err(invalid_request(400));
            }
            let slot = match name.as_str() {
                "token" => Some(&mut form.token),
                "client_secret" => Some(&mut form.client_secret),
                _ => None,
            };
            if let Some(slot) = slot.filter(|_| !value.is_empty()) {
                *slot = Some(value);
            }
            names.push(name);
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
pub(crate) struct OAuthError {
    pub(crate) error: &'static str,
}

/// `405` for a method the endpoint does not take, with `Allow`, in OAuth's shape (RFC 6749
/// has no error of its own for it; `method_not_allowed` is for the log).
pub(crate) fn method_not_allowed(allow: &'static str) -> Reply {
    Reply::refusal(
        405,
        "method_not_allowed",
        OAuthError {
            error: "invalid_request",
        },
    )
    .with_header("allow", allow)
}

/// RFC 6749's `invalid_request` (`payload_too_large` in the log for a `413`).
pub(crate) fn invalid_request(status: u16) -> Reply {
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
mod tests;

//! What verify answers: how a key is presented (JSON body or forward-auth headers), which
//! scopes are required, and the three answers of the contract with the headers a gateway
//! passes upstream.
//!
//! A malformed key, or one whose checksum does not match, is answered without opening the
//! store. A well-formed one costs exactly one store read ([`crate::protocol::verify`]).
//!
//! Every doubt is answered by a refusal, never by skipping a check: an unknown query parameter
//! or body member, a body member given twice, or an empty required scope is a `400` (a gateway
//! that misspells or forgets its scope must not let every key through), and two credentials,
//! or one that is not UTF-8, are `401 invalid_key` (an upstream might read the one nobody
//! checked).

use crate::http::{query_pairs, CappedBody, Reply};
use crate::key;
use crate::protocol::{self, KeyRecord};
use crate::store::{KeyValue, StoreError};
use crate::validate;
use crate::ApiError;
use serde::Serialize;

/// The exact verify path: a request on it is verify's own, and its query holds only `scope`.
pub const PATH: &str = "/v1/keys.verify";

/// The request header by which a gateway requires scopes: every value, repeated or
/// comma-separated, is required. Unlike `?scope=`, it works under `/v1/keys.verify/...`, where
/// the query is the client's.
pub const REQUIRED_SCOPE_HEADER: &str = "x-api-key-required-scope";

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
    /// The request's path and query as they came (`/v1/keys.verify?scope=read`).
    pub path_with_query: &'a str,
    pub body: &'a dyn Fn() -> &'a CappedBody,
}

/// Finds the presented key and the required scopes.
///
/// Which route the request came by decides whose its query and body are. Under
/// `/v1/keys.verify/...`, Envoy's ext_authz sends the client's own path and query: the query is
/// ignored (neither refused nor required: the client could otherwise choose what is checked)
/// and so is the body; the key comes from the headers and the required scopes from
/// [`REQUIRED_SCOPE_HEADER`] only. Any other path is the caller's own request: [`PATH`], with
/// the one trailing slash that Spin's exact routes also take, and, should `spin.toml` route
/// verify elsewhere, any path this code does not know, so that a route it cannot place is
/// checked strictly rather than let through. There the query may hold `scope` and nothing else,
/// and a POST without a key header may carry the key and a scope in a JSON body. The path is
/// the request's own (`path-with-query`), not Spin's `spin-matched-route` header: no host
/// header is needed, or trusted, for it.
///
/// Forward-auth headers win over the body: a gateway forwards the client's own request, whose
/// body belongs to the upstream API. Every required scope counts (a repeated one is not
/// reduced to its first value), and one that does not percent-decode is kept as written, so
/// no key holds it: scope checks fail closed.
pub fn presentation(request: &VerifyRequest) -> Result<Presentation, Reply> {
    let (path, query) = request
        .path_with_query
        .split_once('?')
        .unwrap_or((request.path_with_query, ""));
    let forwarded = path
        .strip_prefix(PATH)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty());
    let own_request = !forwarded;
    let mut scopes = scopes_from_header(request.header)?;
    if own_request {
        scopes.extend(scopes_from_query(query)?);
    }
    let key = key_from_headers(request.header)?;
    if key.is_some() || !own_request {
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
    let input = validate::verify_input(body).map_err(|error| match error {
        ApiError::UnknownMember { .. } => refusal(400, "unknown_member"),
        _ => refusal(400, "invalid_json"),
    })?;
    if let Some(scope) = input.scope {
        if scope.is_empty() {
            return Err(invalid_scope());
        }
        scopes.push(scope);
    }
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
pub(crate) fn key_from_headers(
    header: &dyn Fn(&str) -> Vec<Vec<u8>>,
) -> Result<Option<String>, Reply> {
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

/// The scopes required by [`REQUIRED_SCOPE_HEADER`]: each value split at commas (a list header,
/// RFC 9110 §5.6.1), each item trimmed. An empty value or item, or one that is not UTF-8, is
/// `400 invalid_scope`: it is a gateway's mistake, and reading it as "no scope" would let every
/// key through.
fn scopes_from_header(header: &dyn Fn(&str) -> Vec<Vec<u8>>) -> Result<Vec<String>, Reply> {
    let mut scopes = Vec::new();
    for value in header(REQUIRED_SCOPE_HEADER) {
        let value = String::from_utf8(value).map_err(|_| invalid_scope())?;
        for item in value.split(',') {
            let item = item.trim_matches([' ', '\t']);
            if item.is_empty() {
                return Err(invalid_scope());
            }
            scopes.push(item.to_owned());
        }
    }
    Ok(scopes)
}

/// The scopes required by the query of a request on [`PATH`]: `scope`, as often as it comes.
/// Any other parameter, `Scope` and `scopes` included, is `400 invalid_query`, and an empty
/// `scope` is `400 invalid_scope`: either is a caller's mistake that must not pass as "no
/// scope required".
pub(crate) fn scopes_from_query(query: &str) -> Result<Vec<String>, Reply> {
    let mut scopes = Vec::new();
    for (name, value) in query_pairs(query) {
        if name != "scope" {
            return Err(refusal(400, "invalid_query"));
        }
        if value.is_empty() {
            return Err(invalid_scope());
        }
        scopes.push(value);
    }
    Ok(scopes)
}

/// What a presented key is worth, decided with one store read at most.
// One at a time, on the stack: a record's size is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Judgement {
    /// Live, with every required scope: its record.
    Valid(KeyRecord),
    /// Refused: the contract's status and code (`503 store_unavailable` included).
    Refused(u16, &'static str),
}

/// Judges a presentation; `open` is called only for a well-formed key.
pub fn judge<S: KeyValue>(
    presented: &Presentation,
    open: impl FnOnce() -> Result<S, StoreError>,
    now: i64,
) -> Judgement {
    // Shape and checksum first: a typo or a random string costs no store access.
    let Some(hash) = presented.key.as_deref().and_then(key::parse) else {
        return Judgement::Refused(401, "invalid_key");
    };
    let looked_up = open().and_then(|store| protocol::verify(&store, &hash, now));
    match looked_up {
        Err(_) => Judgement::Refused(503, "store_unavailable"),
        Ok(None) => Judgement::Refused(401, "invalid_key"),
        // Only someone holding this exact secret learns that it was revoked, expired or was
        // disabled.
        Ok(Some(record)) if record.revocation.is_some() => Judgement::Refused(401, "key_revoked"),
        Ok(Some(record)) if record.is_expired(now) => Judgement::Refused(401, "key_expired"),
        Ok(Some(record)) if !record.enabled => Judgement::Refused(401, "key_disabled"),
        Ok(Some(record)) if presented.scopes.iter().all(|s| record.scopes.contains(s)) => {
            Judgement::Valid(record)
        }
        Ok(Some(_)) => Judgement::Refused(403, "insufficient_scope"),
    }
}

/// Answers a presentation as verify does; `open` is called only for a well-formed key.
pub fn answer<S: KeyValue>(
    presented: Presentation,
    open: impl FnOnce() -> Result<S, StoreError>,
    now: i64,
) -> Reply {
    match judge(&presented, open, now) {
        Judgement::Valid(record) => valid(&record),
        Judgement::Refused(503, code) => refusal(503, code).with_header("retry-after", "1"),
        Judgement::Refused(401, code) => {
            refusal(401, code).with_header("www-authenticate", "Bearer")
        }
        Judgement::Refused(status, code) => refusal(status, code),
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

/// A required scope that is empty or unreadable: a caller's mistake, never "any scope".
fn invalid_scope() -> Reply {
    refusal(400, "invalid_scope")
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
mod tests;

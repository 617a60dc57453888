//! OAuth 2.0 token revocation (RFC 7009) of an API key, `POST /v1/keys.revoke`: any holder of a
//! key ends it, the key its own proof (a "report a leaked key" button, GitLab's partner
//! revocation calls, a CI job that found its own key in a log).
//!
//! - The key comes as the form parameter `token` (`application/x-www-form-urlencoded`;
//!   `token_type_hint` and `client_id` are ignored: there is one kind of token). No `token`, an
//!   empty one (RFC 6749 §3.1: a parameter without a value counts as omitted), or any
//!   parameter repeated, is `400 {"error": "invalid_request"}` (§2.1: `token` is required).
//! - The answer is `200 {}` whether or not the token was a live key, as the RFC requires
//!   (§2.2: an invalid token is no error), so it tells nobody which keys exist. A live key is
//!   revoked before the answer: every secret of it answers `401 key_revoked` from then on, it
//!   stays in its owner's list as revoked, and its history has a `revoked` event with reason
//!   `self`.
//! - The store unavailable is `503 {"error": "temporarily_unavailable"}` with `Retry-After`
//!   (§2.2.1); the revocation may have been made, and a retry finishes it.

use crate::http::{CappedBody, Reply};
use crate::introspection::{invalid_request, method_not_allowed, Form, OAuthError};
use crate::key;
use crate::protocol::{self, Revocation};
use crate::store::{KeyValue, StoreError};
use crate::ApiError;
use serde_json::json;

/// The revocation endpoint's path.
pub const PATH: &str = "/v1/keys.revoke";
/// The reason such a revocation records: the key's holder asked.
pub const REASON: &str = "self";

/// The token of a revocation request, or the refusal of a malformed one; `body` is asked for
/// only once the method is right.
pub fn read<'a>(method: &str, body: impl FnOnce() -> &'a CappedBody) -> Result<String, Reply> {
    if method != "POST" {
        return Err(method_not_allowed("POST"));
    }
    let body = body().bytes().map_err(|_| invalid_request(413))?;
    Form::of(body)?.token.ok_or_else(|| invalid_request(400))
}

/// Revokes `token` if it is a live key, and answers `200 {}` either way; `open` is called only
/// for a token of this app's format whose checksum holds (one read, then the revocation's
/// operations for a live key: see [`protocol::revoke`]).
pub fn answer<S: KeyValue>(
    token: &str,
    open: impl FnOnce() -> Result<S, StoreError>,
    now: i64,
) -> Reply {
    let revoked = match key::parse(token) {
        None => Ok(false),
        Some(hash) => open().map_err(ApiError::from).and_then(|store| {
            let revocation = Revocation::new(REASON, None, None, now);
            protocol::revoke(&store, &hash, &revocation, now)
        }),
    };
    match revoked {
        Ok(_) => Reply::json(200, json!({})),
        Err(error) => {
            let unavailable = OAuthError {
                error: "temporarily_unavailable",
            };
            // Every failure here is the store's (a cause for the log, none for the client).
            let code = error.code();
            Reply::refusal(503, code, unavailable).with_header("retry-after", "1")
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;

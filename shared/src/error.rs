//! The one error type of the management API and its mapping to HTTP status and JSON.
//!
//! Every failure a handler can meet is an [`ApiError`]; [`ApiError::status`] and
//! [`ApiError::body`] are the only places that decide what a client sees. Internal detail
//! (store messages, configuration problems) is logged by the caller and never put in a body.
//!
//! Verify answers in a shape of its own, `{"valid": false, "code": …}`, with its codes
//! (`invalid_key`, `key_expired`, `key_disabled`, `insufficient_scope`, `invalid_json`,
//! `invalid_query`, `invalid_scope`, `payload_too_large`, `store_unavailable`) mapped in
//! [`crate::verification`], so that `verify.wasm` links none of this module's code.

use serde_json::json;

/// A failure with a stable, snake_case code that clients may match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No valid `Authorization: Bearer <JWT>`; the reason is for logs only.
    Unauthorized(&'static str),
    /// The body is not a JSON object of the expected shape.
    InvalidJson(String),
    /// `name` is missing, empty after trimming, too long or contains control characters.
    InvalidName(String),
    /// `scopes` is missing, empty, has duplicates or names a scope that is not allowed.
    InvalidScopes(String),
    /// `expires_at` is not an RFC 3339 time, not in the future, or over ten years ahead.
    InvalidExpiresAt(String),
    /// `grace_seconds` is not a whole number from 0 to 604,800 (seven days).
    InvalidGraceSeconds,
    /// `id` is missing or not of the key-id format.
    InvalidId,
    /// No key with this id belongs to the caller (also when it belongs to someone else).
    KeyNotFound,
    /// The path does not take this method; carries the value of the `Allow` header.
    MethodNotAllowed(&'static str),
    /// The caller already holds the maximum number of keys.
    KeyLimitReached(u32),
    /// A secret-scanning alert names no signing key the app was given (or none at all).
    UnknownSigningKey,
    /// A secret-scanning alert's signature is missing, malformed, or not over its body.
    InvalidSignature,
    /// The body is larger than [`crate::http::MAX_BODY_BYTES`] (secret-scanning alerts:
    /// `leak_alert::MAX_ALERT_BYTES`).
    PayloadTooLarge,
    /// The key-value store failed; nothing half-done was left behind. The cause is for the
    /// component log only, and a fixed text (one of [`cause`]'s), so it can hold no key, hash
    /// or secret.
    StoreUnavailable(&'static str),
    /// A Spin variable has a value the service cannot use (logged, never shown).
    Configuration,
    /// The platform failed in a way the client cannot fix, e.g. no secure random source.
    Internal,
}

impl ApiError {
    /// The stable code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidName(_) => "invalid_name",
            ApiError::InvalidScopes(_) => "invalid_scopes",
            ApiError::InvalidExpiresAt(_) => "invalid_expires_at",
            ApiError::InvalidGraceSeconds => "invalid_grace_seconds",
            ApiError::InvalidId => "invalid_id",
            ApiError::KeyNotFound => "key_not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::KeyLimitReached(_) => "key_limit_reached",
            ApiError::UnknownSigningKey => "unknown_signing_key",
            ApiError::InvalidSignature => "invalid_signature",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Configuration => "configuration_error",
            ApiError::Internal => "internal_error",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized(_) | ApiError::UnknownSigningKey => 401,
            ApiError::InvalidJson(_)
            | ApiError::InvalidName(_)
            | ApiError::InvalidScopes(_)
            | ApiError::InvalidExpiresAt(_)
            | ApiError::InvalidGraceSeconds
            | ApiError::InvalidId
            | ApiError::InvalidSignature => 400,
            ApiError::KeyNotFound => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::KeyLimitReached(_) => 409,
            ApiError::PayloadTooLarge => 413,
            ApiError::StoreUnavailable(_) => 503,
            ApiError::Configuration | ApiError::Internal => 500,
        }
    }

    /// A message for humans. It never contains secrets or internal error text.
    pub fn message(&self) -> String {
        match self {
            // Why a token was refused stays in the logs: telling an attacker which check
            // failed would help them forge the next one.
            ApiError::Unauthorized(_) => "A valid bearer token is required.".into(),
            ApiError::InvalidJson(detail)
            | ApiError::InvalidName(detail)
            | ApiError::InvalidScopes(detail)
            | ApiError::InvalidExpiresAt(detail) => detail.clone(),
            ApiError::InvalidGraceSeconds => format!(
                "`grace_seconds` must be a whole number from 0 to {}.",
                crate::protocol::MAX_GRACE_SECS
            ),
            ApiError::InvalidId => "`id` must be a key id such as the one create returned.".into(),
            ApiError::KeyNotFound => "No such key.".into(),
            ApiError::MethodNotAllowed(allow) => format!("Use {allow} on this path."),
            ApiError::KeyLimitReached(limit) => {
                format!("You already have {limit} keys, the most allowed; delete one first.")
            }
            ApiError::UnknownSigningKey => {
                "`Github-Public-Key-Identifier` names no key this service was given.".into()
            }
            ApiError::InvalidSignature => {
                "`Github-Public-Key-Signature` is not a signature of this body by that key.".into()
            }
            ApiError::PayloadTooLarge => {
                "The request body is larger than this endpoint accepts.".into()
            }
            ApiError::StoreUnavailable(_) => {
                "The key store is unavailable. A change you asked for may have been made: \
                 retry shortly, and your keys will show whether it was."
                    .into()
            }
            ApiError::Configuration => "The service is misconfigured.".into(),
            ApiError::Internal => "An internal error occurred; nothing was changed.".into(),
        }
    }

    /// The JSON body: `{"error": {"code": ..., "message": ...}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code(), "message": self.message() } })
    }

    /// Extra response headers this error requires.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::Unauthorized(_) => vec![("www-authenticate", "Bearer".into())],
            ApiError::MethodNotAllowed(allow) => vec![("allow", (*allow).into())],
            ApiError::StoreUnavailable(_) => vec![("retry-after", "1".into())],
            _ => Vec::new(),
        }
    }
}

/// Why a request answered `503 store_unavailable`, as its log line says: "store error", "kept
/// losing races" and "unreadable value" call for different fixes (the store's health, load
/// on one user, a version mismatch). The client sees only `store_unavailable`.
pub mod cause {
    /// A store operation failed (the backend's own text is not logged: it may name keys).
    pub const STORE_ERROR: &str = "a store operation failed";
    /// A value read back could not be parsed: written by another version, or damaged.
    pub const UNREADABLE_VALUE: &str = "a stored value was unreadable";
    /// Every attempt to publish the user's index lost a race (or read a stale index).
    pub const LOST_RACES: &str = "kept losing races for the user's index";
    /// A new secret's record could not be turned active.
    pub const NOT_ACTIVATED: &str = "a new secret could not be activated";
    /// A change this request published cannot be told apart from the key's deletion.
    pub const NOT_READ_BACK: &str = "a published change could not be read back";
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        // `protocol::layout::corrupt` is the one maker of "unreadable …" errors.
        ApiError::StoreUnavailable(if error.0.starts_with("unreadable ") {
            cause::UNREADABLE_VALUE
        } else {
            cause::STORE_ERROR
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_contract_status_and_code() {
        let cases = [
            (ApiError::Unauthorized("x"), 401, "unauthorized"),
            (ApiError::InvalidJson("x".into()), 400, "invalid_json"),
            (ApiError::InvalidName("x".into()), 400, "invalid_name"),
            (ApiError::InvalidScopes("x".into()), 400, "invalid_scopes"),
            (
                ApiError::InvalidExpiresAt("x".into()),
                400,
                "invalid_expires_at",
            ),
            (ApiError::InvalidGraceSeconds, 400, "invalid_grace_seconds"),
            (ApiError::InvalidId, 400, "invalid_id"),
            (ApiError::KeyNotFound, 404, "key_not_found"),
            (
                ApiError::MethodNotAllowed("POST"),
                405,
                "method_not_allowed",
            ),
            (ApiError::KeyLimitReached(20), 409, "key_limit_reached"),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (
                ApiError::StoreUnavailable(cause::LOST_RACES),
                503,
                "store_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.body()["error"]["code"], code);
            assert!(error.body()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn a_store_failure_keeps_its_cause_for_the_log_only() {
        let unreadable = ApiError::from(crate::store::StoreError("unreadable index value".into()));
        let failed = ApiError::from(crate::store::StoreError("connection reset".into()));
        assert_eq!(
            unreadable,
            ApiError::StoreUnavailable(cause::UNREADABLE_VALUE)
        );
        assert_eq!(failed, ApiError::StoreUnavailable(cause::STORE_ERROR));
        for error in [unreadable, failed] {
            assert_eq!(error.code(), "store_unavailable");
            let body = error.body().to_string();
            assert!(
                !body.contains("unreadable") && !body.contains("failed"),
                "{body}"
            );
        }
    }

    #[test]
    fn unauthorized_hides_its_reason_and_asks_for_bearer() {
        let error = ApiError::Unauthorized("signature mismatch");
        assert!(!error.message().contains("signature"));
        assert_eq!(
            error.headers(),
            vec![("www-authenticate", "Bearer".to_string())]
        );
    }

    #[test]
    fn method_not_allowed_names_the_allowed_method() {
        let error = ApiError::MethodNotAllowed("GET");
        assert_eq!(error.headers(), vec![("allow", "GET".to_string())]);
    }
}

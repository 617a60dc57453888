//! The one error type of the management API and its mapping to HTTP status and JSON.
//!
//! Every failure a handler can meet is an [`ApiError`]; [`ApiError::status`] and
//! [`ApiError::body`] are the only places that decide what a client sees. Internal detail
//! (store messages, configuration problems) is logged by the caller and never put in a body.
//!
//! Verify answers in a shape of its own, `{"valid": false, "code": …}`, with its codes
//! (`invalid_key`, `key_expired`, `key_disabled`, `key_revoked`, `insufficient_scope`,
//! `invalid_json`, `unknown_member`, `invalid_query`, `invalid_scope`, `payload_too_large`,
//! `store_unavailable`) mapped in [`crate::verification`], so that `verify.wasm` links none of
//! this module's code. openapi.yaml lists every code of both shapes; the tests read it back
//! ([`openapi`]), so that a code added here or there alone fails them.

use serde_json::json;

/// A failure with a stable, snake_case code that clients may match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No valid `Authorization: Bearer <JWT>`; the reason is for logs only.
    Unauthorized(&'static str),
    /// The body is not a JSON object of the expected shape.
    InvalidJson(String),
    /// An object in the body gives this member twice (at any depth): which value counts would
    /// be the parser's guess, not the client's word. Answered as `invalid_json`, naming it.
    RepeatedMember(String),
    /// The body has this member, which the endpoint does not take (`known` are those it does):
    /// refused rather than ignored, so that a client that believes it set something (a
    /// misspelled `expire_at`, a member of a later version) hears that it did not.
    UnknownMember {
        member: String,
        known: &'static [&'static str],
    },
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
            ApiError::InvalidJson(_) | ApiError::RepeatedMember(_) => "invalid_json",
            ApiError::UnknownMember { .. } => "unknown_member",
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
            | ApiError::RepeatedMember(_)
            | ApiError::UnknownMember { .. }
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
            ApiError::RepeatedMember(member) => {
                format!("`{member}` is given twice in one object; give each member once.")
            }
            ApiError::UnknownMember { member, known } => format!(
                "`{member}` is not a member of this body, so nothing was changed; it takes: {}.",
                known.join(", ")
            ),
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

    /// The JSON body: `{"error": {"code": ..., "message": ...}}`, and `member` naming the
    /// member of the request body that was refused, for a client to match on (as Stripe's
    /// `param`).
    pub fn body(&self) -> serde_json::Value {
        let mut error = json!({ "code": self.code(), "message": self.message() });
        if let ApiError::RepeatedMember(member) | ApiError::UnknownMember { member, .. } = self {
            error["member"] = json!(member);
        }
        json!({ "error": error })
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

/// What openapi.yaml documents, read in tests so that the code and the description cannot
/// drift apart unnoticed: the codes each schema allows, the members each body takes. A small
/// reader of this one file's layout (two-space indents, schemas under `components.schemas`),
/// not of YAML at large.
#[cfg(test)]
pub(crate) mod openapi {
    const SPEC: &str = include_str!("../../openapi.yaml");

    fn indent(line: &str) -> usize {
        line.len() - line.trim_start().len()
    }

    /// The lines of schema `name` (under `components.schemas`), its own line excluded.
    fn schema(name: &str) -> Vec<&'static str> {
        let mut lines = SPEC
            .lines()
            .skip_while(|line| *line != "  schemas:")
            .skip_while(|line| *line != format!("    {name}:"));
        assert!(lines.next().is_some(), "openapi.yaml has no schema {name}");
        lines
            .take_while(|line| line.trim().is_empty() || indent(line) > 4)
            .collect()
    }

    /// Every value that an `enum` or a `const` of member `property` of schema `name` allows,
    /// in each of the schema's parts (`allOf`): the codes an answer of that schema may carry.
    pub(crate) fn values(name: &str, property: &str) -> Vec<String> {
        let lines = schema(name);
        let mut values = Vec::new();
        let mut within = None;
        for (at, line) in lines.iter().enumerate() {
            if within.is_some_and(|depth| !line.trim().is_empty() && indent(line) <= depth) {
                within = None;
            }
            let text = line.trim();
            if text == format!("{property}:") {
                within = Some(indent(line));
                continue;
            }
            if within.is_none() {
                continue;
            }
            if let Some(list) = text.strip_prefix("enum: [") {
                let list = list.trim_end_matches(']');
                values.extend(list.split(',').map(|v| v.trim().to_owned()));
            } else if let Some(value) = text.strip_prefix("const: ") {
                values.push(value.to_owned());
            } else if text == "enum:" {
                let items = lines[at + 1..]
                    .iter()
                    .map(|item| item.trim())
                    .take_while(|item| item.starts_with("- "));
                values.extend(items.map(|item| item[2..].trim().to_owned()));
            }
        }
        assert!(!values.is_empty(), "no values of {name}.{property}");
        values
    }

    /// The members listed under the first `properties:` of schema `name`.
    pub(crate) fn properties(name: &str) -> Vec<String> {
        let lines = schema(name);
        let Some(start) = lines.iter().position(|line| line.trim() == "properties:") else {
            return Vec::new();
        };
        let depth = indent(lines[start]);
        lines[start + 1..]
            .iter()
            .take_while(|line| line.trim().is_empty() || indent(line) > depth)
            .filter(|line| indent(line) == depth + 2)
            .map(|line| line.trim().trim_end_matches(':').to_owned())
            .collect()
    }

    /// Whether schema `name` allows no members but its own (`additionalProperties: false`).
    pub(crate) fn closed(name: &str) -> bool {
        schema(name)
            .iter()
            .any(|line| indent(line) == 6 && line.trim() == "additionalProperties: false")
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

    /// One error of each kind; the `match` makes a new kind a compile error here until it is
    /// listed.
    fn one_of_each() -> Vec<ApiError> {
        let all = vec![
            ApiError::Unauthorized("x"),
            ApiError::InvalidJson("x".into()),
            ApiError::RepeatedMember("scope".into()),
            ApiError::UnknownMember {
                member: "rate_limits".into(),
                known: &["name"],
            },
            ApiError::InvalidName("x".into()),
            ApiError::InvalidScopes("x".into()),
            ApiError::InvalidExpiresAt("x".into()),
            ApiError::InvalidGraceSeconds,
            ApiError::InvalidId,
            ApiError::KeyNotFound,
            ApiError::MethodNotAllowed("POST"),
            ApiError::KeyLimitReached(20),
            ApiError::UnknownSigningKey,
            ApiError::InvalidSignature,
            ApiError::PayloadTooLarge,
            ApiError::StoreUnavailable(cause::STORE_ERROR),
            ApiError::Configuration,
            ApiError::Internal,
        ];
        for error in &all {
            match error {
                ApiError::Unauthorized(_)
                | ApiError::InvalidJson(_)
                | ApiError::RepeatedMember(_)
                | ApiError::UnknownMember { .. }
                | ApiError::InvalidName(_)
                | ApiError::InvalidScopes(_)
                | ApiError::InvalidExpiresAt(_)
                | ApiError::InvalidGraceSeconds
                | ApiError::InvalidId
                | ApiError::KeyNotFound
                | ApiError::MethodNotAllowed(_)
                | ApiError::KeyLimitReached(_)
                | ApiError::UnknownSigningKey
                | ApiError::InvalidSignature
                | ApiError::PayloadTooLarge
                | ApiError::StoreUnavailable(_)
                | ApiError::Configuration
                | ApiError::Internal => {}
            }
        }
        all
    }

    #[test]
    fn openapi_yaml_documents_every_code_and_no_other() {
        let mut codes: Vec<String> = one_of_each().iter().map(|e| e.code().into()).collect();
        codes.sort();
        codes.dedup();
        let mut documented = openapi::values("Error", "code");
        documented.sort();
        assert_eq!(documented, codes);
    }

    #[test]
    fn a_refused_member_is_named_in_the_message_and_in_member() {
        let unknown = ApiError::UnknownMember {
            member: "expire_at".into(),
            known: &["name", "scopes", "expires_at"],
        };
        let body = unknown.body();
        assert_eq!(body["error"]["code"], "unknown_member");
        assert_eq!(body["error"]["member"], "expire_at");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("`expire_at`") && message.contains("expires_at"));
        let repeated = ApiError::RepeatedMember("scope".into()).body();
        assert_eq!(repeated["error"]["code"], "invalid_json");
        assert_eq!(repeated["error"]["member"], "scope");
        // Other errors have no `member`.
        assert_eq!(ApiError::InvalidId.body()["error"].get("member"), None);
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

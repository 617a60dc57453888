//! HTTP plumbing every component shares, independent of the Spin SDK so it runs in native tests:
//! the body limit, method checks, header lookup and the JSON reply.

use crate::error::ApiError;
use serde_json::Value;

/// Largest accepted request body (16 KiB); larger bodies get `413 payload_too_large`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What a handler answers: status, headers and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

impl Reply {
    /// A JSON reply with no extra headers.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The one mapping from an [`ApiError`] to what the client sees.
    pub fn from_error(error: &ApiError) -> Reply {
        Reply {
            status: error.status(),
            headers: error.headers(),
            body: error.body(),
        }
    }

    /// Serialised body bytes.
    pub fn body_bytes(&self) -> Vec<u8> {
        self.body.to_string().into_bytes()
    }
}

/// The line an operator needs in the component log for this answer, if any: why a bearer
/// token was refused, and every 5xx, with the route. It is built only from the route, the
/// status, the stable code and the failed check's fixed text, so it can hold no token, key,
/// hash or secret.
pub fn log_line(route: &str, result: &Result<Reply, ApiError>) -> Option<String> {
    match result {
        Err(ApiError::Unauthorized(reason)) => Some(format!(
            "{route}: 401 unauthorized: bearer token refused: {reason}"
        )),
        Err(error) if error.status() >= 500 => {
            Some(format!("{route}: {} {}", error.status(), error.code()))
        }
        Ok(reply) if reply.status >= 500 => {
            let code = reply.body["code"]
                .as_str()
                .or_else(|| reply.body["error"]["code"].as_str())
                .unwrap_or("error");
            Some(format!("{route}: {} {code}", reply.status))
        }
        _ => None,
    }
}

impl From<Result<Reply, ApiError>> for Reply {
    fn from(result: Result<Reply, ApiError>) -> Reply {
        result.unwrap_or_else(|error| Reply::from_error(&error))
    }
}

/// Refuses `method` unless it is `allowed` (case-sensitive, as HTTP methods are).
pub fn require_method(method: &str, allowed: &'static str) -> Result<(), ApiError> {
    if method == allowed {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed(allowed))
    }
}

/// Refuses bodies over [`MAX_BODY_BYTES`].
pub fn require_small_body(body: &[u8]) -> Result<(), ApiError> {
    if body.len() > MAX_BODY_BYTES {
        Err(ApiError::PayloadTooLarge)
    } else {
        Ok(())
    }
}

/// Every value of query parameter `name` in `query` (without `?`), percent-decoded. A value
/// that does not decode is returned as it was written, so that a check built on it fails
/// closed instead of silently dropping the parameter.
pub fn query_params(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key).as_deref() == Some(name))
                .then(|| percent_decode(value).unwrap_or_else(|| value.to_owned()))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_up_to_16_kib_pass_and_larger_are_refused() {
        assert!(require_small_body(&vec![b' '; MAX_BODY_BYTES]).is_ok());
        assert_eq!(
            require_small_body(&vec![b' '; MAX_BODY_BYTES + 1]),
            Err(ApiError::PayloadTooLarge)
        );
    }

    #[test]
    fn refused_tokens_and_5xx_are_logged_with_route_and_reason_only() {
        let route = "/v1/keys.list";
        assert_eq!(
            log_line(route, &Err(ApiError::Unauthorized("expired"))).as_deref(),
            Some("/v1/keys.list: 401 unauthorized: bearer token refused: expired")
        );
        assert_eq!(
            log_line(route, &Err(ApiError::StoreUnavailable)).as_deref(),
            Some("/v1/keys.list: 503 store_unavailable")
        );
        assert_eq!(
            log_line(route, &Err(ApiError::Configuration)).as_deref(),
            Some("/v1/keys.list: 500 configuration_error")
        );
        let verify_503 = Reply::json(
            503,
            serde_json::json!({"valid": false, "code": "store_unavailable"}),
        );
        assert_eq!(
            log_line("/v1/keys.verify", &Ok(verify_503)).as_deref(),
            Some("/v1/keys.verify: 503 store_unavailable")
        );
        // Ordinary answers are not logged.
        assert_eq!(log_line(route, &Err(ApiError::KeyNotFound)), None);
        assert_eq!(
            log_line(route, &Ok(Reply::json(200, serde_json::json!({})))),
            None
        );
    }

    #[test]
    fn other_methods_get_405_naming_the_allowed_one() {
        assert!(require_method("POST", "POST").is_ok());
        assert_eq!(
            require_method("GET", "POST"),
            Err(ApiError::MethodNotAllowed("POST"))
        );
        assert_eq!(
            require_method("post", "POST"),
            Err(ApiError::MethodNotAllowed("POST"))
        );
    }

    #[test]
    fn query_parameters_are_found_and_decoded() {
        assert_eq!(query_params("scope=read", "scope"), ["read"]);
        assert_eq!(
            query_params("a=1&scope=emails%3Asend", "scope"),
            ["emails:send"]
        );
        assert_eq!(query_params("scope=a&scope=b", "scope"), ["a", "b"]);
        assert!(query_params("scopes=x", "scope").is_empty());
        assert!(query_params("", "scope").is_empty());
        assert_eq!(
            query_params("scope=%zz", "scope"),
            ["%zz"],
            "kept, not dropped"
        );
    }
}

//! HTTP plumbing every component shares, independent of the Spin SDK so it runs in native tests:
//! the body limit, method checks, query parsing and the JSON reply.

use crate::error::ApiError;
use serde::Serialize;
#[cfg(test)]
use serde_json::Value;

/// Largest accepted request body (16 KiB); larger bodies get `413 payload_too_large`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The most of a body over the limit that is read, and dropped, before the `413` goes out.
///
/// Spin closes the connection of a request whose body its component left unread, and a
/// client still sending then meets a reset instead of the answer (measured on Spin 4.1: a
/// 17 KiB delete got `Broken pipe` where the local host, which drained bodies, answered 413).
/// Reading a few times the limit lets such a client finish and read why; a larger body is
/// refused at once (its declared length says so, or this much was read), its client cut off.
pub const MAX_DRAINED_BYTES: usize = 4 * MAX_BODY_BYTES;

/// Reads and drops up to `most` bytes from `next_chunk` (16 KiB at a time at most).
fn drain(next_chunk: &mut impl FnMut(usize) -> Option<Vec<u8>>, most: usize) {
    let mut left = most;
    while left > 0 {
        match next_chunk(left.min(MAX_BODY_BYTES)) {
            Some(chunk) if !chunk.is_empty() => left = left.saturating_sub(chunk.len()),
            _ => break,
        }
    }
}

/// A request body read with a cap: no request holds more than [`MAX_BODY_BYTES`] + 1 bytes of
/// body, however much the client sends (spin-sdk's `Request` would hold all of it before the
/// handler runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CappedBody {
    bytes: Vec<u8>,
    over_limit: bool,
}

impl CappedBody {
    /// Reads the body from `next_chunk`, which is asked for at most the given number of bytes
    /// and answers `None` at the end. Keeps one byte past the limit at most (enough to know it
    /// is too large); of a body over the limit, reads and drops up to [`MAX_DRAINED_BYTES`] in
    /// all, and nothing when its declared `Content-Length` is larger still.
    pub fn read(
        declared_length: Option<&str>,
        next_chunk: impl FnMut(usize) -> Option<Vec<u8>>,
    ) -> CappedBody {
        CappedBody::read_up_to(MAX_BODY_BYTES, declared_length, next_chunk)
    }

    /// Reads the body as [`CappedBody::read`] does, with `limit` in place of
    /// [`MAX_BODY_BYTES`] (and four times it in place of [`MAX_DRAINED_BYTES`]): for the one
    /// endpoint whose bodies are larger, secret-scanning alerts.
    pub fn read_up_to(
        limit: usize,
        declared_length: Option<&str>,
        mut next_chunk: impl FnMut(usize) -> Option<Vec<u8>>,
    ) -> CappedBody {
        let drained = 4 * limit;
        let too_large = CappedBody {
            bytes: Vec::new(),
            over_limit: true,
        };
        let declared = declared_length.and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(declared) = declared.filter(|n| *n > limit as u64) {
            if declared <= drained as u64 {
                drain(&mut next_chunk, drained);
            }
            return too_large;
        }
        let mut bytes = Vec::new();
        while bytes.len() <= limit {
            let room = limit + 1 - bytes.len();
            match next_chunk(room) {
                Some(chunk) if !chunk.is_empty() => {
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)])
                }
                _ => break,
            }
        }
        if bytes.len() > limit {
            drain(&mut next_chunk, drained - bytes.len());
            return too_large;
        }
        CappedBody {
            bytes,
            over_limit: false,
        }
    }

    /// A body already in memory (tests, native callers), judged by the same limit.
    pub fn from_bytes(bytes: &[u8]) -> CappedBody {
        let mut once = Some(bytes.to_vec());
        CappedBody::read(None, |_| once.take())
    }

    /// The body, or `payload_too_large` if it was over the limit.
    pub fn bytes(&self) -> Result<&[u8], ApiError> {
        if self.over_limit {
            Err(ApiError::PayloadTooLarge)
        } else {
            Ok(&self.bytes)
        }
    }

    /// Whether the request had no body at all.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.over_limit
    }
}

/// What a handler answers: status, headers and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body, serialised.
    pub body: Vec<u8>,
    /// The stable code of a refusal, for the component log (see [`log_line`]).
    pub code: Option<&'static str>,
}

impl Reply {
    /// A JSON reply with no extra headers. `body` is serialised at once: verify answers with
    /// plain structs, so it carries no `serde_json::Value` code.
    pub fn json(status: u16, body: impl Serialize) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            // Cannot fail: every body is a `Value` or a struct of strings, numbers and lists.
            body: serde_json::to_vec(&body).unwrap_or_default(),
            code: None,
        }
    }

    /// A refusal with a stable `code` (logged if it is a 5xx), its JSON `body` as for [`json`].
    ///
    /// [`json`]: Reply::json
    pub fn refusal(status: u16, code: &'static str, body: impl Serialize) -> Reply {
        Reply {
            code: Some(code),
            ..Reply::json(status, body)
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
            headers: error.headers(),
            ..Reply::refusal(error.status(), error.code(), error.body())
        }
    }

    /// The body as JSON, for tests.
    #[cfg(test)]
    pub fn body_json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
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
        Err(ApiError::StoreUnavailable(cause)) => {
            Some(format!("{route}: 503 store_unavailable: {cause}"))
        }
        Err(error) if error.status() >= 500 => {
            Some(format!("{route}: {} {}", error.status(), error.code()))
        }
        Ok(reply) => reply_log_line(route, reply),
        _ => None,
    }
}

/// [`log_line`] for an answer that is a reply already (verify's refusals are replies).
pub fn reply_log_line(route: &str, reply: &Reply) -> Option<String> {
    let code = reply.code.unwrap_or("error");
    (reply.status >= 500).then(|| format!("{route}: {} {code}", reply.status))
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

/// Every parameter of `query` (without `?`) as `(name, value)`, in order and repeats included,
/// percent-decoded (`+` is a space). Empty segments (`a=1&&b=2`, a bare `?`) hold no parameter.
/// A name or value that does not decode is returned as it was written, so that a check built
/// on it fails closed instead of silently dropping the parameter.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decoded(name), form_decoded(value))
        })
}

/// One form-encoded name or value, decoded (`+` is a space); text that is not valid
/// percent-encoding is taken as it is.
pub fn form_decoded(text: &str) -> String {
    percent_decode(text).unwrap_or_else(|| text.to_owned())
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
        let limit = vec![b' '; MAX_BODY_BYTES];
        assert_eq!(CappedBody::from_bytes(&limit).bytes(), Ok(&limit[..]));
        assert_eq!(
            CappedBody::from_bytes(&vec![b' '; MAX_BODY_BYTES + 1]).bytes(),
            Err(ApiError::PayloadTooLarge)
        );
        assert!(CappedBody::from_bytes(b"").is_empty());
    }

    #[test]
    fn a_huge_body_is_held_one_byte_past_the_limit_and_read_a_few_times_the_limit() {
        // 200 MB offered in 64 KiB chunks: the reader asks for no more than it keeps, then
        // drops what it drains.
        let mut offered = 200_000_000usize;
        let mut pulled = 0;
        let mut largest_chunk = 0;
        let body = CappedBody::read(None, |most| {
            let n = most.min(65_536).min(offered);
            offered -= n;
            pulled += n;
            largest_chunk = largest_chunk.max(n);
            (n > 0).then(|| vec![b'a'; n])
        });
        assert_eq!(body.bytes(), Err(ApiError::PayloadTooLarge));
        assert_eq!(pulled, MAX_DRAINED_BYTES);
        assert!(largest_chunk <= MAX_BODY_BYTES + 1);
        assert!(!body.is_empty());
    }

    #[test]
    fn a_body_a_little_over_the_limit_is_read_to_its_end_so_its_client_reads_the_413() {
        for declared in [true, false] {
            let mut offered = 17 * 1024;
            let length = offered.to_string();
            let body = CappedBody::read(declared.then_some(length.as_str()), |most| {
                let n = most.min(4096).min(offered);
                offered -= n;
                (n > 0).then(|| vec![b'a'; n])
            });
            assert_eq!(body.bytes(), Err(ApiError::PayloadTooLarge));
            assert_eq!(offered, 0, "declared: {declared}");
        }
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_unread() {
        let body = CappedBody::read(Some("200000000"), |_| {
            panic!("read a body it should refuse")
        });
        assert_eq!(body.bytes(), Err(ApiError::PayloadTooLarge));
        // A declared length within the limit is read as usual; a bogus one is ignored.
        let mut once = Some(b"{}".to_vec());
        assert_eq!(
            CappedBody::read(Some("2"), |_| once.take()).bytes(),
            Ok(&b"{}"[..])
        );
        let mut once = Some(b"{}".to_vec());
        assert_eq!(
            CappedBody::read(Some("x"), |_| once.take()).bytes(),
            Ok(&b"{}"[..])
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
            log_line(
                route,
                &Err(ApiError::StoreUnavailable(crate::error::cause::LOST_RACES))
            )
            .as_deref(),
            Some("/v1/keys.list: 503 store_unavailable: kept losing races for the user's index")
        );
        assert_eq!(
            log_line(route, &Err(ApiError::Configuration)).as_deref(),
            Some("/v1/keys.list: 500 configuration_error")
        );
        let verify_503 = Reply::refusal(
            503,
            "store_unavailable",
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
        let pairs = |query| query_pairs(query).collect::<Vec<_>>();
        let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(pairs("scope=read"), [pair("scope", "read")]);
        assert_eq!(
            pairs("a=1&scope=emails%3Asend"),
            [pair("a", "1"), pair("scope", "emails:send")]
        );
        assert_eq!(
            pairs("scope=a&scope=b"),
            [pair("scope", "a"), pair("scope", "b")]
        );
        assert_eq!(pairs("sc%6Fpe=a+b"), [pair("scope", "a b")]);
        assert_eq!(
            pairs("scope&scope="),
            [pair("scope", ""), pair("scope", "")]
        );
        assert!(pairs("").is_empty());
        assert_eq!(pairs("&&scope=x&"), [pair("scope", "x")], "empty segments");
        assert_eq!(
            pairs("scope=%zz&%zz=1"),
            [pair("scope", "%zz"), pair("%zz", "1")],
            "kept, not dropped"
        );
    }
}

//! Spin glue, compiled natively too but run only inside Spin: the `wasi:keyvalue` store, Spin
//! variables, the clock and spin-sdk's HTTP types, behind the shared traits and types the rest
//! of the crate uses.

use crate::config::{Config, Variables};
use crate::error::ApiError;
use crate::http::{CappedBody, Reply};
use crate::jwt;
use crate::store::{KeyValue, StoreError, Swap};
use spin_sdk::http::{
    ErrorCode, Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use spin_sdk::wit::wasi::clocks0_2_0::wall_clock;
use spin_sdk::wit::wasi::http0_2_0::types;
use spin_sdk::wit::wasi::keyvalue::{atomics, store};
use std::cell::OnceCell;

/// The `default` key-value store through `wasi:keyvalue@0.2.0-draft2`, which every Spin
/// backend implements (it has compare-and-swap; `spin_sdk::key_value::Store` has not).
pub struct SpinStore {
    bucket: store::Bucket,
}

impl SpinStore {
    /// Opens the `default` store.
    pub fn open() -> Result<SpinStore, StoreError> {
        store::open("default")
            .map(|bucket| SpinStore { bucket })
            .map_err(logged)
    }
}

/// Store errors go to the component log (they hold no secrets) and are answered as 503.
fn logged(error: store::Error) -> StoreError {
    let text = format!("key-value store error: {error:?}");
    eprintln!("{text}");
    StoreError(text)
}

impl KeyValue for SpinStore {
    type Cas = atomics::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.bucket.get(key).map_err(logged)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.bucket.set(key, value).map_err(logged)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket.delete(key).map_err(logged)
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        atomics::increment(&self.bucket, key, delta).map_err(logged)
    }

    fn watch(&self, key: &str) -> Result<(atomics::Cas, Option<Vec<u8>>), StoreError> {
        let cas = atomics::Cas::new(&self.bucket, key).map_err(logged)?;
        let current = cas.current().map_err(logged)?;
        Ok((cas, current))
    }

    fn swap(&self, cas: atomics::Cas, value: &[u8]) -> Result<Swap, StoreError> {
        match atomics::swap(cas, value) {
            Ok(()) => Ok(Swap::Done),
            Err(atomics::CasError::CasFailed(_)) => Ok(Swap::Conflict),
            Err(atomics::CasError::StoreError(error)) => Err(logged(error)),
        }
    }

    fn back_off(&self, retry: u32) -> u32 {
        let mut random = [0u8; 4];
        // Without randomness the wait is the longest of its bound: still a wait, only not spread.
        let random = getrandom::fill(&mut random).map_or(u32::MAX, |()| u32::from_le_bytes(random));
        // On wasm32-wasip2 this is `wasi:clocks` `subscribe-duration` and a poll: the host
        // serves other requests meanwhile.
        std::thread::sleep(crate::store::backoff_delay(retry, random));
        // Another number than the wait's, for spreading racers over keys.
        random.rotate_left(16)
    }
}

/// Spin variables of the component; empty values count as unset.
pub struct SpinVariables;

impl Variables for SpinVariables {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    }
}

/// The management functions' configuration; a bad value is logged and answered as 500.
pub fn config() -> Result<Config, ApiError> {
    Config::load(&SpinVariables).map_err(|error| {
        eprintln!("configuration error: {}", error.0);
        ApiError::Configuration
    })
}

/// The user id of the request's bearer token, checked against `config`.
pub fn authenticate(request: &BoundedRequest, config: &Config) -> Result<String, ApiError> {
    let authorization = request.header("authorization");
    let token = jwt::bearer_token(authorization.as_deref()).map_err(ApiError::Unauthorized)?;
    let expectations = jwt::Expectations {
        secret: config.jwt_secret.as_bytes(),
        issuer: config.jwt_issuer.as_deref(),
        audience: config.jwt_audience.as_deref(),
        now: now(),
    };
    jwt::verify(token, &expectations).map_err(ApiError::Unauthorized)
}

/// A request as the handlers see it: method, headers, query and a body read with a cap.
///
/// Components take the streaming `IncomingRequest` instead of spin-sdk's `Request`, which holds
/// the whole body in memory before the handler runs (one 300 MB POST took `spin up` from 66 MB
/// to 818 MB resident): a declared `Content-Length` over the limit is refused unread, any other
/// body is read one byte past the limit at most.
///
/// The body is read on first use only: verify answers a key from a header without waiting for
/// the body stream, a round trip through the host that the hot path does not need. Headers are
/// fetched by name: a gateway's forward-auth request carries all of its client's headers
/// (cookies included), and none but two or three are ever looked at.
pub struct BoundedRequest {
    method: OnceCell<String>,
    // Declared before `request`, so dropped first: `wasi:http` wants a child resource gone
    // before its parent.
    headers: Fields,
    path_with_query: String,
    request: IncomingRequest,
    body: OnceCell<CappedBody>,
    /// The most bytes of body kept.
    limit: usize,
}

impl BoundedRequest {
    /// Reads what the handlers need of `request`, except the body (see [`Self::body`]).
    pub fn read(request: IncomingRequest) -> BoundedRequest {
        BoundedRequest::read_up_to(crate::http::MAX_BODY_BYTES, request)
    }

    /// Reads `request` as [`BoundedRequest::read`] does, its body capped at `limit` bytes.
    pub fn read_up_to(limit: usize, request: IncomingRequest) -> BoundedRequest {
        BoundedRequest {
            limit,
            method: OnceCell::new(),
            headers: request.headers(),
            path_with_query: request.path_with_query().unwrap_or_default(),
            request,
            body: OnceCell::new(),
        }
    }

    /// The body, read on the first call, with a cap: never more than the limit (~16 KiB unless
    /// read with [`BoundedRequest::read_up_to`]) of it is held
    /// ([`CappedBody::bytes`] refuses one over the limit).
    pub fn body(&self) -> &CappedBody {
        self.body.get_or_init(|| {
            let declared = self.header("content-length");
            let Ok(incoming) = self.request.consume() else {
                return CappedBody::default();
            };
            let Ok(stream) = incoming.stream() else {
                return CappedBody::default();
            };
            // A read error (the client went away) ends the body like its end does.
            CappedBody::read_up_to(self.limit, declared.as_deref(), |most| {
                stream.blocking_read(most as u64).ok()
            })
        })
    }

    /// The request method as text (`GET`, `POST`, ...), asked of the host on first use: verify
    /// needs it only for a key that came in no header.
    pub fn method(&self) -> &str {
        self.method
            .get_or_init(|| self.request.method().to_string())
    }

    /// The first value of header `name` (any case) if it is present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<String> {
        let first = self.headers.get(name).into_iter().next()?;
        String::from_utf8(first).ok()
    }

    /// Every value of header `name` (any case), as the bytes that came, in one host call
    /// (`fields.get`): for verify, which must see a repeated or undecodable header.
    pub fn header_values(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers.get(name)
    }

    /// The path and query of the request as it came (`/v1/keys.verify?scope=read`).
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }
}

/// Now, in Unix seconds, from `wasi:clocks/wall-clock`.
///
/// Asked of the interface itself, not through `std::time::SystemTime`: std goes through
/// wasi-libc's `clock_gettime`, which links `wasi:clocks/monotonic-clock` as well, and every
/// import is wired up again for each instance, that is for each request.
pub fn now() -> i64 {
    let time = wall_clock::now();
    i64::try_from(time.seconds).unwrap_or(i64::MAX)
}

/// Answers `result` on `route`, first writing to the component log (stderr) what an operator
/// needs to know: why a token was refused, and every 5xx (see [`crate::http::log_line`]).
pub fn answer(route: &str, result: Result<Reply, ApiError>, response_out: ResponseOutparam) {
    if let Some(line) = crate::http::log_line(route, &result) {
        eprintln!("{line}");
    }
    send(result.into(), response_out)
}

/// Answers `reply` on `route` as [`answer`] does. For verify, whose refusals are replies of
/// their own: it never builds a management error, so none of that code is in `verify.wasm`.
pub fn answer_reply(route: &str, reply: Reply, response_out: ResponseOutparam) {
    if let Some(line) = crate::http::reply_log_line(route, &reply) {
        eprintln!("{line}");
    }
    send(reply, response_out)
}

/// Sends `reply` with a JSON content type and `no-store`, straight through `wasi:http`.
///
/// Not through spin-sdk's `Response`: its builder keeps headers in a `HashMap`, lowercases each
/// name with Unicode's case tables (the names here are lowercase ASCII constants already), and
/// the answer goes out through `anyhow` and a futures sink: about 80 KB of every component.
fn send(reply: Reply, response_out: ResponseOutparam) {
    // No answer may be replayed by a cache: a stored `200 valid:true` would outlive the key's
    // deletion, and create's answer holds the secret.
    let fixed = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    let headers: Vec<(String, Vec<u8>)> = fixed
        .into_iter()
        .map(|(name, value)| (name, value.to_owned()))
        .chain(reply.headers)
        .map(|(name, value)| (name.to_owned(), value.into_bytes()))
        .collect();
    respond(
        reply.status,
        headers,
        &reply.body,
        Length::Declared,
        response_out,
    )
}

/// Whether a response declares its body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// `Content-Length` is the body's length.
    Declared,
    /// No `Content-Length` (the answer to a `HEAD`, whose body is not sent).
    Undeclared,
}

/// Answers `status` with `headers` and `body`, the whole body written and finished **before**
/// the response is handed to the host, so that the host has it complete and sends it in one
/// write. Handed over first, the head goes out alone and, since Spin never sets `TCP_NODELAY`,
/// the body's write waits for the client's delayed ACK: about 40 ms per request on a kept-alive
/// connection (measured on Spin 4.1 with SQLite: 29–30 requests/s on one connection this way
/// round, 1,820–1,960 the other).
///
/// The stream takes what its `check-write` budget allows before the response is set (Spin gives
/// 1 MiB, more than any answer here); a body beyond it could never drain before the host has the
/// response, so the rest is written after handing it over (two writes then, but never a
/// deadlock). Nothing is copied: the body is written from `body` as it is.
pub fn respond(
    status: u16,
    mut headers: Vec<(String, Vec<u8>)>,
    body: &[u8],
    length: Length,
    response_out: ResponseOutparam,
) {
    if length == Length::Declared {
        headers.push((
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    let response = match Fields::from_list(&headers) {
        Ok(fields) => OutgoingResponse::new(fields),
        Err(error) => {
            // Header values are built from validated text (see `verification::header_safe`).
            eprintln!("response not sent: a header was refused: {error:?}");
            let failed = Err(ErrorCode::InternalError(Some(
                "invalid response header".into(),
            )));
            return types::ResponseOutparam::set(response_out.into_inner(), failed);
        }
    };
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return response_out.set(response);
    };
    let Ok(stream) = outgoing.write() else {
        response_out.set(response);
        let _ = OutgoingBody::finish(outgoing, None);
        return;
    };
    let rest = write_within_budget(
        || stream.check_write().ok(),
        |bytes| stream.write(bytes).is_ok(),
        body,
    );
    if rest.is_empty() {
        // Complete: the stream goes first (a child resource), then the body is finished, and
        // only then does the host get the response.
        drop(stream);
        let _ = OutgoingBody::finish(outgoing, None);
        return response_out.set(response);
    }
    response_out.set(response);
    // `blocking-write-and-flush` takes at most 4096 bytes a call. An error means the client
    // went away: nothing is left to tell it.
    for chunk in rest.chunks(4096) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            break;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Writes as much of `body` as the stream's budget allows without waiting (`budget`: its
/// `check-write`, `None` on an error; `write`: its `write`, `false` on an error), and answers
/// what is left: empty when all of it was written. An error leaves the rest unwritten (the
/// client is gone, and the blocking writes after will say so too).
fn write_within_budget(
    mut budget: impl FnMut() -> Option<u64>,
    mut write: impl FnMut(&[u8]) -> bool,
    mut body: &[u8],
) -> &[u8] {
    while !body.is_empty() {
        let allowed = match budget() {
            Some(0) | None => break,
            Some(bytes) => usize::try_from(bytes).unwrap_or(usize::MAX),
        };
        let (now, later) = body.split_at(allowed.min(body.len()));
        if !write(now) {
            break;
        }
        body = later;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::write_within_budget;

    #[test]
    fn a_body_within_the_budget_is_written_whole_before_anything_else() {
        let mut written = Vec::new();
        let rest = write_within_budget(
            || Some(1 << 20),
            |b| {
                written.extend_from_slice(b);
                true
            },
            b"{}",
        );
        assert!(rest.is_empty());
        assert_eq!(written, b"{}");
    }

    #[test]
    fn a_body_over_the_budget_is_written_up_to_it_and_the_rest_left_for_later() {
        let body = vec![7u8; 10_000];
        let mut budgets = vec![4096u64, 4096, 0].into_iter();
        let mut written = 0;
        let rest = write_within_budget(
            || budgets.next(),
            |b| {
                written += b.len();
                true
            },
            &body,
        );
        assert_eq!(written, 8192);
        assert_eq!(rest.len(), 10_000 - 8192);
    }

    #[test]
    fn a_stream_error_stops_the_writes() {
        let rest = write_within_budget(|| None, |_| unreachable!(), b"abc");
        assert_eq!(rest, b"abc");
        let rest = write_within_budget(|| Some(2), |_| false, b"abc");
        assert_eq!(rest, b"abc");
    }
}

//! The contract floor component: the floor component's one `get`, plus what API.md makes every
//! verify do whatever its code: find the key in `X-API-Key` (or, for a POST without it, read
//! the JSON body), ask for `Authorization` too (a second credential beside `X-API-Key` must be
//! refused) and for `X-Api-Key-Required-Scope`, look at the query for scopes, and answer `200`
//! with the `X-Api-Key-*` headers and a body of a valid answer's size. No key is parsed, hashed or looked up, no
//! record decoded: the benchmark puts verify next to it to show what verify's own work costs,
//! and how close to the floor any verify can come on the same host.

use shared::http::CappedBody;
use spin_sdk::http::{IncomingRequest, Method, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::keyvalue::store;

#[path = "../../lib/json_ok.rs"]
mod json_ok;

/// The key the benchmark seeds with a copy of a real key's record (as for the floor component).
const FLOOR_KEY: &str = "apikeys/v1/bench/floor";

/// A valid answer's body, the size of verify's for the benchmark's key.
const VALID: &[u8] = br#"{"valid":true,"user_id":"bench-user","key_id":"key_0000000000000000000000","name":"valid","scopes":["read"],"expires_at":null}"#;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let headers = request.headers();
    let in_header = !headers.get("x-api-key").is_empty();
    // Asked for as verify asks for it, to see a second credential beside `X-API-Key`.
    let _second_credential = headers.get("authorization");
    // The scopes a gateway requires by header, as verify asks for them.
    let _required = headers.get("x-api-key-required-scope");
    drop(headers);
    // Fetched as verify fetches it for `?scope=`; what verify does with it is its own work.
    let _query = request.path_with_query();
    let presented =
        in_header || (matches!(request.method(), Method::Post) && !read_body(&request).is_empty());
    let found = store::open("default").and_then(|bucket| bucket.get(FLOOR_KEY));
    let status = match found {
        Ok(Some(_)) if presented => 200,
        Ok(_) => 401,
        Err(_) => 503,
    };
    let gateway_headers = [
        ("cache-control", "no-store"),
        ("x-api-key-user", "bench-user"),
        ("x-api-key-id", "key_0000000000000000000000"),
        ("x-api-key-scopes", "read"),
    ];
    json_ok::send_with(status, &gateway_headers, VALID, response_out)
}

/// Reads the body as verify does, with shared's cap (`CappedBody`), and keeps nothing of it.
fn read_body(request: &IncomingRequest) -> CappedBody {
    let Ok(body) = request.consume() else {
        return CappedBody::default();
    };
    let Ok(stream) = body.stream() else {
        return CappedBody::default();
    };
    CappedBody::read(None, |most| stream.blocking_read(most as u64).ok())
}

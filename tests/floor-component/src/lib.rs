//! The floor component: one key-value `get` of a record-sized value, then `200 {}`. Kept only so
//! the benchmark can put verify next to the least that any component reading the store once per
//! request costs on the same host (verify must read once: nothing survives between requests).

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::keyvalue::store;

#[path = "../../lib/json_ok.rs"]
mod json_ok;

/// The key the benchmark seeds with a copy of a real key's record.
const FLOOR_KEY: &str = "apikeys/v1/bench/floor";

#[http_component]
fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
    // The same interface and call verify uses for its one read.
    let found = store::open("default").and_then(|bucket| bucket.get(FLOOR_KEY));
    let status = match found {
        Ok(Some(_)) => 200,
        Ok(None) => 404,
        Err(_) => 503,
    };
    json_ok::send(status, response_out)
}

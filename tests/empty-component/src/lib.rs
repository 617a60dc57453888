//! The empty component: answers `200 {}` and touches nothing. Kept only so the benchmark can
//! put verify's cost next to the runtime's own cost per request, on the same host.

use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[path = "../../lib/json_ok.rs"]
mod json_ok;

/// Takes the request as verify does (streaming, body unread) and answers as it does.
#[http_component]
fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
    json_ok::send(200, response_out)
}

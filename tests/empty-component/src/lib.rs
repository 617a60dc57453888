//! The empty component: answers `200 {}` and touches nothing. Kept only so the benchmark can
//! put verify's cost next to the runtime's own cost per request, on the same host.

use spin_sdk::http::{Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: Request) -> Response {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body("{}")
        .build()
}

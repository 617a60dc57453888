//! A JSON answer written straight through `wasi:http`, the way the api-keys components answer
//! (`shared::spin::respond`: the body complete before the response is handed over), so that the
//! benchmark's reference components pay for their answer what verify pays for its own.
//! Included by the empty, the floor and the contract floor component.

use shared::spin::{respond, Length};
use spin_sdk::http::ResponseOutparam;

/// Answers `status` with the body `{}` and a JSON content type.
#[allow(dead_code)] // The contract floor component answers with `send_with` only.
pub fn send(status: u16, response_out: ResponseOutparam) {
    send_with(status, &[], b"{}", response_out)
}

/// Answers `status` with `body`, a JSON content type and the `extra` headers.
#[allow(dead_code)] // The empty and the floor component answer `{}`.
pub fn send_with(status: u16, extra: &[(&str, &str)], body: &[u8], response_out: ResponseOutparam) {
    let headers: Vec<(String, Vec<u8>)> = [("content-type", "application/json")]
        .iter()
        .chain(extra)
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    respond(status, headers, body, Length::Declared, response_out)
}

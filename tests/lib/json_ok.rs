//! A JSON answer written straight through `wasi:http`, the way the api-keys components answer
//! (`shared::spin`), so that the benchmark's reference components pay for their answer what
//! verify pays for its own. Included by the empty, the floor and the contract floor component.

use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Answers `status` with the body `{}` and a JSON content type.
#[allow(dead_code)] // The contract floor component answers with `send_with` only.
pub fn send(status: u16, response_out: ResponseOutparam) {
    let headers = [("content-type".to_owned(), b"application/json".to_vec())];
    respond(&headers, status, b"{}", response_out)
}

/// Answers `status` with `body`, a JSON content type and the `extra` headers.
#[allow(dead_code)] // The empty and the floor component answer `{}`.
pub fn send_with(status: u16, extra: &[(&str, &str)], body: &[u8], response_out: ResponseOutparam) {
    let headers: Vec<(String, Vec<u8>)> = [("content-type", "application/json")]
        .iter()
        .chain(extra)
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    respond(&headers, status, body, response_out)
}

fn respond(
    headers: &[(String, Vec<u8>)],
    status: u16,
    body: &[u8],
    response_out: ResponseOutparam,
) {
    let Ok(fields) = Fields::from_list(headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        return;
    };
    response_out.set(response);
    if let Ok(stream) = outgoing.write() {
        let _ = stream.blocking_write_and_flush(body);
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

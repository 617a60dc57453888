//! `200 {}` written straight through `wasi:http`, the way the api-keys components answer
//! (`shared::spin`), so that the benchmark's reference components pay for their answer what
//! verify pays for its own. Included by the empty and the floor component.

use spin_sdk::http::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

/// Answers `status` with the body `{}` and a JSON content type.
pub fn send(status: u16, response_out: ResponseOutparam) {
    let headers = [("content-type".to_owned(), b"application/json".to_vec())];
    let Ok(fields) = Fields::from_list(&headers) else {
        return;
    };
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(body) = response.body() else {
        return;
    };
    response_out.set(response);
    if let Ok(stream) = body.write() {
        let _ = stream.blocking_write_and_flush(b"{}");
    }
    let _ = OutgoingBody::finish(body, None);
}

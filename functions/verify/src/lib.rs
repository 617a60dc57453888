//! `/v1/keys.verify`: is this key valid, whose is it, may it do X? Called by gateways, SMTP
//! servers and services; needs no JWT. One store read for a well-formed key, none otherwise.

use shared::spin::{self, BoundedRequest, SpinStore};
use shared::verification::{self, VerifyRequest};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    // Parse: the key from forward-auth headers (any method) or a POST JSON body, read with a
    // cap; the required scopes from the gateway's header and, on the exact path, the query.
    let request = BoundedRequest::read(request);
    let presented = verification::presentation(&VerifyRequest {
        method: &|| request.method(),
        header: &|name| request.header_values(name),
        path_with_query: request.path_with_query(),
        body: &|| request.body(),
    });
    // Validate, read, decide, respond: the store is opened only for a well-formed key.
    let reply = match presented {
        Ok(presented) => verification::answer(presented, SpinStore::open, spin::now()),
        Err(refusal) => refusal,
    };
    spin::answer_reply(verification::PATH, reply, response_out)
}

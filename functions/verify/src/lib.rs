//! `/v1/keys.verify`: is this key valid, whose is it, may it do X? Called by gateways, SMTP
//! servers and services; needs no JWT. One store read for a well-formed key, none otherwise.
//! `/v1/keys.introspect` answers the same question in OAuth's words (RFC 7662).
//! `/healthz/verify` is the verify tier's health check: one store read (see `shared::health`).

use shared::config::Variables;
use shared::health;
use shared::introspection;
use shared::spin::{self, BoundedRequest, SpinStore, SpinVariables};
use shared::verification::{self, VerifyRequest};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let request = BoundedRequest::read(request);
    // The tier's health check, before anything else reads the request: a probe's answer must
    // come from a store read, never from verify's refusals, which need none.
    if health::is_request_for(health::VERIFY_PATH, request.path_with_query()) {
        let reply = health::answer(request.method(), SpinStore::open);
        return spin::answer_reply(health::VERIFY_PATH, reply, response_out);
    }
    let parts = VerifyRequest {
        method: &|| request.method(),
        header: &|name| request.header_values(name),
        path_with_query: request.path_with_query(),
        body: &|| request.body(),
    };
    // OAuth token introspection (RFC 7662) of the same keys, with the same one read.
    // Parse, then authenticate the caller (only if a client secret is configured), then judge.
    if request.path_with_query().starts_with(introspection::PATH) {
        let reply = match introspection::read(&parts) {
            Ok(asked) => {
                let required = SpinVariables.get(introspection::CLIENT_SECRET_VARIABLE);
                introspection::answer(asked, required.as_deref(), SpinStore::open, spin::now())
            }
            Err(refusal) => refusal,
        };
        return spin::answer_reply(introspection::PATH, reply, response_out);
    }
    // Parse: the key from forward-auth headers (any method) or a POST JSON body, read with a
    // cap; the required scopes from the gateway's header and, on the exact path, the query.
    let presented = verification::presentation(&parts);
    // Validate, read, decide, respond: the store is opened only for a well-formed key.
    let reply = match presented {
        Ok(presented) => verification::answer(presented, SpinStore::open, spin::now()),
        Err(refusal) => refusal,
    };
    spin::answer_reply(verification::PATH, reply, response_out)
}

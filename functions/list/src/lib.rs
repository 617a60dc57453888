//! `GET /v1/keys.list`: the signed-in user's own keys, oldest first, without secrets or hashes.
//! `/healthz/management` is the management tier's health check, served here because every
//! management tier runs list: one store read, no token (see `shared::health`).

use serde_json::json;
use shared::spin::{self, BoundedRequest, SpinStore};
use shared::{health, http, protocol, view, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let request = BoundedRequest::read(request);
    if health::is_request_for(health::MANAGEMENT_PATH, request.path_with_query()) {
        let reply = health::answer(request.method(), SpinStore::open);
        return spin::answer_reply(health::MANAGEMENT_PATH, reply, response_out);
    }
    let result = list(&request);
    spin::answer("/v1/keys.list", result, response_out)
}

fn list(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "GET")?;
    // Authenticate.
    let config = spin::config()?;
    let user_id = spin::authenticate(request, &config)?;
    // Read: only the caller's index and the records it names.
    let store = SpinStore::open()?;
    let now = spin::now();
    let summaries = protocol::list(&store, &user_id, now)?;
    // Respond.
    let keys: Vec<_> = summaries.iter().map(view::key).collect();
    // Expired keys are still shown (until a create reclaims their slots), but do not count.
    let count = summaries
        .iter()
        .filter(|summary| summary.counts_toward_limit(now))
        .count();
    // The scopes a new key may hold, so a client (the console) can offer them.
    let body = json!({
        "keys": keys,
        "count": count,
        "limit": config.max_keys_per_user,
        "allowed_scopes": config.allowed_scopes,
    });
    // `no-store` is on every answer already (`spin::answer`).
    Ok(Reply::json(200, body))
}

//! `GET /v1/keys.events`: the signed-in user's latest changes to their keys, newest first —
//! created, updated (old to new), deleted — never a secret or a hash.

use serde_json::json;
use shared::spin::{self, BoundedRequest, SpinStore};
use shared::{http, protocol, view, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let result = events(&BoundedRequest::read(request));
    spin::answer("/v1/keys.events", result, response_out)
}

fn events(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "GET")?;
    // Authenticate.
    let config = spin::config()?;
    let user_id = spin::authenticate(request, &config)?;
    // Read: the caller's head, index and one record per key, as list does.
    let store = SpinStore::open()?;
    let events = protocol::events(&store, &user_id, spin::now())?;
    // Respond.
    let events: Vec<_> = events.iter().map(view::event).collect();
    Ok(Reply::json(200, json!({ "events": events })))
}

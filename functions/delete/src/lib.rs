//! `POST /v1/keys.delete`: the signed-in user deletes one of their keys for good; the very next
//! verify of it fails.

use serde_json::json;
use shared::spin::{self, BoundedRequest, SpinStore};
use shared::{http, protocol, validate, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let result = delete(&BoundedRequest::read(request));
    spin::answer("/v1/keys.delete", result, response_out)
}

fn delete(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "POST")?;
    let body = request.body().bytes()?;
    // Authenticate.
    let config = spin::config()?;
    let user_id = spin::authenticate(request, &config)?;
    // Validate.
    let id = validate::delete_input(body)?;
    // Read, decide, write: someone else's id is `key_not_found`, never 403, so that the answer
    // does not tell that the id exists.
    let store = SpinStore::open()?;
    protocol::delete(&store, &user_id, &id, spin::now())?;
    // Respond.
    Ok(Reply::json(200, json!({ "id": id, "deleted": true })))
}

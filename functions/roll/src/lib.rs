//! `POST /v1/keys.roll`: the signed-in user gives one of their keys a new secret, shown in this
//! one response; the secret it replaces keeps verifying for the grace period asked for, so the
//! integrations using it can move over.

use serde_json::json;
use shared::spin::{self, BoundedRequest, SpinStore};
use shared::{http, key, protocol, validate, view, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let result = roll(&BoundedRequest::read(request));
    spin::answer("/v1/keys.roll", result, response_out)
}

fn roll(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "POST")?;
    let body = request.body().bytes()?;
    // Authenticate.
    let config = spin::config()?;
    let user_id = spin::authenticate(request, &config)?;
    // Validate.
    let (id, grace_secs) = validate::roll_input(body)?;
    // Read, decide, write: someone else's id is `key_not_found`, as for delete.
    let fresh = key::generate(&config.key_prefix).map_err(|_| ApiError::Internal)?;
    let event_id = key::event_id().map_err(|_| ApiError::Internal)?;
    let new = protocol::NewSecret {
        hash: &fresh.hash,
        preview: &fresh.preview,
    };
    let store = SpinStore::open()?;
    let rolled = protocol::roll(
        &store,
        &user_id,
        &id,
        &new,
        grace_secs,
        &event_id,
        spin::now(),
    )?;
    // Respond: the key as list shows it, with its new secret, shown this once (every answer
    // says `no-store`).
    let mut body = view::key(&rolled);
    body["key"] = json!(fresh.secret);
    Ok(Reply::json(201, body))
}

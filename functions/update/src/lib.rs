//! `POST /v1/keys.update`: the signed-in user renames one of their keys, changes its scopes, or
//! disables or enables it; the very next verify anywhere sees the change.

use shared::spin::{self, BoundedRequest, SpinStore};
use shared::{http, key, protocol, validate, view, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let result = update(&BoundedRequest::read(request));
    spin::answer("/v1/keys.update", result, response_out)
}

fn update(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "POST")?;
    let body = request.body().bytes()?;
    // Authenticate.
    let config = spin::config()?;
    let user_id = spin::authenticate(request, &config)?;
    // Validate: the same rules as create for each setting given.
    let (id, wanted) = validate::update_input(body, &config.allowed_scopes)?;
    // Read, decide, write: someone else's id is `key_not_found`, as for delete.
    let event_id = key::event_id().map_err(|_| ApiError::Internal)?;
    let store = SpinStore::open()?;
    let updated = protocol::update(&store, &user_id, &id, &wanted, &event_id, spin::now())?;
    // Respond: the key as list shows it.
    Ok(Reply::json(200, view::key(&updated)))
}

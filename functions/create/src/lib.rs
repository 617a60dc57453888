//! `POST /v1/keys.create`: a signed-in user creates a named key with scopes. The secret is in
//! this one response and nowhere else; the store keeps only its SHA-256.

use serde_json::json;
use shared::spin::{self, BoundedRequest, SpinStore};
use shared::{http, key, protocol, rfc3339, validate, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let result = create(&BoundedRequest::read(request));
    spin::answer("/v1/keys.create", result, response_out)
}

fn create(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "POST")?;
    let body = request.body().bytes()?;
    // Authenticate: the user id comes from the verified token and nowhere else.
    let config = spin::config()?;
    let user_id = spin::authenticate(request, &config)?;
    // Validate.
    let now = spin::now();
    let input = validate::create_input(body, &config.allowed_scopes, now)?;
    // Read, decide, write: the storage protocol enforces the limit under concurrency.
    let new_key = key::generate(&config.key_prefix).map_err(|_| ApiError::Internal)?;
    let record = protocol::NewKeyRecord {
        hash: &new_key.hash,
        id: &new_key.id,
        preview: &new_key.preview,
        name: &input.name,
        scopes: &input.scopes,
        expires_at: input.expires_at,
    };
    let store = SpinStore::open()?;
    let entry = protocol::create(&store, &user_id, &record, config.max_keys_per_user, now)?;
    // Respond: the only time the secret is shown (every answer says `no-store`).
    let body = json!({
        "id": entry.id,
        "key": new_key.secret,
        "name": entry.name,
        "scopes": entry.scopes,
        "created_at": rfc3339(entry.created_at),
        "preview": entry.preview,
        "expires_at": input.expires_at.map(rfc3339),
    });
    Ok(Reply::json(201, body))
}

//! Revocation of leaked keys, with no JWT: `POST /v1/keys.leaked` takes GitHub's signed
//! secret-scanning alerts and revokes every live key they report; `POST /v1/keys.revoke` lets
//! any holder of a key revoke it (RFC 7009). Either way the key never verifies again
//! (`401 key_revoked`) and stays in its owner's list, as revoked, until the owner deletes it.

use shared::config::Variables;
use shared::leak_alert::{self, SigningKeys};
use shared::spin::{self, BoundedRequest, SpinStore, SpinVariables};
use shared::{http, token_revocation, ApiError, Reply};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let path = request.path_with_query().unwrap_or_default();
    if path.starts_with(token_revocation::PATH) {
        let request = BoundedRequest::read(request);
        // Parse, then read, decide and write (the key is its own proof), then respond.
        let reply = match token_revocation::read(request.method(), || request.body()) {
            Ok(token) => token_revocation::answer(&token, SpinStore::open, spin::now()),
            Err(refusal) => refusal,
        };
        return spin::answer_reply(token_revocation::PATH, reply, response_out);
    }
    let request = BoundedRequest::read_up_to(leak_alert::MAX_ALERT_BYTES, request);
    spin::answer(leak_alert::PATH, leaked(&request), response_out)
}

fn leaked(request: &BoundedRequest) -> Result<Reply, ApiError> {
    // Parse.
    http::require_method(request.method(), "POST")?;
    let body = request.body().bytes()?;
    // Authenticate: the signature over the raw body, before anything in it is read.
    let keys = signing_keys()?;
    let identifier = request.header(leak_alert::IDENTIFIER_HEADER);
    let signature = request.header(leak_alert::SIGNATURE_HEADER);
    leak_alert::authenticate(&keys, identifier.as_deref(), signature.as_deref(), body)?;
    // Validate.
    let matches = leak_alert::matches(body)?;
    // Read, decide, write: one read per token of this app's format, a revocation per live key.
    let feedback = leak_alert::revoke_all(&matches, SpinStore::open, spin::now())?;
    // Respond.
    Ok(Reply::json(200, feedback))
}

/// GitHub's published keys, from the Spin variable; unset or unusable is a configuration
/// error (logged, answered 500), so that no alert is taken unchecked.
fn signing_keys() -> Result<SigningKeys, ApiError> {
    let document = SpinVariables
        .get(leak_alert::KEYS_VARIABLE)
        .ok_or_else(|| {
            eprintln!(
                "configuration error: {} is not set",
                leak_alert::KEYS_VARIABLE
            );
            ApiError::Configuration
        })?;
    SigningKeys::from_document(&document).map_err(|error| {
        eprintln!(
            "configuration error: {}: {error:?}",
            leak_alert::KEYS_VARIABLE
        );
        ApiError::Configuration
    })
}

//! GitHub's secret-scanning alerts (`POST /v1/keys.leaked`): whether one really comes from
//! GitHub, by its ECDSA P-256 signature over the raw body checked against the keys GitHub
//! publishes, and the revocation of every live key it reports, answered with the partner
//! program's feedback.
//!
//! GitHub signs each alert it POSTs with one of its keys and names the key in
//! `Github-Public-Key-Identifier`; `Github-Public-Key-Signature` is the base64 DER signature
//! (ECDSA-NIST-P256V1-SHA256) over the body exactly as sent. The keys are the JSON document
//! GitHub publishes (`https://api.github.com/meta/public_keys/secret_scanning`:
//! `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`), given to the app as a
//! Spin variable, so that checking an alert needs no outbound call. Every published key is
//! accepted, current or not: GitHub rotates them, and an alert signed just before a rotation
//! is still GitHub's.

use crate::error::ApiError;
use crate::key;
use crate::protocol::{self, Revocation};
use crate::store::{KeyValue, StoreError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

/// The alert endpoint's path.
pub const PATH: &str = "/v1/keys.leaked";
/// The Spin variable holding GitHub's published key document.
pub const KEYS_VARIABLE: &str = "github_secret_scanning_keys";
/// The header naming the key an alert was signed with.
pub const IDENTIFIER_HEADER: &str = "github-public-key-identifier";
/// The header holding an alert's signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// The largest alert accepted (64 KiB): GitHub sends matches in batches, each with its URL.
pub const MAX_ALERT_BYTES: usize = 64 * 1024;
/// The reason a revocation on an alert records.
pub const REASON: &str = "leaked";

/// The keys an alert may be signed with, by identifier.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    keys: Vec<(String, VerifyingKey)>,
}

/// Why the published key document cannot be used (a configuration mistake, logged at start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysError {
    /// Not GitHub's document: not JSON of its shape, or without a single key.
    NotTheDocument,
    /// A key that is not a P-256 public key in PEM; the identifier names it.
    BadKey(String),
}

/// Why an alert is refused: nobody but GitHub may revoke keys this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The identifier names no published key.
    UnknownKey,
    /// The signature is missing, not base64 DER, or not over this body with that key.
    BadSignature,
}

#[derive(Deserialize)]
struct Document {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

impl SigningKeys {
    /// Reads GitHub's published document.
    pub fn from_document(json: &str) -> Result<SigningKeys, KeysError> {
        let document: Document =
            serde_json::from_str(json).map_err(|_| KeysError::NotTheDocument)?;
        if document.public_keys.is_empty() {
            return Err(KeysError::NotTheDocument);
        }
        let keys = document
            .public_keys
            .into_iter()
            .map(|published| {
                VerifyingKey::from_public_key_pem(&published.key)
                    .map(|key| (published.key_identifier.clone(), key))
                    .map_err(|_| KeysError::BadKey(published.key_identifier))
            })
            .collect::<Result<_, _>>()?;
        Ok(SigningKeys { keys })
    }

    /// Whether `body` was signed by GitHub with the key `identifier` names; `signature` is the
    /// header's value. Nothing about the body is read before this holds.
    pub fn check(&self, identifier: &str, signature: &str, body: &[u8]) -> Result<(), Refused> {
        let (_, key) = self
            .keys
            .iter()
            .find(|(known, _)| known == identifier)
            .ok_or(Refused::UnknownKey)?;
        let der = STANDARD
            .decode(signature.trim())
            .map_err(|_| Refused::BadSignature)?;
        let signature = Signature::from_der(&der).map_err(|_| Refused::BadSignature)?;
        key.verify(body, &signature)
            .map_err(|_| Refused::BadSignature)
    }
}

/// One match in an alert: a token found public, what GitHub calls its type (the name the
/// format was registered under), where it was found and what kind of place that is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Match {
    pub token: String,
    #[serde(rename = "type", default)]
    pub token_type: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// What the partner program asks back for each match: the token's SHA-256 (never the token),
/// its type, and whether it was a live key (`true_positive`) or not (`false_positive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Feedback {
    pub token_hash: String,
    pub token_type: String,
    pub label: &'static str,
}

/// Reads an alert's body, once its signature holds: a JSON array of matches, or
/// `400 invalid_json`, also for a member given twice in any object (as in every body the API
/// reads). Members of a match other than these four are ignored: the alert is GitHub's format,
/// which may grow, and refusing it would stop revocations.
pub fn matches(body: &[u8]) -> Result<Vec<Match>, ApiError> {
    let refused = || {
        ApiError::InvalidJson(
            "The body must be a JSON array of {\"token\", \"type\", \"url\", \"source\"}, \
             each member once."
                .into(),
        )
    };
    if !crate::validate::repeats_no_member(body) {
        return Err(refused());
    }
    serde_json::from_slice(body).map_err(|_| refused())
}

/// Revokes the key of every match that is a live key of this app's, and answers the feedback,
/// one item per match in order. A token not of this app's format, or whose checksum fails, is
/// a false positive with no store access; each other costs one read, and the revocation's
/// operations for a live key (see [`protocol::revoke`]). Replaying an alert revokes nothing
/// more and answers the same.
///
/// A store failure on one token does not stop the others: every token is tried (the store
/// opened again if opening it failed), then the alert is a 503 if any failed. What was
/// revoked stays revoked, and GitHub's retry settles the rest: a token revoked already costs
/// one read and answers the same, so a token that keeps failing holds up none but itself.
pub fn revoke_all<S: KeyValue>(
    matches: &[Match],
    open: impl Fn() -> Result<S, StoreError>,
    now: i64,
) -> Result<Vec<Feedback>, ApiError> {
    let mut store = None;
    let mut failed = None;
    let mut feedback = Vec::with_capacity(matches.len());
    for found in matches {
        let revoked = match key::parse(&found.token) {
            None => false,
            Some(hash) => revoke(found, &hash, &mut store, &open, now).unwrap_or_else(|error| {
                failed.get_or_insert(error);
                false
            }),
        };
        feedback.push(Feedback {
            token_hash: key::sha256_hex(&found.token),
            token_type: found.token_type.clone(),
            label: if revoked {
                "true_positive"
            } else {
                "false_positive"
            },
        });
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(feedback),
    }
}

/// Revokes the key whose secret hashes to `hash`, as `found` reports it; the store is opened
/// on first need, and again for the next token if opening it failed.
fn revoke<S: KeyValue>(
    found: &Match,
    hash: &str,
    store: &mut Option<S>,
    open: &impl Fn() -> Result<S, StoreError>,
    now: i64,
) -> Result<bool, ApiError> {
    let store = match store {
        Some(store) => store,
        none => none.insert(open()?),
    };
    let revocation = Revocation::new(REASON, found.url.as_deref(), found.source.as_deref(), now);
    protocol::revoke(store, hash, &revocation, now)
}

/// Checks an alert's signature headers against `keys`: `401 unknown_signing_key` for an
/// identifier missing or unknown, `400 invalid_signature` for a signature missing, malformed
/// or not over `body`.
pub fn authenticate(
    keys: &SigningKeys,
    identifier: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<(), ApiError> {
    let identifier = identifier.ok_or(ApiError::UnknownSigningKey)?;
    let signature = signature.ok_or(ApiError::InvalidSignature)?;
    keys.check(identifier.trim(), signature, body)
        .map_err(|refused| match refused {
            Refused::UnknownKey => ApiError::UnknownSigningKey,
            Refused::BadSignature => ApiError::InvalidSignature,
        })
}

#[cfg(test)]
mod tests;

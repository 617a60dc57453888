//! GitHub's secret-scanning alerts: whether one really comes from GitHub, by its ECDSA P-256
//! signature over the raw body, checked against the keys GitHub publishes.
//!
//! GitHub signs each alert it POSTs with one of its keys and names the key in
//! `Github-Public-Key-Identifier`; `Github-Public-Key-Signature` is the base64 DER signature
//! (ECDSA-NIST-P256V1-SHA256) over the body exactly as sent. The keys are the JSON document
//! GitHub publishes (`https://api.github.com/meta/public_keys/secret_scanning`:
//! `{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`), given to the app as a
//! Spin variable, so that checking an alert needs no outbound call. Every published key is
//! accepted, current or not: GitHub rotates them, and an alert signed just before a rotation
//! is still GitHub's.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

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

#[cfg(test)]
mod tests;

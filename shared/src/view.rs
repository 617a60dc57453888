//! How a key is shown to its owner: the JSON of one key in list's and update's answers. Never a
//! secret or a hash.

use crate::protocol::KeySummary;
use crate::rfc3339;
use serde_json::{json, Value};

/// One key as list shows it (update answers the same).
pub fn key(summary: &KeySummary) -> Value {
    json!({
        "id": summary.entry.id,
        "name": summary.entry.name,
        "scopes": summary.entry.scopes,
        "enabled": summary.entry.enabled,
        "created_at": rfc3339(summary.entry.created_at),
        "preview": summary.entry.preview,
        "last_used_at": summary.last_used_at.map(rfc3339),
        "expires_at": summary.expires_at.map(rfc3339),
    })
}

//! How keys and their history are shown to their owner: the JSON of one key in list's and
//! update's answers, and of one event in the history. Never a secret or a hash.

use crate::protocol::{Event, KeySummary, Revocation};
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
        "previous_key_expires_at": summary.previous_expires_at.map(rfc3339),
        "revoked": summary.revocation.as_ref().map(revocation),
    })
}

/// Why and when a key was revoked, and where it was found: `{"reason", "at", "url", "source"}`
/// (the last two `null` unless a scanner reported them).
fn revocation(revocation: &Revocation) -> Value {
    json!({
        "reason": revocation.reason,
        "at": rfc3339(revocation.at),
        "url": revocation.url,
        "source": revocation.source,
    })
}

/// One change as the history shows it: `{"type", "at", "key_id", "name"}`, with `changes`
/// (`{"<field>": {"from": …, "to": …}}`) for an update, `previous_key_expires_at` (the end of
/// the replaced secret's grace) for a roll, `reason` for a key removed because it expired (or
/// let go of, revoked), and `reason`, `url` and `source` for a key revoked (with
/// `secret_preview` when only an older secret of it was, the key living on).
pub fn event(event: &Event) -> Value {
    let mut shown = json!({
        "type": event.kind,
        "at": rfc3339(event.at),
        "key_id": event.key_id,
        "name": event.name,
    });
    if !event.changes.is_empty() {
        let changes: serde_json::Map<String, Value> = event
            .changes
            .iter()
            .map(|c| (c.field.clone(), json!({ "from": c.from, "to": c.to })))
            .collect();
        shown["changes"] = Value::Object(changes);
    }
    if let Some(reason) = &event.reason {
        shown["reason"] = json!(reason);
    }
    if let Some(url) = &event.url {
        shown["url"] = json!(url);
    }
    if let Some(source) = &event.source {
        shown["source"] = json!(source);
    }
    if let Some(ends) = event.previous_key_expires_at {
        shown["previous_key_expires_at"] = json!(rfc3339(ends));
    }
    if let Some(preview) = &event.secret_preview {
        shown["secret_preview"] = json!(preview);
    }
    shown
}

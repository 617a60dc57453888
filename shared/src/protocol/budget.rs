//! How many bytes one index version may take, and the largest one a configuration allows.
//!
//! Every write of a user rewrites one index value: all the user's keys and their latest
//! events. A store refuses a value over its limit (DynamoDB's item limit is 400 KB, a common
//! hosted key-value limit 1 MB), and then every write of that user would fail, delete
//! included. So events are let go by bytes as well as by count, and a configuration whose
//! full index could outgrow [`MAX_INDEX_BYTES`] is refused at start-up.

use super::*;

/// The most bytes one index version may take: well under every store's value limit.
pub const MAX_INDEX_BYTES: usize = 256 * 1024;
/// The most bytes the events of one index version may take; the oldest beyond it are let go.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// The most older secrets one entry can list: [`MAX_PREVIOUS_SECRETS`] in their grace, and
/// one whose grace a roll just ended (dropped by the next roll).
const MAX_LISTED_PREVIOUS: usize = MAX_PREVIOUS_SECRETS + 1;

/// The bytes one event takes in an index version (with its separating comma).
pub(super) fn event_bytes(event: &Event) -> usize {
    serde_json::to_vec(event).map_or(0, |bytes| bytes.len()) + 1
}

/// The largest index version a configuration allows, in bytes: `max_keys` entries and
/// [`MAX_REVOKED_KEPT`] revoked ones, each of the largest size these scopes and key prefix
/// make, and [`MAX_EVENT_BYTES`] of events.
pub fn largest_index_bytes(allowed_scopes: &[String], key_prefix: &str, max_keys: u32) -> usize {
    let index = Index {
        keys: vec![largest_entry(allowed_scopes, key_prefix)],
        events: Vec::new(),
    };
    let one_key = serde_json::to_vec(&index).map_or(0, |bytes| bytes.len());
    let empty = serde_json::to_vec(&Index::default()).map_or(0, |bytes| bytes.len());
    let entry = one_key - empty;
    // `"events":[...]` around the events themselves.
    let events = MAX_EVENT_BYTES + "\"events\":[],".len();
    empty + entry * (max_keys as usize + MAX_REVOKED_KEPT) + events
}

/// The largest entry a key can have: a name of the longest length in the widest characters,
/// every allowed scope, every older secret listed, every number at its longest, and revoked.
fn largest_entry(allowed_scopes: &[String], key_prefix: &str) -> IndexEntry {
    let hash = "f".repeat(64);
    // What `key::generate` makes, with its random part replaced.
    let preview = format!("{key_prefix}_...wxyz");
    let previous = PreviousSecret {
        hash: hash.clone(),
        until: i64::MAX,
        preview: preview.clone(),
    };
    IndexEntry {
        id: format!("key_{}", "x".repeat(22)),
        hash,
        // Four bytes of UTF-8 each, the most any character takes (serde_json writes them as
        // they are; the ASCII characters it escapes take two).
        name: "\u{10FFFF}".repeat(crate::validate::MAX_NAME_CHARS),
        scopes: allowed_scopes.to_vec(),
        created_at: i64::MAX,
        preview,
        enabled: false,
        settings_version: u64::MAX,
        previous: vec![previous; MAX_LISTED_PREVIOUS],
        // Without where it was found: that is kept in the records (see
        // [`IndexEntry::revocation`]).
        revocation: Some(Revocation::new("leaked", None, None, i64::MAX)),
    }
}

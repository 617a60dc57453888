//! Delete: every secret of a key killed, then the key removed from the index.

use super::*;

/// Deletes the key `id` of `user_id` for good, at `now` (for its event).
///
/// Each secret's record is overwritten with a tombstone (state [`KeyState::Deleted`]), older
/// secrets first, before the index stops listing the key: from the current secret's tombstone
/// on the key no longer verifies (a plain write, since nothing may survive it, and one
/// operation like a delete), and anyone who finds the entry meanwhile — a create making room at
/// the limit, a list — knows it for a deleted key and records its `deleted` event, rather than
/// taking it for a failed create. Once the removal is published the tombstones are removed.
pub fn delete<S: KeyValue>(store: &S, user_id: &str, id: &str, now: i64) -> Result<(), ApiError> {
    let user = UserSpace::of(user_id);
    // The secrets this request already killed (it may retry the index update, and a roll may
    // have given the key a new secret meanwhile: that one is killed too).
    let mut killed: Vec<String> = Vec::new();
    change(store, &user, |versions, cas, head, mut index| {
        let Some(position) = index.keys.iter().position(|e| e.id == id) else {
            // Gone from the index: never ours, or removed after this request killed the key —
            // by its own proposal (whatever the swap answered), a concurrent delete of the id,
            // or a create or list that found it killed (and recorded its event).
            if killed.is_empty() {
                return Ok(Round::Done(Err(ApiError::KeyNotFound)));
            }
            for hash in &killed {
                // Only garbage now; failing to remove it leaves a dead record.
                let _ = store.delete(&record_key(hash));
            }
            return Ok(Round::Done(Ok(())));
        };
        let removed = index.keys.remove(position);
        // Older secrets first: until the current one goes, the entry is listed for it, so a
        // secret still live is always on the list (see [`Standing`]).
        let tombstone = to_json(&tombstone(user_id, &removed))?;
        for hash in removed.all_hashes() {
            if !killed.iter().any(|k| k == hash) {
                // Noted first: a write that fails may have landed.
                killed.push(hash.to_owned());
                store.set(&record_key(hash), &tombstone)?;
            }
        }
        remove_entry(&mut index, removed, None, now);
        let proposed = propose(store, &user, cas, head, &index)?;
        versions.note(head, proposed);
        Ok(Round::Again)
    })
}

/// What a delete leaves of a secret's record until the key's removal is published.
fn tombstone(user_id: &str, entry: &IndexEntry) -> KeyRecord {
    KeyRecord {
        state: KeyState::Deleted,
        user_id: user_id.to_owned(),
        key_id: entry.id.clone(),
        name: entry.name.clone(),
        scopes: Vec::new(),
        created_at: entry.created_at,
        last_used_at: None,
        expires_at: None,
        enabled: true,
        settings_version: 0,
        retire_at: None,
        restrictions: Vec::new(),
        revocation: None,
    }
}

/// Records the removal of `removed` (already taken out of `index`) as its `deleted` event,
/// with `reason` when its owner did not ask for it. The event's id is the key's own, so
/// whoever publishes the removal first records it, once.
pub(super) fn remove_entry(index: &mut Index, removed: IndexEntry, reason: Option<&str>, now: i64) {
    let id = removal_event_id(&removed.id);
    if index.events.iter().any(|e| e.id == id) {
        return;
    }
    let mut event = Event::new(id, EventKind::Deleted, now, &removed);
    event.reason = reason.map(str::to_owned);
    index.record(event);
}

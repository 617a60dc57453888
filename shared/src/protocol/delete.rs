//! Delete: every secret of a key killed, then the key removed from the index.

use super::*;

/// Deletes the key `id` of `user_id` for good, at `now` (for its event).
pub fn delete<S: KeyValue>(store: &S, user_id: &str, id: &str, now: i64) -> Result<(), ApiError> {
    let user = UserSpace::of(user_id);
    // The secrets this request already killed (it may retry the index update, and a roll may
    // have given the key a new secret meanwhile: that one is killed too).
    let mut killed: Vec<String> = Vec::new();
    let mut versions = Versions::default();
    for _ in 0..MAX_ATTEMPTS {
        let Some((cas, head, mut index)) = watch_index(store, &user, versions.unconfirmed())?
        else {
            continue;
        };
        let Some(position) = index.keys.iter().position(|e| e.id == id) else {
            // Gone from the index: never ours, or removed after this request killed the key —
            // by its own proposal (whatever the swap answered) or a concurrent delete of the id.
            versions.sweep(store, &user, head.version);
            return if !killed.is_empty() {
                Ok(())
            } else {
                Err(ApiError::KeyNotFound)
            };
        };
        let removed = index.keys.remove(position);
        // Older secrets first: until the current one goes, the entry is listed for it, so a
        // secret still live is always on the list (see [`Standing`]). Once all are
        // deleted the key no longer verifies; everything after is bookkeeping.
        for hash in removed.all_hashes() {
            if !killed.iter().any(|k| k == hash) {
                store.delete(&record_key(hash))?;
                killed.push(hash.to_owned());
            }
        }
        let event = Event::new(removal_event_id(id), EventKind::Deleted, now, &removed);
        index.record(event);
        let proposed = propose(store, &user, cas, head, &index)?;
        versions.note(head, proposed);
    }
    Err(ApiError::StoreUnavailable)
}

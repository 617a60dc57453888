//! Update: a key's settings changed in the index, then carried onto its records.

use super::*;

/// Changes the settings of the key `id` of `user_id` (name, scopes, enabled) and answers the
/// key as it is afterwards. `event_id` must be fresh and random: the update recognises its
/// own publish by it (see [`update`]'s steps in the module docs).
pub fn update<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    wanted: &Settings,
    event_id: &str,
    now: i64,
) -> Result<KeySummary, ApiError> {
    let user = UserSpace::of(user_id);
    let mut versions = Versions::default();
    for _ in 0..MAX_ATTEMPTS {
        let Some((cas, head, mut index)) = watch_index(store, &user, versions.unconfirmed())?
        else {
            continue;
        };
        let Some(position) = index.keys.iter().position(|e| e.id == id) else {
            // Never ours, or deleted (whether before or after this update landed).
            versions.sweep(store, &user, head.version);
            return Err(ApiError::KeyNotFound);
        };
        // Only this request writes this event id, so seeing it means one of its proposals
        // landed, whatever the swap answered: the change is never published twice.
        let landed = index.events.iter().any(|e| e.id == event_id);
        let changes = index.keys[position].changes_to(wanted);
        if landed || changes.is_empty() {
            versions.sweep(store, &user, head.version);
            // The entry at the head: these settings, or newer ones of a later update.
            let entry = index.keys.swap_remove(position);
            // The key as list shows it: by its current secret's record; while a roll is mid-way,
            // by the secret it lives on in. (A roll in flight published after this update, so
            // it wrote its new secret with these settings or newer ones.)
            let shown = match carry(store, &entry, now)? {
                Some(record) if record.state == KeyState::Active => Some(record),
                _ => Standing::of(store, &entry, user_id, now)?.shown(),
            };
            let Some(record) = shown else {
                return Err(ApiError::KeyNotFound);
            };
            return Ok(KeySummary {
                last_used_at: record.last_used_at,
                expires_at: record.expires_at,
                previous_expires_at: entry.previous_expires_at(now),
                entry,
            });
        }
        // A key that is not live (a create in flight or failed, a delete in flight) is not the
        // user's to change: refused, and so not a change. A key mid-roll: a roll in flight is
        // waited for (503), since it activates a secret written with the settings it
        // published; one that failed (its secret revoked) or died (pending past
        // [`ABANDONED_AFTER_SECS`], revoked here as create's reclaim would) is not: the
        // settings go to the secrets the key still has.
        match Standing::of(store, &index.keys[position], user_id, now)? {
            Standing::Active(_) => {}
            Standing::MidRoll {
                current: Some(current),
                ..
            } if current.state == KeyState::Pending => {
                if now - current.created_at < ABANDONED_AFTER_SECS {
                    versions.sweep(store, &user, head.version);
                    return Err(ApiError::StoreUnavailable);
                }
                if !revoke_pending(store, &index.keys[position].hash)? {
                    continue; // It finished after all: start over with it active.
                }
            }
            Standing::MidRoll { .. } => {}
            Standing::Dead => {
                versions.sweep(store, &user, head.version);
                return Err(ApiError::KeyNotFound);
            }
        }
        let version = next_version(store, &user)?;
        let entry = &mut index.keys[position];
        entry.apply(wanted, version);
        let mut event = Event::new(event_id.to_owned(), EventKind::Updated, now, entry);
        event.changes = changes;
        index.record(event);
        publish(store, &user, cas, head, version, &index)?;
        versions.note(head, version);
    }
    Err(ApiError::StoreUnavailable)
}

/// Brings the records of all of `entry`'s secrets in line with it: its settings on each (see
/// [`carry_settings`]), and on each older secret the end of its grace (see [`retire`]).
/// Returns the current secret's record as it is then.
pub(super) fn carry<S: KeyValue>(
    store: &S,
    entry: &IndexEntry,
    now: i64,
) -> Result<Option<KeyRecord>, StoreError> {
    for previous in &entry.previous {
        carry_settings(store, &previous.hash, entry)?;
        retire(store, previous, now)?;
    }
    carry_settings(store, &entry.hash, entry)
}

//! Update: what a change takes away written onto a key's records, the change published in the
//! index, then the records carried in line with it.

use super::*;

/// Changes the settings of the key `id` of `user_id` (name, scopes, enabled) and answers the
/// key as it is afterwards. `event_id` must be fresh and random: the update recognises its
/// own publish by it. The steps (module docs, "Update"):
///
/// 1. Read head and index; find the id (else `key_not_found`). If the index holds event
///    `event_id`, the update was published: go to 4. If nothing would change, go to 4 too.
/// 2. The key must be the user's: its current secret active, or a roll of it in flight (else
///    `key_not_found`; a key whose roll failed first gets back its replaced secret, see
///    [`undo_failed_roll`]).
/// 3. Take a version number; if the change takes rights away (disables the key, or drops
///    scopes), write that restriction on every secret's record first, older secrets first —
///    from here verify obeys it —, then publish the changed entry and event `event_id` under
///    that number; start over from the head.
/// 4. Carry the entry at the head (this update's settings, or a later one's) onto every
///    secret's record, which also drops the restrictions its version decided, then answer.
///
/// A failure before the publish is known leaves the restrictions in force: the 503 says the
/// change may have been made, and the next read of the index settles it either way (module
/// docs, "Repair"). Restrictions of proposals this update knows can never land are withdrawn
/// before it answers.
pub fn update<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    wanted: &Settings,
    event_id: &str,
    now: i64,
) -> Result<KeySummary, ApiError> {
    let mut ahead = Ahead::default();
    let result = update_steps(store, user_id, id, wanted, event_id, now, &mut ahead);
    if result.is_err() {
        // Best effort: a dead restriction left behind only restricts more, until a read of
        // the index carries the key.
        let _ = ahead.withdraw(store);
    }
    result
}

fn update_steps<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    wanted: &Settings,
    event_id: &str,
    now: i64,
    ahead: &mut Ahead,
) -> Result<KeySummary, ApiError> {
    let user = UserSpace::of(user_id);
    // The key as this update last proposed it, with its expiry.
    let mut proposed: Option<KeySummary> = None;
    change(store, &user, |versions, cas, head, mut index| {
        let Some(position) = index.keys.iter().position(|e| e.id == id) else {
            // Never ours, or deleted: before this update landed (404), or after it, when the
            // history still holds its event — the update happened first, and its client is
            // told so, as the history tells it.
            return Ok(Round::Done(match proposed.take() {
                Some(key) if index.events.iter().any(|e| e.id == event_id) => Ok(key),
                _ => Err(ApiError::KeyNotFound),
            }));
        };
        // Only this request writes this event id, so seeing it means one of its proposals
        // landed, whatever the swap answered: the change is never published twice.
        let landed = index.events.iter().any(|e| e.id == event_id);
        if !landed {
            ahead.refuted();
        }
        let changes = index.keys[position].changes_to(wanted);
        if landed || changes.is_empty() {
            // Proposals of this update that did not land can never land now; one that did is
            // carried below.
            ahead.withdraw(store)?;
            // The entry at the head: these settings, or newer ones of a later update.
            let entry = index.keys[position].clone();
            let current = carry_all(store, &entry, head.version)?;
            let undecided = |r: &KeyRecord| r.restrictions.iter().any(|x| x.version > head.version);
            if matches!(&current, Stored::Record(r) if undecided(r)) {
                // Another change is taking rights away, in flight or dead, and this answer
                // would show the key as if it were not. Publishing the index again decides it
                // (its version can no longer land), and the next round carries it away.
                let proposed = propose(store, &user, cas, head, &index)?;
                versions.note(head, proposed);
                return Ok(Round::Again);
            }
            return Ok(match answer(store, entry, current, user_id, now)? {
                Some(key) => Round::Done(Ok(key)),
                // The key looks dead from its records. This update landed before, so it
                // happened first: it was deleted after (its records killed, the removal not
                // yet published), and the client is told its change was made.
                None if landed => Round::Done(
                    proposed
                        .take()
                        .ok_or(ApiError::StoreUnavailable(cause::NOT_READ_BACK)),
                ),
                // No change to make: it is dead, if the head still names the version read;
                // else a change published since (a roll that ended the secret read) explains
                // it, and the next round reads that.
                None if still_at(store, &user, head)? => Round::Done(Err(ApiError::KeyNotFound)),
                None => Round::Again,
            });
        }
        let expires_at = match Standing::of(store, &index.keys[position], user_id, now)? {
            // A roll in flight: its secret gets the restriction and the settings too, and its
            // activation keeps them.
            Standing::Active(record)
            | Standing::Rolling {
                pending: record, ..
            } => record.expires_at,
            Standing::RollFailed { abandoned } => {
                if let Some(proposed) =
                    undo_failed_roll(store, &user, cas, head, &index, position, abandoned)?
                {
                    versions.note(head, proposed);
                }
                return Ok(Round::Again);
            }
            // A create in flight or failed, a delete in flight: not the user's key to change,
            // and a refusal is no change. (Unless the records changed with a version published
            // since the index was read: then read it again.)
            Standing::Deleted | Standing::Dead => {
                return Ok(if still_at(store, &user, head)? {
                    Round::Done(Err(ApiError::KeyNotFound))
                } else {
                    Round::Again
                });
            }
        };
        let version = next_version(store, &user, head)?;
        let entry = &mut index.keys[position];
        if let Some(restriction) = entry.restriction_toward(wanted, version, now) {
            let restrictions: Vec<_> = entry
                .all_hashes()
                .map(|hash| (hash.to_owned(), restriction.clone()))
                .collect();
            ahead.write(store, version, &restrictions)?;
        }
        entry.apply(wanted, version);
        let mut event = Event::new(event_id.to_owned(), EventKind::Updated, now, entry);
        event.changes = changes;
        index.record(event);
        let entry = &index.keys[position];
        proposed = Some(KeySummary {
            previous_expires_at: entry.previous_expires_at(now),
            entry: entry.clone(),
            last_used_at: None,
            expires_at,
        });
        publish(store, &user, cas, head, version, &index)?;
        ahead.proposed();
        versions.note(head, version);
        Ok(Round::Again)
    })
}

/// The key as list shows it, once `entry` was carried onto its secrets' records (`current`
/// is what its current secret's holds then): by its current secret's record, or while a roll
/// is in flight by the secret it lives on in. `None` if its records show no key.
fn answer<S: KeyValue>(
    store: &S,
    entry: IndexEntry,
    current: Stored,
    user_id: &str,
    now: i64,
) -> Result<Option<KeySummary>, StoreError> {
    let shown = match current {
        Stored::Record(record) if record.state == KeyState::Active => Some(record),
        _ => Standing::of(store, &entry, user_id, now)?.shown(),
    };
    Ok(shown.map(|record| KeySummary {
        last_used_at: record.last_used_at,
        expires_at: record.expires_at,
        previous_expires_at: entry.previous_expires_at(now),
        entry,
    }))
}

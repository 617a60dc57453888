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
    amend(
        store,
        user_id,
        id,
        &Amendment::Settings(wanted),
        event_id,
        now,
    )
}

/// What an update or a revoke changes in a key's entry: both take the same steps.
pub(super) enum Amendment<'a> {
    /// The settings an update asks for.
    Settings(&'a Settings),
    /// A revocation, of the key whose secret `hash` was presented.
    Revoke {
        revocation: &'a Revocation,
        hash: &'a str,
    },
}

impl Amendment<'_> {
    /// Whether the key is one this change may be made to: a revoked key's settings no longer
    /// change (it only waits for its owner to delete it), and a revocation is for the key that
    /// lists the secret presented (see [`Amendment::presents_ended_secret`] for one it lists
    /// past its grace).
    fn applies_to(&self, entry: &IndexEntry) -> bool {
        match self {
            Amendment::Settings(_) => entry.revocation.is_none(),
            Amendment::Revoke { hash, .. } => entry.all_hashes().any(|h| h == *hash),
        }
    }

    /// Whether this is a revocation presenting an older secret whose grace the index says is
    /// over at `now`. That is final only once the roll that ended it went live: a roll whose
    /// new secret never does is given back, and its replaced secret is current again.
    fn presents_ended_secret(&self, entry: &IndexEntry, now: i64) -> bool {
        match self {
            Amendment::Settings(_) => false,
            Amendment::Revoke { hash, .. } => {
                (entry.previous.iter()).any(|p| p.hash == *hash && p.until <= now)
            }
        }
    }

    /// Whether this is a revocation presenting an older secret of `entry` still in its grace
    /// at `now`. It ends that secret's grace now and the key lives on: its current secret did
    /// not leak (it may be what replaced the one that did), and a holder who was rolled away
    /// from (a contractor whose secret was replaced) cannot end the secret that replaced theirs.
    fn presents_older_secret(&self, entry: &IndexEntry, now: i64) -> Option<usize> {
        match self {
            Amendment::Settings(_) => None,
            Amendment::Revoke { hash, .. } => {
                (entry.previous.iter()).position(|p| p.hash == *hash && p.until > now)
            }
        }
    }

    /// The id of the event of this revocation ending the older secret it presents, of key
    /// `key_id` (see [`Amendment::presents_older_secret`]): one per secret, so that a
    /// replayed alert finds it.
    fn older_secret_event_id(&self, key_id: &str) -> Option<String> {
        match self {
            Amendment::Settings(_) => None,
            Amendment::Revoke { hash, .. } => Some(older_secret_revocation_event_id(key_id, hash)),
        }
    }

    /// What this would change in `entry`, old to new, or `None` if nothing.
    fn changes(&self, entry: &IndexEntry) -> Option<Vec<FieldChange>> {
        match self {
            Amendment::Settings(wanted) => Some(entry.changes_to(wanted)).filter(|c| !c.is_empty()),
            Amendment::Revoke { .. } => entry.revocation.is_none().then(Vec::new),
        }
    }

    /// What this takes away from the key, as a restriction its records get before it is
    /// published under `version`.
    fn restriction(&self, entry: &IndexEntry, version: u64, now: i64) -> Option<Restriction> {
        match self {
            Amendment::Settings(wanted) => entry.restriction_toward(wanted, version, now),
            Amendment::Revoke { revocation, .. } => Some(Restriction {
                version,
                at: now,
                disabled: false,
                scopes: None,
                retire_at: None,
                revocation: Some((*revocation).clone()),
                ends_secret: false,
            }),
        }
    }

    /// Makes the change in `entry`, published under `version`, and answers its event.
    fn apply(&self, entry: &mut IndexEntry, version: u64, event_id: &str, now: i64) -> Event {
        let changes = self.changes(entry).unwrap_or_default();
        match self {
            Amendment::Settings(wanted) => {
                entry.apply(wanted, version);
                let mut event = Event::new(event_id.to_owned(), EventKind::Updated, now, entry);
                event.changes = changes;
                event
            }
            // Its event id is the key's own (see [`revoke`]).
            Amendment::Revoke { revocation, .. } => revoke_entry(entry, revocation, version),
        }
    }
}

/// Makes `amendment` to the key `id` of `user_id` by the steps of [`update`].
pub(super) fn amend<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    amendment: &Amendment,
    event_id: &str,
    now: i64,
) -> Result<KeySummary, ApiError> {
    let mut ahead = Ahead::default();
    let result = amend_steps(store, user_id, id, amendment, event_id, now, &mut ahead);
    if result.is_err() {
        // Best effort: a dead restriction left behind only restricts more, until a read of
        // the index carries the key.
        let _ = ahead.withdraw(store);
    }
    result
}

fn amend_steps<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    amendment: &Amendment,
    event_id: &str,
    now: i64,
    ahead: &mut Ahead,
) -> Result<KeySummary, ApiError> {
    let user = UserSpace::of(user_id);
    // The key as this update last proposed it, with its expiry.
    let mut proposed: Option<KeySummary> = None;
    // Whether this revocation has written the key's revocation ahead on a record: from then on
    // it revokes the whole key (it is never undone), whatever a roll made of the secret since.
    let mut revoking_key = false;
    let older_secret_event = amendment.older_secret_event_id(id);
    change(store, &user, |versions, cas, head, mut index| {
        let found = index.keys.iter().position(|e| e.id == id);
        // Only this request writes this event id (an update's is random; a revocation's is the
        // key's own, and all revocations of the key are the same change; one ending an older
        // secret that secret's own), so seeing it means the change landed, whatever the swap
        // answered: it is never published twice.
        let landed = (index.events.iter())
            .any(|e| e.id == event_id || Some(&e.id) == older_secret_event.as_ref());
        // A key this change may not be made to is, for it, no key (unless the change landed
        // before: then it happened first, and is carried and answered below).
        let found = found.filter(|&at| landed || amendment.applies_to(&index.keys[at]));
        if !landed {
            // Its proposals so far are dead: withdrawn if it ends here or below.
            ahead.refuted();
        }
        let Some(position) = found else {
            // Never ours, or deleted: before this update landed (404), or after it, when the
            // history still holds its event — the update happened first, and its client is
            // told so, as the history tells it.
            return Ok(Round::Done(match proposed.take() {
                Some(key) if landed => Ok(key),
                _ => Err(ApiError::KeyNotFound),
            }));
        };
        let older_secret = (!revoking_key)
            .then(|| amendment.presents_older_secret(&index.keys[position], now))
            .flatten();
        let changes = match older_secret {
            // (Unless the key was revoked meanwhile: then there is nothing left to end.)
            Some(_) => index.keys[position].revocation.is_none().then(Vec::new),
            None => amendment.changes(&index.keys[position]),
        };
        if landed || changes.is_none() {
            // Proposals of this update that did not land can never land now; one that did is
            // carried below.
            ahead.withdraw(store)?;
            // The entry at the head: these settings, or newer ones of a later update.
            let entry = index.keys[position].clone();
            let carried = carry_all(store, &entry, head.version)?;
            if let Some(revocation) = &carried.unpublished_revocation {
                // A revocation, written ahead on one of its secrets, that nobody published:
                // finished here, never dropped; the next round shows the key revoked.
                let proposed =
                    finish_revocation(store, &user, cas, head, &index, position, revocation, now)?;
                versions.note(head, proposed);
                return Ok(Round::Again);
            }
            let current = carried.current;
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
                // (Another revocation's landing, with none proposed by this one: the key was
                // revoked, then deleted, and is no key now.)
                None if landed => Round::Done(proposed.take().ok_or(ApiError::KeyNotFound)),
                // No change to make: it is dead, if the head still names the version read;
                // else a change published since (a roll that ended the secret read) explains
                // it, and the next round reads that.
                None if still_at(store, &user, head)? => Round::Done(Err(ApiError::KeyNotFound)),
                None => Round::Again,
            });
        }
        let standing = Standing::of(store, &index.keys[position], user_id, now)?;
        let shown = match &standing {
            Standing::Active(record)
            | Standing::Rolling {
                pending: record, ..
            } => Some(record),
            _ => None,
        };
        if let Some(revocation) =
            shown.and_then(|r| r.unpublished_on_current(&index.keys[position]))
        {
            // Revoked ahead, never published (its request may have died): finished first, so
            // that this change meets a revoked key, which no settings change may touch.
            let proposed =
                finish_revocation(store, &user, cas, head, &index, position, &revocation, now)?;
            versions.note(head, proposed);
            return Ok(Round::Again);
        }
        // Once this revocation has written the key's revocation on a record it is finished,
        // whatever happened to the secret presented since (a roll ended it): never undone.
        if amendment.presents_ended_secret(&index.keys[position], now) && !revoking_key {
            match standing {
                // The roll that ended it went live: it is no key's secret any more.
                Standing::Active(_) => return Ok(Round::Done(Err(ApiError::KeyNotFound))),
                // Settle that roll first, as a roll meeting it does: its secret goes live
                // now, or it failed and the next round finds it to give back.
                Standing::Rolling { .. } => {
                    let _ = activate(store, &index.keys[position].hash);
                    return Ok(Round::Again);
                }
                _ => {}
            }
        }
        let expires_at = match standing {
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
        let event = match (older_secret, amendment) {
            (Some(at), Amendment::Revoke { revocation, hash }) => {
                // Only that secret's grace ends, on its record first: a revocation too, never
                // undone (see [`finish_revocation`]).
                let ended = Restriction {
                    version,
                    at: now,
                    disabled: false,
                    scopes: None,
                    retire_at: Some(now),
                    revocation: Some((*revocation).clone()),
                    ends_secret: true,
                };
                ahead.write(store, version, &[((*hash).to_owned(), ended)])?;
                end_older_secret(entry, at, revocation, now)
            }
            _ => {
                if let Some(restriction) = amendment.restriction(entry, version, now) {
                    let restrictions: Vec<_> = entry
                        .all_hashes()
                        .map(|hash| (hash.to_owned(), restriction.clone()))
                        .collect();
                    revoking_key |= restriction.revocation.is_some() && !restriction.ends_secret;
                    ahead.write(store, version, &restrictions)?;
                }
                amendment.apply(entry, version, event_id, now)
            }
        };
        index.record(event);
        let entry = &index.keys[position];
        proposed = Some(KeySummary {
            previous_expires_at: entry.previous_expires_at(now),
            revocation: entry.revocation.clone(),
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
        revocation: entry.revocation_shown(&record),
        last_used_at: record.last_used_at,
        expires_at: record.expires_at,
        previous_expires_at: entry.previous_expires_at(now),
        entry,
    }))
}

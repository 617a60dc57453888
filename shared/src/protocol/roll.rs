//! Roll: a key given a new secret, the old one verifying until its grace ends.

use super::*;

/// A new secret for an existing key: its hash and preview (the secret never reaches the store).
pub struct NewSecret<'a> {
    pub hash: &'a str,
    pub preview: &'a str,
}

/// Gives the key `id` of `user_id` the new secret `new`, keeping its id, name, scopes and
/// state, and answers the key as it is afterwards. The secret it replaces verifies for
/// `grace_secs` more (0: not at all), never longer than a grace it already had. `event_id` must
/// be fresh and random, as for [`update`]. The steps, and why they are safe:
///
/// 1. Read head and index; find the id (else `key_not_found`). If the index holds event
///    `event_id`, the roll was published: go to 4.
/// 2. The key's current secret must be active and unexpired (else `key_not_found`). If an
///    earlier roll's secret is still pending, that roll is in flight: this one helps it,
///    activating its secret (that roll then answers 201 too, and this one is applied after
///    it); if that roll failed or was abandoned, its secret is revoked and the key gets back
///    the secret it replaced (see [`undo_failed_roll`]). Then start over.
/// 3. Decide which secrets stay: the current one joins the older ones, last, with its grace
///    end; older ones whose grace is over are dropped, and beyond [`MAX_PREVIOUS_SECRETS`] in
///    their grace the ones ending first end now. Take a version number; write the new secret's
///    record as `pending` (nobody else knows its hash); delete the dropped secrets' records and
///    write each grace end onto its secret's record as a restriction of that version, the
///    replaced secret last — from here verify obeys them, before anything shows the roll —;
///    then publish the entry with the new hash and preview, the older secrets and the
///    `rolled` event, as update does; start over from the head.
/// 4. Activate the new secret (a delete, or the withdrawal of this roll as abandoned, wins
///    over it); from then on the roll happened and answers 201, its grace ends already in
///    force; carrying the entry onto the records, which folds the restrictions in, is then
///    only tidying (and the next read does it if this request cannot).
///
/// A roll that fails after proposing revokes its new secret if it can, so that the next writer
/// or reader of the key gives it back its replaced secret and removes the roll's event at once
/// (module docs, "Repair"); if even that fails, the roll counts as abandoned after
/// [`ABANDONED_AFTER_SECS`]. Either way the key is listed throughout with a secret that
/// verifies until its grace ends, and the 503 said it may have been applied.
pub fn roll<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    new: &NewSecret,
    grace_secs: i64,
    event_id: &str,
    now: i64,
) -> Result<KeySummary, ApiError> {
    let user = UserSpace::of(user_id);
    let mut rolling = Rolling {
        store,
        user: &user,
        user_id,
        id,
        new,
        grace_secs,
        event_id,
        now,
        ahead: Ahead::default(),
        written: None,
        expires_at: None,
        proposed: None,
    };
    let result = rolling.steps();
    if result.is_err() {
        rolling.clean_up();
    }
    result
}

/// One roll in progress: what it was asked, and what it has done so far.
struct Rolling<'a, S> {
    store: &'a S,
    user: &'a UserSpace,
    user_id: &'a str,
    id: &'a str,
    new: &'a NewSecret<'a>,
    grace_secs: i64,
    event_id: &'a str,
    now: i64,
    ahead: Ahead,
    /// Whether the new secret's record was written, and if so whether an index naming it may
    /// have been published (proposed, and not read back as refuted).
    written: Option<Published>,
    /// The key's expiry, as the new secret's record was written with it.
    expires_at: Option<i64>,
    /// The key as this roll last proposed it: its answer, should the key be deleted after it.
    proposed: Option<KeySummary>,
}

/// What step 4 came to.
// One at a time, on the stack.
#[allow(clippy::large_enum_variant)]
enum Finish {
    /// The roll happened: the key as it is now.
    Rolled(KeySummary),
    /// The key changed meanwhile: read it again.
    Again,
    /// The roll happened, and one of the key's records carries a revocation nobody published:
    /// to be finished before answering.
    Revoke(Unpublished),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Published {
    No,
    Maybe,
}

impl<S: KeyValue> Rolling<'_, S> {
    /// After a failure, best effort: restrictions of proposals that can never land are
    /// withdrawn; the new secret's record is deleted if no index names it, else revoked so
    /// that the roll is given back at once by the next reader (see [`undo_failed_roll`]).
    fn clean_up(&self) {
        let _ = self.ahead.withdraw(self.store);
        match self.written {
            None => {}
            Some(Published::No) => {
                let _ = self.store.delete(&record_key(self.new.hash));
            }
            Some(Published::Maybe) => {
                let _ = revoke_pending(self.store, self.new.hash);
            }
        }
    }

    /// The steps of [`roll`], as its docs number them, one round per reading of the index.
    fn steps(&mut self) -> Result<KeySummary, ApiError> {
        let (store, user) = (self.store, self.user);
        change(store, user, |versions, cas, head, index| {
            self.round(versions, cas, head, index)
        })
    }

    /// One round of the steps, on the head and index just read: steps 1 to 3, or 4 once the
    /// roll shows published.
    fn round(
        &mut self,
        versions: &mut Versions,
        cas: S::Cas,
        head: Head,
        mut index: Index,
    ) -> Result<Round<KeySummary>, ApiError> {
        let (store, user, user_id, id, new) =
            (self.store, self.user, self.user_id, self.id, self.new);
        let (event_id, now) = (self.event_id, self.now);
        let Some(position) = index.keys.iter().position(|e| e.id == id) else {
            // Never ours, or deleted: before this roll landed (404), or after it, when the
            // history still holds its event — the roll happened first (its secret never
            // verified: the delete killed it), and its client is told so, as the history
            // tells it. Either way no entry names the new secret any more.
            self.written = self.written.map(|_| Published::No);
            return Ok(Round::Done(match self.proposed.take() {
                Some(key) if index.events.iter().any(|e| e.id == event_id) => Ok(key),
                _ => Err(ApiError::KeyNotFound),
            }));
        };
        // Only this request writes this event id, so seeing it means one of its proposals
        // landed, whatever the swap answered: the roll is never published twice.
        if index.events.iter().any(|e| e.id == event_id) {
            let entry = index.keys[position].clone();
            return Ok(match self.finish(entry, head)? {
                Finish::Rolled(rolled) => Round::Done(Ok(rolled)),
                Finish::Again => Round::Again,
                Finish::Revoke(revocation) => {
                    // The roll happened; a revocation found unpublished on one of the key's
                    // secrets is finished now (the next round answers the key, revoked).
                    let proposed = finish_revocation(
                        store,
                        user,
                        cas,
                        head,
                        &index,
                        position,
                        &revocation,
                        now,
                    )?;
                    versions.note(head, proposed);
                    Round::Again
                }
            });
        }
        self.ahead.refuted();
        if self.written.is_some() {
            self.written = Some(Published::No);
        }
        let entry = &index.keys[position];
        let current = match Standing::of(store, entry, user_id, now)? {
            Standing::Active(current) if current.unpublished_on_current(entry).is_some() => {
                // Revoked ahead, never published (its request may have died): finished first;
                // the next round finds the key revoked, which no roll may bring back.
                if let Some(revocation) = &current.unpublished_on_current(entry) {
                    let proposed = finish_revocation(
                        store, user, cas, head, &index, position, revocation, now,
                    )?;
                    versions.note(head, proposed);
                }
                return Ok(Round::Again);
            }
            Standing::Active(current) if !current.is_expired(now) => current,
            Standing::Rolling { .. } => {
                // That roll's secret goes live now; if it just failed instead, the next
                // round finds it revoked and gives the key its secret back.
                let _ = activate(store, &entry.hash);
                return Ok(Round::Again);
            }
            Standing::RollFailed { abandoned } => {
                if let Some(proposed) =
                    undo_failed_roll(store, user, cas, head, &index, position, abandoned)?
                {
                    versions.note(head, proposed);
                }
                return Ok(Round::Again);
            }
            // Expired (final: there is no key left to roll).
            Standing::Active(_) => return Ok(Round::Done(Err(ApiError::KeyNotFound))),
            // Not a key of the user's, unless its records changed with a version published
            // since the index was read (a roll of it that finished): then read it again.
            Standing::Deleted | Standing::Dead => {
                return Ok(if still_at(store, user, head)? {
                    Round::Done(Err(ApiError::KeyNotFound))
                } else {
                    Round::Again
                });
            }
        };
        if entry.revocation.is_some() {
            // Revoked for good: a new secret would bring it back.
            return Ok(Round::Done(Err(ApiError::KeyNotFound)));
        }
        let (keep, drop) = secrets_after_roll(entry, now + self.grace_secs, now);
        let version = next_version(store, user, head)?;
        let pending = KeyRecord {
            state: KeyState::Pending,
            user_id: user_id.to_owned(),
            key_id: entry.id.clone(),
            name: entry.name.clone(),
            scopes: entry.scopes.clone(),
            created_at: now,
            last_used_at: None,
            expires_at: current.expires_at,
            enabled: entry.enabled,
            settings_version: head.version,
            retire_at: None,
            // What another change is taking away from the key (an update's or a revocation's
            // restriction, in flight or left by a request that died) holds for its new secret
            // too; and on the current secret, where list looks, a dead one is settled by the
            // next read, which then carries every secret (the replaced one included).
            restrictions: current
                .restrictions
                .iter()
                .filter(|r| r.version > head.version && r.retire_at.is_none())
                .cloned()
                .collect(),
            revocation: None,
        };
        // Nobody else knows this hash; a roll that gave it back as abandoned revoked it,
        // and this roll, alive after all, proposes it again. Noted first: a write that
        // fails may still have landed.
        self.written = Some(Published::No);
        self.expires_at = pending.expires_at;
        store.set(&record_key(new.hash), &to_json(&pending)?)?;
        // Restrictions first: the dropped secrets are past their grace, and the others end
        // when the entry will say before it says so.
        for hash in &drop {
            store.delete(&record_key(hash))?;
        }
        let ends: Vec<(String, Restriction)> = keep
            .iter()
            .filter(|p| p.until <= now || p.hash == entry.hash)
            .map(|p| {
                let restriction = Restriction {
                    version,
                    at: now,
                    disabled: false,
                    scopes: None,
                    retire_at: Some(p.until),
                    revocation: None,
                    ends_secret: false,
                };
                (p.hash.clone(), restriction)
            })
            .collect();
        self.ahead.write(store, version, &ends)?;
        let entry = &mut index.keys[position];
        entry.hash = new.hash.to_owned();
        entry.preview = new.preview.to_owned();
        entry.previous = keep;
        let replaced_until = now + self.grace_secs;
        let mut event = Event::new(event_id.to_owned(), EventKind::Rolled, now, entry);
        event.previous_key_expires_at = Some(replaced_until);
        index.record(event);
        let entry = &index.keys[position];
        self.proposed = Some(KeySummary {
            previous_expires_at: entry.previous_expires_at(now),
            revocation: entry.revocation.clone(),
            entry: entry.clone(),
            last_used_at: None,
            expires_at: self.expires_at,
        });
        self.written = Some(Published::Maybe);
        publish(store, user, cas, head, version, &index)?;
        self.ahead.proposed();
        versions.note(head, version);
        Ok(Round::Again)
    }

    /// Step 4, once `entry` (at index version `head`) shows this roll published.
    fn finish(&mut self, entry: IndexEntry, head: Head) -> Result<Finish, ApiError> {
        let (store, user, new, now) = (self.store, self.user, self.new, self.now);
        // The event of a roll given back leaves the history with it, so this roll stands. Its
        // secret is the entry's current one; or a later roll replaced it already (and maybe
        // dropped it, its grace over), which it did only after helping it go live.
        if entry.hash == new.hash {
            if let Err(error) = activate(store, new.hash) {
                // Its secret can no longer go live. A later version may show why (replaced
                // after a helper activated it, or the key deleted): read it.
                if !still_at(store, user, head)? {
                    return Ok(Finish::Again);
                }
                // Killed by a delete that has not published yet: the roll happened, then the
                // key was deleted, and its client is told so, as the history will tell it.
                // Otherwise it is being given back (revoked as abandoned): that removes its
                // event, and the roll failed.
                let (_, now_stored) = store.watch(&record_key(new.hash))?;
                let deleted = now_stored
                    .as_deref()
                    .and_then(parse_record)
                    .is_some_and(|r| r.state == KeyState::Deleted);
                return match self.proposed.take() {
                    Some(key) if deleted => Ok(Finish::Rolled(key)),
                    _ => Err(error),
                };
            }
        }
        // The roll has happened; its secret is the client's from here on, whatever else fails.
        self.written = None;
        if let Ok(carried) = carry_all(store, &entry, head.version) {
            if let Some(revocation) = carried.unpublished_revocation {
                return Ok(Finish::Revoke(revocation));
            }
        }
        for previous in entry.previous.iter().filter(|p| p.until <= now) {
            // Dead since the restriction written before the publish; now only garbage.
            let _ = store.delete(&record_key(&previous.hash));
        }
        let previous_expires_at = entry.previous_expires_at(now);
        // Revoked after this roll landed, if the entry says so.
        let revocation = entry.revocation.clone();
        Ok(Finish::Rolled(KeySummary {
            entry: IndexEntry {
                hash: new.hash.to_owned(),
                preview: new.preview.to_owned(),
                ..entry
            },
            last_used_at: None,
            expires_at: self.expires_at,
            previous_expires_at,
            revocation,
        }))
    }
}

/// The older secrets `entry` keeps once rolled at `now` with the current one ending at
/// `grace_end`, the replaced current secret last; and the hashes of those it drops (their
/// grace is over). Beyond [`MAX_PREVIOUS_SECRETS`] in their grace, the ones ending first end
/// now (kept, with `until` = `now`, so that the index lists them until their end is written).
fn secrets_after_roll(
    entry: &IndexEntry,
    grace_end: i64,
    now: i64,
) -> (Vec<PreviousSecret>, Vec<String>) {
    // Latest grace end first (the latest replaced first among equal ends).
    let mut older: Vec<_> = entry.previous.iter().cloned().enumerate().collect();
    older.sort_by_key(|(at, p)| std::cmp::Reverse((p.until, *at)));
    let mut keep: Vec<PreviousSecret> = Vec::new();
    let mut drop: Vec<String> = Vec::new();
    for (_, mut previous) in older {
        if previous.until <= now {
            drop.push(previous.hash);
            continue;
        }
        if keep.len() + 1 >= MAX_PREVIOUS_SECRETS {
            previous.until = now;
        }
        keep.push(previous);
    }
    keep.push(PreviousSecret {
        hash: entry.hash.clone(),
        until: grace_end,
        preview: entry.preview.clone(),
    });
    (keep, drop)
}

/// Gives the key at `position` of `index` back the secret its latest roll replaced (see
/// [`IndexEntry::undo_roll`]), for a roll whose secret can no longer go live — revoked (it
/// failed), gone, or `abandoned` pending (revoked here first; if it turned active meanwhile,
/// that roll finished and there is nothing to give back). Returns the hash of the roll's
/// secret if it gave the key back: dead for good, its record garbage once that is published.
/// The replaced secret's record still carries the roll's grace end as a restriction of a
/// version the head will have passed: the next carry of the key drops it (a grant, so after
/// the publish).
pub(super) fn give_back<S: KeyValue>(
    store: &S,
    index: &mut Index,
    position: usize,
    abandoned: bool,
) -> Result<Option<String>, StoreError> {
    let entry = &mut index.keys[position];
    if abandoned && !revoke_pending(store, &entry.hash)? {
        return Ok(None);
    }
    let failed = entry.hash.clone();
    Ok(entry.undo_roll(&mut index.events).then_some(failed))
}

/// [`give_back`] in a new index version proposed from `head`. Returns the version proposed, if
/// any; whether it landed is for the caller to read back.
pub(super) fn undo_failed_roll<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    cas: S::Cas,
    head: Head,
    index: &Index,
    position: usize,
    abandoned: bool,
) -> Result<Option<u64>, StoreError> {
    let mut index = index.clone();
    let Some(failed) = give_back(store, &mut index, position, abandoned)? else {
        return Ok(None);
    };
    let proposed = propose(store, user, cas, head, &index)?;
    // Whether or not that landed, its record can go (an entry still naming it is a roll to
    // give back all the same). Failing to delete it leaves a dead record.
    let _ = store.delete(&record_key(&failed));
    Ok(Some(proposed))
}

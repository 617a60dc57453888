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
/// 2. Decide which secrets stay: if the current one is active, it joins the older ones with
///    its grace end; older ones whose grace is over are dropped, and beyond
///    [`MAX_PREVIOUS_SECRETS`] in their grace the ones ending first end now (they stay listed
///    until step 4 deletes them). If the current one is not active (an earlier roll is in
///    flight, or failed or died before activating its secret), that roll's secret is revoked
///    by compare-and-swap, so it can never activate, and the older secrets still live stay,
///    their grace capped by this one. An expired key, or an entry that is no key (a create
///    or delete in flight): `key_not_found`. (A key mid-roll with no live secret left, after
///    a failed roll without grace, is rolled: that is how its user gets a working secret.)
/// 3. Write the new secret's record as `pending` (nobody else knows its hash), delete the
///    records of dropped secrets (before the index stops listing them: live ⇒ listed), then
///    publish the entry with the new hash and preview, the older secrets with their grace
///    ends, and the `rolled` event, as update does; start over from the head.
/// 4. Retire the older secrets (see [`retire`]), then activate the new one from exactly the
///    pending bytes (a later roll that revoked it, or a delete, wins). Retiring first means a
///    roll that stops between the two leaves the old secret ending on time and the new one
///    never live.
///
/// A roll that fails after proposing (503) is cleaned up by [`withdraw`]: if it was published,
/// the old secrets still end on time and the new secret is revoked; its `rolled` event stays in
/// the history, since the old secrets' grace was set. While a roll is in flight, or after one
/// failed, the key stays listed (see [`Standing`]), so delete can always kill every secret.
/// The one window: a roll that *dies* (or whose store stays down) between 3 and 4 leaves the
/// old secret verifying past its grace until the key is rolled again, updated (after
/// [`ABANDONED_AFTER_SECS`]) or deleted; it answered no 201, so its client retries.
pub fn roll<S: KeyValue>(
    store: &S,
    user_id: &str,
    id: &str,
    new: &NewSecret,
    grace_secs: i64,
    event_id: &str,
    now: i64,
) -> Result<KeySummary, ApiError> {
    let mut rolling = Rolling {
        store,
        user: UserSpace::of(user_id),
        user_id,
        id,
        new,
        grace_secs,
        event_id,
        now,
        versions: Versions::default(),
        written: None,
    };
    let result = rolling.steps();
    if let (Err(error), Some(record)) = (&result, &rolling.written) {
        // Best effort. Never proposed, or the key is gone: no entry lists the record, so
        // delete it. Maybe published: withdraw the roll's new secret but keep its promise on
        // the old one (see [`Rolling::withdraw`]).
        if record.proposed && *error != ApiError::KeyNotFound {
            rolling.withdraw();
        } else {
            let _ = store.delete(&record_key(new.hash));
        }
    }
    result
}

/// One roll in progress: what it was asked, and what it has done so far.
pub(super) struct Rolling<'a, S> {
    store: &'a S,
    user: UserSpace,
    user_id: &'a str,
    id: &'a str,
    new: &'a NewSecret<'a>,
    grace_secs: i64,
    event_id: &'a str,
    now: i64,
    versions: Versions,
    /// The new secret's record as last written, if it was.
    written: Option<NewSecretRecord>,
}

/// The new secret's record as a roll last wrote it: activation swaps from exactly `pending`.
pub(super) struct NewSecretRecord {
    pending: Vec<u8>,
    active: Vec<u8>,
    /// Whether an index naming it was proposed (and so may have been published).
    proposed: bool,
}

impl<S: KeyValue> Rolling<'_, S> {
    /// Cleans up after a roll that failed having proposed its index: if it was published, its
    /// older secrets still end when it said (retired, as its step 4 would have), so that a 503
    /// never leaves an old secret verifying past its grace; and its new secret, which the
    /// client never saw, is revoked, so that it never goes live. The key stays listed (see
    /// [`Standing`]): by its old secret while that is in its grace, else with no live secret
    /// until it is rolled again. Best effort: a store still failing leaves the state the roll
    /// stopped in.
    pub(super) fn withdraw(&self) {
        if let Ok(Some((_, _, index))) = watch_index(self.store, &self.user, true) {
            let published = index.events.iter().any(|e| e.id == self.event_id);
            let entry = index.keys.iter().find(|e| e.id == self.id);
            if let (true, Some(entry)) = (published, entry) {
                for previous in &entry.previous {
                    let _ = retire(self.store, previous, self.now);
                }
            }
        }
        let _ = revoke_pending(self.store, self.new.hash);
    }

    /// The steps of [`roll`], as its docs number them.
    pub(super) fn steps(&mut self) -> Result<KeySummary, ApiError> {
        let (store, user, user_id, id, new) =
            (self.store, &self.user, self.user_id, self.id, self.new);
        let (grace_secs, event_id, now) = (self.grace_secs, self.event_id, self.now);
        // The never-activated secret of an earlier roll this one replaced, if it did: garbage
        // once this roll is published.
        let mut superseded: Option<String> = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some((cas, head, mut index)) =
                watch_index(store, user, self.versions.unconfirmed())?
            else {
                continue;
            };
            let Some(position) = index.keys.iter().position(|e| e.id == id) else {
                // Never ours, or deleted (whether before or after this roll landed).
                self.versions.sweep(store, user, head.version);
                return Err(ApiError::KeyNotFound);
            };
            // Only this request writes this event id, so seeing it means one of its proposals
            // landed, whatever the swap answered: the roll is never published twice.
            if index.events.iter().any(|e| e.id == event_id) {
                self.versions.sweep(store, user, head.version);
                let entry = index.keys.swap_remove(position);
                let Some(record) = self.written.as_ref() else {
                    return Err(ApiError::StoreUnavailable);
                };
                if entry.hash != new.hash {
                    // A later roll replaced this one before it activated, and revoked its secret.
                    return Err(ApiError::StoreUnavailable);
                }
                // Older secrets first: see step 4. Their settings are the entry's already (any
                // update since published after this roll, and carries them itself).
                for previous in &entry.previous {
                    retire(store, previous, now)?;
                }
                activate(store, new.hash, &record.pending, &record.active)?;
                if let Some(hash) = &superseded {
                    // Revoked, and no longer listed. Failing to delete it only leaves garbage.
                    let _ = store.delete(&record_key(hash));
                }
                let expires_at = parse_record(&record.active).and_then(|r| r.expires_at);
                return Ok(KeySummary {
                    last_used_at: None,
                    expires_at,
                    previous_expires_at: entry.previous_expires_at(now),
                    entry,
                });
            }
            let entry = &index.keys[position];
            let grace_end = now + grace_secs;
            // The older secrets the rolled key lists, each with its grace end (an end that has
            // come is carried out by retiring it once this is published); those it stops listing,
            // whose grace is over already; and a record of the key, to copy its expiry from.
            let mut keep: Vec<PreviousSecret> = Vec::new();
            let mut drop: Vec<String> = Vec::new();
            superseded = None;
            // When the secret this roll replaces stops verifying, for its event: the grace end, or
            // for a key mid-roll the latest end of the older secrets it keeps.
            let mut replaced_until = grace_end;
            let template = match Standing::of(store, entry, user_id, now)? {
                Standing::Active(current) if !current.is_expired(now) => {
                    // Latest grace end first (the latest replaced first among equal ends): beyond
                    // the limit, the ones ending first end now.
                    let mut older: Vec<_> = entry.previous.iter().cloned().enumerate().collect();
                    older.sort_by_key(|(at, p)| std::cmp::Reverse((p.until, *at)));
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
                    });
                    current
                }
                Standing::MidRoll { live, current } => {
                    // An earlier roll's secret never went live (that roll is in flight, or failed
                    // or died after publishing). The secrets the key still has stay, their grace
                    // capped by this roll's; that secret is revoked, so that it can never activate
                    // (that roll loses, and answers 503). If it turned active meanwhile, that roll
                    // finished: start over from there.
                    for previous in &entry.previous {
                        // A record this version cannot read may be a newer version's, maybe live:
                        // kept, as reclaim keeps it.
                        let record = store.get(&record_key(&previous.hash))?;
                        let kept = record.as_deref().is_some_and(|bytes| {
                            parse_record(bytes).is_none_or(|r| r.is_live(now))
                        });
                        if kept {
                            keep.push(PreviousSecret {
                                hash: previous.hash.clone(),
                                until: previous.until.min(grace_end),
                            });
                        } else {
                            drop.push(previous.hash.clone());
                        }
                    }
                    let pending = current
                        .as_ref()
                        .is_some_and(|r| r.state == KeyState::Pending);
                    if pending && !revoke_pending(store, &entry.hash)? {
                        continue;
                    }
                    superseded = Some(entry.hash.clone());
                    replaced_until = keep.iter().map(|p| p.until).max().unwrap_or(now);
                    let Some(template) = live.or(current).filter(|r| !r.is_expired(now)) else {
                        self.versions.sweep(store, user, head.version);
                        return Err(ApiError::KeyNotFound);
                    };
                    template
                }
                // Expired (final: there is no key left to roll), or not a key of the user's.
                _ => {
                    self.versions.sweep(store, user, head.version);
                    return Err(ApiError::KeyNotFound);
                }
            };
            let record = |state| KeyRecord {
                state,
                user_id: user_id.to_owned(),
                key_id: entry.id.clone(),
                name: entry.name.clone(),
                scopes: entry.scopes.clone(),
                created_at: now,
                last_used_at: None,
                expires_at: template.expires_at,
                enabled: entry.enabled,
                settings_version: entry.settings_version,
                retire_at: None,
            };
            let pending = to_json(&record(KeyState::Pending))?;
            let active = to_json(&record(KeyState::Active))?;
            // Nobody else knows this hash; and nobody can have revoked it yet, since this roll's
            // proposals did not land (it would have seen its event above). Noted first: a write
            // that fails may still have landed, and is cleaned up then.
            let proposed = self.written.as_ref().is_some_and(|w| w.proposed);
            let record = self.written.insert(NewSecretRecord {
                pending,
                active,
                proposed,
            });
            store.set(&record_key(new.hash), &record.pending)?;
            for hash in &drop {
                store.delete(&record_key(hash))?;
            }
            let version = next_version(store, user)?;
            let entry = &mut index.keys[position];
            entry.hash = new.hash.to_owned();
            entry.preview = new.preview.to_owned();
            entry.previous = keep;
            let mut event = Event::new(event_id.to_owned(), EventKind::Rolled, now, entry);
            event.previous_key_expires_at = Some(replaced_until);
            index.record(event);
            if let Some(record) = self.written.as_mut() {
                record.proposed = true;
            }
            publish(store, user, cas, head, version, &index)?;
            self.versions.note(head, version);
        }
        Err(ApiError::StoreUnavailable)
    }
}

//! A key's record (what verify reads) and every compare-and-swap transition of one record.

use super::*;

/// Lifecycle of a key's record; only `Active` verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Pending,
    Active,
    /// A pending secret that will never go live (its create or roll failed or was abandoned).
    /// Not a key revoked for a leak: that one stays `Active` with a [`Revocation`].
    Revoked,
    /// Killed by a delete that has not yet published the key's removal: kept until then so
    /// that anyone who finds the entry meanwhile knows it is a deleted key (see [`delete`]).
    Deleted,
}

/// What the store keeps per key, under the key's hash: all verify needs to answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub state: KeyState,
    pub user_id: String,
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last verification recorded, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// Unix seconds from which the key no longer verifies; absent: never (records written
    /// before expiry existed have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Whether the key may verify; an update can disable it. Absent: enabled.
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
    /// The index version the record was last brought in line with (see [`carry`]): its
    /// settings and `retire_at` are that version's entry's. Only ever grows, so a request
    /// carrying an older version never undoes a newer one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub settings_version: u64,
    /// Unix seconds from which this secret no longer verifies because its key was rolled to a
    /// new one (the end of the grace period); absent: it is the key's current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
    /// Restrictions written ahead of the index versions that publish them: a change that takes
    /// rights away reaches verify before list can show it (see the module docs). Verify obeys
    /// every one; [`carry`] folds them in once their version is decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restrictions: Vec<Restriction>,
    /// Set once the key was revoked (see [`revoke`]): from then on it never verifies, and
    /// verify says why. Written ahead as a restriction, then carried from the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// Why, when and where a key was revoked: a leak reported by a secret scanner, or its holder's
/// own request. Never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// `leaked` (a scanner's alert) or `self` (RFC 7009 revocation by its holder).
    pub reason: String,
    /// Unix seconds.
    pub at: i64,
    /// Where the key was found public, as the scanner reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What kind of place that was (`content`, `commit`, `npm`, …), as the scanner reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Rights an update or a roll is taking away from one secret, ahead of publishing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    /// The index version that publishes it. Once the head is at or past it, it is decided:
    /// published (then that head's entry says so too) or never to be.
    pub version: u64,
    /// Unix seconds when it was written: one whose version is undecided this long after is
    /// a request's that died (see [`ABANDONED_AFTER_SECS`]).
    pub at: i64,
    /// The key is being disabled.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// The scopes the key keeps at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// When this secret stops verifying (a roll ending its grace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
    /// The key is being revoked; or, with `ends_secret`, only this secret (an older one, whose
    /// grace the revocation ends, `retire_at`), the key living on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
    /// The revocation ends this secret only (see `revocation`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ends_secret: bool,
}

/// Keys are enabled unless an update disabled them.
pub(super) fn enabled() -> bool {
    true
}

pub(super) fn is_enabled(enabled: &bool) -> bool {
    *enabled
}

fn is_false(value: &bool) -> bool {
    !*value
}

pub(super) fn is_zero(version: &u64) -> bool {
    *version == 0
}

impl KeyRecord {
    /// Whether the key's expiry has come at `now`. Expiry is decided from the record alone, so
    /// verify still reads once; it is final, so an expired key is as dead as a deleted one.
    pub fn is_expired(&self, now: i64) -> bool {
        has_expired(self.expires_at, now)
    }

    /// Whether this is an old secret of a rolled key whose grace period is over at `now`, or
    /// one a roll in progress is ending.
    pub fn is_retired(&self, now: i64) -> bool {
        has_expired(self.retire_at, now)
            || self
                .restrictions
                .iter()
                .any(|r| has_expired(r.retire_at, now))
    }

    /// Whether a verification of this secret can succeed at `now` (disabled keys aside): the
    /// record is active, the key neither revoked nor expired, and this secret's grace not over.
    pub fn is_live(&self, now: i64) -> bool {
        self.state == KeyState::Active
            && self.revocation.is_none()
            && !self.is_expired(now)
            && !self.is_retired(now)
    }

    /// The record as verify must obey it: every pending restriction applied to its fields.
    pub fn in_force(mut self) -> KeyRecord {
        for restriction in std::mem::take(&mut self.restrictions) {
            self.enabled &= !restriction.disabled;
            if let Some(kept) = &restriction.scopes {
                self.scopes.retain(|scope| kept.contains(scope));
            }
            if let Some(at) = restriction.retire_at {
                self.retire_at = Some(self.retire_at.map_or(at, |earlier| earlier.min(at)));
            }
            // A revocation that ends this secret only retires it (above), the key not revoked.
            if self.revocation.is_none() && !restriction.ends_secret {
                self.revocation = restriction.revocation;
            }
        }
        self
    }

    /// A revocation this record (of secret `hash`) is restricted by that `target`'s entry does
    /// not show: written ahead by a revocation that has not been published (in flight, lost its
    /// race, or its request died). Whoever finds one finishes it (see [`finish_revocation`]);
    /// nobody drops it (see [`KeyRecord::carried`]). One that ends an older secret only is
    /// published once the entry ends that secret's grace no later; if the secret is its key's
    /// current one again (the roll that replaced it was given back), the secret that leaked is
    /// the key's own: the key is revoked.
    pub(super) fn unpublished_revocation(
        &self,
        hash: &str,
        target: &Target,
    ) -> Option<Unpublished> {
        if target.entry.revocation.is_some() {
            return None;
        }
        self.restrictions.iter().find_map(|r| {
            let revocation = r.revocation.clone()?;
            if !r.ends_secret {
                return Some(Unpublished::Key(revocation));
            }
            let end = r.retire_at.unwrap_or(r.at);
            match target.retire_at {
                None => Some(Unpublished::Key(revocation)),
                Some(until) if until <= end => None,
                Some(_) => Some(Unpublished::Secret {
                    hash: hash.to_owned(),
                    revocation,
                    end,
                }),
            }
        })
    }

    /// [`KeyRecord::unpublished_revocation`] of this record as `entry`'s current secret's.
    pub(super) fn unpublished_on_current(&self, entry: &IndexEntry) -> Option<Unpublished> {
        // (The head plays no part in what is unpublished.)
        let target = Target {
            entry,
            head: 0,
            retire_at: None,
        };
        self.unpublished_revocation(&entry.hash, &target)
    }

    /// The restriction's copy of `published` (the same reason and time), which also says where
    /// the key was found; not another revocation's that raced it and lost.
    pub(super) fn restriction_of(&self, published: &Revocation) -> Option<&Revocation> {
        self.restrictions
            .iter()
            .filter_map(|r| r.revocation.as_ref())
            .find(|r| r.reason == published.reason && r.at == published.at)
    }

    /// The record brought in line with `target` (see [`carry`]), or `None` if it is already:
    /// restrictions of a version up to `target.head` dropped (that version is decided, and its
    /// entry says what was published), and, unless the record was carried from that version
    /// or a newer one, the entry's settings and this secret's grace end written into it. A
    /// record that only differs in the version it was carried from is left as it is, so that
    /// a reader does not rewrite every record each time the head moves.
    pub(super) fn carried(&self, target: &Target) -> Option<KeyRecord> {
        let entry = target.entry;
        // A restriction carrying a revocation is never dropped while the entry does not say
        // the key is revoked, decided or not: a revocation needs nobody's consent, so whoever
        // finds it unpublished publishes it (see [`KeyRecord::unpublished_revocation`]), and
        // until then it keeps the key refused.
        let ended_as_published = |r: &Restriction| {
            r.ends_secret
                && (target.retire_at)
                    .is_some_and(|until| r.retire_at.is_some_and(|end| until <= end))
        };
        let kept = |r: &Restriction| {
            r.version > target.head
                || (r.revocation.is_some() && entry.revocation.is_none() && !ended_as_published(r))
        };
        let decided = self.restrictions.iter().any(|r| !kept(r));
        let behind = self.settings_version < target.head
            && (self.name != entry.name
                || self.scopes != entry.scopes
                || self.enabled != entry.enabled
                || self.retire_at != target.retire_at
                || self.revocation.is_some() != entry.revocation.is_some());
        if !decided && !behind {
            return None;
        }
        let mut next = self.clone();
        next.restrictions.retain(kept);
        if self.settings_version < target.head {
            next.name = entry.name.clone();
            next.scopes = entry.scopes.clone();
            next.enabled = entry.enabled;
            next.retire_at = target.retire_at;
            // Only ever set: no version after a revocation publishes the key without it. The
            // entry has only why and when; where the key was found comes from the revocation's
            // own restriction, or stays as an earlier carry wrote it.
            if let Some(published) = &entry.revocation {
                next.revocation = self
                    .revocation
                    .clone()
                    .or_else(|| self.restriction_of(published).cloned())
                    .or_else(|| Some(published.clone()));
            }
            next.settings_version = target.head;
        }
        Some(next)
    }
}

/// The one expiry rule: a key with an expiry stops at that second, and never comes back.
pub(super) fn has_expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

pub(super) fn parse_record(bytes: &[u8]) -> Option<KeyRecord> {
    serde_json::from_slice(bytes).ok()
}

/// What the store holds under a record's key.
// One at a time, on the stack: a record's size is not worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stored {
    Absent,
    /// Written by a newer version (during a rolling upgrade): maybe live, so never judged dead.
    Unreadable,
    Record(KeyRecord),
}

impl Stored {
    fn from_bytes(bytes: Option<Vec<u8>>) -> Stored {
        match bytes {
            None => Stored::Absent,
            Some(bytes) => parse_record(&bytes).map_or(Stored::Unreadable, Stored::Record),
        }
    }

    pub(super) fn record(self) -> Option<KeyRecord> {
        match self {
            Stored::Record(record) => Some(record),
            Stored::Absent | Stored::Unreadable => None,
        }
    }
}

/// Reads the record of `hash` for a decision: a plain `get` where it shows an active record,
/// else again through `watch`, which every backend answers consistently (DynamoDB's plain
/// `get` is eventually consistent unless configured otherwise). So nothing is ever judged
/// absent or dead from a stale read; a stale active record only delays a decision.
pub(super) fn read_record<S: KeyValue>(store: &S, hash: &str) -> Result<Stored, StoreError> {
    let key = record_key(hash);
    let seen = Stored::from_bytes(store.get(&key)?);
    if matches!(&seen, Stored::Record(r) if r.state == KeyState::Active) {
        return Ok(seen);
    }
    Ok(Stored::from_bytes(store.watch(&key)?.1))
}

/// Changes the record of `hash` by compare-and-swap until `rule` has nothing more to change:
/// `rule` sees the record as it is and answers the record it should become, or `None` when it
/// is as it should be. Every write is read back (the swap's answer is not trusted), so the
/// rule must be satisfied by its own result. A record absent or unreadable is never written
/// (a swap after seeing it absent would be an upsert). Returns what the store holds then.
pub(super) fn transition<S: KeyValue>(
    store: &S,
    hash: &str,
    mut rule: impl FnMut(&KeyRecord) -> Option<KeyRecord>,
) -> Result<Stored, StoreError> {
    let key = record_key(hash);
    let mut swapped = false;
    for _ in 0..MAX_ATTEMPTS {
        let (cas, current) = read_back(swapped, || store.watch(&key))?;
        let record = match Stored::from_bytes(current) {
            Stored::Record(record) => record,
            other => return Ok(other),
        };
        let Some(next) = rule(&record) else {
            return Ok(Stored::Record(record));
        };
        swap_unconfirmed(store, cas, &to_json(&next)?);
        swapped = true;
    }
    Err(StoreError("a record kept changing".into()))
}

/// Moves a pending record to `state`, its only way out of pending; a record in any other
/// state is left as it is. Returns what the store holds then.
fn leave_pending<S: KeyValue>(
    store: &S,
    hash: &str,
    state: KeyState,
) -> Result<Stored, StoreError> {
    transition(store, hash, |record| {
        (record.state == KeyState::Pending).then(|| KeyRecord {
            state,
            ..record.clone()
        })
    })
}

/// Turns a pending record active (a create's or a roll's new secret, once published). Fails if
/// it is anything else by then: revoked (abandoned, or its roll withdrawn), deleted or gone —
/// those win over the activation, which is what keeps a secret nobody lists from going live.
pub(super) fn activate<S: KeyValue>(store: &S, hash: &str) -> Result<KeyRecord, ApiError> {
    match leave_pending(store, hash, KeyState::Active)? {
        // Active: this request's swap landed, or another request helped it (see [`roll`]).
        Stored::Record(record) if record.state == KeyState::Active => Ok(record),
        _ => Err(ApiError::StoreUnavailable(cause::NOT_ACTIVATED)),
    }
}

/// Moves a pending record to revoked, so that it can never be activated. `true` if the record
/// is now dead for good (revoked, deleted or gone), `false` if it turned active meanwhile or
/// cannot be read by this version.
pub(super) fn revoke_pending<S: KeyValue>(store: &S, hash: &str) -> Result<bool, StoreError> {
    Ok(match leave_pending(store, hash, KeyState::Revoked)? {
        Stored::Absent => true,
        Stored::Unreadable => false,
        Stored::Record(record) => matches!(record.state, KeyState::Revoked | KeyState::Deleted),
    })
}

/// Whether a record can still verify, now or once activated: restrictions on others are moot.
fn may_verify(record: &KeyRecord) -> bool {
    matches!(record.state, KeyState::Pending | KeyState::Active)
}

/// Adds `restriction` to the record of `hash`, dropping this request's own earlier ones of
/// the versions in `dead` (proposals it knows can never be published). A record that can no
/// longer verify, or is gone, is left as it is.
pub(super) fn restrict<S: KeyValue>(
    store: &S,
    hash: &str,
    restriction: &Restriction,
    dead: &[u64],
) -> Result<(), StoreError> {
    transition(store, hash, |record| {
        let stale = |r: &Restriction| dead.contains(&r.version);
        let present = record.restrictions.contains(restriction);
        if !may_verify(record) || (present && !record.restrictions.iter().any(stale)) {
            return None;
        }
        let mut next = record.clone();
        next.restrictions.retain(|r| !stale(r) && r != restriction);
        next.restrictions.push(restriction.clone());
        Some(next)
    })
    .map(drop)
}

/// Removes this request's restrictions of the versions in `dead` from the record of `hash`:
/// proposals it knows were never published and never will be, so nothing they would have
/// taken away was ever shown as taken. Never one carrying a revocation: a revocation that
/// reached a record is finished by whoever finds it (see [`finish_revocation`]), its own
/// request included, and another reader may be publishing it at this very moment.
pub(super) fn withdraw<S: KeyValue>(store: &S, hash: &str, dead: &[u64]) -> Result<(), StoreError> {
    transition(store, hash, |record| {
        let stale = |r: &Restriction| dead.contains(&r.version) && r.revocation.is_none();
        record.restrictions.iter().any(stale).then(|| {
            let mut next = record.clone();
            next.restrictions.retain(|r| !stale(r));
            next
        })
    })
    .map(drop)
}

/// What one secret's record should say according to a key's entry in index version `head`.
pub(super) struct Target<'a> {
    pub(super) entry: &'a IndexEntry,
    pub(super) head: u64,
    /// The end of this secret's grace, if it is an older secret of the entry; `None` for its
    /// current secret.
    pub(super) retire_at: Option<i64>,
}

impl<'a> Target<'a> {
    /// Every secret of `entry`, older ones first, each with what its record should say: the
    /// order in which restrictions are written, carried and withdrawn, so that a record behind
    /// its entry always shows on the current secret, the one list reads.
    pub(super) fn all(
        entry: &'a IndexEntry,
        head: u64,
    ) -> impl Iterator<Item = (&'a str, Target<'a>)> {
        let previous = entry.previous.iter().map(move |p| {
            let target = Target {
                entry,
                head,
                retire_at: Some(p.until),
            };
            (p.hash.as_str(), target)
        });
        let current = Target {
            entry,
            head,
            retire_at: None,
        };
        previous.chain(std::iter::once((entry.hash.as_str(), current)))
    }
}

/// Brings the record of `hash` in line with `target` (see [`KeyRecord::carried`]). Records
/// carried from a newer version only lose decided restrictions, so carries in any order leave
/// the newest. The state is left as it is; a record that can no longer verify is not written.
pub(super) fn carry<S: KeyValue>(
    store: &S,
    hash: &str,
    target: &Target,
) -> Result<Stored, StoreError> {
    transition(store, hash, |record| {
        if may_verify(record) {
            record.carried(target)
        } else {
            None
        }
    })
}

/// Writes `now` as the record's last use by compare-and-swap against the active record: a
/// delete since verify's read makes the swap fail (or finds nothing to swap), so it can never
/// bring the key back, as a blind write would. Best effort: whether it landed is not read back
/// (a lost update is retried by the next verification after the hour).
pub(super) fn record_use<S: KeyValue>(store: &S, key: &str, now: i64) -> Result<(), StoreError> {
    let (cas, current) = store.watch(key)?;
    let Some(mut record) = current.as_deref().and_then(parse_record) else {
        return Ok(());
    };
    // Another verification may have just recorded it.
    if record.state != KeyState::Active || !is_stale(record.last_used_at, now) {
        return Ok(());
    }
    record.last_used_at = Some(now);
    swap_unconfirmed(store, cas, &to_json(&record)?);
    Ok(())
}

/// Whether a last use recorded at `last_used_at` is due to be recorded again at `now`.
pub(super) fn is_stale(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now - t >= USAGE_GRANULARITY_SECS)
}

//! Revoke: a key whose secret leaked, or whose holder asks, dead for good, yet kept in its
//! owner's list, as revoked, until the owner deletes it.

use super::*;

/// The longest `url` a revocation keeps, in bytes; a longer one is not kept (it would be cut
/// into a link to somewhere else).
pub const MAX_URL_BYTES: usize = 2048;
/// The longest `source` a revocation keeps, in bytes.
pub const MAX_SOURCE_BYTES: usize = 64;
/// How many revoked keys a user's index keeps beyond the keys that count toward the limit:
/// revoked keys do not count, but the index does not grow without bound, so the oldest
/// revoked key is let go (with a `deleted` event, reason `revoked`) when a create needs room.
pub const MAX_REVOKED_KEPT: usize = 10;

impl Revocation {
    /// A revocation for `reason` at `at`, keeping of a scanner's report only what is safe to
    /// show: an `http(s)` URL of at most [`MAX_URL_BYTES`] and a `source` of at most
    /// [`MAX_SOURCE_BYTES`], both visible ASCII (a URL is shown as a link: no `javascript:`).
    pub fn new(reason: &str, url: Option<&str>, source: Option<&str>, at: i64) -> Revocation {
        let visible = |text: &&str| text.bytes().all(|b| b.is_ascii_graphic());
        let url = url
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .filter(|u| u.len() <= MAX_URL_BYTES)
            .filter(visible);
        let source = source
            .filter(|s| !s.is_empty() && s.len() <= MAX_SOURCE_BYTES)
            .filter(visible);
        Revocation {
            reason: reason.to_owned(),
            at,
            url: url.map(str::to_owned),
            source: source.map(str::to_owned),
        }
    }
}

/// Revokes the key whose secret hashes to `hash`, if it is a live key (a disabled one too: it
/// could be enabled again), and answers whether it was: `true` for a key revoked now or
/// before, `false` for a secret that is no live key's (unknown, deleted, expired, an old
/// secret past its grace once the roll that replaced it went live). Every secret of the key
/// stops verifying (`401 key_revoked`) before this answers; the key stays listed, revoked,
/// with a `revoked` event.
///
/// An older secret still in its grace is ended alone, its key living on: the current secret
/// did not leak (it may be what replaced the one that did), and a holder rolled away from (a
/// contractor whose secret was replaced, with a grace) cannot end the secret that replaced
/// theirs. Its grace ends at once, on its record first; the entry's grace end for it follows,
/// with a `revoked` event naming the secret by its preview (`secret_preview`) — its id that
/// secret's own, so a replayed alert finds it and answers `true` again.
///
/// One read of the secret's record decides: a record already carrying a revocation was
/// revoked and published, so a replayed alert costs that one read. Otherwise the revocation
/// takes an update's steps ([`amend`]): the restriction on every secret's record first —
/// from there verify refuses the key —, then the entry published as revoked with its event,
/// then carried onto the records. Its event id is the key's own, so two revocations racing
/// publish it once, and the later one finds it and answers `true` too. A roll in flight is
/// revoked with the key (its new secret gets the restriction, and activation keeps it); one
/// not yet published loses its race and then finds the key revoked, which it may not roll.
/// Once a restriction of it is on a record, it is never undone: a 503, or a request that dies,
/// leaves it for whoever reads the key next to finish (module docs, "Repair"); a retry
/// finishes it too.
pub fn revoke<S: KeyValue>(
    store: &S,
    hash: &str,
    revocation: &Revocation,
    now: i64,
) -> Result<bool, ApiError> {
    let record = match read_record(store, hash)? {
        Stored::Record(record) => record,
        Stored::Absent => return Ok(false),
        // A newer version's record (a rolling upgrade), maybe live: not to be called no key.
        Stored::Unreadable => return Err(ApiError::StoreUnavailable(cause::UNREADABLE_VALUE)),
    };
    if record.state != KeyState::Active {
        return Ok(false);
    }
    let in_force = record.clone().in_force();
    if record.revocation.is_some() {
        // Carried from a published entry: revoked, and nothing is left to do (no roll of a
        // revoked key can bring back a secret whose grace ended).
        return Ok(!in_force.is_retired(now));
    }
    if in_force.revocation.is_none() && in_force.is_expired(now) {
        // Expiry is final.
        return Ok(false);
    }
    // A secret that looks past its grace is judged from the index (see [`amend`]): the roll
    // that ended it may not have gone live, and would then be given back.
    let amendment = Amendment::Revoke { revocation, hash };
    let event_id = revocation_event_id(&record.key_id);
    match amend(
        store,
        &record.user_id,
        &record.key_id,
        &amendment,
        &event_id,
        now,
    ) {
        Ok(_) => Ok(true),
        // Deleted meanwhile, or no longer listing this secret: no live key's.
        Err(ApiError::KeyNotFound) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The id of the event of key `key_id`'s revocation: a key is revoked once, so it is unique.
pub(super) fn revocation_event_id(key_id: &str) -> String {
    format!("{key_id}/revoked")
}

/// The id of the event of a revocation that ended the older secret `hash` of key `key_id`:
/// unique for that secret (a prefix of its hash suffices among a key's few secrets).
pub(super) fn older_secret_revocation_event_id(key_id: &str, hash: &str) -> String {
    format!("{key_id}/revoked/{}", &hash[..hash.len().min(16)])
}

/// Ends the grace of `entry`'s older secret at position `at` at `end`, for `revocation` (a
/// leak of that secret, or its holder's request), and answers the event of it: a `revoked`
/// event naming the secret by its preview. The key lives on with its current secret.
pub(super) fn end_older_secret(
    entry: &mut IndexEntry,
    at: usize,
    revocation: &Revocation,
    end: i64,
) -> Event {
    entry.previous[at].until = entry.previous[at].until.min(end);
    let id = older_secret_revocation_event_id(&entry.id, &entry.previous[at].hash);
    let mut event = Event::new(id, EventKind::Revoked, revocation.at, entry);
    event.reason = Some(revocation.reason.clone());
    event.url = revocation.url.clone();
    event.source = revocation.source.clone();
    event.secret_preview = Some(entry.previous[at].preview.clone());
    event
}

/// Makes `entry` revoked by `revocation` in index version `version`, and answers the event of
/// it: the entry keeps why and when only (where the key was found goes into the records and
/// the event, see [`IndexEntry::revocation`]). The same for a revocation made now and for one
/// finished by whoever found it unpublished ([`finish_revocation`]).
pub(super) fn revoke_entry(entry: &mut IndexEntry, revocation: &Revocation, version: u64) -> Event {
    entry.revocation = Some(Revocation {
        url: None,
        source: None,
        ..revocation.clone()
    });
    entry.settings_version = version;
    let id = revocation_event_id(&entry.id);
    let mut event = Event::new(id, EventKind::Revoked, revocation.at, entry);
    event.reason = Some(revocation.reason.clone());
    event.url = revocation.url.clone();
    event.source = revocation.source.clone();
    event
}

/// Revokes the key at `position` of `index` in the index version `version` (about to be
/// proposed), with its event unless the index holds it already — after writing the
/// revocation, as a restriction of that version, on the record of every secret the entry
/// lists, older ones first: a revocation takes rights away, so it reaches what verify reads
/// before the index says it happened (a roll may have given the key a secret the revocation
/// did not reach when it was written).
pub(super) fn revoke_in<S: KeyValue>(
    store: &S,
    index: &mut Index,
    position: usize,
    revocation: &Revocation,
    version: u64,
    now: i64,
) -> Result<(), StoreError> {
    let restriction = Restriction {
        version,
        at: now,
        disabled: false,
        scopes: None,
        retire_at: None,
        revocation: Some(revocation.clone()),
        ends_secret: false,
    };
    for hash in index.keys[position].all_hashes() {
        restrict(store, hash, &restriction, &[])?;
    }
    let event = revoke_entry(&mut index.keys[position], revocation, version);
    if !index.events.iter().any(|e| e.id == event.id) {
        index.record(event);
    }
    Ok(())
}

/// A revocation found written ahead on a record but not published (see
/// [`KeyRecord::unpublished_revocation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Unpublished {
    /// Of the whole key.
    Key(Revocation),
    /// Of the older secret `hash` only, ending its grace at `end`.
    Secret {
        hash: String,
        revocation: Revocation,
        end: i64,
    },
}

impl Unpublished {
    /// Of two found for one key, the one to publish: the whole key's covers any one secret's.
    pub(super) fn or_stronger(self, found: Unpublished) -> Unpublished {
        match (&self, &found) {
            (Unpublished::Secret { .. }, Unpublished::Key(_)) => found,
            _ => self,
        }
    }

    /// Publishes it in `index` (about to be proposed as `version`) for the key at `position`:
    /// the key revoked (see [`revoke_in`]), or the older secret's grace ended with its event
    /// (its record holds the revocation already: that is where it was found). An older secret
    /// the entry no longer lists is dead already: nothing to publish.
    pub(super) fn publish_in<S: KeyValue>(
        &self,
        store: &S,
        index: &mut Index,
        position: usize,
        version: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        match self {
            Unpublished::Key(revocation) => {
                revoke_in(store, index, position, revocation, version, now)
            }
            Unpublished::Secret {
                hash,
                revocation,
                end,
            } => {
                let entry = &mut index.keys[position];
                if let Some(at) = entry.previous.iter().position(|p| &p.hash == hash) {
                    let event = end_older_secret(entry, at, revocation, *end);
                    if !index.events.iter().any(|e| e.id == event.id) {
                        index.record(event);
                    }
                }
                Ok(())
            }
        }
    }
}

/// Finishes a revocation found written ahead on a record of the key at `position` but not
/// published (see [`KeyRecord::unpublished_revocation`]): proposes `index` from `head` with
/// it published. Returns the version proposed; whether it landed is for the caller to read
/// back (the next round finds it published, or still unpublished).
///
/// Why finish it rather than drop it: its request may have died, and then nobody else would;
/// dropping it would let a leaked secret verify again. Whoever finds it may publish it — the
/// revocation's own request included, which then finds its event landed — because all
/// revocations of a key are one change, published once (its event id is the key's).
#[allow(clippy::too_many_arguments)] // A round's reading (cas, head, index) and what it found.
pub(super) fn finish_revocation<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    cas: S::Cas,
    head: Head,
    index: &Index,
    position: usize,
    unpublished: &Unpublished,
    now: i64,
) -> Result<u64, StoreError> {
    let mut index = index.clone();
    let version = next_version(store, user, head)?;
    unpublished.publish_in(store, &mut index, position, version, now)?;
    publish(store, user, cas, head, version, &index)?;
    Ok(version)
}

/// Lets go of the oldest revoked keys of `index` (in the index's order: the oldest created) until it has room for one more entry within
/// `max_keys` + [`MAX_REVOKED_KEPT`], each with its `deleted` event (reason `revoked`); their
/// secrets' hashes go to `dropped`. Safe without killing their records first: a published
/// revocation's restriction is on every secret the entry lists, so none of them verifies.
pub(super) fn let_go_of_revoked(
    index: &mut Index,
    max_keys: usize,
    dropped: &mut Vec<String>,
    now: i64,
) {
    while index.keys.len() >= max_keys + MAX_REVOKED_KEPT {
        let Some(oldest) = index.keys.iter().position(|e| e.revocation.is_some()) else {
            return;
        };
        let removed = index.keys.remove(oldest);
        for hash in removed.all_hashes() {
            if !dropped.iter().any(|d| d == hash) {
                dropped.push(hash.to_owned());
            }
        }
        remove_entry(index, removed, Some("revoked"), now);
    }
}

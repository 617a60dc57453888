//! The storage protocol: how keys are added, removed, listed and found in the key-value store,
//! and why that stays correct when requests interleave or die between any two operations.
//!
//! # Layout (every store key is namespaced with `apikeys/v1/`, since a shared Redis has no prefix)
//!
//! | store key | value | written by |
//! |---|---|---|
//! | `key/<sha256(key)>` | [`KeyRecord`]: state, owner, id, settings (name, scopes, enabled), last use, expiry, end of grace (an old secret of a rolled key) | create, delete, update, roll; verify at most hourly |
//! | `user/<sha256(user id)>/head` | number of the user's current index version | create, delete, update, roll |
//! | `user/<sha256(user id)>/seq` | counter handing out index version numbers | create, delete, update, roll |
//! | `user/<sha256(user id)>/index/<n>` | [`Index`] version `n`: the user's keys (each with its current secret's hash and its older secrets' in their grace), oldest first, and their latest changes | create, delete, update, roll |
//!
//! Only SHA-256 hashes of keys are at rest. Nothing reads the whole store.
//!
//! # Why this shape
//! Spin's SQLite store has no "create if absent": a compare-and-swap whose read saw the key
//! absent is an upsert that silently overwrites a concurrent writer. Its only atomic operations
//! are `increment` (which creates a key atomically) and compare-and-swap *on a present value*.
//! So the protocol:
//! - never swaps after seeing a key absent;
//! - creates the one mutable per-user register, `head`, with `increment(head, 0)`, which makes
//!   it 0 if absent and leaves it unchanged otherwise (head is always an integer in the store's
//!   own increment encoding, so a late `increment(head, 0)` is harmless);
//! - writes each index version once, under a number from `increment(seq, 1)` that no other
//!   request ever gets, and publishes it by compare-and-swap of `head` from the version it was
//!   derived from (copy-on-write: a lost race is detected, never a lost write);
//! - gives every key its own record, keyed by the key's hash, so that verify reads exactly one
//!   entry, and moves that record from `pending` to `active` by compare-and-swap.
//!
//! # Why no compare-and-swap answer is trusted
//! The swap itself is sound on every Spin backend (the write lands only if the value did not
//! change), but its *answer* is not: Spin's Redis backend answers `cas-failed` after every swap,
//! landed or not (it sends `UNWATCH key`, which Redis refuses), and reads an aborted `EXEC` as
//! success, so once that is fixed a lost race will be answered as a win; DynamoDB answers
//! `cas-failed` for a timeout after the write landed. So the protocol ignores the answer
//! ([`swap_unconfirmed`]) and decides by reading back what it can identify as its own:
//! - a publish landed iff the index that `head` names afterwards shows its change (the new key's
//!   hash is there, or the deleted id is gone): hashes and ids are unique, and only this request
//!   adds its own key, so a retry never appends it twice and a delete that happened is never
//!   reported as failed;
//! - an activation or a revocation landed iff the record read afterwards is in the new state;
//! - a last-use update needs no answer at all: it is best effort, and its guard alone keeps it
//!   from resurrecting a deleted record.
//!
//! Index versions that a request wrote or built on are removed only once `head` has been read
//! after its last swap and names another version: version numbers are never reused, so such a
//! version can never be published again (see [`Versions`]). Nothing deletes a version that may
//! be the published one.
//!
//! # Create (key k, user u)
//! 1. `set key/k = pending` — nobody else knows k, so a plain write is safe. Not live.
//! 2. Loop: read `head` (compare-and-swap handle) and the index it names; if the index holds
//!    `max` keys, drop entries whose record is gone, revoked, expired, or pending for longer than
//!    [`ABANDONED_AFTER_SECS`] (revoking such a record by compare-and-swap first); if still
//!    full, answer `key_limit_reached`. Otherwise write index version `n = increment(seq)` with
//!    k appended and swap `head` to `n`; then start over from the head: once the index it names
//!    lists k, the publish has landed.
//! 3. Swap `key/k` from exactly the pending bytes written in 1 to `active`, and read it back until
//!    it is active. From here on k verifies. If the record is no longer those bytes (deleted, or
//!    revoked as abandoned), the swap is not attempted and the create fails: k never becomes live.
//!
//! # Delete (id, user u)
//! Read head and index; find the id (else `key_not_found`); delete the records of its secrets,
//! older ones first — from these writes on the key no longer verifies; then publish an index
//! without it as in create, until the index `head` names no longer lists the id (whoever
//! removed it). A retry after a failure finds the id still listed and finishes the job.
//!
//! # Update (id, user u, wanted settings, a fresh random event id e)
//! The index is where an update happens; the record follows it.
//! 1. Read head and index; find the id (else `key_not_found`). If the index already holds
//!    event e, the update landed: go to 3. If nothing would change, go to 3 too (no event).
//! 2. Check the key's record is active (else `key_not_found`: a key in flight is not the user's
//!    to change, and a refusal is no change). A key mid-roll is `store_unavailable` while the
//!    roll is in flight (it activates a secret written with the settings it published); after
//!    a roll that failed or died, the update goes ahead on the secrets the key still has.
//!    Write index version `n = increment(seq)` with the entry's settings changed, its
//!    `settings_version = n`, and event e appended (the last [`MAX_EVENTS`] kept); swap
//!    `head` to `n`; start over from the head.
//! 3. Carry the settings of the entry at the head (this update's or a later one's) onto the
//!    record of each of its live secrets (and each older secret's grace end, see [`retire`]) by
//!    compare-and-swap, only if the record's `settings_version` is lower, reading it
//!    back until it is not. Then answer: from here on every verify sees these settings.
//!
//! Version numbers grow along the chain of published versions, so `settings_version` orders
//! any two states of a key and two updates carried in either order leave the newer one; the
//! record is written whole, so verify never sees half of one update and half of another. A
//! record seen absent (deleted) is never written. An update that dies between 2 and 3 leaves
//! the record behind the index (list shows the new settings, verify the old) until the next
//! update of that key, or its retry, carries them; it answered no 200, so no client relies on
//! it yet.
//!
//! # Roll (id, user u, new secret k', grace g, a fresh random event id e)
//! A key can have several secrets: the current one and older ones a roll replaced, each in its
//! grace period, all listed in the key's index entry (hash and grace end). Each has its own
//! record, so verify still reads one. The steps, and why each is safe, are at [`roll`]: the new
//! record is written pending, published with the older secrets and event e, then the older
//! secrets are retired (`retire_at` on their records, or deleted if the grace is over) and only
//! then is k' activated; a roll that fails after publishing still retires the older secrets
//! and revokes k', which nobody was shown (one that dies there leaves the old secret live
//! until the key's next roll, update or delete: see [`roll`]). Delete kills the older secrets
//! before the current one, so the entry stays listed while any of its secrets lives.
//!
//! # Verify
//! One `get key/k`: valid iff the record is `active`, enabled, not expired and not retired. If
//! its last use is over [`USAGE_GRANULARITY_SECS`] old, the new time is written by
//! compare-and-swap of the record (a blind write could resurrect a key deleted since the
//! read); that costs a second read and a write at most once per key and hour, and its failure
//! is ignored. (Not `get_many`: Spin's Redis backend implements it with `KEYS`, which fails;
//! every read here is a plain `get`.)
//!
//! # Invariants, for every interleaving and any failed operation
//! - **Live ⇒ listed.** Every live secret is the current or an older secret of an entry list
//!   shows, so delete can kill it. A record turns `active` only in step 3, after the index
//!   holding k was published (a roll's likewise, and an older secret stays in the entry until
//!   its grace is over, or until it is deleted, older secrets first). k leaves an index only
//!   after its record was deleted (delete) or revoked / found absent (reclaim), and the step-3
//!   swap fails against either, because it compares with the
//!   present pending bytes. An active record is never revoked or dropped before it expires:
//!   reclaim only takes records that are absent, revoked, expired or pending (expiry is final,
//!   and verify refuses an expired record by itself). Verify's last-use swap compares with the
//!   present active record, so it cannot bring a deleted one back.
//! - **The limit holds.** Index versions form a chain through compare-and-swap on `head`, each
//!   derived from the one it replaces; every version that adds a key has fewer than `max`
//!   entries before it, and live keys ⊆ entries of the current version.
//! - **Deleted means dead at once.** Delete removes every secret's record before it answers.
//! - **Failures leave nothing half-made.** A failed create deletes its record (best effort);
//!   whatever remains is an index entry whose record is absent or pending: not live, not shown by
//!   list, and reclaimed as soon as the slot is needed — at once if absent, after
//!   [`ABANDONED_AFTER_SECS`] if pending (the bounded wait after a request died mid-create).
//!   A failed delete has either changed nothing or already killed the key; its retry succeeds.
//! - **Bounded work.** Every loop is bounded by [`MAX_ATTEMPTS`]; each swap that did not land
//!   means another request's did. List reads the head, one index and at most `max` records.
//!
//! # Cost (store operations, no contention)
//! Reading back costs create and delete one more `watch` of the head and one more index read,
//! and create one more record read after activation; verify stays one `get`.
//!
//! Garbage that may remain after failures or crashes (an unpublished index version, the record of
//! a create that died before publishing) is never read as live data and is a few entries at most
//! per failure.

use crate::error::ApiError;
use crate::key::sha256_hex;
use crate::store::{KeyValue, StoreError};
use serde::{Deserialize, Serialize};

/// A create pending this long (seconds) is taken as abandoned by a request that died.
pub const ABANDONED_AFTER_SECS: i64 = 30;
/// `last_used_at` is refreshed at most once per key per this many seconds.
pub const USAGE_GRANULARITY_SECS: i64 = 3600;
/// Upper bound on optimistic retries of one request before it answers 503.
pub const MAX_ATTEMPTS: usize = 64;
/// How often a failed read is retried when it is the read-back of a swap that may have landed.
pub const READ_BACK_RETRIES: usize = 2;
/// How many of the latest changes an index version keeps (see [`Index::events`]).
pub const MAX_EVENTS: usize = 100;
/// How many older secrets of one rolled key may still be in their grace period; a roll beyond
/// that ends the grace of the one ending first.
pub const MAX_PREVIOUS_SECRETS: usize = 3;
/// The longest grace period a roll may give the secret it replaces: 7 days.
pub const MAX_GRACE_SECS: i64 = 7 * 24 * 3600;

const NAMESPACE: &str = "apikeys/v1";

/// Lifecycle of a key's record; only `Active` verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Pending,
    Active,
    Revoked,
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
    /// The index version whose settings (name, scopes, enabled) the record carries: 0 until an
    /// update changes them. Settings are only ever carried forward (see [`update`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub settings_version: u64,
    /// Unix seconds from which this secret no longer verifies because its key was rolled to a
    /// new one (the end of the grace period); absent: it is the key's current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

/// Keys are enabled unless an update disabled them.
fn enabled() -> bool {
    true
}

fn is_enabled(enabled: &bool) -> bool {
    *enabled
}

fn is_zero(version: &u64) -> bool {
    *version == 0
}

impl KeyRecord {
    /// Whether the key's expiry has come at `now`. Expiry is decided from the record alone, so
    /// verify still reads once; it is final, so an expired key is as dead as a deleted one.
    pub fn is_expired(&self, now: i64) -> bool {
        has_expired(self.expires_at, now)
    }

    /// Whether this is an old secret of a rolled key whose grace period is over at `now`.
    pub fn is_retired(&self, now: i64) -> bool {
        has_expired(self.retire_at, now)
    }

    /// Whether a verification of this secret can succeed at `now` (disabled keys aside): the
    /// record is active, and neither the key has expired nor this secret's grace ended.
    pub fn is_live(&self, now: i64) -> bool {
        self.state == KeyState::Active && !self.is_expired(now) && !self.is_retired(now)
    }
}

/// The one expiry rule: a key with an expiry stops at that second, and never comes back.
fn has_expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

/// One key in a user's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub hash: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub preview: String,
    /// Whether the key may verify. Absent: enabled.
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
    /// The index version that last changed this key's settings (0: none since create). It
    /// grows along the chain of published versions, so it orders any two states of the key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub settings_version: u64,
    /// Older secrets of this key, replaced by a roll and verifying until their grace ends
    /// (at most [`MAX_PREVIOUS_SECRETS`] in their grace, and until the next roll those whose
    /// grace just ended). Listed here so that delete can kill them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousSecret>,
}

/// An older secret of a rolled key: its hash and the end of its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub hash: String,
    /// Unix seconds from which it no longer verifies.
    pub until: i64,
}

impl IndexEntry {
    /// The hashes of all this key's secrets, older ones first: the order delete kills them in,
    /// so that a secret still live always has a listed entry (see [`delete`]).
    fn all_hashes(&self) -> impl Iterator<Item = &str> {
        let previous = self.previous.iter().map(|p| p.hash.as_str());
        previous.chain(std::iter::once(self.hash.as_str()))
    }

    /// When the last of the older secrets stops verifying, if one is still in its grace period.
    pub fn previous_expires_at(&self, now: i64) -> Option<i64> {
        self.previous
            .iter()
            .map(|p| p.until)
            .filter(|until| *until > now)
            .max()
    }
}

/// One immutable version of a user's list of keys, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub keys: Vec<IndexEntry>,
    /// The user's latest [`MAX_EVENTS`] changes, oldest first, published in the same swap as
    /// the change itself: an update that reads its own event back at the head knows it landed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// One change to a user's keys, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique (random): how the request that made the change recognises it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Unix seconds.
    pub at: i64,
    pub key_id: String,
    /// The key's name after the change.
    pub name: String,
    /// What changed, old to new (`updated`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// Why a key was removed other than by its owner's delete (`deleted`): `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds when the secret a roll replaced stops verifying (`rolled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<i64>,
}

impl Event {
    fn new(id: String, kind: EventKind, at: i64, entry: &IndexEntry) -> Event {
        Event {
            id,
            kind,
            at,
            key_id: entry.id.clone(),
            name: entry.name.clone(),
            changes: Vec::new(),
            reason: None,
            previous_key_expires_at: None,
        }
    }
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Updated,
    Rolled,
    Deleted,
}

impl Index {
    /// Appends `event`, keeping the latest [`MAX_EVENTS`].
    fn record(&mut self, event: Event) {
        self.events.push(event);
        let excess = self.events.len().saturating_sub(MAX_EVENTS);
        self.events.drain(..excess);
    }
}

/// The id of the event of key `key_id`'s removal: a key is removed once, so it is unique.
fn removal_event_id(key_id: &str) -> String {
    format!("{key_id}/deleted")
}

/// One setting an update changed: `field` went from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// The settings an update asks for; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl IndexEntry {
    /// What `wanted` would change in this entry, old to new; empty if nothing.
    fn changes_to(&self, wanted: &Settings) -> Vec<FieldChange> {
        let mut changes = Vec::new();
        let mut differs = |field: &str, from: serde_json::Value, to: serde_json::Value| {
            if from != to {
                changes.push(FieldChange {
                    field: field.to_owned(),
                    from,
                    to,
                });
            }
        };
        if let Some(name) = &wanted.name {
            differs("name", self.name.clone().into(), name.clone().into());
        }
        if let Some(scopes) = &wanted.scopes {
            differs("scopes", self.scopes.clone().into(), scopes.clone().into());
        }
        if let Some(enabled) = wanted.enabled {
            differs("enabled", self.enabled.into(), enabled.into());
        }
        changes
    }

    fn apply(&mut self, wanted: &Settings, version: u64) {
        if let Some(name) = &wanted.name {
            self.name = name.clone();
        }
        if let Some(scopes) = &wanted.scopes {
            self.scopes = scopes.clone();
        }
        if let Some(enabled) = wanted.enabled {
            self.enabled = enabled;
        }
        self.settings_version = version;
    }
}

/// A key as list (and update) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    pub entry: IndexEntry,
    /// Unix seconds of the last verification, if any was recorded.
    pub last_used_at: Option<i64>,
    /// Unix seconds from which the key no longer verifies, if it expires.
    pub expires_at: Option<i64>,
    /// When the last older secret of a rolled key stops verifying, if one still does.
    pub previous_expires_at: Option<i64>,
}

impl KeySummary {
    /// Whether the key counts toward its user's limit at `now`: an expired key does not (the
    /// next create that needs its slot reclaims it).
    pub fn counts_toward_limit(&self, now: i64) -> bool {
        !has_expired(self.expires_at, now)
    }
}

/// The store keys of one user.
struct UserSpace {
    head: String,
    seq: String,
    index_prefix: String,
}

impl UserSpace {
    fn of(user_id: &str) -> UserSpace {
        // Hashing bounds the length (user ids may be 256 multi-byte characters; store keys 255
        // bytes) and keeps arbitrary characters out of store keys.
        let base = format!("{NAMESPACE}/user/{}", sha256_hex(user_id));
        UserSpace {
            head: format!("{base}/head"),
            seq: format!("{base}/seq"),
            index_prefix: format!("{base}/index/"),
        }
    }

    fn index(&self, version: u64) -> String {
        format!("{}{version}", self.index_prefix)
    }
}

/// Store key of the record of the key with SHA-256 `hash`.
pub fn record_key(hash: &str) -> String {
    format!("{NAMESPACE}/key/{hash}")
}

/// How the store encodes the integers `increment` writes: Spin's SQLite store uses 8 bytes
/// little-endian, Redis and DynamoDB decimal text. `head` is rewritten in the encoding it was
/// found in, so a later `increment(head, 0)` never meets a value it cannot add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntEncoding {
    LittleEndian,
    Decimal,
}

#[derive(Debug, Clone, Copy)]
struct Head {
    version: u64,
    encoding: IntEncoding,
}

impl Head {
    fn decode(bytes: &[u8]) -> Result<Head, StoreError> {
        let is_decimal =
            !bytes.is_empty() && bytes.len() <= 20 && bytes.iter().all(u8::is_ascii_digit);
        // Versions stay far below 2^56, so an 8-byte little-endian one ends in a zero byte and is
        // never all ASCII digits: the two encodings cannot be confused.
        if is_decimal {
            let text = std::str::from_utf8(bytes).map_err(|_| corrupt("head"))?;
            let version = text.parse().map_err(|_| corrupt("head"))?;
            Ok(Head {
                version,
                encoding: IntEncoding::Decimal,
            })
        } else {
            let array: [u8; 8] = bytes.try_into().map_err(|_| corrupt("head"))?;
            let version = u64::try_from(i64::from_le_bytes(array)).map_err(|_| corrupt("head"))?;
            Ok(Head {
                version,
                encoding: IntEncoding::LittleEndian,
            })
        }
    }

    fn encode(version: u64, encoding: IntEncoding) -> Vec<u8> {
        match encoding {
            IntEncoding::LittleEndian => (version as i64).to_le_bytes().to_vec(),
            IntEncoding::Decimal => version.to_string().into_bytes(),
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError(format!("unreadable {what} value"))
}

fn parse_record(bytes: &[u8]) -> Option<KeyRecord> {
    serde_json::from_slice(bytes).ok()
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("serialise: {e}")))
}

/// Starts a compare-and-swap on the user's head, creating it first if it is absent.
fn watch_head<S: KeyValue>(store: &S, user: &UserSpace) -> Result<(S::Cas, Head), StoreError> {
    if let (cas, Some(bytes)) = store.watch(&user.head)? {
        return Ok((cas, Head::decode(&bytes)?));
    }
    // Absent: a swap now would be an upsert able to overwrite a concurrent first write (see the
    // module docs). `increment(head, 0)` creates it as 0 atomically, or leaves it as it is.
    store.increment(&user.head, 0)?;
    match store.watch(&user.head)? {
        (cas, Some(bytes)) => Ok((cas, Head::decode(&bytes)?)),
        (_, None) => Err(StoreError("head vanished after being created".into())),
    }
}

/// Starts a change of a user's existing index: a compare-and-swap handle on `head` and the index
/// it names, both read back with retries when `unconfirmed` (see [`read_back`]). `Ok(None)`: the
/// version was removed meanwhile, start over. A user without a head has no keys:
/// `key_not_found`.
fn watch_index<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    unconfirmed: bool,
) -> Result<Option<(S::Cas, Head, Index)>, ApiError> {
    let (cas, head) = match read_back(unconfirmed, || store.watch(&user.head))? {
        (cas, Some(bytes)) => (cas, Head::decode(&bytes)?),
        (_, None) => return Err(ApiError::KeyNotFound),
    };
    let index = read_back(unconfirmed, || read_index(store, user, head.version))?;
    Ok(index.map(|index| (cas, head, index)))
}

/// Reads index `version`; `None` if it is gone because a concurrent writer moved on and removed
/// it (the caller starts over from the head).
fn read_index<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    version: u64,
) -> Result<Option<Index>, StoreError> {
    if version == 0 {
        return Ok(Some(Index::default()));
    }
    match store.get(&user.index(version))? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| corrupt("index")),
        None => Ok(None),
    }
}

/// Runs a compare-and-swap and discards what the store answers, which no Spin backend answers
/// reliably (see the module docs): callers decide whether it landed by reading back. An error
/// is discarded too: it may come after the write landed (Spin's Redis host reports the failure
/// of the fresh handle it opens after every swap as a store error), and a store that is really
/// down fails the read-back.
fn swap_unconfirmed<S: KeyValue>(store: &S, cas: S::Cas, value: &[u8]) {
    let _unreliable_answer = store.swap(cas, value);
}

/// Runs `read`; when it reads back a swap that may have landed (`unconfirmed`), a failure is
/// retried a few times first. Giving up there leaves the outcome unknown to the caller: a
/// delete that happened would answer 503, and the client's retry 404.
fn read_back<T>(
    unconfirmed: bool,
    mut read: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut failures = 0;
    loop {
        match read() {
            Err(_) if unconfirmed && failures < READ_BACK_RETRIES => failures += 1,
            result => return result,
        }
    }
}

/// Writes `index` as a new version and asks the store to swing the head to it; returns the new
/// version's number. Whether it was published is for the caller to read back.
fn propose<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    cas: S::Cas,
    head: Head,
    index: &Index,
) -> Result<u64, StoreError> {
    let version = next_version(store, user)?;
    publish(store, user, cas, head, version, index)?;
    Ok(version)
}

/// A version number nobody else ever gets, higher than every version published before.
fn next_version<S: KeyValue>(store: &S, user: &UserSpace) -> Result<u64, StoreError> {
    let number = store.increment(&user.seq, 1)?;
    u64::try_from(number).map_err(|_| corrupt("seq"))
}

/// Writes `index` as version `version` (from [`next_version`]) and asks the store to swing the
/// head to it; whether it was published is for the caller to read back.
fn publish<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    cas: S::Cas,
    head: Head,
    version: u64,
    index: &Index,
) -> Result<(), StoreError> {
    // A number from increment is never handed out twice, so nobody else writes this key.
    store.set(&user.index(version), &to_json(index)?)?;
    swap_unconfirmed(store, cas, &Head::encode(version, head.encoding));
    Ok(())
}

/// Index versions one request wrote or built on, to be removed once they are garbage.
#[derive(Default)]
struct Versions(Vec<u64>);

impl Versions {
    /// Whether this request has proposed a version whose fate it has not read back yet.
    fn unconfirmed(&self) -> bool {
        !self.0.is_empty()
    }

    fn note(&mut self, base: Head, proposed: u64) {
        for version in [base.version, proposed] {
            if version != 0 && !self.0.contains(&version) {
                self.0.push(version);
            }
        }
    }

    /// Removes every noted version but `head`, which must have been read after this request's
    /// last swap: the head only ever moves to freshly numbered versions, so a version it does
    /// not name then is never published again. A reader still holding such a number finds it
    /// gone and starts over. Failing to remove one only leaves garbage.
    fn sweep<S: KeyValue>(&mut self, store: &S, user: &UserSpace, head: u64) {
        for version in std::mem::take(&mut self.0)
            .into_iter()
            .filter(|v| *v != head)
        {
            let _ = store.delete(&user.index(version));
        }
    }
}

/// A key to create: everything but the secret, which never reaches the store.
pub struct NewKeyRecord<'a> {
    pub hash: &'a str,
    pub id: &'a str,
    pub preview: &'a str,
    pub name: &'a str,
    pub scopes: &'a [String],
    /// Unix seconds from which the key no longer verifies; `None`: never.
    pub expires_at: Option<i64>,
}

/// Creates a key for `user_id`, holding at most `max_keys`. Returns its index entry.
pub fn create<S: KeyValue>(
    store: &S,
    user_id: &str,
    key: &NewKeyRecord,
    max_keys: u32,
    now: i64,
) -> Result<IndexEntry, ApiError> {
    let record = |state| KeyRecord {
        state,
        user_id: user_id.to_owned(),
        key_id: key.id.to_owned(),
        name: key.name.to_owned(),
        scopes: key.scopes.to_vec(),
        created_at: now,
        last_used_at: None,
        expires_at: key.expires_at,
        enabled: true,
        settings_version: 0,
        retire_at: None,
    };
    let pending = to_json(&record(KeyState::Pending))?;
    let active = to_json(&record(KeyState::Active))?;
    let entry = IndexEntry {
        id: key.id.to_owned(),
        hash: key.hash.to_owned(),
        name: key.name.to_owned(),
        scopes: key.scopes.to_vec(),
        created_at: now,
        preview: key.preview.to_owned(),
        enabled: true,
        settings_version: 0,
        previous: Vec::new(),
    };

    // Nobody else knows this hash, so a plain write is safe; pending never verifies.
    let result = store
        .set(&record_key(key.hash), &pending)
        .map_err(ApiError::from)
        .and_then(|()| {
            publish_and_activate(
                store,
                &UserSpace::of(user_id),
                &entry,
                &pending,
                &active,
                max_keys,
                now,
            )
        });
    if result.is_err() {
        // (The write of the pending record itself may have landed before it failed.)
        // Best effort: whatever this fails to remove is pending or unlisted, so not live, and
        // reclaim removes it (see the module docs).
        let _ = store.delete(&record_key(key.hash));
    }
    result.map(|()| entry)
}

fn publish_and_activate<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    entry: &IndexEntry,
    pending: &[u8],
    active: &[u8],
    max_keys: u32,
    now: i64,
) -> Result<(), ApiError> {
    let max_keys = max_keys as usize;
    let mut versions = Versions::default();
    // Records found dead while making room: absent or revoked, terminal states nobody writes
    // again, so removing them is safe whether or not the index that dropped them was published.
    let mut reclaimed: Vec<String> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let unconfirmed = versions.unconfirmed();
        let (cas, head) = read_back(unconfirmed, || watch_head(store, user))?;
        let Some(mut index) = read_back(unconfirmed, || read_index(store, user, head.version))?
        else {
            continue;
        };
        // Only this request adds this hash, so seeing it means one of its proposals landed,
        // whatever the swap answered: it is never appended twice.
        if index.keys.iter().any(|e| e.hash == entry.hash) {
            versions.sweep(store, user, head.version);
            for hash in &reclaimed {
                let _ = store.delete(&record_key(hash));
            }
            return activate(store, &entry.hash, pending, active);
        }
        if index.keys.len() >= max_keys {
            for (hash, expired) in reclaimable(store, &index, now)? {
                let Some(position) = index.keys.iter().position(|e| e.hash == hash) else {
                    continue;
                };
                let dead = index.keys.remove(position);
                // An expired key was live: its removal is a change its owner sees. The other
                // dead entries never were keys (a failed or abandoned create) or are keys a
                // delete already killed.
                if expired {
                    let id = removal_event_id(&dead.id);
                    let mut event = Event::new(id, EventKind::Deleted, now, &dead);
                    event.reason = Some("expired".into());
                    index.record(event);
                }
                reclaimed.push(hash);
            }
            if index.keys.len() >= max_keys {
                versions.sweep(store, user, head.version);
                return Err(ApiError::KeyLimitReached(max_keys as u32));
            }
        }
        index.keys.push(entry.clone());
        let created = format!("{}/created", entry.id);
        index.record(Event::new(created, EventKind::Created, now, entry));
        let proposed = propose(store, user, cas, head, &index)?;
        versions.note(head, proposed);
    }
    Err(ApiError::StoreUnavailable)
}

/// Turns the record from exactly `pending` into `active`, reading it back until it is active;
/// fails if it was deleted or revoked meanwhile.
fn activate<S: KeyValue>(
    store: &S,
    hash: &str,
    pending: &[u8],
    active: &[u8],
) -> Result<(), ApiError> {
    let key = record_key(hash);
    let mut swapped = false;
    for _ in 0..MAX_ATTEMPTS {
        let (cas, current) = read_back(swapped, || store.watch(&key))?;
        match current {
            // Comparing with the present pending bytes is what makes a concurrent delete or
            // reclaim win over this create; never swap after seeing the record absent (that
            // would be an upsert).
            Some(bytes) if bytes == pending => {
                swap_unconfirmed(store, cas, active);
                swapped = true;
            }
            // Active: the swap landed (only this request activates this record).
            Some(bytes) if parse_record(&bytes).is_some_and(|r| r.state == KeyState::Active) => {
                return Ok(())
            }
            _ => return Err(ApiError::StoreUnavailable),
        }
    }
    Err(ApiError::StoreUnavailable)
}

/// Hashes of index entries that hold no live key and never will, each with whether it is an
/// expired key: record absent, revoked, expired, or pending past [`ABANDONED_AFTER_SECS`]
/// (revoked here by compare-and-swap). A record this version cannot read is kept: during a
/// rolling upgrade it is a newer version's, maybe live.
fn reclaimable<S: KeyValue>(
    store: &S,
    index: &Index,
    now: i64,
) -> Result<Vec<(String, bool)>, StoreError> {
    let mut dead = Vec::new();
    for entry in &index.keys {
        let record = store.get(&record_key(&entry.hash))?;
        let (reclaim, expired) = match record.as_deref().map(parse_record) {
            None => (true, false),
            Some(None) => (false, false),
            // A key mid-roll is shown (see [`Standing`]): it keeps its slot. (A key that is
            // active keeps it too, older secrets and all, unless it expired: its older secrets
            // carry the same expiry, so then none of them verifies either.)
            Some(Some(r)) if r.state != KeyState::Active && !entry.previous.is_empty() => {
                (false, false)
            }
            Some(Some(r)) => match r.state {
                // Expiry is final: the key never verifies again, so it holds no live key.
                KeyState::Active => (r.is_expired(now), true),
                KeyState::Revoked => (true, false),
                KeyState::Pending => {
                    let abandoned = now - r.created_at >= ABANDONED_AFTER_SECS
                        && revoke_pending(store, &entry.hash)?;
                    (abandoned, false)
                }
            },
        };
        if reclaim {
            // Their grace is over, so they must be dead before the entry that lists them goes;
            // a roll that died before retiring one would have left it verifying.
            for previous in &entry.previous {
                store.delete(&record_key(&previous.hash))?;
            }
            dead.push((entry.hash.clone(), expired));
        }
    }
    Ok(dead)
}

/// Moves a pending record to revoked, so its create can never activate it. `true` if the record
/// is now revoked or gone, `false` if it turned active meanwhile or cannot be read by this
/// version; decided by reading it back.
fn revoke_pending<S: KeyValue>(store: &S, hash: &str) -> Result<bool, StoreError> {
    let key = record_key(hash);
    for _ in 0..MAX_ATTEMPTS {
        let (cas, current) = store.watch(&key)?;
        let Some(bytes) = current else {
            return Ok(true);
        };
        let Some(mut record) = parse_record(&bytes) else {
            return Ok(false);
        };
        match record.state {
            KeyState::Active => return Ok(false),
            KeyState::Revoked => return Ok(true),
            KeyState::Pending => {
                record.state = KeyState::Revoked;
                swap_unconfirmed(store, cas, &to_json(&record)?);
            }
        }
    }
    Err(StoreError("a pending record kept changing".into()))
}

/// The live keys of `user_id` at `now`, oldest first.
pub fn list<S: KeyValue>(store: &S, user_id: &str, now: i64) -> Result<Vec<KeySummary>, ApiError> {
    Ok(current_keys(store, user_id, now)?.1)
}

/// The latest changes to `user_id`'s keys, newest first (at most [`MAX_EVENTS`]); the reads of
/// [`list`], no more.
///
/// An event is in the index iff its change was published, and a publish is what deletes and
/// updates do (an update publishes only for a live key). A create publishes before its key goes
/// live, so its `created` event is shown only once that happened: the key is live now, or a
/// later event names it (it was updated, or deleted after). The `created` event of a create that
/// failed or is still in flight is not shown.
pub fn events<S: KeyValue>(store: &S, user_id: &str, now: i64) -> Result<Vec<Event>, ApiError> {
    let (index, live) = current_keys(store, user_id, now)?;
    let is_live = |key_id: &str| live.iter().any(|summary| summary.entry.id == key_id);
    let mut shown: Vec<Event> = index
        .events
        .iter()
        .enumerate()
        .filter(|(at, event)| {
            event.kind != EventKind::Created
                || is_live(&event.key_id)
                || index.events[at + 1..]
                    .iter()
                    .any(|later| later.key_id == event.key_id)
        })
        .map(|(_, event)| event.clone())
        .collect();
    shown.reverse();
    Ok(shown)
}

/// The index `head` names and its live keys, oldest first: head, index and one record per key
/// (more only for a key whose current secret is not active because a roll is in flight or died:
/// then its older secrets' records too).
fn current_keys<S: KeyValue>(
    store: &S,
    user_id: &str,
    now: i64,
) -> Result<(Index, Vec<KeySummary>), ApiError> {
    let user = UserSpace::of(user_id);
    for _ in 0..MAX_ATTEMPTS {
        let Some(head) = store.get(&user.head)? else {
            return Ok((Index::default(), Vec::new()));
        };
        let Some(index) = read_index(store, &user, Head::decode(&head)?.version)? else {
            continue;
        };
        // Entries of creates in flight or abandoned, and of deletes that failed after killing
        // the key, are not keys the user can use: not shown. Keys mid-roll are (see
        // [`Standing`]), so every live secret is on the list.
        let mut summaries = Vec::with_capacity(index.keys.len());
        for entry in &index.keys {
            if let Some(record) = Standing::of(store, entry, user_id, now)?.shown() {
                summaries.push(KeySummary {
                    entry: entry.clone(),
                    last_used_at: record.last_used_at,
                    expires_at: record.expires_at,
                    previous_expires_at: entry.previous_expires_at(now),
                });
            }
        }
        return Ok((index, summaries));
    }
    Err(ApiError::StoreUnavailable)
}

/// What the records of a key's secrets say about the key.
enum Standing {
    /// Its current secret is active (the key may have expired): that record.
    Active(KeyRecord),
    /// A roll published a new secret that is not active (pending or revoked): the roll is in
    /// flight, or it failed or died. The key lives on in a live older secret (`live`), or has
    /// none until it is rolled again. Either way it is the user's, to roll again or delete.
    MidRoll {
        live: Option<KeyRecord>,
        current: Option<KeyRecord>,
    },
    /// Not a key of the user's: a create in flight or failed, a delete in flight.
    Dead,
}

impl Standing {
    /// Reads the records of `entry`'s secrets as `user_id`'s: one read while its current secret
    /// is active, its older secrets' too only while it is not.
    fn of<S: KeyValue>(
        store: &S,
        entry: &IndexEntry,
        user_id: &str,
        now: i64,
    ) -> Result<Standing, StoreError> {
        let record_of = |hash: &str| -> Result<Option<KeyRecord>, StoreError> {
            let record = store
                .get(&record_key(hash))?
                .as_deref()
                .and_then(parse_record);
            Ok(record.filter(|r| r.user_id == user_id))
        };
        let current = record_of(&entry.hash)?;
        if let Some(record) = current.as_ref().filter(|r| r.state == KeyState::Active) {
            return Ok(Standing::Active(record.clone()));
        }
        let mut live = None;
        for previous in &entry.previous {
            live = record_of(&previous.hash)?.filter(|r| r.is_live(now));
            if live.is_some() {
                break;
            }
        }
        let rolled = !entry.previous.is_empty() && current.is_some();
        Ok(if live.is_some() || rolled {
            Standing::MidRoll { live, current }
        } else {
            Standing::Dead
        })
    }

    /// The record list shows the key with: the current secret's, else a live older one's.
    fn shown(self) -> Option<KeyRecord> {
        match self {
            Standing::Active(record) => Some(record),
            Standing::MidRoll { live, current } => live.or(current),
            Standing::Dead => None,
        }
    }
}

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
fn carry<S: KeyValue>(
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

/// Copies `entry`'s settings onto the record of its secret `hash`, by compare-and-swap, unless
/// the record already carries them or newer ones (a higher `settings_version`): so two updates
/// carried in either order leave the newer, and verify always reads one update's settings
/// whole. Returns the record as it is then; `None` if it is gone (deleted: never written after
/// that) or cannot be read by this version. A record that is not active is left as it is.
fn carry_settings<S: KeyValue>(
    store: &S,
    hash: &str,
    entry: &IndexEntry,
) -> Result<Option<KeyRecord>, StoreError> {
    let key = record_key(hash);
    let mut swapped = false;
    for _ in 0..MAX_ATTEMPTS {
        let (cas, current) = read_back(swapped, || store.watch(&key))?;
        let Some(mut record) = current.as_deref().and_then(parse_record) else {
            return Ok(None);
        };
        if record.state != KeyState::Active || record.settings_version >= entry.settings_version {
            return Ok(Some(record));
        }
        record.name = entry.name.clone();
        record.scopes = entry.scopes.clone();
        record.enabled = entry.enabled;
        record.settings_version = entry.settings_version;
        swap_unconfirmed(store, cas, &to_json(&record)?);
        swapped = true;
    }
    Err(StoreError("a record kept changing".into()))
}

/// Makes the older secret `previous` stop verifying when its grace ends: deleted if that has
/// come, else its record's `retire_at` set to it by compare-and-swap and read back. The end is
/// only ever moved earlier, so requests carrying different ends in any order leave the
/// earliest, and a grace is never extended. A record seen absent is never written.
///
/// It runs only after a roll was published, when the old secret's end is due: a failed store
/// operation is retried a few times (as a read-back is) before the caller gives up.
fn retire<S: KeyValue>(store: &S, previous: &PreviousSecret, now: i64) -> Result<(), StoreError> {
    let key = record_key(&previous.hash);
    if previous.until <= now {
        return read_back(true, || store.delete(&key));
    }
    for _ in 0..MAX_ATTEMPTS {
        let (cas, current) = read_back(true, || store.watch(&key))?;
        let Some(mut record) = current.as_deref().and_then(parse_record) else {
            return Ok(());
        };
        let retires_in_time = record.retire_at.is_some_and(|at| at <= previous.until);
        if record.state != KeyState::Active || retires_in_time {
            return Ok(());
        }
        record.retire_at = Some(previous.until);
        swap_unconfirmed(store, cas, &to_json(&record)?);
    }
    Err(StoreError("a record kept changing".into()))
}

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
struct Rolling<'a, S> {
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
struct NewSecretRecord {
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
    fn withdraw(&self) {
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
    fn steps(&mut self) -> Result<KeySummary, ApiError> {
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

/// Looks a presented key up by its hash: the active record, or `None`. One read; at most once
/// per key and [`USAGE_GRANULARITY_SECS`], the last use is recorded too (see [`record_use`]).
pub fn verify<S: KeyValue>(
    store: &S,
    hash: &str,
    now: i64,
) -> Result<Option<KeyRecord>, StoreError> {
    let key = record_key(hash);
    let Some(bytes) = store.get(&key)? else {
        return Ok(None);
    };
    let Some(record) = parse_record(&bytes) else {
        // Written by a newer version (a rolling upgrade): refused rather than guessed at.
        eprintln!("verify: refused a key whose record this version cannot read");
        return Ok(None);
    };
    // An old secret of a rolled key past its grace is as unknown as a deleted one.
    if record.state != KeyState::Active || record.is_retired(now) {
        return Ok(None);
    }
    if is_stale(record.last_used_at, now) && record.enabled && !record.is_expired(now) {
        // Rare, and not worth failing a valid verification for.
        let _ = record_use(store, &key, now);
    }
    Ok(Some(record))
}

fn is_stale(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now - t >= USAGE_GRANULARITY_SECS)
}

/// Writes `now` as the record's last use by compare-and-swap against the active record: a
/// delete since verify's read makes the swap fail (or finds nothing to swap), so it can never
/// bring the key back, as a blind write would. Best effort: whether it landed is not read back
/// (a lost update is retried by the next verification after the hour).
fn record_use<S: KeyValue>(store: &S, key: &str, now: i64) -> Result<(), StoreError> {
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

#[cfg(test)]
#[path = "protocol/tests.rs"]
mod tests;

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

mod ahead;
mod chain;
mod create;
mod delete;
mod index;
mod layout;
mod list;
mod record;
mod roll;
mod update;
mod verify;

// Every part of the protocol sees the others' items (each `pub(super)`) through this module.
use ahead::*;
use chain::*;
use delete::*;
use index::*;
use layout::*;
use list::*;
use record::*;
use roll::*;

pub use create::{create, NewKeyRecord};
pub use delete::delete;
pub use index::{
    Event, EventKind, FieldChange, Index, IndexEntry, KeySummary, PreviousSecret, Settings,
};
pub use layout::record_key;
pub use list::{events, list};
pub use record::{KeyRecord, KeyState, Restriction};
pub use roll::{roll, NewSecret};
pub use update::update;
pub use verify::verify;

#[cfg(test)]
mod tests;

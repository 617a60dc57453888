//! The storage protocol: how keys are added, removed, listed and found in the key-value store,
//! and why that stays correct when requests interleave or die between any two operations.
//!
//! # Layout (every store key is namespaced with `apikeys/v1/`, since a shared Redis has no prefix)
//!
//! | store key | value | written by |
//! |---|---|---|
//! | `key/<sha256(key)>` | [`KeyRecord`]: state (pending, active, revoked, or a delete's tombstone), owner, id, settings (name, scopes, enabled), restrictions in progress, last use, expiry, end of grace (an old secret of a rolled key), the key's revocation (a leak, or its holder's request) | create, delete, update, roll, revoke, and list or events to repair; verify at most hourly |
//! | `user/<sha256(user id)>/head` | number of the user's current index version | create, delete, update, roll; list or events to repair |
//! | `user/<sha256(user id)>/seq` | counter handing out index version numbers | create, delete, update, roll |
//! | `user/<sha256(user id)>/seq/<s>` | counters 1–15 beside `seq`, only for users whose writes raced (see `chain::next_version`) | create, delete, update, roll |
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
//!   request ever gets (on a race, from one of [`SEQ_SHARDS`] counters, each handing out its own
//!   residue: Spin's DynamoDB `increment` fails rather than waits when raced), and publishes it by compare-and-swap of `head` from the version it was
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
//! # The rule: rights are taken away before anything says so, granted after
//! A record (what verify reads) and the index (what list, the console and the history read)
//! are two store keys, and no store here changes two keys at once. So every change is ordered
//! by what it does to rights:
//! - what **takes rights away** — disabling a key, dropping a scope, ending an old secret's
//!   grace, revoking, deleting — reaches the records first, then the index says it happened;
//! - what **grants** — a new key or secret going live, enabling, adding a scope, giving an old
//!   secret back — reaches the index first, then the records.
//!
//! A change that is both (an update from `[read]` to `[write]`) is split: during it verify
//! allows only what both sides allow. So at every moment, whatever a request did and wherever
//! it stopped, **verify never grants more than the index shows**: a 503, or a request killed,
//! can leave verify stricter than list for a while, never looser.
//!
//! Restrictions are written as [`Restriction`]s on the record, each naming the index version
//! `n` (from `increment(seq)`) whose publication makes it; verify obeys them all. Because the
//! head only moves to freshly numbered, ever larger versions, a head at or past `n` means `n`
//! is decided: published (and that head's entry says what it made) or never to be. A carry
//! from such a head folds the entry into the record and drops the restrictions it decided
//! ([`KeyRecord::carried`]); records remember the head they were carried from
//! (`settings_version`), so carries in any order leave the newest.
//!
//! # Repair: no state outlives the next read
//! Whatever a failed or killed request leaves behind, the next request that reads the user's
//! index settles it (list and events included, see [`Repair`]; update and roll for the key they
//! change): restrictions of a decided version are carried; restrictions undecided
//! [`ABANDONED_AFTER_SECS`] after they were written (their request died) are decided by
//! publishing the index again under a new number; a roll whose new secret was revoked, or has
//! been pending that long, is given back (the replaced secret is current again, the roll's
//! event leaves the history: nobody was given the new secret); a key whose delete killed its
//! records but did not publish is removed, with its `deleted` event; a revocation written
//! ahead on any secret's record but not published is published (written ahead on every
//! secret first), with its `revoked` event: a revocation is finished by whoever finds it —
//! list, update and roll alike —, never dropped, since it needs nobody's consent and its own
//! request may have died. A 503 therefore says
//! "it may have been applied; retry": the next read shows whether it was.
//!
//! # Create (key k, user u)
//! 1. `set key/k = pending` — nobody else knows k, so a plain write is safe. Not live.
//! 2. Loop: read `head` (compare-and-swap handle) and the index it names; if the index holds
//!    `max` keys, drop entries that hold no live key and never will (see `reclaimable`:
//!    expired keys and keys being deleted, each with its `deleted` event; failed or abandoned
//!    creates silently, revoking an abandoned pending record first); if still full, answer
//!    `key_limit_reached`. Otherwise write index version `n = increment(seq)` with k appended
//!    and swap `head` to `n`; then start over from the head: once the index it names lists k,
//!    the publish has landed. Records of entries it dropped are removed then, if the index that
//!    landed no longer lists them.
//! 3. Turn `key/k` from pending to active by compare-and-swap, reading it back until it is
//!    active. From here on k verifies. If it is no longer pending (deleted, or revoked as
//!    abandoned) the create fails: k never becomes live.
//!
//! # Delete (id, user u)
//! Read head and index; find the id (else `key_not_found`); overwrite the records of its
//! secrets with tombstones, older ones first — from these writes on the key no longer
//! verifies; then publish an index without it and with its `deleted` event, until the index
//! `head` names no longer lists the id (whoever removed it); then remove the tombstones. A
//! create or a list finding a tombstone meanwhile removes the key and records the event
//! itself, so a key never leaves the history silently.
//!
//! # Update (id, user u, wanted settings, a fresh random event id e)
//! Steps at [`update`]: what it takes away goes onto every secret's record as a restriction of
//! the version it is about to publish, then the changed entry and event e are published, then
//! the entry at the head is carried onto the records. A roll in flight does not stop it: its
//! secret gets the restriction and the settings too, and activation keeps them.
//!
//! # Roll (id, user u, new secret k', grace g, a fresh random event id e)
//! A key can have several secrets: the current one and older ones a roll replaced, each in its
//! grace period, all listed in the key's index entry (hash and grace end). Each has its own
//! record, so verify still reads one. Steps at [`roll`]: k' is written pending, each older
//! secret's grace end goes onto its record as a restriction, the entry is published with k'
//! and event e, then k' is activated. A roll meeting another in flight helps it (activates its
//! secret) and is applied after it; one meeting a failed roll gives it back first. Delete kills
//! the older secrets before the current one, so the entry stays listed while any of its
//! secrets lives.
//!
//! # Revoke (secret k of a key, a revocation r: why, when, where it was found)
//! One read of `key/k` decides: no active record, or one past its expiry, is no live key's
//! (nothing written); one already carrying a revocation was revoked (nothing written: a
//! replayed alert costs that read). An older secret past its grace is judged from the index:
//! no key's once the roll that ended it went live (one in flight is helped live first, a
//! failed one given back, which makes that secret current again). Otherwise the owner and key id come from the record, and
//! the revocation takes update's steps (see [`revoke`]): a restriction carrying r onto every
//! secret's record, older ones first — from here verify answers `key_revoked` —, then the
//! entry published as revoked (why and when only; where it was found stays in the records and
//! the `revoked` event, for the index's budget) with event `<id>/revoked`, then carried. A
//! revoked key stays listed until its owner deletes it, counts toward no limit, and may no
//! longer be updated or rolled; a roll in flight is revoked with it. Once its restriction is
//! on a record, a revocation is never undone: no carry drops it and no withdrawal removes it
//! until the entry shows the key revoked, and whoever finds it unpublished publishes it. At most
//! [`MAX_REVOKED_KEPT`] revoked keys are kept beyond the limit: a create needing the room lets
//! the oldest go, with a `deleted` event (reason `revoked`).
//!
//! # Verify
//! One `get key/k`: valid iff the record is `active`, enabled, not expired and not retired,
//! every restriction in progress applied. If its last use is over [`USAGE_GRANULARITY_SECS`]
//! old, the new time is written by compare-and-swap of the record (a blind write could
//! resurrect a key deleted since the read); that costs a second read and a write at most once
//! per key and hour, and its failure is ignored. (Not `get_many`: Spin's Redis backend
//! implements it with `KEYS`, which fails; every read here is a plain `get`.)
//!
//! # Consistent reads
//! Every judgement that a record is absent or dead — to drop an entry, hide a key, refuse a
//! change — is made from a `watch`, which every backend answers consistently (Spin's DynamoDB
//! `get` is eventually consistent unless `consistent_read = true`; its compare-and-swap reads
//! consistently). A judgement about a key's records is acted on only while the head still names
//! the version it was read from. Index versions are written once and never change, so a stale
//! read of one can only miss it (and the reader starts over). Verify itself needs consistent
//! reads for "deleted means dead at once", which is why the deploy docs require them.
//!
//! # Invariants, for every interleaving and any failed operation
//! - **Live ⇒ listed.** Every live secret is the current or an older secret of an entry list
//!   shows, so delete can kill it. A record turns `active` only after the index holding it was
//!   published (create step 3, roll step 4), and an older secret stays in the entry until its
//!   grace is over and it was deleted, or until the key is deleted, older secrets first. An
//!   entry leaves an index only after its records were killed (delete), found dead from a
//!   consistent read (reclaim), or its key expired; activation fails against a killed or
//!   revoked record. Verify's last-use swap compares with the present active record, so it
//!   cannot bring a deleted one back.
//! - **Verify never grants more than the index shows** (the rule above).
//! - **The limit holds.** Index versions form a chain through compare-and-swap on `head`, each
//!   derived from the one it replaces; every version that adds a key has fewer than `max`
//!   entries before it, and live keys ⊆ entries of the current version.
//! - **Deleted means dead at once.** Delete kills every secret's record before it answers.
//! - **Nothing vanishes from the history.** A key leaves the index only with its `deleted`
//!   event, unless it never was a key (a create that failed or was abandoned); a roll given
//!   back takes its event with it, and answered no 201.
//! - **Failures leave nothing half-made.** See "Repair"; a create's failure leaves at most an
//!   entry whose record is absent or pending, never shown, reclaimed when the slot is needed.
//! - **Bounded work.** Every loop is bounded by [`MAX_ATTEMPTS`]; each swap that did not land
//!   means another request's did. List reads the head, one index and one record per key,
//!   and the records of a rolled key's older secrets while their grace lasts (a request that
//!   died may have restricted one while it was current: only there does that show); it writes
//!   only to repair.
//!
//! # Cost (store operations, no contention)
//! Reading back costs create and delete one more `watch` of the head and one more index read,
//! and create one more record read after activation. An update that takes rights away writes
//! each secret's record once more before publishing (a `watch`, a swap and a read back); a roll
//! does so for the secret it replaces. A delete writes its tombstones and removes them after.
//! Verify stays one `get`.
//!
//! Garbage that may remain after failures or crashes (an unpublished index version, the record of
//! a create that died before publishing, a revoked secret of a roll given back) is never read as
//! live data and is a few entries at most per failure.

use crate::error::{cause, ApiError};
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
/// How often a failed `increment` of `head` or a version counter is retried, each after a
/// random wait (see `chain::next_version`): past the bound the waits add up to seconds.
pub const INCREMENT_RETRIES: u32 = 16;
/// How many counters hand out index version numbers (see `chain::next_version`).
pub const SEQ_SHARDS: u64 = 16;
/// How many of the latest changes an index version keeps (see [`Index::events`]), at most
/// [`MAX_EVENT_BYTES`] of them.
pub const MAX_EVENTS: usize = 100;
/// How many older secrets of one rolled key may still be in their grace period; a roll beyond
/// that ends the grace of the one ending first.
pub const MAX_PREVIOUS_SECRETS: usize = 3;
/// The longest grace period a roll may give the secret it replaces: 7 days.
pub const MAX_GRACE_SECS: i64 = 7 * 24 * 3600;

mod ahead;
mod budget;
mod chain;
mod create;
mod delete;
mod index;
mod layout;
mod list;
mod record;
mod revoke;
mod roll;
mod update;
mod verify;

// Every part of the protocol sees the others' items (each `pub(super)`) through this module.
use ahead::*;
use budget::*;
use chain::*;
use delete::*;
use index::*;
use layout::*;
use list::*;
use record::*;
use revoke::*;
use roll::*;
use update::*;

pub use budget::{largest_index_bytes, MAX_EVENT_BYTES, MAX_INDEX_BYTES};
pub use create::{create, NewKeyRecord};
pub use delete::delete;
pub use index::{
    Event, EventKind, FieldChange, Index, IndexEntry, KeySummary, PreviousSecret, Settings,
};
pub use layout::record_key;
pub use list::{events, list};
pub use record::{KeyRecord, KeyState, Restriction, Revocation};
pub use revoke::{revoke, MAX_REVOKED_KEPT, MAX_SOURCE_BYTES, MAX_URL_BYTES};
pub use roll::{roll, NewSecret};
pub use update::update;
pub use verify::verify;

#[cfg(test)]
mod tests;

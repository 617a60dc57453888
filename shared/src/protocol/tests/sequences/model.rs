//! The model of what each user was told: their keys, secrets and settings.

use super::*;
use std::collections::{BTreeMap, BTreeSet};

/// A key as its owner was told it is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KeyModel {
    pub(super) user: usize,
    pub(super) id: String,
    pub(super) hash: String,
    pub(super) scopes: Vec<String>,
    pub(super) enabled: bool,
    pub(super) expires_at: Option<i64>,
    /// Older secrets, each with the end of its grace.
    pub(super) previous: Vec<(String, i64)>,
    /// Revoked: none of its secrets verifies again; it counts toward no limit.
    pub(super) revoked: bool,
    /// A revocation of it died part-way, after reaching one of its records: whoever reads the
    /// key next finishes it, so it may be revoked any time from now on. These of its secrets
    /// were refused when it died: they never verify again, and once a list reads one of them
    /// (the current secret, or an older one in its grace) the key must be listed revoked.
    pub(super) doubt: Option<Vec<String>>,
}

impl KeyModel {
    pub(super) fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The rights verify may grant `hash` at `now` in this state: `None` if it must not verify.
    pub(super) fn rights_of(&self, hash: &str, now: i64) -> Option<(&[String], bool)> {
        let current = self.hash == hash;
        let in_grace = self
            .previous
            .iter()
            .any(|(h, until)| h == hash && now < *until);
        (!self.is_expired(now) && !self.revoked && (current || in_grace))
            .then_some((self.scopes.as_slice(), self.enabled))
    }
}

#[derive(Default)]
pub(super) struct Model {
    pub(super) keys: BTreeMap<String, KeyModel>,
    /// Secrets no successful answer handed out: they must never verify.
    pub(super) never: BTreeSet<String>,
    /// Every secret the sequence made, for verify steps to pick from.
    pub(super) secrets: Vec<String>,
    /// Secrets of rolls that answered 503 and did not verify after, which a later roll of the
    /// key may have made live (see `Sequence::rolled`): whether a leak alert finds them a key's
    /// is the store's to say.
    pub(super) limbo: BTreeSet<String>,
    /// Older secrets a revocation ended, their keys living on.
    pub(super) ended: BTreeSet<String>,
    /// Keys whose create failed or died without making them live, with their owner and when:
    /// each may hold a slot (never verifying, not listed) until abandoned.
    pub(super) zombies: BTreeMap<String, (usize, i64)>,
}

impl Model {
    pub(super) fn pick(&self, n: usize) -> Option<KeyModel> {
        let ids: Vec<&String> = self.keys.keys().collect();
        (!ids.is_empty()).then(|| self.keys[ids[n % ids.len()]].clone())
    }

    /// The keys of `user` that may count toward the limit at `now` (keys in doubt included).
    pub(super) fn counted(&self, user: usize, now: i64) -> usize {
        self.keys
            .values()
            .filter(|k| k.user == user && !k.is_expired(now) && !k.revoked)
            .count()
    }

    /// The keys of `user` that surely count toward the limit at `now` (none in doubt).
    pub(super) fn surely_counted(&self, user: usize, now: i64) -> usize {
        self.keys
            .values()
            .filter(|k| k.user == user && !k.is_expired(now) && !k.revoked && k.doubt.is_none())
            .count()
    }

    /// Zombies of `user` that may still hold a slot at `now`.
    pub(super) fn zombies_holding_slots(&self, user: usize, now: i64) -> usize {
        self.zombies
            .values()
            .filter(|(u, made)| *u == user && now <= made + ABANDONED_AFTER_SECS + 1)
            .count()
    }
}

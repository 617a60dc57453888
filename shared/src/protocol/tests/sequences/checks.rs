//! The checks after every step of a sequence: verify and list against the model, and the
//! invariants between operations.

use super::*;

impl Sequence {
    /// Right after a change that failed or died: each of `before`'s secrets verifies with no
    /// more rights than `before` or `after` grants it, and nothing with more than the index
    /// now shows (the invariants between operations).
    pub(super) fn check_doubt(&self, before: &KeyModel, after: &KeyModel) {
        let copy = copy_of(&self.store, SwapAnswers::Truthful);
        assert_invariants_between_at(&copy, LIMIT as usize, self.now);
        let hashes = std::iter::once(&before.hash).chain(before.previous.iter().map(|(h, _)| h));
        for hash in hashes {
            let Some(record) = verified_in(&copy, hash, self.now) else {
                continue;
            };
            let covered = [before, after]
                .iter()
                .any(|state| within(&record, state.rights_of(hash, self.now)));
            assert!(
                covered,
                "after a failed change, a secret of {} verifies as {:?} / {:?}, more than before \
                 ({before:?}) or after ({after:?})",
                before.id, record.scopes, record.enabled
            );
        }
    }

    /// The record verify answers for `hash` now, if it verifies (not expired); read on a copy,
    /// so that checking records no use.
    pub(super) fn verified(&self, hash: &str) -> Option<KeyRecord> {
        verified_in(&copy_of(&self.store, SwapAnswers::Truthful), hash, self.now)
    }

    /// After every step: verify answers each secret as its owner was told, nothing else
    /// verifies, and the invariants between operations hold.
    pub(super) fn check(&self) {
        let copy = copy_of(&self.store, SwapAnswers::Truthful);
        for key in self.model.keys.values() {
            let record = verify(&copy, &key.hash, self.now).expect("verify");
            let verifies = record
                .as_ref()
                .is_some_and(|r| !r.is_expired(self.now) && r.revocation.is_none());
            // (A key in doubt may be revoked by any reader from now on.)
            if key.doubt.is_none() {
                assert_eq!(
                    verifies,
                    !key.is_expired(self.now) && !key.revoked,
                    "{key:?} verifies: {record:?}"
                );
            }
            if let Some(record) = record.filter(|_| verifies) {
                let mut scopes = record.scopes.clone();
                let mut told = key.scopes.clone();
                scopes.sort();
                told.sort();
                assert_eq!(
                    (scopes, record.enabled),
                    (told, key.enabled),
                    "{} verifies with other settings than its owner was told",
                    key.id
                );
            }
        }
        for hash in &self.model.secrets {
            let Some(record) = verified_in(&copy, hash, self.now) else {
                continue;
            };
            assert!(
                !self.model.never.contains(hash),
                "a secret that was never handed out, or ended, verifies: secret #{} of the \
                 sequence, as {record:?}; the model: {:?}",
                self.model.secrets.iter().position(|h| h == hash).unwrap(),
                self.model.keys
            );
            let key = self.model.keys.get(&record.key_id);
            assert!(
                within(&record, key.and_then(|k| k.rights_of(hash, self.now))),
                "a secret of {} verifies as {:?} / {:?}; its owner was told {key:?}",
                record.key_id,
                record.scopes,
                record.enabled
            );
        }
        assert_invariants_between_at(&copy, LIMIT as usize, self.now);
    }

    /// A list shows every key its owner holds, and only those or keys a failed create left.
    pub(super) fn check_list(&mut self, user: usize) {
        let summaries = list(&self.store, USERS[user], self.now).expect("list");
        let listed: BTreeSet<String> = summaries.iter().map(|s| s.entry.id.clone()).collect();
        let now = self.now;
        // A revocation that died is finished by this list if it refused a secret the list
        // reads (the current one, or an older one in its grace): never undone.
        let in_doubt: Vec<String> = (self.model.keys.values())
            .filter(|k| k.user == user && k.doubt.is_some())
            .map(|k| k.id.clone())
            .collect();
        for id in in_doubt {
            let shown = summaries.iter().find(|s| s.entry.id == id);
            let key = self.model.keys.get_mut(&id).unwrap();
            if shown.is_some_and(|s| s.revocation.is_some()) {
                key.revoked = true;
                key.doubt = None;
                let hashes = std::iter::once(&key.hash).chain(key.previous.iter().map(|(h, _)| h));
                self.model.never.extend(hashes.cloned());
                continue;
            }
            let read = |hash: &String| {
                *hash == key.hash
                    || (key.previous.iter()).any(|(h, until)| h == hash && now < *until)
            };
            let refused = key.doubt.as_ref().unwrap();
            assert!(
                shown.is_none() || !refused.iter().any(read),
                "a revocation that died refused a secret of {id}, yet a list shows it unrevoked"
            );
        }
        for key in self.model.keys.values().filter(|k| k.user == user) {
            // (A revoked key is let go once more are kept than the bound.)
            assert!(
                listed.contains(&key.id) || key.is_expired(now) || key.revoked,
                "a list lacks {}",
                key.id
            );
        }
        for id in &listed {
            assert!(
                self.model.keys.get(id).is_some_and(|k| k.user == user)
                    || self.model.zombies.get(id).is_some_and(|(u, _)| *u == user),
                "a list shows {id}, which {} does not hold",
                USERS[user]
            );
        }
        // An expired key a create reclaimed, or a revoked one let go, is gone. (A zombie list does not show may still
        // hold its slot until abandoned: list hides keys that never went live.)
        let reclaimed: Vec<String> = (self.model.keys.values())
            .filter(|k| k.user == user && !listed.contains(&k.id))
            .map(|k| k.id.clone())
            .collect();
        for id in reclaimed {
            let gone = self.model.keys.remove(&id).unwrap();
            self.model.never.insert(gone.hash);
        }
    }
}

/// The record verify answers for `hash` in `store` at `now`, if it verifies (not expired, not
/// revoked).
fn verified_in(store: &MemoryStore, hash: &str, now: i64) -> Option<KeyRecord> {
    verify(store, hash, now)
        .expect("verify")
        .filter(|record| !record.is_expired(now) && record.revocation.is_none())
}

/// Whether `record` grants no more than `rights` (scopes, enabled): `None` grants nothing.
fn within(record: &KeyRecord, rights: Option<(&[String], bool)>) -> bool {
    rights.is_some_and(|(scopes, enabled)| {
        (enabled || !record.enabled) && record.scopes.iter().all(|s| scopes.contains(s))
    })
}

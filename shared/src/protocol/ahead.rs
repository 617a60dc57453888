//! Restrictions one request writes on records ahead of the index version that publishes them,
//! and their withdrawal once that version is known never to be published.

use super::*;

/// The restrictions one update or roll has written, by the version each was meant for.
///
/// A request knows a proposal of its own is dead once it has read the head after it and not
/// found its change there: the head only moves to freshly numbered versions, so a proposal
/// based on a version the head has left can never land. Until then (the last proposal, sent
/// and not read back) its restriction may be what the index publishes, and is never
/// withdrawn: a store failure there leaves it for the readers of the index to settle (see
/// the module docs, "Repair").
#[derive(Default)]
pub(super) struct Ahead {
    /// Each version this request restricted records for, with those records' hashes in the
    /// order written.
    written: Vec<(u64, Vec<String>)>,
    /// Whether the last version was proposed and its fate not yet read back.
    last_unconfirmed: bool,
}

impl Ahead {
    /// The versions whose restrictions can never be published.
    fn dead(&self) -> Vec<u64> {
        let known = self.written.len() - usize::from(self.last_unconfirmed);
        self.written[..known].iter().map(|(v, _)| *v).collect()
    }

    /// Writes `restrictions` (record hash, restriction), older secrets first and the current
    /// one last, for `version`, which this request is about to propose; each record loses this
    /// request's dead restrictions in the same swap.
    pub(super) fn write<S: KeyValue>(
        &mut self,
        store: &S,
        version: u64,
        restrictions: &[(String, Restriction)],
    ) -> Result<(), StoreError> {
        let dead = self.dead();
        // Noted before writing: a write that fails may still have landed.
        let hashes = restrictions.iter().map(|(hash, _)| hash.clone()).collect();
        self.written.push((version, hashes));
        for (hash, restriction) in restrictions {
            restrict(store, hash, restriction, &dead)?;
        }
        Ok(())
    }

    /// The last version written for was proposed: its fate is unknown until read back.
    pub(super) fn proposed(&mut self) {
        self.last_unconfirmed = !self.written.is_empty();
    }

    /// The head, read after the last proposal, does not show this request's change: every
    /// version it restricted for is dead.
    pub(super) fn refuted(&mut self) {
        self.last_unconfirmed = false;
    }

    /// Removes every restriction known dead, version by version, older secrets first; stops at
    /// the first failure (what is left only restricts more, and shows on the current secret
    /// for list to settle).
    pub(super) fn withdraw<S: KeyValue>(&self, store: &S) -> Result<(), StoreError> {
        let dead = self.dead();
        for (version, hashes) in &self.written {
            if dead.contains(version) {
                for hash in hashes {
                    withdraw(store, hash, &dead)?;
                }
            }
        }
        Ok(())
    }
}

//! Create: a new key's record written pending, published in the index (making room by
//! reclaiming dead entries at the limit), then activated.

use super::*;

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
    let pending = KeyRecord {
        state: KeyState::Pending,
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
        restrictions: Vec::new(),
        revocation: None,
    };
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
        revocation: None,
    };

    // Nobody else knows this hash, so a plain write is safe; pending never verifies.
    let result = to_json(&pending)
        .and_then(|pending| store.set(&record_key(key.hash), &pending))
        .map_err(ApiError::from)
        .and_then(|()| publish_and_activate(store, &UserSpace::of(user_id), &entry, max_keys, now));
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
    max_keys: u32,
    now: i64,
) -> Result<(), ApiError> {
    let max_keys = max_keys as usize;
    let mut versions = Versions::default();
    // The hashes of every secret of the entries this request dropped to make room, in any of
    // its proposals: their records are removed once one of its proposals is published, if
    // that one dropped them too (the index it published no longer lists them).
    let mut reclaimed: Vec<String> = Vec::new();
    for _ in 0..MAX_ATTEMPTS {
        let unconfirmed = versions.unconfirmed();
        let (cas, head) = read_back(unconfirmed, || watch_head(store, user))?;
        if versions.waited_after_loss(store, head) {
            continue;
        }
        let Some(mut index) = read_back(unconfirmed, || read_index(store, user, head.version))?
        else {
            continue;
        };
        // Only this request adds this hash, so seeing it means one of its proposals landed,
        // whatever the swap answered: it is never appended twice.
        if index.keys.iter().any(|e| e.hash == entry.hash) {
            versions.sweep(store, user, head.version);
            let listed =
                |hash: &String| index.keys.iter().any(|e| e.all_hashes().any(|h| h == hash));
            for hash in reclaimed.iter().filter(|hash| !listed(hash)) {
                // Dead and unlisted: garbage. Failing to remove it leaves a dead record.
                let _ = store.delete(&record_key(hash));
            }
            return activate(store, &entry.hash).map(drop);
        }
        // Revoked keys stay listed for their owner but count toward nothing.
        let counted = |index: &Index| index.keys.iter().filter(|e| e.revocation.is_none()).count();
        if counted(&index) >= max_keys {
            for (hash, reason) in reclaimable(store, &index, now)? {
                let Some(position) = index.keys.iter().position(|e| e.hash == hash) else {
                    continue;
                };
                let dead = index.keys.remove(position);
                for hash in dead.all_hashes() {
                    if !reclaimed.iter().any(|r| r == hash) {
                        reclaimed.push(hash.to_owned());
                    }
                }
                // An expired key was live, and a deleted one was being deleted: their removal
                // is a change their owner sees. The other dead entries never were keys (a
                // failed or abandoned create).
                if let Some(reason) = reason {
                    remove_entry(&mut index, dead, reason.as_event_reason(), now);
                }
            }
            if counted(&index) >= max_keys {
                versions.sweep(store, user, head.version);
                return Err(ApiError::KeyLimitReached(max_keys as u32));
            }
        }
        let_go_of_revoked(&mut index, max_keys, &mut reclaimed, now);
        index.keys.push(entry.clone());
        let created = format!("{}/created", entry.id);
        index.record(Event::new(created, EventKind::Created, now, entry));
        let proposed = propose(store, user, cas, head, &index)?;
        versions.note(head, proposed);
    }
    Err(ApiError::StoreUnavailable(cause::LOST_RACES))
}

/// Why a key that was live leaves the index to make room for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Its expiry came.
    Expired,
    /// Its owner deleted it, and the delete has not published the removal yet.
    Deleted,
}

impl Removal {
    fn as_event_reason(self) -> Option<&'static str> {
        match self {
            Removal::Expired => Some("expired"),
            Removal::Deleted => None,
        }
    }
}

/// Hashes of index entries that hold no live key and never will, each with why, if the entry
/// was a key its owner knew: an expired key (expiry is final, and all of a key's secrets share
/// it, so none of them verifies), a key being deleted (its current secret a tombstone); and
/// silently entries of creates that failed or were abandoned (record absent, revoked, or
/// pending past [`ABANDONED_AFTER_SECS`]: revoked here first). A key mid-roll keeps its slot
/// unless it expired. Every judgement of "dead" is made from a consistent read (see
/// [`read_record`]); a record this version cannot read is kept: during a rolling upgrade it
/// is a newer version's, maybe live.
fn reclaimable<S: KeyValue>(
    store: &S,
    index: &Index,
    now: i64,
) -> Result<Vec<(String, Option<Removal>)>, StoreError> {
    let mut dead = Vec::new();
    for entry in &index.keys {
        let rolled = !entry.previous.is_empty();
        let removal = match read_record(store, &entry.hash)? {
            Stored::Unreadable => continue,
            Stored::Record(r) if r.state == KeyState::Deleted => Some(Removal::Deleted),
            // An active key, or one mid-roll, is dead only once it expired.
            Stored::Record(r) if r.state == KeyState::Active || rolled => {
                if !r.is_expired(now) {
                    continue;
                }
                Some(Removal::Expired)
            }
            Stored::Absent if rolled => {
                // A roll's secret gone (a delete of an older version, say): the key lives on in
                // its older secrets, if they have not expired.
                let last = entry
                    .previous
                    .last()
                    .map(|p| p.hash.as_str())
                    .unwrap_or_default();
                match read_record(store, last)? {
                    Stored::Record(r) if r.is_expired(now) => Some(Removal::Expired),
                    _ => continue,
                }
            }
            Stored::Absent => None,
            Stored::Record(r) if r.state == KeyState::Revoked => None,
            Stored::Record(r) => {
                // Pending: a create in flight keeps its slot for a bounded time only.
                let abandoned = now - r.created_at >= ABANDONED_AFTER_SECS
                    && revoke_pending(store, &entry.hash)?;
                if !abandoned {
                    continue;
                }
                None
            }
        };
        dead.push((entry.hash.clone(), removal));
    }
    Ok(dead)
}

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

pub(super) fn publish_and_activate<S: KeyValue>(
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

/// Hashes of index entries that hold no live key and never will, each with whether it is an
/// expired key: record absent, revoked, expired, or pending past [`ABANDONED_AFTER_SECS`]
/// (revoked here by compare-and-swap). A record this version cannot read is kept: during a
/// rolling upgrade it is a newer version's, maybe live.
pub(super) fn reclaimable<S: KeyValue>(
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

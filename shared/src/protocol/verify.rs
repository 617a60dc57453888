//! Verify: one read of a presented key's record.

use super::*;

/// Looks a presented key up by its hash: the active record as verify must obey it (every
/// restriction in progress applied, see [`KeyRecord::in_force`]), or `None`. One read; at most
/// once per key and [`USAGE_GRANULARITY_SECS`], the last use is recorded too (see
/// [`record_use`]).
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
    if record.state != KeyState::Active {
        return Ok(None);
    }
    let record = record.in_force();
    // An old secret of a rolled key past its grace is as unknown as a deleted one.
    if record.is_retired(now) {
        return Ok(None);
    }
    let usable = record.enabled && record.revocation.is_none() && !record.is_expired(now);
    if usable && is_stale(record.last_used_at, now) {
        // Rare, and not worth failing a valid verification for.
        let _ = record_use(store, &key, now);
    }
    Ok(Some(record))
}

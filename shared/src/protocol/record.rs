//! A key's record (what verify reads) and every compare-and-swap transition of one record.

use super::*;

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
pub(super) fn enabled() -> bool {
    true
}

pub(super) fn is_enabled(enabled: &bool) -> bool {
    *enabled
}

pub(super) fn is_zero(version: &u64) -> bool {
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
pub(super) fn has_expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| now >= at)
}

pub(super) fn parse_record(bytes: &[u8]) -> Option<KeyRecord> {
    serde_json::from_slice(bytes).ok()
}

/// Turns the record from exactly `pending` into `active`, reading it back until it is active;
/// fails if it was deleted or revoked meanwhile.
pub(super) fn activate<S: KeyValue>(
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

/// Moves a pending record to revoked, so its create can never activate it. `true` if the record
/// is now revoked or gone, `false` if it turned active meanwhile or cannot be read by this
/// version; decided by reading it back.
pub(super) fn revoke_pending<S: KeyValue>(store: &S, hash: &str) -> Result<bool, StoreError> {
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

/// Copies `entry`'s settings onto the record of its secret `hash`, by compare-and-swap, unless
/// the record already carries them or newer ones (a higher `settings_version`): so two updates
/// carried in either order leave the newer, and verify always reads one update's settings
/// whole. Returns the record as it is then; `None` if it is gone (deleted: never written after
/// that) or cannot be read by this version. A record that is not active is left as it is.
pub(super) fn carry_settings<S: KeyValue>(
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
pub(super) fn retire<S: KeyValue>(
    store: &S,
    previous: &PreviousSecret,
    now: i64,
) -> Result<(), StoreError> {
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

/// Writes `now` as the record's last use by compare-and-swap against the active record: a
/// delete since verify's read makes the swap fail (or finds nothing to swap), so it can never
/// bring the key back, as a blind write would. Best effort: whether it landed is not read back
/// (a lost update is retried by the next verification after the hour).
pub(super) fn record_use<S: KeyValue>(store: &S, key: &str, now: i64) -> Result<(), StoreError> {
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

/// Whether a last use recorded at `last_used_at` is due to be recorded again at `now`.
pub(super) fn is_stale(last_used_at: Option<i64>, now: i64) -> bool {
    last_used_at.is_none_or(|t| now - t >= USAGE_GRANULARITY_SECS)
}

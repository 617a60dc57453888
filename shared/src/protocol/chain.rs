//! The chain of index versions: reading the head and the version it names, proposing a new
//! version, reading back whether it was published, and removing versions that are garbage.

use super::*;

/// Starts a compare-and-swap on the user's head, creating it first if it is absent.
pub(super) fn watch_head<S: KeyValue>(
    store: &S,
    user: &UserSpace,
) -> Result<(S::Cas, Head), StoreError> {
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
pub(super) fn watch_index<S: KeyValue>(
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

/// Whether the head still names `head`'s version: a judgement of a key's records made after
/// reading the index holds only then (a change published since may explain what they show).
pub(super) fn still_at<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    head: Head,
) -> Result<bool, StoreError> {
    let (_, now) = store.watch(&user.head)?;
    Ok(now.as_deref() == Some(&Head::encode(head.version, head.encoding)[..]))
}

/// Reads index `version`; `None` if it is gone because a concurrent writer moved on and removed
/// it (the caller starts over from the head).
pub(super) fn read_index<S: KeyValue>(
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
pub(super) fn swap_unconfirmed<S: KeyValue>(store: &S, cas: S::Cas, value: &[u8]) {
    let _unreliable_answer = store.swap(cas, value);
}

/// Runs `read`; when it reads back a swap that may have landed (`unconfirmed`), a failure is
/// retried a few times first. Giving up there leaves the outcome unknown to the caller: a
/// delete that happened would answer 503, and the client's retry 404.
pub(super) fn read_back<T>(
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
pub(super) fn propose<S: KeyValue>(
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
pub(super) fn next_version<S: KeyValue>(store: &S, user: &UserSpace) -> Result<u64, StoreError> {
    let number = store.increment(&user.seq, 1)?;
    u64::try_from(number).map_err(|_| corrupt("seq"))
}

/// Writes `index` as version `version` (from [`next_version`]) and asks the store to swing the
/// head to it; whether it was published is for the caller to read back.
pub(super) fn publish<S: KeyValue>(
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
pub(super) struct Versions(Vec<u64>);

impl Versions {
    /// Whether this request has proposed a version whose fate it has not read back yet.
    pub(super) fn unconfirmed(&self) -> bool {
        !self.0.is_empty()
    }

    pub(super) fn note(&mut self, base: Head, proposed: u64) {
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
    pub(super) fn sweep<S: KeyValue>(&mut self, store: &S, user: &UserSpace, head: u64) {
        for version in std::mem::take(&mut self.0)
            .into_iter()
            .filter(|v| *v != head)
        {
            let _ = store.delete(&user.index(version));
        }
    }
}

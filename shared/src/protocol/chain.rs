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
    create_head(store, user)?;
    match store.watch(&user.head)? {
        (cas, Some(bytes)) => Ok((cas, Head::decode(&bytes)?)),
        (_, None) => Err(StoreError("head vanished after being created".into())),
    }
}

/// Starts a change of a user's existing index: a compare-and-swap handle on `head` and the index
/// it names, both read back with retries when this request has proposed before (see
/// [`read_back`]). `Ok(None)`: start over — the version was removed meanwhile, or this request
/// lost a race and waited (see [`Versions::waited_after_loss`]). A user without a head has no
/// keys: `key_not_found`.
pub(super) fn watch_index<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    versions: &mut Versions,
) -> Result<Option<(S::Cas, Head, Index)>, ApiError> {
    let unconfirmed = versions.unconfirmed();
    let (cas, head) = match read_back(unconfirmed, || store.watch(&user.head))? {
        (cas, Some(bytes)) => (cas, Head::decode(&bytes)?),
        (_, None) => return Err(ApiError::KeyNotFound),
    };
    if versions.waited_after_loss(store, head) {
        return Ok(None);
    }
    let index = read_back(unconfirmed, || read_index(store, user, head.version))?;
    Ok(index.map(|index| (cas, head, index)))
}

/// What one round of a change to a user's index came to (see [`change`]).
pub(super) enum Round<T> {
    /// The answer: the change is over.
    Done(Result<T, ApiError>),
    /// Read the head and the index again: this round proposed a version, repaired something,
    /// or found a reason to look again.
    Again,
}

/// Runs a change to a user's existing index as rounds, each on a fresh reading of the head and
/// the version it names (read back with retries once this request has proposed, see
/// [`watch_index`]), at most [`MAX_ATTEMPTS`] of them. `round` decides from what it read, and
/// notes in the [`Versions`] it is given what it proposes; once it is done, every version this
/// request wrote or built on but the head it last read is removed ([`Versions::sweep`]: that
/// head was read after its last swap, so the others can never be published again). A change
/// that never gets done kept losing races: 503.
pub(super) fn change<S: KeyValue, T>(
    store: &S,
    user: &UserSpace,
    mut round: impl FnMut(&mut Versions, S::Cas, Head, Index) -> Result<Round<T>, ApiError>,
) -> Result<T, ApiError> {
    let mut versions = Versions::default();
    for _ in 0..MAX_ATTEMPTS {
        let Some((cas, head, index)) = watch_index(store, user, &mut versions)? else {
            continue;
        };
        if let Round::Done(answer) = round(&mut versions, cas, head, index)? {
            versions.sweep(store, user, head.version);
            return answer;
        }
    }
    Err(ApiError::StoreUnavailable(cause::LOST_RACES))
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
    let version = next_version(store, user, head)?;
    publish(store, user, cas, head, version, index)?;
    Ok(version)
}

/// A version number nobody else ever gets, higher than `head` (which the new version is to
/// replace), so the head only ever moves to fresh, larger numbers.
///
/// The numbers come from [`SEQ_SHARDS`] counters: counter `s` hands out its `n` as the number
/// `n × SEQ_SHARDS + s`, so no two counters ever give the same one. A request uses `seq`
/// (shard 0) unless its increment failed; then it retries, after a random wait, on a counter
/// picked at random. Spin's DynamoDB store needs this: its increment is a read and a
/// conditional write that fails, not retried, when another request wrote between the two, so
/// of the requests racing on one counter all but one fail (50 racing creates: 2 answered 201,
/// 48 × 503); spread over the counters, most retries meet nobody. A counter behind `head` is
/// moved past it with a second increment. Retrying is always safe: a number handed out but
/// answered as an error is skipped, never handed out again.
pub(super) fn next_version<S: KeyValue>(
    store: &S,
    user: &UserSpace,
    head: Head,
) -> Result<u64, StoreError> {
    retried_when_raced(store, |random| {
        let shard = u64::from(random) % SEQ_SHARDS;
        let counter = user.seq_shard(shard);
        let number = version_number(store.increment(&counter, 1)?, shard)?;
        if number > head.version {
            return Ok(number);
        }
        // Behind the head: jump past it in one go (others may add meanwhile; only more).
        let behind =
            i64::try_from((head.version - number) / SEQ_SHARDS + 1).map_err(|_| corrupt("seq"))?;
        version_number(store.increment(&counter, behind)?, shard)
    })
}

/// Runs `attempt` until it succeeds, retrying a failure up to [`INCREMENT_RETRIES`] times, each
/// after a random, growing wait ([`KeyValue::back_off`]); `attempt` is given the random number
/// of the last wait (0 the first time), to pick what it retries on. For increments only, where
/// a failure that landed after all is harmless (see [`next_version`] and [`create_head`]).
fn retried_when_raced<S: KeyValue, T>(
    store: &S,
    mut attempt: impl FnMut(u32) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let (mut retries, mut random) = (0, 0);
    loop {
        match attempt(random) {
            Err(_) if retries < INCREMENT_RETRIES => {
                retries += 1;
                random = store.back_off(retries);
            }
            result => return result,
        }
    }
}

/// The version number counter `shard` hands out as its `n`.
fn version_number(n: i64, shard: u64) -> Result<u64, StoreError> {
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(SEQ_SHARDS))
        .map(|n| n + shard)
        .ok_or_else(|| corrupt("seq"))
}

/// `increment(head, 0)`, retried after a random wait when it fails: it changes nothing once the
/// head exists, so retrying is always safe, and on Spin's DynamoDB store (see
/// [`next_version`]) the first writes of a new user's racing requests fail all but one.
fn create_head<S: KeyValue>(store: &S, user: &UserSpace) -> Result<(), StoreError> {
    retried_when_raced(store, |_| store.increment(&user.head, 0)).map(drop)
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

/// Index versions one request wrote or built on, to be removed once they are garbage, and
/// whether its last proposal lost a race it has already waited after.
#[derive(Default)]
pub(super) struct Versions {
    noted: Vec<u64>,
    last_proposed: Option<u64>,
    waited_after: Option<u64>,
    losses: u32,
}

impl Versions {
    /// Whether this request has proposed a version whose fate it has not read back yet.
    pub(super) fn unconfirmed(&self) -> bool {
        !self.noted.is_empty()
    }

    pub(super) fn note(&mut self, base: Head, proposed: u64) {
        for version in [base.version, proposed] {
            if version != 0 && !self.noted.contains(&version) {
                self.noted.push(version);
            }
        }
        self.last_proposed = Some(proposed);
    }

    /// Given the head read after this request's last proposal: when it names another version,
    /// the proposal lost (or landed and was built on; waiting is then only a delay), and this
    /// waits — once per proposal, a random time growing with each loss — and answers `true`,
    /// so the caller reads the head again before proposing anew. Requests that keep meeting
    /// (50 creates of one user) spread out instead of losing together until their attempts run
    /// out; an uncontended request never waits.
    pub(super) fn waited_after_loss<S: KeyValue>(&mut self, store: &S, head: Head) -> bool {
        let Some(proposed) = self.last_proposed else {
            return false;
        };
        if proposed == head.version || self.waited_after == Some(proposed) {
            return false;
        }
        self.waited_after = Some(proposed);
        self.losses += 1;
        store.back_off(self.losses);
        true
    }

    /// Removes every noted version but `head`, which must have been read after this request's
    /// last swap: the head only ever moves to freshly numbered versions, so a version it does
    /// not name then is never published again. A reader still holding such a number finds it
    /// gone and starts over. Failing to remove one only leaves garbage.
    pub(super) fn sweep<S: KeyValue>(&mut self, store: &S, user: &UserSpace, head: u64) {
        for version in std::mem::take(&mut self.noted)
            .into_iter()
            .filter(|v| *v != head)
        {
            let _ = store.delete(&user.index(version));
        }
    }
}

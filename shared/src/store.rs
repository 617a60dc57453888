//! The key-value operations the storage protocol uses, as a trait with one implementation per
//! world: Spin's `wasi:keyvalue` in the components, an in-memory model of Spin's SQLite store
//! in the tests.

/// A store operation failed. The text is for logs only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// What the store *says* about a compare-and-swap. Not to be trusted: Spin's Redis backend
/// answers `Conflict` after every swap (and, once fixed, `Done` for a lost race), DynamoDB
/// `Conflict` after a timeout that landed. The protocol decides by reading back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// The store says the new value was written.
    Done,
    /// The store says the value changed since it was read and nothing was written.
    Conflict,
}

/// The subset of `wasi:keyvalue@0.2.0-draft2` the protocol needs, with Spin's semantics.
///
/// No `get_many`: Spin's Redis backend implements `batch.get-many` with the `KEYS` command,
/// which fails for more than one key, so the protocol reads with plain `get`s.
///
/// Each method is one store operation (one round trip). Note the compare-and-swap caveat of
/// Spin's SQLite store: if [`KeyValue::watch`] saw the key absent, [`KeyValue::swap`] writes
/// unconditionally. The protocol never swaps after seeing a key absent.
pub trait KeyValue {
    /// A compare-and-swap handle remembering the value [`KeyValue::watch`] read.
    type Cas;

    /// The value of `key`, or `None` if absent.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes `value` unconditionally.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Deletes `key`; deleting an absent key succeeds.
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Atomically adds `delta` to the integer at `key` (absent counts as 0) and returns the sum.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError>;
    /// Starts a compare-and-swap: reads and remembers the current value of `key`.
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError>;
    /// Writes `value` if the key still holds what `watch` read. The write itself is guarded on
    /// every backend; the answer is only the store's claim (see [`Swap`]).
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, StoreError>;
    /// Waits before retry number `retry` (1, 2, …) of an operation other requests may have
    /// raced (see [`backoff_delay`]), and answers a random number the caller may use to spread
    /// racers over several keys. The in-memory stores of the tests have nobody to wait for, and
    /// answer `retry`, so that a test replays the same way.
    fn back_off(&self, retry: u32) -> u32 {
        retry
    }
}

/// A borrowed store is a store: for callers that open one lazily (verify, revocation) and are
/// handed one already open.
impl<T: KeyValue> KeyValue for &T {
    type Cas = T::Cas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        (**self).set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        (**self).increment(key, delta)
    }
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError> {
        (**self).watch(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<Swap, StoreError> {
        (**self).swap(cas, value)
    }
    fn back_off(&self, retry: u32) -> u32 {
        (**self).back_off(retry)
    }
}

/// The first back-off's upper bound.
const BACKOFF_BASE_MILLIS: u64 = 4;
/// The upper bound no back-off exceeds.
const BACKOFF_CAP_MILLIS: u64 = 1024;

/// How long to wait before retry number `retry`, given a uniformly random `random`: anywhere
/// from zero to a bound that doubles with each retry up to a cap ("full jitter"). Racing
/// requests that waited the same time would meet again; spread at random, most retry alone.
pub fn backoff_delay(retry: u32, random: u32) -> std::time::Duration {
    let bound = BACKOFF_BASE_MILLIS
        .saturating_mul(1 << retry.min(16))
        .min(BACKOFF_CAP_MILLIS);
    let micros = (bound * 1000).saturating_mul(u64::from(random)) >> 32;
    std::time::Duration::from_micros(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn back_offs_are_random_below_a_bound_that_doubles_up_to_its_cap() {
        assert_eq!(backoff_delay(1, 0), Duration::ZERO);
        assert_eq!(backoff_delay(1, u32::MAX / 2), Duration::from_micros(3_999));
        let longest = |retry| backoff_delay(retry, u32::MAX);
        assert!(longest(1) < Duration::from_millis(8));
        assert!(longest(2) < Duration::from_millis(16) && longest(2) > longest(1));
        assert!(longest(7) < Duration::from_millis(1024) && longest(7) > longest(6));
        assert_eq!(longest(8), longest(40));
    }
}

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
}

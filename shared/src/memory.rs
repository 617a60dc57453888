//! An in-memory model of Spin's SQLite key-value store for the protocol tests, with a way to
//! fail chosen operations (the tests' scheduler of simulated requests is
//! `protocol::tests::scheduler`).
//!
//! Semantics copied from Spin's behaviour (SPIN-FACTS.md): a swap whose `watch` saw the key
//! absent is an upsert; `increment` treats absent as 0, stores 8 bytes little-endian and panics
//! on any other value, as the real host does. What a swap *answers* is a mode
//! ([`SwapAnswers`]): truthfully as SQLite, or lying either way as Spin's Redis and DynamoDB
//! backends do, while the write itself stays guarded.

use crate::store::{KeyValue, StoreError, Swap};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// What the store answers after a compare-and-swap; the write itself is guarded in every mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SwapAnswers {
    /// As Spin's SQLite store: `Done` iff the value was written.
    #[default]
    Truthful,
    /// `Done` whether or not the value was written: Spin's Redis backend once its stray
    /// `UNWATCH` argument is fixed (it reads an aborted `EXEC` as success).
    FalseSuccess,
    /// `Conflict` whether or not the value was written: Spin's Redis backend today (its
    /// `UNWATCH key` fails after every swap), DynamoDB after a timeout that landed.
    FalseConflict,
    /// Truthful swaps, but a plain `get` by a simulated request ([`RequestView`]) answers
    /// what the key held [`STALE_LAG`] operations ago: Spin's DynamoDB backend with its
    /// default `consistent_read = false`, whose compare-and-swap still reads consistently.
    StaleGets,
}

/// How many operations behind a stale `get` may be (see [`SwapAnswers::StaleGets`]).
pub const STALE_LAG: u64 = 6;

impl SwapAnswers {
    /// Every mode, for tests that must hold under each.
    pub const ALL: [SwapAnswers; 4] = [
        SwapAnswers::Truthful,
        SwapAnswers::FalseSuccess,
        SwapAnswers::FalseConflict,
        SwapAnswers::StaleGets,
    ];

    fn answer(self, written: bool) -> Swap {
        match (self, written) {
            (SwapAnswers::Truthful | SwapAnswers::StaleGets, true)
            | (SwapAnswers::FalseSuccess, _) => Swap::Done,
            (SwapAnswers::Truthful | SwapAnswers::StaleGets, false)
            | (SwapAnswers::FalseConflict, _) => Swap::Conflict,
        }
    }
}

/// The shared store all simulated requests use.
#[derive(Default)]
pub struct MemoryStore {
    data: Mutex<BTreeMap<String, Vec<u8>>>,
    faults: Mutex<Faults>,
    answers: SwapAnswers,
    /// With [`SwapAnswers::StaleGets`]: the writes of the last [`STALE_LAG`] operations, each
    /// with the operation's number and what the key held before.
    recent_writes: Mutex<VecDeque<RecentWrite>>,
}

/// A write a stale `get` may not see yet: the operation's number, the key, and what it held
/// before.
type RecentWrite = (u64, String, Option<Vec<u8>>);

#[derive(Default)]
struct Faults {
    ops: u64,
    fail_at: Option<u64>,
    /// How many operations from `fail_at` on fail (0 counts as 1).
    failing: u64,
    /// Whether the chosen operation takes effect before it reports its failure.
    after_effect: bool,
}

/// A compare-and-swap handle: the key and what `watch` read.
pub struct MemoryCas {
    key: String,
    seen: Option<Vec<u8>>,
}

impl MemoryStore {
    /// A store whose swaps answer truthfully, as Spin's SQLite store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store whose swaps answer as `answers` says.
    pub fn with_answers(answers: SwapAnswers) -> MemoryStore {
        MemoryStore {
            answers,
            ..MemoryStore::default()
        }
    }

    /// The `n`-th operation from now (1-based) fails once and changes nothing.
    pub fn fail_nth(&self, n: u64) {
        self.arm(n, false);
    }

    /// The `n`-th operation from now (1-based) takes effect, then reports a failure: a write
    /// that landed before the connection broke.
    pub fn fail_nth_after_effect(&self, n: u64) {
        self.arm(n, true);
    }

    /// The `n`-th operation from now (1-based) and the `count - 1` after it fail and change
    /// nothing: a store down for a moment, longer than a retry of one read covers.
    pub fn fail_from_nth(&self, n: u64, count: u64) {
        self.arm(n, false);
        self.faults.lock().unwrap().failing = count;
    }

    /// No more failures: what an armed fault has not reached yet is called off.
    pub fn disarm(&self) {
        self.faults.lock().unwrap().fail_at = None;
    }

    fn arm(&self, n: u64, after_effect: bool) {
        let mut faults = self.faults.lock().unwrap();
        faults.fail_at = Some(faults.ops + n);
        faults.failing = 1;
        faults.after_effect = after_effect;
    }

    /// How this store answers a compare-and-swap (and whether plain reads lag).
    pub fn answers(&self) -> SwapAnswers {
        self.answers
    }

    /// Operations performed so far.
    pub fn ops(&self) -> u64 {
        self.faults.lock().unwrap().ops
    }

    /// What `key` held [`STALE_LAG`] operations ago: a stale `get` (one operation).
    pub fn stale_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.operation(|| {
            let mut value = self.data.lock().unwrap().get(key).cloned();
            let now = self.faults.lock().unwrap().ops;
            let recent = self.recent_writes.lock().unwrap();
            for (op, written, before) in recent.iter().rev() {
                if written == key && *op + STALE_LAG > now {
                    value = before.clone();
                }
            }
            value
        })
    }

    /// Notes that operation `op` is about to write `key`, for stale gets.
    fn remember_write(&self, data: &BTreeMap<String, Vec<u8>>, key: &str) {
        if self.answers != SwapAnswers::StaleGets {
            return;
        }
        let op = self.faults.lock().unwrap().ops;
        let mut recent = self.recent_writes.lock().unwrap();
        recent.push_back((op, key.to_owned(), data.get(key).cloned()));
        while recent
            .front()
            .is_some_and(|(at, _, _)| at + STALE_LAG <= op)
        {
            recent.pop_front();
        }
    }

    /// A copy of every entry, for invariant checks.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.data.lock().unwrap().clone()
    }

    /// Counts the operation and runs `effect`, unless it is the chosen one to fail: then it
    /// fails before or after `effect`.
    fn operation<T>(&self, effect: impl FnOnce() -> T) -> Result<T, StoreError> {
        // The effect runs outside this lock: it may note its write (see `remember_write`).
        let failing = {
            let mut faults = self.faults.lock().unwrap();
            faults.ops += 1;
            let failing = faults
                .fail_at
                .is_some_and(|at| (at..at + faults.failing.max(1)).contains(&faults.ops));
            failing.then_some(faults.after_effect)
        };
        match failing {
            None => Ok(effect()),
            Some(after_effect) => {
                if after_effect {
                    effect();
                }
                Err(StoreError("injected fault".into()))
            }
        }
    }
}

impl KeyValue for MemoryStore {
    type Cas = MemoryCas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.operation(|| self.data.lock().unwrap().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.operation(|| {
            let mut data = self.data.lock().unwrap();
            self.remember_write(&data, key);
            data.insert(key.to_owned(), value.to_vec());
        })
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.operation(|| {
            let mut data = self.data.lock().unwrap();
            self.remember_write(&data, key);
            data.remove(key);
        })
    }

    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.operation(|| self.add(key, delta))
    }

    fn watch(&self, key: &str) -> Result<(MemoryCas, Option<Vec<u8>>), StoreError> {
        let seen = self.operation(|| self.data.lock().unwrap().get(key).cloned())?;
        Ok((
            MemoryCas {
                key: key.to_owned(),
                seen: seen.clone(),
            },
            seen,
        ))
    }

    fn swap(&self, cas: MemoryCas, value: &[u8]) -> Result<Swap, StoreError> {
        self.operation(|| self.swap_now(cas, value))
    }
}

impl MemoryStore {
    fn add(&self, key: &str, delta: i64) -> i64 {
        let mut data = self.data.lock().unwrap();
        self.remember_write(&data, key);
        let current = match data.get(key) {
            None => 0,
            Some(bytes) => i64::from_le_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .expect("Spin's SQLite store panics: increment on a non-integer value"),
            ),
        };
        data.insert(key.to_owned(), (current + delta).to_le_bytes().to_vec());
        current + delta
    }

    fn swap_now(&self, cas: MemoryCas, value: &[u8]) -> Swap {
        let mut data = self.data.lock().unwrap();
        let written = match cas.seen {
            // Spin's SQLite store: UPDATE ... WHERE value = <seen>.
            Some(seen) if data.get(&cas.key) != Some(&seen) => false,
            // Seen absent: INSERT ... ON CONFLICT DO UPDATE, whatever is there now.
            _ => {
                self.remember_write(&data, &cas.key);
                data.insert(cas.key, value.to_vec());
                true
            }
        };
        self.answers.answer(written)
    }
}

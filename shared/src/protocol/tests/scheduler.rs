//! The order in which simulated requests reach the store: a plan of whose operation runs next,
//! and each request's view of the store, which waits for its turn, can die after a number of
//! operations, and lets a test check every state between two operations.

use crate::memory::{MemoryCas, MemoryStore, SwapAnswers};
use crate::store::{KeyValue, StoreError, Swap};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

/// Decides which simulated request performs the next store operation.
///
/// A plan is a sequence of request numbers; each operation of request `r` waits until `r` is at
/// the front of the plan (finished requests are skipped). When the plan runs out, requests run
/// freely. This makes every interleaving of whole operations reproducible.
pub struct Scheduler {
    state: Mutex<Plan>,
    turn: Condvar,
}

struct Plan {
    order: VecDeque<usize>,
    finished: Vec<bool>,
}

impl Scheduler {
    pub fn new(order: Vec<usize>, requests: usize) -> Scheduler {
        Scheduler {
            state: Mutex::new(Plan {
                order: order.into(),
                finished: vec![false; requests],
            }),
            turn: Condvar::new(),
        }
    }

    /// Runs `op` as request `me`'s next operation, once it is `me`'s turn; the turn passes on
    /// only when `op` has finished, so operations never overlap while the plan lasts.
    fn run<T>(&self, me: usize, op: impl FnOnce() -> T) -> T {
        let mut plan = self.state.lock().unwrap();
        loop {
            while plan.order.front().is_some_and(|r| plan.finished[*r]) {
                plan.order.pop_front();
            }
            match plan.order.front() {
                None => {
                    drop(plan);
                    return op();
                }
                Some(r) if *r == me => break,
                Some(_) => plan = self.turn.wait(plan).unwrap(),
            }
        }
        let result = op();
        plan.order.pop_front();
        self.turn.notify_all();
        result
    }

    /// Marks request `me` as done so the plan skips it.
    pub fn finish(&self, me: usize) {
        self.state.lock().unwrap().finished[me] = true;
        self.turn.notify_all();
    }
}

/// The store as one simulated request sees it: every operation waits for its turn, and after
/// `crash_after` operations every further one fails (the request died; nothing more of it runs).
/// `after_each`, if given, runs after every operation that reached the store, before the turn
/// passes on: a test's check of the states between operations.
pub struct RequestView<'a> {
    pub store: &'a MemoryStore,
    pub scheduler: &'a Scheduler,
    pub me: usize,
    pub crash_after: Option<u64>,
    pub done: std::cell::Cell<u64>,
    pub after_each: Option<&'a (dyn Fn() + Sync)>,
}

impl RequestView<'_> {
    fn step<T>(&self, op: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.scheduler.run(self.me, || {
            let done = self.done.get();
            if self.crash_after.is_some_and(|limit| done >= limit) {
                return Err(StoreError("request died".into()));
            }
            self.done.set(done + 1);
            let result = op();
            if let Some(check) = self.after_each {
                check();
            }
            result
        })
    }
}

impl KeyValue for RequestView<'_> {
    type Cas = MemoryCas;

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.store.answers() == SwapAnswers::StaleGets {
            return self.step(|| self.store.stale_get(key));
        }
        self.step(|| self.store.get(key))
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.step(|| self.store.set(key, value))
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.step(|| self.store.delete(key))
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        self.step(|| self.store.increment(key, delta))
    }
    fn watch(&self, key: &str) -> Result<(MemoryCas, Option<Vec<u8>>), StoreError> {
        self.step(|| self.store.watch(key))
    }
    fn swap(&self, cas: MemoryCas, value: &[u8]) -> Result<Swap, StoreError> {
        self.step(|| self.store.swap(cas, value))
    }
}

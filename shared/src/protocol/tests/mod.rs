//! Tests of the storage protocol against the in-memory model of Spin's SQLite store
//! (`crate::memory`): every interleaving of two or three requests, with the invariants checked
//! after every store operation; a failure at every operation (before and after it takes
//! effect); a request dying after every operation; 50 simultaneous creates; and random
//! sequences checked against a model of what users were told (`sequences`).
//!
//! One file per operation (`cargo test protocol::tests::roll` runs roll's), beside the shared
//! parts: `fixtures` (keys and readings of the store), `harness` (simulated requests and
//! plans), `scheduler` (whose operation runs next), `interleavings` (every plan, and what
//! answers must agree with), `failures` (a failure at every operation, outages) and
//! `invariants`.
//!
//! Each behaviour runs four times, once per way a store may answer (see [`SwapAnswers`]):
//! `<test>::truthful` (SQLite), `<test>::false_success` (Spin's Redis backend once fixed),
//! `<test>::false_conflict` (Spin's Redis backend today, DynamoDB timeouts) and
//! `<test>::stale_gets` (reads that may lag writes, DynamoDB without consistent reads).

use super::*;
use crate::key;
use crate::memory::{MemoryStore, SwapAnswers};
use scheduler::{RequestView, Scheduler};
use std::cell::Cell;

use failures::*;
use fixtures::*;
use harness::*;
use interleavings::*;
use invariants::*;
/// Makes `<case>::truthful`, `<case>::false_success`, `<case>::false_conflict` and
/// `<case>::stale_gets` tests of each `fn <case>(answers: SwapAnswers)`, so the test listing
/// shows every store behaviour.
macro_rules! under_every_swap_answer {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use super::SwapAnswers;
            #[test]
            fn truthful() {
                super::$case(SwapAnswers::Truthful)
            }
            #[test]
            fn false_success() {
                super::$case(SwapAnswers::FalseSuccess)
            }
            #[test]
            fn false_conflict() {
                super::$case(SwapAnswers::FalseConflict)
            }
            #[test]
            fn stale_gets() {
                super::$case(SwapAnswers::StaleGets)
            }
        }
    )*};
}

const NOW: i64 = 1_800_000_000;
const MAX: u32 = 20;
const HOUR: i64 = 3600;

/// When a read after an outage may give up a request that it caught: once a request that
/// died would be taken for abandoned.
const SETTLED: i64 = NOW + ABANDONED_AFTER_SECS;

mod failures;
mod fixtures;
mod harness;
mod interleavings;
mod invariants;
mod scheduler;

mod chain;
mod create;
mod delete;
mod list;
mod revoke;
mod roll;
mod roll_races;
mod sequences;
mod update;
mod verify;

//! Simulated requests, and the plans that order their store operations.

use super::*;

/// One simulated request of an interleaving test.
#[derive(Clone, Debug)]
pub(super) enum Request {
    Create {
        user: &'static str,
    },
    Delete {
        user: &'static str,
        id: String,
    },
    Update {
        user: &'static str,
        id: String,
        wanted: Settings,
    },
    Roll {
        user: &'static str,
        id: String,
        grace: i64,
    },
    List {
        user: &'static str,
    },
    Verify {
        hash: String,
    },
    /// A revocation on a leak alert of the key whose secret this is.
    Revoke {
        hash: String,
    },
}

/// What a request did, for checking against the store afterwards.
#[derive(Debug)]
pub(super) enum Outcome {
    Created(String, Result<IndexEntry, ApiError>),
    Deleted(String, Result<(), ApiError>),
    /// The update's event id, and what it answered.
    Updated(String, Result<KeySummary, ApiError>),
    /// The key's id, the grace asked for, the new secret's hash, and what the roll answered.
    Rolled(String, i64, String, Result<KeySummary, ApiError>),
    Verified(Option<KeyRecord>),
    /// The ids a list answered.
    Listed(Result<Vec<String>, ApiError>),
    /// The secret's hash, and whether the revocation answered that it was a live key's.
    Revoked(String, Result<bool, ApiError>),
}

pub(super) fn perform(request: &Request, store: &impl KeyValue, max: u32, now: i64) -> Outcome {
    match request {
        Request::Create { user } => {
            let made = new_key();
            Outcome::Created(made.hash.clone(), create_with(store, user, &made, max, now))
        }
        Request::Delete { user, id } => Outcome::Deleted(id.clone(), delete(store, user, id, now)),
        Request::Update { user, id, wanted } => {
            let event = key::event_id().unwrap();
            let result = update(store, user, id, wanted, &event, now);
            Outcome::Updated(event, result)
        }
        Request::Roll { user, id, grace } => {
            let (hash, result) = roll_with(store, user, id, *grace, now);
            Outcome::Rolled(id.clone(), *grace, hash, result)
        }
        Request::List { user } => Outcome::Listed(
            list(store, user, now).map(|keys| keys.into_iter().map(|s| s.entry.id).collect()),
        ),
        Request::Verify { hash } => Outcome::Verified(verify(store, hash, now).ok().flatten()),
        Request::Revoke { hash } => {
            let revocation = leak_at("https://github.com/alice/app/blob/main/.env", now);
            Outcome::Revoked(hash.clone(), revoke(store, hash, &revocation, now))
        }
    }
}

/// Runs `requests` concurrently on `store`, their operations ordered by `plan`; request `i`
/// dies after `crash_after[i]` operations if given. After every store operation the invariants
/// that hold between any two operations are checked (see [`assert_invariants_between`]); a
/// failure names the plan and the operation, so that it can be replayed.
pub(super) fn run_plan(
    store: &MemoryStore,
    requests: &[Request],
    plan: Vec<usize>,
    crash_after: &[Option<u64>],
    max: u32,
) -> Vec<Outcome> {
    let scheduler = Scheduler::new(plan.clone(), requests.len());
    let operations = std::sync::atomic::AtomicU64::new(0);
    // Only a state not checked yet is checked (reads change nothing).
    let last_checked = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let check = || {
        let n = operations.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let state = store.snapshot();
        let mut last = last_checked.lock().unwrap();
        if *last == state {
            return;
        }
        let copy = MemoryStore::new();
        for (key, value) in &state {
            copy.set(key, value).unwrap();
        }
        *last = state;
        drop(last);
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_invariants_between(&copy, max as usize)
        }));
        if let Err(failure) = checked {
            let message = failure
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| failure.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "after store operation {n} of plan {plan:?}, crashes {crash_after:?}, \
                 requests {requests:?}: {message}"
            );
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(me, request)| {
                let scheduler = &scheduler;
                let crash = crash_after.get(me).copied().flatten();
                let check: &(dyn Fn() + Sync) = &check;
                scope.spawn(move || {
                    let view = RequestView {
                        store,
                        scheduler,
                        me,
                        crash_after: crash,
                        done: Cell::new(0),
                        after_each: Some(check),
                    };
                    let outcome = perform(request, &view, max, NOW);
                    scheduler.finish(me);
                    outcome
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    })
}

/// Every plan with at most two switches: `a` runs `i` operations, `b` runs `j` (or all of
/// its own), then `a` finishes, then `b`; and the same with the roles swapped.
pub(super) fn plans(depth: usize) -> Vec<Vec<usize>> {
    let mut plans = Vec::new();
    for (first, second) in [(0, 1), (1, 0)] {
        for i in 0..=depth {
            for j in (0..=depth).chain([4 * depth]) {
                let mut plan = vec![first; i];
                plan.extend(vec![second; j]);
                plan.extend(vec![first; 4 * depth]);
                plan.extend(vec![second; 4 * depth]);
                plans.push(plan);
            }
        }
    }
    plans
}

/// Every plan of three requests in which one runs whole between two operations of each of the
/// others: `a` runs `i` operations, `b` runs `j`, `c` all of its own, then `a` finishes, then
/// `b`; for every order of the three.
pub(super) fn plans_of_three(depth: usize) -> Vec<Vec<usize>> {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let mut plans = Vec::new();
    for [a, b, c] in orders {
        for i in 0..=depth {
            for j in 0..=depth {
                let mut plan = vec![a; i];
                plan.extend(vec![b; j]);
                plan.extend(vec![c; 4 * depth]);
                plan.extend(vec![a; 4 * depth]);
                plan.extend(vec![b; 4 * depth]);
                plans.push(plan);
            }
        }
    }
    plans
}

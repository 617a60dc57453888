//! Simulated requests run under every plan of interleaving, failure and death, and what their
//! answers must agree with.

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

/// Checks what every request answered against the store it left behind.
pub(super) fn assert_outcomes(
    store: &MemoryStore,
    outcomes: &[Outcome],
    deleted_hashes: &[(String, String)],
) {
    for outcome in outcomes {
        match outcome {
            Outcome::Created(hash, Ok(_)) => {
                let deleted_after = outcomes.iter().any(|o| {
                    matches!(o, Outcome::Deleted(id, Ok(())) if deleted_hashes.iter().any(|(i, h)| i == id && h == hash))
                });
                if !deleted_after {
                    assert!(
                        verifies(store, hash),
                        "a create answered 201 but its key does not verify"
                    );
                }
            }
            Outcome::Created(hash, Err(e)) => {
                assert!(
                    !verifies(store, hash),
                    "a create answered {e:?} but its key verifies"
                );
            }
            Outcome::Deleted(id, Ok(())) => {
                let hash = &deleted_hashes
                    .iter()
                    .find(|(i, _)| i == id)
                    .expect("known id")
                    .1;
                assert!(!verifies(store, hash), "a deleted key still verifies");
                // Every secret a roll gave it too.
                for outcome in outcomes {
                    if let Outcome::Rolled(rolled, _, new, _) = outcome {
                        if rolled == id {
                            assert!(!verifies(store, new), "a deleted key's new secret verifies");
                        }
                    }
                }
            }
            Outcome::Rolled(id, grace, new, Ok(summary)) => {
                assert_eq!((&summary.entry.id, &summary.entry.hash), (id, new));
                let deleted = outcomes
                    .iter()
                    .any(|o| matches!(o, Outcome::Deleted(d, Ok(())) if d == id));
                let other_rolls = outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Rolled(r, _, n, Ok(_)) if r == id && n != new))
                    .count();
                if !deleted && other_rolls == 0 {
                    assert!(
                        verifies(store, new),
                        "a roll answered 201 but its secret fails"
                    );
                }
                let original = deleted_hashes.iter().find(|(i, _)| i == id).map(|k| &k.1);
                if let (Some(original), false) = (original, deleted) {
                    if other_rolls == 0 {
                        assert_eq!(
                            verifies(store, original),
                            *grace > 0,
                            "the replaced secret, grace {grace}"
                        );
                    }
                    let longest = outcomes
                        .iter()
                        .filter_map(|o| match o {
                            Outcome::Rolled(r, g, _, Ok(_)) if r == id => Some(*g),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0);
                    assert!(
                        !verifies_at(store, original, NOW + longest),
                        "the replaced secret verifies after its grace"
                    );
                }
            }
            Outcome::Rolled(_, _, new, Err(e)) => {
                assert!(
                    !verifies(store, new),
                    "a roll answered {e:?} but its secret verifies"
                );
            }
            _ => {}
        }
    }
}

/// Sets up `existing` keys for alice, runs the two requests under every plan and checks.
pub(super) fn check_all_interleavings(
    answers: SwapAnswers,
    existing: u32,
    make: impl Fn(&[Made]) -> [Request; 2],
) {
    check_all_interleavings_with_expired(answers, existing, 0, DEPTH, make)
}

/// How many operations of each request the interleavings cover before the other runs: all of
/// a create's, delete's or update's on a quiet store.
pub(super) const DEPTH: usize = 14;

/// The same for a roll, which does more (the other request may run whole in between).
pub(super) const ROLL_DEPTH: usize = 24;

/// As [`check_all_interleavings`], deep enough for a roll to run whole between any two
/// operations of the other request.
pub(super) fn check_all_roll_interleavings(
    answers: SwapAnswers,
    existing: u32,
    make: impl Fn(&[Made]) -> [Request; 2],
) {
    check_all_interleavings_with_expired(answers, existing, 0, ROLL_DEPTH, make)
}

/// How many operations the plans with a death cover: the first request dies after each of its
/// first `DEATH_DEPTH`, under every plan of that depth.
pub(super) const DEATH_DEPTH: usize = 8;

/// Sets up `existing` keys for alice and runs the two requests under every plan, the first
/// dying after each of its operations (every later one of its own fails, its clean-up
/// included): the survivor's answer agrees with the store, the invariants hold between every
/// two operations and at the end, and once the dead request counts as abandoned a read
/// settles what it left.
pub(super) fn check_all_interleavings_with_a_death(
    answers: SwapAnswers,
    existing: u32,
    make: impl Fn(&[Made]) -> [Request; 2],
) {
    for died_after in 0..=DEATH_DEPTH as u64 {
        for plan in plans(DEATH_DEPTH) {
            let store = MemoryStore::with_answers(answers);
            let made = keys_with_expired(&store, existing, 0);
            let requests = make(&made);
            let known: Vec<(String, String)> = made
                .iter()
                .map(|m| (m.id.clone(), m.hash.clone()))
                .collect();
            let outcomes = run_plan(
                &store,
                &requests,
                plan.clone(),
                &[Some(died_after), None],
                MAX,
            );
            assert_invariants(&store, &["alice"], MAX as usize);
            // Once the dead request counts as abandoned, a read settles what it left: a key
            // whose delete killed its secrets leaves the list.
            let settled = list(&store, "alice", NOW + ABANDONED_AFTER_SECS + 1);
            let Ok(settled) = settled else {
                panic!("plan {plan:?}, died after {died_after}: {settled:?}");
            };
            assert_invariants(&store, &["alice"], MAX as usize);
            // A request that died gave no answer (one that finished within its operations
            // did); as far as the survivor can tell, it happened if its effect shows (a delete
            // whose key is gone), and not otherwise.
            let finished = |outcome: &Outcome| {
                !matches!(
                    outcome,
                    Outcome::Created(_, Err(ApiError::StoreUnavailable(_)))
                        | Outcome::Deleted(_, Err(ApiError::StoreUnavailable(_)))
                        | Outcome::Updated(_, Err(ApiError::StoreUnavailable(_)))
                        | Outcome::Rolled(_, _, _, Err(ApiError::StoreUnavailable(_)))
                )
            };
            let mut heard: Vec<Outcome> = Vec::new();
            for (request, outcome) in outcomes.into_iter().enumerate() {
                match outcome {
                    outcome if request > 0 || finished(&outcome) => heard.push(outcome),
                    Outcome::Deleted(id, _) if !settled.iter().any(|s| s.entry.id == id) => {
                        heard.push(Outcome::Deleted(id, Ok(())))
                    }
                    _ => {}
                }
            }
            let agreed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                assert_outcomes(&store, &heard, &known)
            }));
            assert!(
                agreed.is_ok(),
                "plan {plan:?}, the first request dead after {died_after} operations: {heard:?}"
            );
        }
    }
}

/// How many operations of each of the first two requests the three-request plans cover (the
/// third runs whole between them).
pub(super) const THREE_DEPTH: usize = 8;

/// Sets up `existing` keys for alice, runs the three requests under every plan of
/// [`plans_of_three`] and checks.
pub(super) fn check_all_interleavings_of_three(
    answers: SwapAnswers,
    existing: u32,
    make: impl Fn(&[Made]) -> [Request; 3],
) {
    check_all_interleavings_with_expired(answers, existing, 0, THREE_DEPTH, make)
}

/// As [`check_all_interleavings`] (or [`check_all_interleavings_of_three`] for three requests),
/// with `expired` more keys of alice's expired at `NOW`: they take no room, and a delete of one
/// frees none.
pub(super) fn check_all_interleavings_with_expired<const N: usize>(
    answers: SwapAnswers,
    existing: u32,
    expired: u32,
    depth: usize,
    make: impl Fn(&[Made]) -> [Request; N],
) {
    let plans = match N {
        2 => plans(depth),
        3 => plans_of_three(depth),
        _ => unreachable!("plans are made for two or three requests"),
    };
    for plan in plans {
        let store = MemoryStore::with_answers(answers);
        let made = keys_with_expired(&store, existing, expired);
        let requests = make(&made);
        let known: Vec<(String, String)> = made
            .iter()
            .map(|m| (m.id.clone(), m.hash.clone()))
            .collect();
        let outcomes = run_plan(&store, &requests, plan.clone(), &[], MAX);
        assert_outcomes(&store, &outcomes, &known);
        // With no store failure, an update's change is in the history iff it answered 200
        // (a key deleted after the change was made is still told so), and only a delete of
        // the key makes it answer anything else.
        let history = current_index(&store, "alice").events;
        let anyone_deletes = requests.iter().any(|r| matches!(r, Request::Delete { .. }));
        for outcome in &outcomes {
            if let Outcome::Updated(event, result) = outcome {
                let in_history = history.iter().any(|shown| &shown.id == event);
                assert!(
                    !in_history || result.is_ok(),
                    "plan {plan:?}: an update answered {result:?} but its change is in the history"
                );
                assert!(
                    result.is_ok() || anyone_deletes,
                    "plan {plan:?}: an update answered {result:?}: {outcomes:?}"
                );
            }
        }
        // Without store failures every roll and list of a key nobody deletes succeeds: racing
        // rolls are each applied in some order, and a list shows every key live throughout.
        let deleted: Vec<&str> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Delete { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let applied_rolls = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Rolled(_, _, _, Ok(_))))
            .count();
        for outcome in &outcomes {
            match outcome {
                Outcome::Rolled(id, _, _, Err(e)) if !deleted.contains(&id.as_str()) => {
                    panic!("plan {plan:?}: a roll answered {e:?}: {outcomes:?}")
                }
                Outcome::Listed(listed) => {
                    let listed = listed.as_ref().expect("list");
                    for made in made.iter().filter(|m| !deleted.contains(&m.id.as_str())) {
                        assert!(
                            listed.contains(&made.id),
                            "plan {plan:?}: a list dropped a live key: {outcomes:?}"
                        );
                    }
                }
                _ => {}
            }
        }
        // The history shows every roll that answered 201, and no other (a key deleted after
        // a roll was made keeps its history, and the roll was told it was made).
        let rolled = events(&store, "alice", NOW)
            .unwrap()
            .iter()
            .filter(|e| e.kind == EventKind::Rolled)
            .count();
        assert_eq!(rolled, applied_rolls, "plan {plan:?}: {outcomes:?}");
        assert_invariants(&store, &["alice", "bob"], MAX as usize);
        assert_settings_carried(&store, &["alice", "bob"]);
        assert_no_pending(&store);
        let created = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Created(_, Ok(_))))
            .count();
        let creates = requests
            .iter()
            .filter(|r| matches!(r, Request::Create { .. }))
            .count();
        let expired_ids: Vec<&str> = made[existing as usize..]
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        let deletes_ok = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Deleted(id, Ok(())) if !expired_ids.contains(&id.as_str())))
            .count();
        let room = (MAX - existing) as usize + deletes_ok;
        if requests.iter().any(|r| matches!(r, Request::Delete { .. })) {
            // A create that ran before the delete freed a slot may rightly have been refused.
            assert!(created <= creates.min(room), "plan {plan:?}: {outcomes:?}");
        } else {
            assert_eq!(created, creates.min(room), "plan {plan:?}: {outcomes:?}");
        }
    }
}

/// Counts the operations a request performs on a quiet store.
pub(super) fn operations_of(answers: SwapAnswers, setup: impl Fn(&MemoryStore) -> Request) -> u64 {
    let store = MemoryStore::with_answers(answers);
    let request = setup(&store);
    let before = store.ops();
    perform(&request, &store, MAX, NOW);
    store.ops() - before
}

pub(super) fn check_failure_at_every_operation(
    answers: SwapAnswers,
    setup: impl Fn(&MemoryStore) -> (Request, Vec<(String, String)>),
) {
    let operations = operations_of(answers, |s| setup(s).0);
    assert!(operations >= 3);
    // Each operation fails once before it takes effect, and once after (a write that landed
    // before the connection broke).
    for (n, after_effect) in (1..=operations).flat_map(|n| [(n, false), (n, true)]) {
        let store = MemoryStore::with_answers(answers);
        let (request, known) = setup(&store);
        if after_effect {
            store.fail_nth_after_effect(n);
        } else {
            store.fail_nth(n);
        }
        let n = format!("{n}{}", if after_effect { " (after effect)" } else { "" });
        let outcome = perform(&request, &store, MAX, NOW);
        match &outcome {
            Outcome::Created(_, Err(e))
            | Outcome::Deleted(_, Err(e))
            | Outcome::Rolled(_, _, _, Err(e)) => {
                assert!(matches!(e, ApiError::StoreUnavailable(_)), "op {n}: {e:?}")
            }
            _ => {}
        }
        assert_outcomes(&store, std::slice::from_ref(&outcome), &known);
        assert_invariants(&store, &["alice"], MAX as usize);
        assert_no_pending(&store);
        if let Outcome::Created(hash, Err(_)) = &outcome {
            if !verifies(&store, hash) {
                // Its key never went live: no event may say it was created. (Every other shown
                // `created` is a listed key's, or a removed one's with its removal shown.)
                let shown = events(&store, "alice", NOW).unwrap();
                let count = |kind| shown.iter().filter(|e| e.kind == kind).count();
                assert_eq!(
                    count(EventKind::Created),
                    listed_ids(&store, "alice").len() + count(EventKind::Deleted),
                    "op {n}: {shown:?}"
                );
            }
        }
        if !matches!(outcome, Outcome::Updated(_, Err(_))) {
            assert_settings_carried(&store, &["alice"]);
        }
        // The user can go on: the same request again succeeds.
        match (&request, &outcome) {
            (Request::Create { .. }, Outcome::Created(_, Err(_))) => {
                assert!(
                    matches!(
                        perform(&request, &store, MAX, NOW),
                        Outcome::Created(_, Ok(_))
                    ),
                    "retry after op {n}"
                )
            }
            (Request::Delete { .. }, Outcome::Deleted(id, Err(_))) => {
                // The retry finishes the delete; or a read since (the checks above) found the
                // key killed and finished it, and the retry answers that no such key is left.
                let retry = perform(&request, &store, MAX, NOW);
                let finished = current_index(&store, "alice")
                    .events
                    .iter()
                    .any(|e| e.kind == EventKind::Deleted && &e.key_id == id);
                assert!(
                    matches!(retry, Outcome::Deleted(_, Ok(())))
                        || matches!(retry, Outcome::Deleted(_, Err(ApiError::KeyNotFound)))
                            && finished,
                    "retry after op {n}: {retry:?}"
                );
            }
            (Request::Roll { .. }, Outcome::Rolled(id, grace, _, Err(_))) => {
                // If it was published, the old secret still ends with its grace; if not, it is
                // untouched. Either way the key can still be changed (tried on a copy).
                let original = &known.iter().find(|(i, _)| i == id).expect("known").1;
                let published = current_index(&store, "alice")
                    .events
                    .iter()
                    .any(|e| e.kind == EventKind::Rolled && &e.key_id == id);
                if published {
                    assert!(!verifies_at(&store, original, NOW + grace), "op {n}");
                } else {
                    assert!(verifies_at(&store, original, NOW + 100 * HOUR), "op {n}");
                }
                let copy = copy_of(&store, answers);
                let disabled = update_one(&copy, "alice", id, &write_only());
                assert!(disabled.is_ok(), "update after op {n}: {disabled:?}");
                assert_settings_carried(&copy, &["alice"]);
                let retry = perform(&request, &store, MAX, NOW);
                assert!(
                    matches!(retry, Outcome::Rolled(_, _, _, Ok(_))),
                    "retry after op {n}: {retry:?}"
                );
                assert_outcomes(&store, std::slice::from_ref(&retry), &known);
                assert_settings_carried(&store, &["alice"]);
            }
            (Request::Update { .. }, Outcome::Updated(_, Err(_))) => {
                let retry = perform(&request, &store, MAX, NOW);
                assert!(
                    matches!(retry, Outcome::Updated(_, Ok(_))),
                    "retry after op {n}: {retry:?}"
                );
                assert_settings_carried(&store, &["alice"]);
            }
            _ => {}
        }
        assert_invariants(&store, &["alice"], MAX as usize);
    }
}

pub(super) fn check_roll_failures(answers: SwapAnswers, grace: i64) {
    check_failure_at_every_operation(answers, |store| {
        let made: Vec<Made> = (0..2).map(|_| create_one(store, "alice")).collect();
        let known = made
            .iter()
            .map(|m| (m.id.clone(), m.hash.clone()))
            .collect();
        (roll_request(&made, grace), known)
    });
}

/// Every outage of the store from one of a request's operations on, of every length from one
/// operation to longer than any retry bound of the protocol: (first failing operation, how
/// many fail).
pub(super) fn outages(operations: u64) -> impl Iterator<Item = (u64, u64)> {
    let longest = MAX_ATTEMPTS as u64 + 1;
    (1..=operations).flat_map(move |n| (1..=longest).map(move |length| (n, length)))
}

//! A request met by a store failure at each of its operations, or by outages of every length.

use super::*;

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
            | Outcome::Rolled(_, _, _, Err(e))
            | Outcome::Revoked(_, Err(e)) => {
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
            (Request::Revoke { .. }, Outcome::Revoked(_, Err(_))) => {
                let retry = perform(&request, &store, MAX, NOW);
                assert!(
                    matches!(retry, Outcome::Revoked(_, Ok(true))),
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

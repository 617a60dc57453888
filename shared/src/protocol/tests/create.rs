//! Create: the limit, racing creates, reclaiming expired and dead slots, failures and deaths.

use super::*;

fn the_limit_is_enforced_and_freed_by_delete(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made: Vec<Made> = (0..MAX).map(|_| create_one(&store, "alice")).collect();
    assert_eq!(
        create_with(&store, "alice", &new_key(), MAX, NOW),
        Err(ApiError::KeyLimitReached(MAX))
    );
    delete(&store, "alice", &made[3].id, NOW).unwrap();
    create_with(&store, "alice", &new_key(), MAX, NOW).expect("a slot was freed");
    assert_eq!(listed_ids(&store, "alice").len(), MAX as usize);
    assert_no_pending(&store);
}

fn fifty_simultaneous_creates_for_a_new_user_give_exactly_the_limit(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let outcomes: Vec<Result<Made, ApiError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                scope.spawn(|| {
                    let made = new_key();
                    create_with(&store, "alice", &made, MAX, NOW).map(|_| made)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<&Made> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let refused = outcomes
        .iter()
        .filter(|o| {
            **o.as_ref().err().as_ref().unwrap_or(&&ApiError::Internal)
                == ApiError::KeyLimitReached(MAX)
        })
        .count();
    assert_eq!(created.len(), MAX as usize);
    assert_eq!(refused, 50 - MAX as usize);
    let listed = listed_ids(&store, "alice");
    for made in created {
        assert!(listed.contains(&made.id));
        assert!(verifies(&store, &made.hash));
    }
    assert_invariants(&store, &["alice"], MAX as usize);
    assert_no_pending(&store);
}

fn two_first_creates_of_a_new_user_both_land_in_every_interleaving(answers: SwapAnswers) {
    check_all_interleavings(answers, 0, |_| {
        [
            Request::Create { user: "alice" },
            Request::Create { user: "alice" },
        ]
    });
}

fn two_creates_racing_for_the_last_slot_give_one_key_in_every_interleaving(answers: SwapAnswers) {
    check_all_interleavings(answers, MAX - 1, |_| {
        [
            Request::Create { user: "alice" },
            Request::Create { user: "alice" },
        ]
    });
}

fn a_create_racing_a_delete_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings(answers, 3, |made| {
        [
            Request::Create { user: "alice" },
            Request::Delete {
                user: "alice",
                id: made[1].id.clone(),
            },
        ]
    });
}

fn a_create_at_the_limit_racing_a_delete_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings(answers, MAX, |made| {
        [Request::Create { user: "alice" }, delete_request(made)]
    });
}

fn creates_of_two_users_do_not_interfere(answers: SwapAnswers) {
    check_all_interleavings(answers, 0, |_| {
        [
            Request::Create { user: "alice" },
            Request::Create { user: "bob" },
        ]
    });
}

fn a_store_failure_at_any_operation_of_a_first_create_leaves_nothing_half_made(
    answers: SwapAnswers,
) {
    check_failure_at_every_operation(answers, |_| (Request::Create { user: "alice" }, vec![]));
}

fn a_store_failure_at_any_operation_of_a_create_leaves_nothing_half_made(answers: SwapAnswers) {
    check_failure_at_every_operation(answers, |store| {
        create_one(store, "alice");
        (Request::Create { user: "alice" }, vec![])
    });
}

fn a_store_failure_at_any_operation_of_a_create_at_the_limit_with_a_dead_slot_recovers(
    answers: SwapAnswers,
) {
    check_failure_at_every_operation(answers, |store| {
        let made: Vec<Made> = (0..MAX).map(|_| create_one(store, "alice")).collect();
        // A slot whose key was killed but whose index entry remained (a delete that failed
        // after killing it): the next create reclaims it.
        store.delete(&record_key(&made[0].hash)).unwrap();
        (Request::Create { user: "alice" }, vec![])
    });
}

fn a_create_that_dies_after_any_operation_blocks_its_slot_for_a_bounded_time_only(
    answers: SwapAnswers,
) {
    let operations = operations_of(answers, |store| {
        (0..MAX - 1).for_each(|_| {
            create_one(store, "alice");
        });
        Request::Create { user: "alice" }
    });
    for died_after in 0..operations {
        let store = MemoryStore::with_answers(answers);
        (0..MAX - 1).for_each(|_| {
            create_one(&store, "alice");
        });
        let outcomes = run_plan(
            &store,
            &[Request::Create { user: "alice" }],
            vec![],
            &[Some(died_after)],
            MAX,
        );
        let Outcome::Created(dead_hash, Err(_)) = &outcomes[0] else {
            panic!("a request that died answered {:?}", outcomes[0]);
        };
        assert_invariants(&store, &["alice"], MAX as usize);
        if verifies(&store, dead_hash) {
            // It died after its key went live (while reading back its activation): the key is
            // listed, as the invariants checked, and holds its slot as any key does.
            assert_eq!(listed_ids(&store, "alice").len(), MAX as usize);
            continue;
        }

        // Right away the slot may still be held by the dead create...
        let soon = create_with(&store, "alice", &new_key(), MAX, NOW + 1);
        assert!(
            matches!(soon, Ok(_) | Err(ApiError::KeyLimitReached(_))),
            "{soon:?}"
        );
        if soon.is_err() {
            // ...but never for longer than the stated bound.
            create_with(&store, "alice", &new_key(), MAX, NOW + ABANDONED_AFTER_SECS)
                .unwrap_or_else(|e| {
                    panic!("still blocked after the bound (died after {died_after}): {e:?}")
                });
        }
        assert_eq!(listed_ids(&store, "alice").len(), MAX as usize);
        assert_invariants(&store, &["alice"], MAX as usize);
        // A create that died before publishing leaves its pending record as unreferenced
        // garbage (nobody can know its hash); it is never live, which the invariants check.
    }
}

fn a_slow_create_whose_slot_was_reclaimed_never_becomes_live(answers: SwapAnswers) {
    // The create pauses after writing its index entry (before activation) for longer than the
    // abandonment bound; another create reclaims the slot meanwhile.
    let store = MemoryStore::with_answers(answers);
    (0..MAX - 1).for_each(|_| {
        create_one(&store, "alice");
    });
    let slow = new_key();
    let slow_ops = operations_of(answers, |s| {
        (0..MAX - 1).for_each(|_| {
            create_one(s, "alice");
        });
        Request::Create { user: "alice" }
    });
    // The slow create runs all but its three activation operations (watch, swap, read back)
    // and its clean-up; then the other request runs to completion at a later time; then the
    // slow one.
    let scheduler = Scheduler::new(
        std::iter::repeat_n(0, slow_ops as usize - 3)
            .chain(std::iter::repeat_n(1, 40))
            .collect(),
        2,
    );
    let (slow_result, late_result) = std::thread::scope(|scope| {
        let slow_handle = scope.spawn(|| {
            let view = RequestView {
                store: &store,
                scheduler: &scheduler,
                me: 0,
                crash_after: None,
                done: Cell::new(0),
                after_each: None,
            };
            let r = create_with(&view, "alice", &slow, MAX, NOW);
            scheduler.finish(0);
            r
        });
        let late_handle = scope.spawn(|| {
            let view = RequestView {
                store: &store,
                scheduler: &scheduler,
                me: 1,
                crash_after: None,
                done: Cell::new(0),
                after_each: None,
            };
            let r = create_with(&view, "alice", &new_key(), MAX, NOW + ABANDONED_AFTER_SECS);
            scheduler.finish(1);
            r
        });
        (slow_handle.join().unwrap(), late_handle.join().unwrap())
    });
    assert!(late_result.is_ok(), "{late_result:?}");
    assert!(
        matches!(slow_result, Err(ApiError::StoreUnavailable(_))),
        "{slow_result:?}"
    );
    assert!(!verifies(&store, &slow.hash));
    assert_invariants(&store, &["alice"], MAX as usize);
}

fn lowering_the_limit_keeps_existing_keys_and_refuses_new_ones(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    (0..5).for_each(|_| {
        create_one(&store, "alice");
    });
    assert_eq!(
        create_with(&store, "alice", &new_key(), 3, NOW),
        Err(ApiError::KeyLimitReached(3))
    );
    assert_eq!(listed_ids(&store, "alice").len(), 5);
}

fn an_expired_key_does_not_count_toward_the_limit_and_a_create_reclaims_it(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let mut made: Vec<Made> = (0..MAX - 1).map(|_| create_one(&store, "alice")).collect();
    let expiring = new_key();
    create_expiring(&store, "alice", &expiring, MAX, NOW, Some(NOW + 60)).unwrap();
    // Before its expiry it takes a slot.
    assert_eq!(
        create_with(&store, "alice", &new_key(), MAX, NOW + 59),
        Err(ApiError::KeyLimitReached(MAX))
    );
    // From its expiry on it does not: the create takes its slot and removes its record.
    let next = new_key();
    create_with(&store, "alice", &next, MAX, NOW + 60).expect("the expired slot is reclaimed");
    made.push(next);
    let listed = listed_ids(&store, "alice");
    assert_eq!(listed.len(), MAX as usize);
    assert!(!listed.contains(&expiring.id));
    assert!(made.iter().all(|m| listed.contains(&m.id)));
    assert!(store.get(&record_key(&expiring.hash)).unwrap().is_none());
    assert_invariants(&store, &["alice"], MAX as usize);
}

fn two_creates_racing_for_an_expired_slot_give_one_key_in_every_interleaving(answers: SwapAnswers) {
    check_all_interleavings_with_expired(answers, MAX - 1, 1, DEPTH, |_| {
        [
            Request::Create { user: "alice" },
            Request::Create { user: "alice" },
        ]
    });
}

fn a_create_reclaiming_an_expired_key_racing_its_delete_keeps_every_invariant(
    answers: SwapAnswers,
) {
    check_all_interleavings_with_expired(answers, MAX - 1, 1, DEPTH, |made| {
        [
            Request::Create { user: "alice" },
            Request::Delete {
                user: "alice",
                id: made[MAX as usize - 1].id.clone(),
            },
        ]
    });
}

fn a_store_failure_at_any_operation_of_a_create_reclaiming_an_expired_key_recovers(
    answers: SwapAnswers,
) {
    check_failure_at_every_operation(answers, |store| {
        keys_with_expired(store, MAX - 1, 1);
        (Request::Create { user: "alice" }, vec![])
    });
}

fn a_create_that_stops_needing_a_reclaimed_slot_leaves_the_expired_key_listed(
    answers: SwapAnswers,
) {
    check_all_interleavings_with_expired(answers, MAX - 1, 1, DEPTH, |made| {
        [Request::Create { user: "alice" }, delete_request(made)]
    });
}

fn two_creates_and_a_delete_at_the_limit_give_one_key_in_every_interleaving(answers: SwapAnswers) {
    check_all_interleavings_of_three(answers, MAX, |made| {
        [
            Request::Create { user: "alice" },
            Request::Create { user: "alice" },
            delete_request(made),
        ]
    });
}

fn a_create_at_the_limit_dying_anywhere_racing_a_delete_keeps_every_invariant(
    answers: SwapAnswers,
) {
    check_all_interleavings_with_a_death(answers, MAX, |made| {
        [Request::Create { user: "alice" }, delete_request(made)]
    });
}

under_every_swap_answer!(
    two_creates_and_a_delete_at_the_limit_give_one_key_in_every_interleaving,
    a_create_at_the_limit_dying_anywhere_racing_a_delete_keeps_every_invariant,
    the_limit_is_enforced_and_freed_by_delete,
    fifty_simultaneous_creates_for_a_new_user_give_exactly_the_limit,
    two_first_creates_of_a_new_user_both_land_in_every_interleaving,
    two_creates_racing_for_the_last_slot_give_one_key_in_every_interleaving,
    a_create_racing_a_delete_keeps_every_invariant,
    a_create_at_the_limit_racing_a_delete_keeps_every_invariant,
    creates_of_two_users_do_not_interfere,
    a_store_failure_at_any_operation_of_a_first_create_leaves_nothing_half_made,
    a_store_failure_at_any_operation_of_a_create_leaves_nothing_half_made,
    a_store_failure_at_any_operation_of_a_create_at_the_limit_with_a_dead_slot_recovers,
    a_create_that_dies_after_any_operation_blocks_its_slot_for_a_bounded_time_only,
    a_slow_create_whose_slot_was_reclaimed_never_becomes_live,
    lowering_the_limit_keeps_existing_keys_and_refuses_new_ones,
    an_expired_key_does_not_count_toward_the_limit_and_a_create_reclaims_it,
    two_creates_racing_for_an_expired_slot_give_one_key_in_every_interleaving,
    a_create_reclaiming_an_expired_key_racing_its_delete_keeps_every_invariant,
    a_store_failure_at_any_operation_of_a_create_reclaiming_an_expired_key_recovers,
    a_create_that_stops_needing_a_reclaimed_slot_leaves_the_expired_key_listed,
);

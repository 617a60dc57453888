//! Roll racing other requests: rolls, updates, deletes, lists, verifies and creates, in every
//! interleaving, some of them dying midway.

use super::*;

fn two_rolls_of_one_key_in_every_interleaving(answers: SwapAnswers) {
    check_all_roll_interleavings(answers, 2, |made| {
        [roll_request(made, HOUR), roll_request(made, 2 * HOUR)]
    });
}

fn two_rolls_without_grace_in_every_interleaving(answers: SwapAnswers) {
    check_all_roll_interleavings(answers, 1, |made| {
        [roll_request(made, 0), roll_request(made, 0)]
    });
}

fn a_roll_racing_a_delete_leaves_no_secret_alive(answers: SwapAnswers) {
    for grace in [0, HOUR] {
        check_all_roll_interleavings(answers, 2, |made| {
            [roll_request(made, grace), delete_request(made)]
        });
    }
}

fn a_roll_racing_an_update_keeps_every_secret_in_line(answers: SwapAnswers) {
    check_all_roll_interleavings(answers, 1, |made| {
        [roll_request(made, HOUR), restricting_update(made)]
    });
}

fn a_list_overlapping_a_roll_always_shows_the_key(answers: SwapAnswers) {
    for grace in [0, HOUR] {
        check_all_roll_interleavings(answers, 2, |made| {
            [roll_request(made, grace), Request::List { user: "alice" }]
        });
    }
}

fn three_rolls_and_a_list_of_one_key_racing_freely_are_all_applied(answers: SwapAnswers) {
    for round in 0..20 {
        let store = MemoryStore::with_answers(answers);
        let made = vec![create_one(&store, "alice")];
        let requests = [
            roll_request(&made, 0),
            roll_request(&made, HOUR),
            roll_request(&made, 0),
            Request::List { user: "alice" },
        ];
        // No plan: the threads run as the operating system schedules them.
        let outcomes = run_plan(&store, &requests, vec![], &[], MAX);
        let applied: Vec<&String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Rolled(_, _, new, Ok(_)) => Some(new),
                Outcome::Rolled(_, _, _, Err(e)) => panic!("round {round}: a roll answered {e:?}"),
                _ => None,
            })
            .collect();
        assert_eq!(applied.len(), 3);
        // The last one applied is the key's current secret, and verifies.
        let current = &list(&store, "alice", NOW).unwrap()[0].entry.hash;
        assert!(applied.contains(&current) && verifies(&store, current));
        let rolled = events(&store, "alice", NOW).unwrap();
        assert_eq!(
            rolled
                .iter()
                .filter(|e| e.kind == EventKind::Rolled)
                .count(),
            3
        );
        assert!(
            matches!(&outcomes[3], Outcome::Listed(Ok(ids)) if ids == &vec![made[0].id.clone()])
        );
        assert_invariants(&store, &["alice"], MAX as usize);
    }
}

fn an_update_racing_a_roll_without_grace_is_applied_in_every_interleaving(answers: SwapAnswers) {
    check_all_roll_interleavings(answers, 1, |made| {
        [
            Request::Update {
                user: "alice",
                id: made[0].id.clone(),
                wanted: renamed("admin"),
            },
            roll_request(made, 0),
        ]
    });
}

fn a_verify_racing_a_roll_sees_the_old_secret_valid_throughout_its_grace(answers: SwapAnswers) {
    if answers == SwapAnswers::StaleGets {
        // A verify reading stale sees a key as it was a moment ago, whatever the protocol
        // does: the deploy docs require consistent reads (DynamoDB `consistent_read = true`).
        return;
    }
    for plan in plans(ROLL_DEPTH) {
        let store = MemoryStore::with_answers(answers);
        let made = create_one(&store, "alice");
        let requests = [
            roll_request(std::slice::from_ref(&made), HOUR),
            Request::Verify {
                hash: made.hash.clone(),
            },
        ];
        let outcomes = run_plan(&store, &requests, plan.clone(), &[], MAX);
        assert!(
            matches!(outcomes[1], Outcome::Verified(Some(_))),
            "plan {plan:?}: {outcomes:?}"
        );
        assert!(
            matches!(outcomes[0], Outcome::Rolled(_, _, _, Ok(_))),
            "plan {plan:?}: {outcomes:?}"
        );
        assert_invariants(&store, &["alice"], MAX as usize);
    }
}

fn a_roll_racing_a_create_at_the_limit_changes_no_count(answers: SwapAnswers) {
    check_all_roll_interleavings(answers, MAX - 1, |made| {
        [roll_request(made, HOUR), Request::Create { user: "alice" }]
    });
}

fn a_roll_an_update_and_a_delete_of_one_key_leave_nothing_alive_in_every_interleaving(
    answers: SwapAnswers,
) {
    check_all_interleavings_of_three(answers, 2, |made| {
        [
            roll_request(made, HOUR),
            restricting_update(made),
            delete_request(made),
        ]
    });
}

fn an_update_a_roll_and_a_verify_of_one_key_keep_every_secret_in_line(answers: SwapAnswers) {
    check_all_interleavings_of_three(answers, 2, |made| {
        [
            restricting_update(made),
            roll_request(made, HOUR),
            Request::Verify {
                hash: made[0].hash.clone(),
            },
        ]
    });
}

fn a_roll_dying_anywhere_racing_an_update_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [roll_request(made, HOUR), restricting_update(made)]
    });
}

fn an_update_dying_anywhere_racing_a_roll_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [restricting_update(made), roll_request(made, HOUR)]
    });
}

fn a_delete_dying_anywhere_racing_a_roll_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [delete_request(made), roll_request(made, 0)]
    });
}

under_every_swap_answer!(
    a_roll_an_update_and_a_delete_of_one_key_leave_nothing_alive_in_every_interleaving,
    an_update_a_roll_and_a_verify_of_one_key_keep_every_secret_in_line,
    a_roll_dying_anywhere_racing_an_update_keeps_every_invariant,
    an_update_dying_anywhere_racing_a_roll_keeps_every_invariant,
    a_delete_dying_anywhere_racing_a_roll_keeps_every_invariant,
    two_rolls_of_one_key_in_every_interleaving,
    two_rolls_without_grace_in_every_interleaving,
    a_roll_racing_a_delete_leaves_no_secret_alive,
    a_roll_racing_an_update_keeps_every_secret_in_line,
    a_list_overlapping_a_roll_always_shows_the_key,
    three_rolls_and_a_list_of_one_key_racing_freely_are_all_applied,
    an_update_racing_a_roll_without_grace_is_applied_in_every_interleaving,
    a_verify_racing_a_roll_sees_the_old_secret_valid_throughout_its_grace,
    a_roll_racing_a_create_at_the_limit_changes_no_count,
);

//! Delete: every secret dead, racing deletes, failures.

use super::*;

fn a_created_key_is_listed_verifies_and_is_gone_after_delete(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    let listed = list(&store, "alice", NOW).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].entry.id, made.id);
    assert_eq!(listed[0].last_used_at, None);
    let record = verify(&store, &made.hash, NOW).unwrap().expect("valid");
    assert_eq!(
        (record.user_id.as_str(), record.key_id.as_str()),
        ("alice", made.id.as_str())
    );

    delete(&store, "alice", &made.id, NOW).unwrap();
    assert!(!verifies(&store, &made.hash));
    assert!(list(&store, "alice", NOW).unwrap().is_empty());
    assert_eq!(
        delete(&store, "alice", &made.id, NOW),
        Err(ApiError::KeyNotFound)
    );
}

fn users_see_and_delete_only_their_own_keys(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let alices = create_one(&store, "alice");
    let bobs = create_one(&store, "bob");
    assert_eq!(listed_ids(&store, "alice"), vec![alices.id.clone()]);
    assert_eq!(listed_ids(&store, "bob"), vec![bobs.id.clone()]);
    assert_eq!(
        delete(&store, "bob", &alices.id, NOW),
        Err(ApiError::KeyNotFound)
    );
    assert!(verifies(&store, &alices.hash));
    assert_eq!(
        delete(&store, "carol", &alices.id, NOW),
        Err(ApiError::KeyNotFound)
    );
}

fn two_deletes_of_the_same_key_both_leave_it_dead(answers: SwapAnswers) {
    check_all_interleavings(answers, 2, |made| {
        let id = made[0].id.clone();
        [
            Request::Delete {
                user: "alice",
                id: id.clone(),
            },
            Request::Delete { user: "alice", id },
        ]
    });
}

fn two_deletes_of_different_keys_remove_both(answers: SwapAnswers) {
    check_all_interleavings(answers, 3, |made| {
        [
            delete_request(made),
            Request::Delete {
                user: "alice",
                id: made[2].id.clone(),
            },
        ]
    });
}

fn a_store_failure_at_any_operation_of_a_delete_leaves_a_retry_that_succeeds(answers: SwapAnswers) {
    check_failure_at_every_operation(answers, |store| {
        let made: Vec<Made> = (0..3).map(|_| create_one(store, "alice")).collect();
        let known = made
            .iter()
            .map(|m| (m.id.clone(), m.hash.clone()))
            .collect();
        (
            Request::Delete {
                user: "alice",
                id: made[1].id.clone(),
            },
            known,
        )
    });
}

under_every_swap_answer!(
    a_created_key_is_listed_verifies_and_is_gone_after_delete,
    users_see_and_delete_only_their_own_keys,
    two_deletes_of_the_same_key_both_leave_it_dead,
    two_deletes_of_different_keys_remove_both,
    a_store_failure_at_any_operation_of_a_delete_leaves_a_retry_that_succeeds,
);

//! Verify: one read, recorded use, and never a key brought back.

use super::*;

fn no_secret_reaches_the_store(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    verifies(&store, &made.hash);
    for (key, value) in store.snapshot() {
        assert!(!key.contains(&made.secret));
        assert!(!String::from_utf8_lossy(&value).contains(&made.secret));
    }
}

fn verify_records_last_use_at_most_hourly(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    let before = store.ops();
    verify(&store, &made.hash, NOW).unwrap();
    assert_eq!(
        store.ops() - before,
        3,
        "first use of the hour: the read, then compare-and-swap (read, write)"
    );
    let before = store.ops();
    verify(&store, &made.hash, NOW + USAGE_GRANULARITY_SECS - 1).unwrap();
    assert_eq!(store.ops() - before, 1, "within the hour: one read only");
    assert_eq!(
        list(&store, "alice", NOW).unwrap()[0].last_used_at,
        Some(NOW)
    );
    verify(&store, &made.hash, NOW + USAGE_GRANULARITY_SECS).unwrap();
    assert_eq!(
        list(&store, "alice", NOW).unwrap()[0].last_used_at,
        Some(NOW + USAGE_GRANULARITY_SECS)
    );
}

fn verify_of_an_unknown_key_is_one_read_and_no_write(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let before = store.ops();
    assert!(verify(&store, &new_key().hash, NOW).unwrap().is_none());
    assert_eq!(store.ops() - before, 1);
}

fn a_failed_usage_write_does_not_fail_verification(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    for n in [2, 3] {
        store.fail_nth(n);
        assert!(verify(&store, &made.hash, NOW).unwrap().is_some(), "op {n}");
    }
    assert!(list(&store, "alice", NOW).unwrap()[0]
        .last_used_at
        .is_none());
}

fn recording_a_use_never_brings_a_deleted_key_back(answers: SwapAnswers) {
    // The verify reads the active record, the delete runs, then the verify records its use.
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    let delete_ops = operations_of(answers, |s| {
        let m = create_one(s, "alice");
        Request::Delete {
            user: "alice",
            id: m.id,
        }
    }) as usize;
    let plan: Vec<usize> = std::iter::once(1)
        .chain(std::iter::repeat_n(0, delete_ops))
        .chain(std::iter::repeat_n(1, 4))
        .collect();
    let requests = [
        Request::Delete {
            user: "alice",
            id: made.id.clone(),
        },
        Request::Verify {
            hash: made.hash.clone(),
        },
    ];
    run_plan(&store, &requests, plan, &[], MAX);
    assert!(!verifies(&store, &made.hash));
    assert!(store.get(&record_key(&made.hash)).unwrap().is_none());
}

fn a_delete_racing_a_verify_kills_the_key(answers: SwapAnswers) {
    check_all_interleavings(answers, 1, |made| {
        [
            delete_request(made),
            Request::Verify {
                hash: made[0].hash.clone(),
            },
        ]
    });
}

fn an_expiring_key_verifies_until_its_expiry_and_is_never_written_after(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = new_key();
    create_expiring(&store, "alice", &made, MAX, NOW, Some(NOW + 60)).unwrap();
    let listed = list(&store, "alice", NOW).unwrap();
    assert_eq!(listed[0].expires_at, Some(NOW + 60));
    assert!(listed[0].counts_toward_limit(NOW + 59));
    let record = verify(&store, &made.hash, NOW + 59)
        .unwrap()
        .expect("found");
    assert!(!record.is_expired(NOW + 59));
    // From its expiry on: found (so verify can say `key_expired`), expired, and one read with
    // no last-use write, however long since the last use.
    let before = store.ops();
    let record = verify(&store, &made.hash, NOW + 60 + USAGE_GRANULARITY_SECS)
        .unwrap()
        .expect("found");
    assert!(record.is_expired(NOW + 60));
    assert_eq!(store.ops() - before, 1);
    assert!(!list(&store, "alice", NOW).unwrap()[0].counts_toward_limit(NOW + 60));
    // Delete still removes it.
    delete(&store, "alice", &made.id, NOW).unwrap();
    assert!(verify(&store, &made.hash, NOW + 60).unwrap().is_none());
}

under_every_swap_answer!(
    no_secret_reaches_the_store,
    verify_records_last_use_at_most_hourly,
    verify_of_an_unknown_key_is_one_read_and_no_write,
    a_failed_usage_write_does_not_fail_verification,
    recording_a_use_never_brings_a_deleted_key_back,
    a_delete_racing_a_verify_kills_the_key,
    an_expiring_key_verifies_until_its_expiry_and_is_never_written_after,
);

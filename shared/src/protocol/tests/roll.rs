//! Roll: new secrets, grace periods, racing rolls, failures, deaths and outages.

use super::*;

fn a_roll_gives_a_new_secret_and_the_old_one_verifies_until_its_grace_ends(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let old = create_one(&store, "alice");
    let before = list(&store, "alice", NOW).unwrap().remove(0);
    let (new, rolled) = roll_one(&store, &old.id, HOUR);
    // Same key: id, name, scopes and creation; a new secret and preview.
    assert_eq!(rolled.entry.id, old.id);
    assert_eq!(
        (
            &rolled.entry.name,
            &rolled.entry.scopes,
            rolled.entry.created_at
        ),
        (
            &before.entry.name,
            &before.entry.scopes,
            before.entry.created_at
        )
    );
    assert_eq!(rolled.entry.hash, new);
    assert_eq!(rolled.previous_expires_at, Some(NOW + HOUR));
    let listed = list(&store, "alice", NOW).unwrap();
    assert_eq!(listed.len(), 1, "the limit counts keys, not secrets");
    assert_eq!(listed[0].entry.hash, new);
    assert_eq!(listed[0].previous_expires_at, Some(NOW + HOUR));
    // Both verify as the same key until the grace ends; then only the new one, forever.
    for hash in [&old.hash, &new] {
        let record = verify(&store, hash, NOW).unwrap().expect("valid");
        assert_eq!(
            (record.key_id.as_str(), record.user_id.as_str()),
            (old.id.as_str(), "alice")
        );
    }
    assert!(verifies_at(&store, &old.hash, NOW + HOUR - 1));
    assert!(!verifies_at(&store, &old.hash, NOW + HOUR));
    assert!(!verifies_at(&store, &old.hash, NOW + 100 * HOUR));
    assert!(verifies_at(&store, &new, NOW + 100 * HOUR));
    let later = list(&store, "alice", NOW + HOUR).unwrap();
    assert_eq!(later[0].previous_expires_at, None);
    // The history: a `rolled` event with the grace end, and no secret or hash.
    let shown = events(&store, "alice", NOW).unwrap();
    assert_eq!(
        (
            shown[0].kind,
            shown[0].key_id.as_str(),
            shown[0].previous_key_expires_at
        ),
        (EventKind::Rolled, old.id.as_str(), Some(NOW + HOUR))
    );
    let text = serde_json::to_string(&shown).unwrap();
    assert!(!text.contains(&old.hash) && !text.contains(&new));
    assert_invariants(&store, &["alice"], MAX as usize);
    assert_settings_carried(&store, &["alice"]);
    assert_no_pending(&store);
}

fn a_roll_without_grace_ends_the_old_secret_at_once(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let old = create_one(&store, "alice");
    let (new, rolled) = roll_one(&store, &old.id, 0);
    assert!(verifies(&store, &new));
    assert!(!verifies(&store, &old.hash));
    assert_eq!(rolled.previous_expires_at, None);
    // Nothing of the old secret is left at rest.
    assert!(store.get(&record_key(&old.hash)).unwrap().is_none());
    assert_eq!(listed_ids(&store, "alice"), vec![old.id.clone()]);
    assert_invariants(&store, &["alice"], MAX as usize);
}

fn deleting_a_rolled_key_kills_every_secret(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let old = create_one(&store, "alice");
    let (middle, _) = roll_one(&store, &old.id, HOUR);
    let (new, _) = roll_one(&store, &old.id, HOUR);
    for hash in [&old.hash, &middle, &new] {
        assert!(verifies(&store, hash));
    }
    delete(&store, "alice", &old.id, NOW).unwrap();
    for hash in [&old.hash, &middle, &new] {
        assert!(!verifies(&store, hash));
        assert!(store.get(&record_key(hash)).unwrap().is_none());
    }
    assert!(listed_ids(&store, "alice").is_empty());
    assert_invariants(&store, &["alice"], MAX as usize);
}

fn rolling_again_keeps_older_secrets_until_their_own_grace_ends_three_at_most(
    answers: SwapAnswers,
) {
    let store = MemoryStore::with_answers(answers);
    let original = create_one(&store, "alice");
    // A roll whose answer was lost, then its retry: the secret in use keeps its own grace.
    let (lost, _) = roll_one(&store, &original.id, 2 * HOUR);
    let (retried, _) = roll_one(&store, &original.id, HOUR);
    assert!(verifies_at(&store, &original.hash, NOW + 2 * HOUR - 1));
    assert!(verifies_at(&store, &lost, NOW + HOUR - 1));
    assert!(!verifies_at(&store, &lost, NOW + HOUR));
    assert!(verifies_at(&store, &retried, NOW + 100 * HOUR));
    let listed = list(&store, "alice", NOW).unwrap();
    assert_eq!(listed[0].previous_expires_at, Some(NOW + 2 * HOUR));
    // Beyond three older secrets, the one ending first ends at once.
    let (fourth, _) = roll_one(&store, &original.id, 3 * HOUR);
    for hash in [&original.hash, &lost, &retried, &fourth] {
        assert!(verifies(&store, hash));
    }
    let (fifth, _) = roll_one(&store, &original.id, 3 * HOUR);
    assert!(!verifies(&store, &lost), "the secret ending first goes");
    for hash in [&original.hash, &retried, &fourth, &fifth] {
        assert!(verifies(&store, hash));
    }
    let entry = &list(&store, "alice", NOW).unwrap()[0].entry;
    let in_grace = entry.previous.iter().filter(|p| p.until > NOW).count();
    assert_eq!(in_grace, MAX_PREVIOUS_SECRETS);
    assert_invariants(&store, &["alice"], MAX as usize);
    // Once their grace is over, the next roll stops listing them.
    let (hash, result) = roll_with(&store, "alice", &original.id, 0, NOW + 4 * HOUR);
    result.unwrap();
    let entry = &list(&store, "alice", NOW + 4 * HOUR).unwrap()[0].entry;
    assert_eq!(entry.hash, hash);
    assert_eq!(
        entry.previous.len(),
        1,
        "only the secret just replaced: {entry:?}"
    );
    for old in [&original.hash, &lost, &retried, &fourth, &fifth] {
        assert!(store.get(&record_key(old)).unwrap().is_none());
    }
}

fn an_update_reaches_every_live_secret_of_a_rolled_key(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let old = create_one(&store, "alice");
    let (new, _) = roll_one(&store, &old.id, HOUR);
    update_one(&store, "alice", &old.id, &write_only()).unwrap();
    for hash in [&old.hash, &new] {
        let record = verify(&store, hash, NOW).unwrap().expect("found");
        assert_eq!(
            (record.scopes.clone(), record.enabled),
            (vec!["write".to_string()], false)
        );
    }
    // A roll of a disabled key gives a disabled secret, with the same settings.
    let (newest, rolled) = roll_one(&store, &old.id, HOUR);
    assert!(!rolled.entry.enabled);
    let record = verify(&store, &newest, NOW).unwrap().expect("found");
    assert_eq!(
        (record.scopes.clone(), record.enabled),
        (vec!["write".to_string()], false)
    );
    assert_settings_carried(&store, &["alice"]);
}

fn a_roll_of_a_key_that_is_not_the_users_or_has_expired_is_key_not_found_and_changes_nothing(
    answers: SwapAnswers,
) {
    let store = MemoryStore::with_answers(answers);
    let alices = create_one(&store, "alice");
    let expiring = new_key();
    create_expiring(&store, "alice", &expiring, MAX, NOW - HOUR, Some(NOW)).unwrap();
    create_one(&store, "bob");
    let before = store.snapshot();
    for (user, id) in [
        ("bob", alices.id.as_str()),
        ("carol", alices.id.as_str()),
        ("alice", "key_0000000000000000000000"),
        ("alice", expiring.id.as_str()),
    ] {
        let (hash, result) = roll_with(&store, user, id, HOUR, NOW);
        assert_eq!(result.map(|_| ()), Err(ApiError::KeyNotFound));
        assert!(!verifies(&store, &hash));
    }
    assert_eq!(store.snapshot(), before);
    delete(&store, "alice", &alices.id, NOW).unwrap();
    let (_, result) = roll_with(&store, "alice", &alices.id, 0, NOW);
    assert_eq!(result.map(|_| ()), Err(ApiError::KeyNotFound));
}

fn an_expired_key_whose_roll_died_gives_its_slot_to_the_next_create(answers: SwapAnswers) {
    let setup = |store: &MemoryStore| {
        let expiring = new_key();
        create_expiring(store, "alice", &expiring, 2, NOW, Some(NOW + 10)).unwrap();
        create_with(store, "alice", &new_key(), 2, NOW).unwrap();
        let request = roll_request(std::slice::from_ref(&expiring), HOUR);
        (expiring, request)
    };
    let operations = operations_of(answers, |store| setup(store).1);
    for died_after in 0..operations {
        let store = MemoryStore::with_answers(answers);
        let (_, request) = setup(&store);
        run_plan(&store, &[request], vec![], &[Some(died_after)], 2);
        let later = NOW + 20;
        let counted = list(&store, "alice", later)
            .unwrap()
            .iter()
            .filter(|s| s.counts_toward_limit(later))
            .count();
        assert_eq!(counted, 1, "died after {died_after}");
        let created = create_with(&store, "alice", &new_key(), 2, later);
        assert!(created.is_ok(), "died after {died_after}: {created:?}");
    }
}

fn a_store_failure_at_any_operation_of_a_roll_leaves_a_retry_that_succeeds(answers: SwapAnswers) {
    check_roll_failures(answers, HOUR);
}

fn a_store_failure_at_any_operation_of_a_roll_without_grace_leaves_a_retry_that_succeeds(
    answers: SwapAnswers,
) {
    check_roll_failures(answers, 0);
}

fn a_roll_that_dies_after_any_operation_never_leaves_the_old_secret_past_its_grace_once_retried(
    answers: SwapAnswers,
) {
    for grace in [0, HOUR] {
        let setup = |store: &MemoryStore| {
            let made = vec![create_one(store, "alice")];
            let request = roll_request(&made, grace);
            (made, request)
        };
        let operations = operations_of(answers, |store| setup(store).1);
        for died_after in 0..operations {
            let store = MemoryStore::with_answers(answers);
            let (made, request) = setup(&store);
            let original = &made[0];
            run_plan(&store, &[request], vec![], &[Some(died_after)], MAX);
            // Every live secret is listed, so delete can kill it.
            assert_invariants(&store, &["alice"], MAX as usize);
            assert_eq!(
                listed_ids(&store, "alice"),
                vec![original.id.clone()],
                "died after {died_after}"
            );
            // A roll that died does not block updates past the time a request may take.
            let copy = copy_of(&store, answers);
            let later = NOW + ABANDONED_AFTER_SECS;
            let event = key::event_id().unwrap();
            let disabled = update(&copy, "alice", &original.id, &write_only(), &event, later);
            assert!(disabled.is_ok(), "died after {died_after}: {disabled:?}");
            // The client's retry gives a working secret, and the old one ends with its grace.
            let (new, result) = roll_with(&store, "alice", &original.id, grace, NOW);
            let rolled = result.unwrap_or_else(|e| panic!("died after {died_after}: {e:?}"));
            assert_eq!(rolled.entry.hash, new);
            assert!(verifies_at(&store, &new, NOW + grace));
            assert_eq!(
                verifies(&store, &original.hash),
                grace > 0,
                "died after {died_after}"
            );
            assert!(!verifies_at(&store, &original.hash, NOW + grace));
            assert_invariants(&store, &["alice"], MAX as usize);
            assert_settings_carried(&store, &["alice"]);
        }
    }
}

fn an_expired_rolled_key_gives_its_slot_to_the_next_create(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let expiring = new_key();
    create_expiring(&store, "alice", &expiring, 2, NOW, Some(NOW + 10)).unwrap();
    create_with(&store, "alice", &new_key(), 2, NOW).unwrap();
    let (new, _) = roll_with(&store, "alice", &expiring.id, HOUR, NOW);
    // Its older secret is in its grace, but carries the key's expiry: nothing of it verifies.
    let later = NOW + 20;
    assert!(!verifies_at(&store, &expiring.hash, later) && !verifies_at(&store, &new, later));
    let created = create_with(&store, "alice", &new_key(), 2, later);
    assert!(created.is_ok(), "{created:?}");
    for hash in [&expiring.hash, &new] {
        assert!(store.get(&record_key(hash)).unwrap().is_none());
    }
}

fn a_roll_caught_by_an_outage_of_any_length_is_whole_or_undone(answers: SwapAnswers) {
    for grace in [0, HOUR] {
        let setup = |store: &MemoryStore| create_one(store, "alice");
        let operations = operations_of(answers, |store| roll_request(&[setup(store)], grace));
        // Rolls answered 503 after publishing, which the next read gave back.
        let mut undone = 0;
        for (n, length) in outages(operations) {
            let store = MemoryStore::with_answers(answers);
            let original = setup(&store);
            store.fail_from_nth(n, length);
            let (new, result) = roll_with(&store, "alice", &original.id, grace, NOW);
            store.disarm();
            let context = format!("grace {grace}, op {n}, {length} failing: {result:?}");
            assert_fail_closed(&store, "alice");
            let events_before_settling = current_index(&store, "alice").events;
            // The next read once the store is back settles it: the roll happened, whole, or it
            // did not, and leaves no trace.
            list(&store, "alice", SETTLED).unwrap();
            let index = current_index(&store, "alice");
            let rolled = index.events.iter().any(|e| e.kind == EventKind::Rolled);
            let published = events_before_settling
                .iter()
                .any(|e| e.kind == EventKind::Rolled);
            undone += usize::from(published && !rolled);
            if result.is_ok() || rolled {
                // (Answered 503 only if the outage began just after its secret went live.)
                assert!(rolled, "{context}");
                assert_eq!(index.keys[0].hash, new, "{context}");
                assert!(verifies_at(&store, &new, SETTLED), "{context}");
                assert!(
                    !verifies_at(&store, &original.hash, NOW + grace.max(1)),
                    "{context}"
                );
            } else {
                assert_eq!(index.keys[0].hash, original.hash, "{context}");
                assert!(index.keys[0].previous.is_empty(), "{context}");
                assert!(
                    verifies_at(&store, &original.hash, NOW + 100 * HOUR),
                    "{context}"
                );
                assert!(!verifies_at(&store, &new, SETTLED), "{context}");
            }
            assert_invariants(&store, &["alice"], MAX as usize);
            // The client's retry gives it a working secret.
            let (retried, result) = roll_with(&store, "alice", &original.id, grace, SETTLED);
            assert!(result.is_ok(), "{context}; retry: {result:?}");
            assert!(verifies_at(&store, &retried, SETTLED), "{context}");
            assert_settings_carried(&store, &["alice"]);
        }
        assert!(undone > 0, "grace {grace}");
    }
}

under_every_swap_answer!(
    a_roll_gives_a_new_secret_and_the_old_one_verifies_until_its_grace_ends,
    a_roll_without_grace_ends_the_old_secret_at_once,
    deleting_a_rolled_key_kills_every_secret,
    rolling_again_keeps_older_secrets_until_their_own_grace_ends_three_at_most,
    an_update_reaches_every_live_secret_of_a_rolled_key,
    a_roll_of_a_key_that_is_not_the_users_or_has_expired_is_key_not_found_and_changes_nothing,
    an_expired_key_whose_roll_died_gives_its_slot_to_the_next_create,
    a_store_failure_at_any_operation_of_a_roll_leaves_a_retry_that_succeeds,
    a_store_failure_at_any_operation_of_a_roll_without_grace_leaves_a_retry_that_succeeds,
    a_roll_that_dies_after_any_operation_never_leaves_the_old_secret_past_its_grace_once_retried,
    an_expired_rolled_key_gives_its_slot_to_the_next_create,
    a_roll_caught_by_an_outage_of_any_length_is_whole_or_undone,
);

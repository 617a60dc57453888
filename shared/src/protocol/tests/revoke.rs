//! Revoke: a leaked key dead at once but listed as revoked, idempotent, racing every change,
//! failures at every operation, deaths, and the bound on revoked keys kept.

use super::*;

fn a_revoked_key_never_verifies_and_stays_listed_as_revoked(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    let other = create_one(&store, "alice");
    let url = "https://github.com/alice/app/blob/main/.env";
    assert_eq!(
        revoke(&store, &made.hash, &leak_at(url, NOW), NOW),
        Ok(true)
    );
    // Verify finds the record and says why it is refused.
    let record = verify(&store, &made.hash, NOW).unwrap().expect("found");
    let revocation = record.revocation.expect("revoked");
    assert_eq!(
        (
            revocation.reason.as_str(),
            revocation.url.as_deref(),
            revocation.at
        ),
        ("leaked", Some(url), NOW)
    );
    assert!(!verifies(&store, &made.hash));
    assert!(
        verifies(&store, &other.hash),
        "only the leaked key is revoked"
    );
    // Listed, as revoked, with where it was found; not counted toward the limit.
    let listed = list(&store, "alice", NOW).unwrap();
    let shown = listed
        .iter()
        .find(|s| s.entry.id == made.id)
        .expect("listed");
    assert_eq!(shown.revocation.as_ref().unwrap().url.as_deref(), Some(url));
    assert!(!shown.counts_toward_limit(NOW));
    // The history says so, with the URL and source, never the token.
    let index = current_index(&store, "alice");
    let event = index.events.last().unwrap();
    assert_eq!(
        (event.kind, event.key_id.as_str(), event.reason.as_deref()),
        (EventKind::Revoked, made.id.as_str(), Some("leaked"))
    );
    assert_eq!(
        (event.url.as_deref(), event.source.as_deref()),
        (Some(url), Some("commit"))
    );
    // The index keeps only why and when (its budget).
    let entry = index.keys.iter().find(|e| e.id == made.id).unwrap();
    assert_eq!(entry.revocation.as_ref().unwrap().url, None);
    // It can no longer be changed or rolled; it can be deleted.
    assert_eq!(
        update_one(&store, "alice", &made.id, &renamed("back")),
        Err(ApiError::KeyNotFound)
    );
    assert_eq!(
        roll_with(&store, "alice", &made.id, HOUR, NOW).1,
        Err(ApiError::KeyNotFound)
    );
    assert_invariants(&store, &["alice"], MAX as usize);
    assert_settings_carried(&store, &["alice"]);
    delete(&store, "alice", &made.id, NOW).unwrap();
    assert_eq!(listed_ids(&store, "alice"), [other.id]);
}

fn a_replayed_revocation_costs_one_read_and_changes_nothing(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    let revocation = leak_at("https://example.com/leak", NOW);
    assert_eq!(revoke(&store, &made.hash, &revocation, NOW), Ok(true));
    let before = store.snapshot();
    let ops = store.ops();
    assert_eq!(revoke(&store, &made.hash, &revocation, NOW + 5), Ok(true));
    assert_eq!(store.ops() - ops, 1, "one read");
    assert_eq!(store.snapshot(), before);
    let revoked_events = current_index(&store, "alice")
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Revoked)
        .count();
    assert_eq!(revoked_events, 1);
}

fn what_is_no_live_key_is_not_revoked(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    // Unknown, deleted, expired, an old secret past its grace: false, and nothing changes.
    let deleted = create_one(&store, "alice");
    delete(&store, "alice", &deleted.id, NOW).unwrap();
    let expiring = new_key();
    create_expiring(&store, "alice", &expiring, MAX, NOW, Some(NOW + 60)).unwrap();
    let rolled = create_one(&store, "alice");
    roll_one(&store, &rolled.id, 0);
    let before = store.snapshot();
    let revocation = leak_at("https://example.com/leak", NOW + 60);
    for hash in [&new_key().hash, &deleted.hash, &expiring.hash, &rolled.hash] {
        assert_eq!(revoke(&store, hash, &revocation, NOW + 60), Ok(false));
    }
    assert_eq!(store.snapshot(), before);
    // A disabled key is a key: it could be enabled again.
    let disabled = create_one(&store, "alice");
    let off = Settings {
        enabled: Some(false),
        ..Settings::default()
    };
    update_one(&store, "alice", &disabled.id, &off).unwrap();
    assert_eq!(revoke(&store, &disabled.hash, &revocation, NOW), Ok(true));
    assert_eq!(
        update_one(&store, "alice", &disabled.id, &renamed("on")),
        Err(ApiError::KeyNotFound)
    );
}

/// An older secret still in its grace that leaks, or whose holder revokes it, stops verifying
/// at once; the key lives on with the secret that replaced it (which did not leak, and which a
/// holder rolled away from never held), and its history says which secret ended and why. A
/// replay answers the same and changes nothing.
fn an_older_secret_in_its_grace_is_ended_and_the_key_lives_on(answers: SwapAnswers) {
    for reason in ["leaked", "self"] {
        let store = MemoryStore::with_answers(answers);
        let made = create_one(&store, "alice");
        let (new, rolled) = roll_one(&store, &made.id, HOUR);
        assert!(verifies(&store, &made.hash));
        let url = (reason == "leaked").then_some("https://example.com/old");
        let revocation = Revocation::new(reason, url, None, NOW);
        assert_eq!(revoke(&store, &made.hash, &revocation, NOW), Ok(true));
        assert!(
            !verifies(&store, &made.hash),
            "{reason}: the older secret verifies"
        );
        assert!(
            verifies(&store, &new),
            "{reason}: the current secret is refused"
        );
        let listed = list(&store, "alice", NOW).unwrap();
        let shown = listed.iter().find(|s| s.entry.id == made.id).unwrap();
        assert_eq!(shown.revocation, None, "{reason}: the key is not revoked");
        assert_eq!(shown.previous_expires_at, None, "{reason}: no grace left");
        let event = current_index(&store, "alice").events.pop().unwrap();
        assert_eq!(
            (event.kind, event.reason.as_deref(), event.url.as_deref()),
            (EventKind::Revoked, Some(reason), url)
        );
        let preview = &rolled.entry.previous[0].preview;
        assert_eq!(event.secret_preview.as_ref(), Some(preview));
        let before = store.snapshot();
        assert_eq!(revoke(&store, &made.hash, &revocation, NOW + 5), Ok(true));
        assert_eq!(
            store.snapshot(),
            before,
            "{reason}: a replay changes nothing"
        );
        // The current secret leaking still revokes the whole key.
        assert_eq!(revoke(&store, &new, &revocation, NOW), Ok(true));
        assert!(!verifies(&store, &new));
        assert_invariants(&store, &["alice"], MAX as usize);
    }
}

fn revoked_keys_count_toward_nothing_and_only_so_many_are_kept(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let max = 3;
    let mut revoked = Vec::new();
    // Every key revoked as soon as made, more than are kept.
    for n in 0..MAX_REVOKED_KEPT + 4 {
        let made = new_key();
        create_with(&store, "alice", &made, max, NOW + n as i64).unwrap();
        let revocation = leak_at("https://example.com/leak", NOW + n as i64);
        assert_eq!(revoke(&store, &made.hash, &revocation, NOW), Ok(true));
        revoked.push(made);
    }
    // The user still has room for `max` live keys.
    for _ in 0..max {
        create_with(&store, "alice", &new_key(), max, NOW + 100).unwrap();
    }
    assert!(matches!(
        create_with(&store, "alice", &new_key(), max, NOW + 100),
        Err(ApiError::KeyLimitReached(3))
    ));
    let index = current_index(&store, "alice");
    assert!(index.keys.len() <= max as usize + MAX_REVOKED_KEPT);
    // The oldest revoked were let go, each with its event; the latest are listed still.
    let listed = listed_ids(&store, "alice");
    assert!(!listed.contains(&revoked[0].id));
    assert!(listed.contains(&revoked.last().unwrap().id));
    assert!(index.events.iter().any(|e| e.kind == EventKind::Deleted
        && e.key_id == revoked[0].id
        && e.reason.as_deref() == Some("revoked")));
    // Their records are gone, or revoked: none verifies.
    for made in &revoked {
        assert!(!verifies(&store, &made.hash));
    }
    assert_invariants(&store, &["alice"], max as usize);
}

fn a_revocation_racing_an_update_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings(answers, 2, |made| {
        [revoke_request(made), restricting_update(made)]
    });
    check_all_interleavings(answers, 2, |made| {
        [
            Request::Update {
                user: "alice",
                id: made[0].id.clone(),
                wanted: Settings {
                    scopes: Some(vec!["read".into(), "write".into(), "admin".into()]),
                    enabled: Some(true),
                    ..Settings::default()
                },
            },
            revoke_request(made),
        ]
    });
}

fn a_revocation_racing_a_roll_keeps_every_invariant(answers: SwapAnswers) {
    check_all_roll_interleavings(answers, 2, |made| {
        [revoke_request(made), roll_request(made, HOUR)]
    });
    check_all_roll_interleavings(answers, 2, |made| {
        [roll_request(made, 0), revoke_request(made)]
    });
}

fn a_revocation_racing_a_delete_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings(answers, 2, |made| {
        [revoke_request(made), delete_request(made)]
    });
}

fn two_revocations_of_one_key_revoke_it_once(answers: SwapAnswers) {
    check_all_interleavings(answers, 2, |made| {
        [revoke_request(made), revoke_request(made)]
    });
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let revocation = leak_at("https://example.com/leak", NOW);
                assert_eq!(revoke(&store, &made.hash, &revocation, NOW), Ok(true));
            });
        }
    });
    let events = current_index(&store, "alice").events;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Revoked)
            .count(),
        1
    );
}

fn a_revocation_racing_three_ways_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings_of_three(answers, 2, |made| {
        [
            revoke_request(made),
            roll_request(made, HOUR),
            restricting_update(made),
        ]
    });
}

fn a_revocation_dying_anywhere_is_settled(answers: SwapAnswers) {
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [revoke_request(made), roll_request(made, HOUR)]
    });
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [revoke_request(made), delete_request(made)]
    });
}

/// An owner who hears of a leak rolls the key with no grace; the alert comes meanwhile. The
/// old secret is answered as no key's only once that roll went live: a roll that dies or fails
/// before its secret does is given back, and its replaced secret is current again.
fn a_revocation_racing_a_roll_that_dies_never_lets_the_old_secret_come_back(answers: SwapAnswers) {
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [roll_request(made, 0), revoke_request(made)]
    });
    check_all_interleavings_with_a_death(answers, 2, |made| {
        [roll_request(made, HOUR), revoke_request(made)]
    });
}

fn a_revocation_meeting_a_failure_at_any_operation_is_finished_by_its_retry(answers: SwapAnswers) {
    for grace in [None, Some(HOUR)] {
        check_failure_at_every_operation(answers, |store| {
            let made: Vec<Made> = (0..2).map(|_| create_one(store, "alice")).collect();
            let mut known: Vec<(String, String)> = made
                .iter()
                .map(|m| (m.id.clone(), m.hash.clone()))
                .collect();
            // With a grace: the key was rolled, and its old secret is the one that leaked.
            if let Some(grace) = grace {
                let (new, _) = roll_one(store, &made[0].id, grace);
                known.push((made[0].id.clone(), new));
            }
            (revoke_request(&made), known)
        });
    }
}

fn a_revocation_outlasting_every_retry_bound_fails_closed(answers: SwapAnswers) {
    let operations = operations_of(answers, |store| {
        revoke_request(&[create_one(store, "alice")])
    });
    for (first, length) in outages(operations) {
        let store = MemoryStore::with_answers(answers);
        let made = create_one(&store, "alice");
        store.fail_from_nth(first, length);
        let revocation = leak_at("https://example.com/leak", NOW);
        let result = revoke(&store, &made.hash, &revocation, NOW);
        store.disarm();
        match result {
            Ok(revoked) => assert!(revoked, "outage {first}+{length}"),
            Err(e) => assert!(matches!(e, ApiError::StoreUnavailable(_)), "{e:?}"),
        }
        // Whatever it answered, a retry makes it so, and the key is dead.
        assert_eq!(revoke(&store, &made.hash, &revocation, NOW), Ok(true));
        assert!(!verifies(&store, &made.hash), "outage {first}+{length}");
        assert_invariants(&store, &["alice"], MAX as usize);
        assert_settings_carried(&store, &["alice"]);
    }
}

/// Which secret of alice's key leaked: the only one, or the current or the older one of a key
/// rolled with an hour's grace.
#[derive(Clone, Copy, Debug)]
enum Leaked {
    Only,
    Current,
    Older,
}

/// What the owner does once the request revoking their key died and counts as abandoned.
#[derive(Clone, Copy, Debug)]
enum Then {
    List,
    UpdateChangingNothing,
    Rename,
    Roll,
    Delete,
}

/// Alice's key with the secret that leaked: its id, every secret, and the leaked one's hash.
fn key_that_leaked(store: &MemoryStore, leaked: Leaked) -> (String, Vec<String>, String) {
    let made = create_one(store, "alice");
    create_one(store, "alice");
    if let Leaked::Only = leaked {
        return (made.id, vec![made.hash.clone()], made.hash);
    }
    let (new, _) = roll_one(store, &made.id, HOUR);
    let presented = match leaked {
        Leaked::Current => new.clone(),
        _ => made.hash.clone(),
    };
    (made.id, vec![made.hash, new], presented)
}

/// Whether verify refuses `hash` at `now` because its key is revoked (read on a copy).
fn refused_as_revoked(store: &MemoryStore, hash: &str, now: i64) -> bool {
    let copy = copy_of(store, SwapAnswers::Truthful);
    verify(&copy, hash, now)
        .expect("verify")
        .is_some_and(|record| record.revocation.is_some())
}

/// A revocation whose request died after any of its operations, with any of the key's secrets
/// refused by then, is finished by whoever reads the key next — its owner's list, an update
/// that changes nothing, a rename, a roll — never undone: every secret of the key stays
/// refused (a roll's new one too) and the key is listed as revoked (or deleted, if that was
/// the owner's next step); an older secret whose end it wrote ahead stays refused. Before the fix a list, an update or a roll took the revocation's
/// restriction for an abandoned one and dropped it: the leaked secret verified again.
fn a_revocation_that_died_is_finished_by_whoever_reads_the_key_never_undone(answers: SwapAnswers) {
    let later = NOW + ABANDONED_AFTER_SECS + 1;
    for leaked in [Leaked::Only, Leaked::Current, Leaked::Older] {
        let operations = operations_of(answers, |store| Request::Revoke {
            hash: key_that_leaked(store, leaked).2,
        });
        for died_after in 0..operations {
            for then in [
                Then::List,
                Then::UpdateChangingNothing,
                Then::Rename,
                Then::Roll,
                Then::Delete,
            ] {
                let store = MemoryStore::with_answers(answers);
                let (id, mut secrets, presented) = key_that_leaked(&store, leaked);
                let request = Request::Revoke { hash: presented };
                let plan = vec![0; 4 * operations as usize];
                run_plan(&store, &[request], plan, &[Some(died_after)], MAX);
                let refused = secrets
                    .iter()
                    .any(|hash| refused_as_revoked(&store, hash, NOW));
                // Every secret verified before; those refused now (an older one whose end the
                // revocation wrote ahead, say) stay refused whatever comes next.
                let copy = copy_of(&store, SwapAnswers::Truthful);
                let ended: Vec<String> = (secrets.iter())
                    .filter(|hash| !verifies_at(&copy, hash, NOW))
                    .cloned()
                    .collect();
                let case = format!("{leaked:?} secret, died after {died_after}, then {then:?}");
                let event = key::event_id().unwrap();
                match then {
                    Then::List => drop(list(&store, "alice", later).expect(&case)),
                    Then::UpdateChangingNothing | Then::Rename => {
                        let wanted = match then {
                            Then::Rename => Settings {
                                name: Some("renamed".into()),
                                ..Settings::default()
                            },
                            _ => Settings::default(),
                        };
                        match update(&store, "alice", &id, &wanted, &event, later) {
                            Ok(_) | Err(ApiError::KeyNotFound) => {}
                            Err(e) => panic!("{case}: {e:?}"),
                        }
                    }
                    Then::Roll => {
                        let (new, result) = roll_with(&store, "alice", &id, HOUR, later);
                        match result {
                            Ok(_) => secrets.push(new),
                            Err(ApiError::KeyNotFound) => {}
                            Err(e) => panic!("{case}: {e:?}"),
                        }
                    }
                    Then::Delete => delete(&store, "alice", &id, later).expect(&case),
                }
                let listed = list(&store, "alice", later).expect(&case);
                let shown = listed.iter().find(|s| s.entry.id == id);
                for hash in &ended {
                    assert!(
                        !verifies_at(&store, hash, later),
                        "{case}: a refused secret verifies"
                    );
                }
                if refused {
                    for hash in &secrets {
                        assert!(
                            !verifies_at(&store, hash, later),
                            "{case}: a secret verifies"
                        );
                    }
                    if let Then::Delete = then {
                        assert!(shown.is_none(), "{case}");
                    } else {
                        assert!(
                            shown.is_some_and(|s| s.revocation.is_some()),
                            "{case}: the key is listed as {shown:?}"
                        );
                        let events = current_index(&store, "alice").events;
                        let revoked = events.iter().filter(|e| e.kind == EventKind::Revoked);
                        assert_eq!(revoked.count(), 1, "{case}: its history");
                    }
                }
                assert_invariants_between_at(&store, MAX as usize, later);
            }
        }
    }
}

under_every_swap_answer!(
    a_revocation_that_died_is_finished_by_whoever_reads_the_key_never_undone,
    a_revoked_key_never_verifies_and_stays_listed_as_revoked,
    a_replayed_revocation_costs_one_read_and_changes_nothing,
    what_is_no_live_key_is_not_revoked,
    an_older_secret_in_its_grace_is_ended_and_the_key_lives_on,
    revoked_keys_count_toward_nothing_and_only_so_many_are_kept,
    a_revocation_racing_an_update_keeps_every_invariant,
    a_revocation_racing_a_roll_keeps_every_invariant,
    a_revocation_racing_a_delete_keeps_every_invariant,
    two_revocations_of_one_key_revoke_it_once,
    a_revocation_racing_three_ways_keeps_every_invariant,
    a_revocation_dying_anywhere_is_settled,
    a_revocation_racing_a_roll_that_dies_never_lets_the_old_secret_come_back,
    a_revocation_meeting_a_failure_at_any_operation_is_finished_by_its_retry,
    a_revocation_outlasting_every_retry_bound_fails_closed,
);

/// What one alert token costs, as the README and the closing note give it: 16 store operations
/// for a live key with one secret, 6 more per older secret in its grace (a restriction and a
/// carry each), one read for a replay, none for a token not of this app's format.
#[test]
fn a_revocation_costs_sixteen_operations_and_six_more_per_older_secret() {
    let store = MemoryStore::new();
    let made = create_one(&store, "alice");
    create_one(&store, "alice");
    let revocation = leak_at("https://example.com/leak", NOW);
    let cost = |hash: &str| {
        let before = store.ops();
        revoke(&store, hash, &revocation, NOW).unwrap();
        store.ops() - before
    };
    assert_eq!(cost(&made.hash), 16);
    assert_eq!(cost(&made.hash), 1, "a replay");
    let rolled = create_one(&store, "alice");
    let (current, _) = roll_one(&store, &rolled.id, HOUR);
    assert_eq!(cost(&current), 16 + 6);
}

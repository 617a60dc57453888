//! Requests run under every plan of interleaving (two or three of them, one maybe dying), and
//! what their answers must agree with.

use super::*;

/// Checks what every request answered against the store it left behind.
pub(super) fn assert_outcomes(
    store: &MemoryStore,
    outcomes: &[Outcome],
    deleted_hashes: &[(String, String)],
) {
    // Keys revoked: none of their secrets verifies any more, whatever rolled them.
    let revoked = |id: &str| {
        outcomes.iter().any(|o| {
            matches!(o, Outcome::Revoked(hash, Ok(true))
                if deleted_hashes.iter().any(|(i, h)| i == id && h == hash))
        })
    };
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
                    .any(|o| matches!(o, Outcome::Deleted(d, Ok(())) if d == id))
                    || revoked(id);
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
                // (A revocation of the replaced secret may have ended its grace since.)
                let ended = |original: &String| {
                    outcomes
                        .iter()
                        .any(|o| matches!(o, Outcome::Revoked(h, Ok(true)) if h == original))
                };
                if let (Some(original), false) = (original, deleted) {
                    if other_rolls == 0 && !ended(original) {
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
            Outcome::Revoked(hash, Ok(true)) => {
                let id = &deleted_hashes
                    .iter()
                    .find(|(_, h)| h == hash)
                    .expect("a known key")
                    .0;
                // A secret a roll made an older one of the key before the revocation reached
                // it: only that secret's grace ended, and the key lives on (see
                // `an_older_secret_in_its_grace_is_ended_and_the_key_lives_on`).
                let listed = list(store, "alice", NOW).expect("list");
                let ended_only = listed.iter().any(|s| {
                    &s.entry.id == id
                        && s.revocation.is_none()
                        && s.entry.previous.iter().any(|p| &p.hash == hash)
                });
                if ended_only {
                    assert!(!verifies(store, hash), "a revoked older secret verifies");
                    continue;
                }
                // No secret of the key verifies: the one presented, the one it was created
                // with, and every one a roll gave it.
                let mut secrets = vec![hash.clone()];
                secrets.extend(
                    deleted_hashes
                        .iter()
                        .filter(|(i, _)| i == id)
                        .map(|k| k.1.clone()),
                );
                for outcome in outcomes {
                    if let Outcome::Rolled(rolled, _, new, _) = outcome {
                        if rolled == id {
                            secrets.push(new.clone());
                        }
                    }
                }
                for secret in &secrets {
                    assert!(!verifies(store, secret), "a revoked key's secret verifies");
                }
                // Listed as revoked, unless it was deleted since.
                let deleted = outcomes
                    .iter()
                    .any(|o| matches!(o, Outcome::Deleted(d, Ok(())) if d == id));
                if !deleted {
                    let listed = list(store, "alice", NOW).expect("list");
                    let shown = listed.iter().find(|s| &s.entry.id == id);
                    assert!(
                        shown.is_some_and(|s| s
                            .revocation
                            .as_ref()
                            .is_some_and(|r| r.reason == "leaked")),
                        "a revoked key is not listed as revoked"
                    );
                }
            }
            Outcome::Revoked(hash, Ok(false)) => {
                // Only a key deleted (or never live), or a secret a roll ended at once, is no
                // key to revoke.
                let id = deleted_hashes.iter().find(|(_, h)| h == hash).map(|k| &k.0);
                let deleted = outcomes.iter().any(|o| match o {
                    Outcome::Deleted(d, Ok(())) | Outcome::Rolled(d, 0, _, Ok(_)) => Some(d) == id,
                    _ => false,
                });
                assert!(
                    deleted || id.is_none(),
                    "a live key's revocation answered false"
                );
                assert!(
                    !verifies(store, hash),
                    "a secret answered as no key's verifies"
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
                        | Outcome::Revoked(_, Err(ApiError::StoreUnavailable(_)))
                )
            };
            let mut heard: Vec<Outcome> = Vec::new();
            for (request, outcome) in outcomes.into_iter().enumerate() {
                match outcome {
                    outcome if request > 0 || finished(&outcome) => heard.push(outcome),
                    Outcome::Deleted(id, _) if !settled.iter().any(|s| s.entry.id == id) => {
                        heard.push(Outcome::Deleted(id, Ok(())))
                    }
                    // A roll happened if the key shows its secret once settled (another request
                    // may have made it live).
                    Outcome::Rolled(id, grace, new, _)
                        if settled
                            .iter()
                            .any(|s| s.entry.id == id && s.entry.hash == new) =>
                    {
                        let shown = settled.iter().find(|s| s.entry.id == id).cloned();
                        heard.push(Outcome::Rolled(
                            id,
                            grace,
                            new,
                            shown.ok_or(ApiError::Internal),
                        ))
                    }
                    // A revocation happened if the key shows revoked once settled, or the older
                    // secret it presented ended.
                    Outcome::Revoked(hash, _)
                        if settled.iter().any(|s| {
                            let ended =
                                (s.entry.previous.iter()).any(|p| p.hash == hash && p.until <= NOW);
                            (s.revocation.is_some()
                                && known.iter().any(|(i, h)| *i == s.entry.id && *h == hash))
                                || ended
                        }) =>
                    {
                        heard.push(Outcome::Revoked(hash, Ok(true)))
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
        // (A revoked key's settings no longer change: an update after it finds no key.)
        let anyone_deletes = requests
            .iter()
            .any(|r| matches!(r, Request::Delete { .. } | Request::Revoke { .. }));
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
        // A revoked key may no longer be rolled.
        let revoked: Vec<&str> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Revoke { hash } => made.iter().find(|m| &m.hash == hash),
                _ => None,
            })
            .map(|m| m.id.as_str())
            .collect();
        let applied_rolls = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Rolled(_, _, _, Ok(_))))
            .count();
        for outcome in &outcomes {
            match outcome {
                Outcome::Rolled(id, _, _, Err(e))
                    if !deleted.contains(&id.as_str()) && !revoked.contains(&id.as_str()) =>
                {
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

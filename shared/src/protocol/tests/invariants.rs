//! What must hold of the store after any requests, and between any two of their operations.

use super::*;

/// The invariants of the module docs, checked on the whole store.
pub(super) fn assert_invariants(store: &MemoryStore, users: &[&str], max: usize) {
    // First as the requests left it, before a read repairs anything.
    for user in users {
        assert_fail_closed(store, user);
    }
    for (key, value) in store.snapshot() {
        let Some(hash) = key.strip_prefix("apikeys/v1/key/") else {
            continue;
        };
        let record = parse_record(&value).expect("records are readable");
        if record.clone().in_force().is_live(NOW) {
            // Listed as a secret of its key, so that deleting the key kills it.
            let listed = list(store, &record.user_id, NOW).expect("list");
            assert!(
                listed
                    .iter()
                    .any(|s| s.entry.id == record.key_id && s.entry.all_hashes().any(|h| h == hash)),
                "a live secret of {} is not listed",
                record.key_id
            );
        }
    }
    for user in users {
        assert_history_matches_keys(store, user);
        let listed = list(store, user, NOW).expect("list");
        let counted = listed.iter().filter(|s| s.counts_toward_limit(NOW)).count();
        assert!(counted <= max, "{user} holds {counted} keys");
        let mut ids: Vec<&str> = listed.iter().map(|s| s.entry.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), listed.len(), "{user}'s list shows a key twice");
        let head = current_head(store, user);
        for summary in listed.iter().filter(|s| s.counts_toward_limit(NOW)) {
            // Its current secret verifies; or a roll is in flight (its new secret not active
            // yet, the old one maybe past a grace of 0); or a change that takes rights away is
            // in flight or died (its restriction undecided, settled by the next read once it
            // is abandoned: see `a_change_that_died_is_settled_by_the_next_read`).
            let in_flight = match Standing::of(store, &summary.entry, user, NOW).unwrap() {
                Standing::Rolling { .. } => true,
                Standing::Active(record) => record.restrictions.iter().any(|r| r.version > head),
                _ => false,
            };
            assert!(
                in_flight || summary.entry.all_hashes().any(|h| verifies(store, h)),
                "listed key {} does not verify",
                summary.entry.id
            );
        }
    }
    for user in users {
        assert_fail_closed(store, user);
    }
}

/// What verify obeys never grants more than the index shows: for every key of `user`'s
/// current index version, no secret verifies with a scope, or while disabled, when the entry
/// says otherwise, and no older secret verifies past the end of its grace. Read from the index
/// as it is (list would repair first).
pub(super) fn assert_fail_closed(store: &MemoryStore, user: &str) {
    if let Some(index) = try_current_index(store, user) {
        assert_fail_closed_in(store, &index, NOW);
    }
}

pub(super) fn assert_fail_closed_in(store: &MemoryStore, index: &Index, now: i64) {
    for entry in &index.keys {
        for hash in entry.all_hashes() {
            let Some(record) = verify(store, hash, now).unwrap() else {
                continue;
            };
            assert!(
                entry.revocation.is_none() || record.revocation.is_some(),
                "{} verifies while the index shows it revoked",
                entry.id
            );
            assert!(
                entry.enabled || !record.enabled,
                "{} verifies while the index shows it disabled",
                entry.id
            );
            let extra: Vec<&String> = record
                .scopes
                .iter()
                .filter(|s| !entry.scopes.contains(s))
                .collect();
            assert!(
                extra.is_empty(),
                "{} verifies with {extra:?}, which the index does not show",
                entry.id
            );
        }
        for previous in &entry.previous {
            assert!(
                !verifies_at(store, &previous.hash, previous.until.max(now)),
                "an older secret of {} verifies past its grace",
                entry.id
            );
        }
    }
}

/// The history tells what happened to the keys: every listed key was created, a key named by
/// any event is listed or has its `deleted` event shown (nothing vanishes without one), a key
/// shown as deleted is not listed, and a create whose key is not live (failed, or in flight)
/// shows no event at all. Never a hash.
pub(super) fn assert_history_matches_keys(store: &MemoryStore, user: &str) {
    let shown = events(store, user, NOW).expect("events");
    let listed = list(store, user, NOW).expect("list");
    let listed_ids: Vec<&str> = listed.iter().map(|s| s.entry.id.as_str()).collect();
    let shown_as =
        |kind: EventKind, id: &str| shown.iter().any(|e| e.kind == kind && e.key_id == id);
    for id in &listed_ids {
        assert!(
            shown_as(EventKind::Created, id),
            "listed key {id} has no created event"
        );
    }
    // (With the history full, the oldest events have been let go.)
    let complete = shown.len() < MAX_EVENTS;
    for event in &shown {
        if event.kind == EventKind::Deleted {
            assert!(
                !listed_ids.contains(&event.key_id.as_str()),
                "{} is shown deleted but listed",
                event.key_id
            );
        } else if complete {
            assert!(
                listed_ids.contains(&event.key_id.as_str())
                    || shown_as(EventKind::Deleted, &event.key_id),
                "{} has a {:?} event but is neither listed nor shown deleted",
                event.key_id,
                event.kind
            );
        }
    }
    let text = serde_json::to_string(&shown).unwrap();
    for (key, _) in store.snapshot() {
        if let Some(hash) = key.strip_prefix("apikeys/v1/key/") {
            assert!(!text.contains(hash), "an event holds a key hash");
        }
    }
}

/// Once no request is in flight, every listed key's record carries its entry's settings: what
/// verify checks is what list shows.
pub(super) fn assert_settings_carried(store: &MemoryStore, users: &[&str]) {
    for user in users {
        for summary in list(store, user, NOW).expect("list") {
            let entry = &summary.entry;
            for hash in entry.all_hashes() {
                let Some(record) = verify(store, hash, NOW).unwrap() else {
                    continue;
                };
                assert_eq!(
                    (&record.name, &record.scopes, record.enabled),
                    (&entry.name, &entry.scopes, entry.enabled),
                    "a secret of {} does not carry its settings",
                    entry.id
                );
                assert_eq!(
                    record.revocation.is_some(),
                    entry.revocation.is_some(),
                    "a secret of {} does not carry its revocation",
                    entry.id
                );
            }
        }
    }
}

pub(super) fn assert_no_pending(store: &MemoryStore) {
    for (key, value) in store.snapshot() {
        if key.starts_with("apikeys/v1/key/") {
            let record = parse_record(&value).unwrap();
            assert_ne!(
                record.state,
                KeyState::Pending,
                "half-made key left behind: {key}"
            );
        }
    }
}

/// The invariants that hold in every state the store passes through, between any two
/// operations of any requests (read on a copy, so that nothing here writes: no repair, no
/// recorded use): for each user's published index version, no key twice and at most `max`
/// counting toward the limit; every live secret listed there as its key's (so that a delete
/// kills it); and nothing verifies with more than that version shows (fail closed).
pub(super) fn assert_invariants_between(store: &MemoryStore, max: usize) {
    assert_invariants_between_at(store, max, NOW)
}

/// [`assert_invariants_between`] at `now`.
pub(super) fn assert_invariants_between_at(store: &MemoryStore, max: usize, now: i64) {
    let records: Vec<(String, KeyRecord)> = store
        .snapshot()
        .into_iter()
        .filter_map(|(key, value)| {
            let hash = key.strip_prefix("apikeys/v1/key/")?.to_owned();
            Some((hash, parse_record(&value).expect("records are readable")))
        })
        .collect();
    let mut indexes = std::collections::BTreeMap::new();
    for (_, record) in &records {
        if !indexes.contains_key(&record.user_id) {
            indexes.insert(
                record.user_id.clone(),
                try_current_index(store, &record.user_id),
            );
        }
    }
    for (hash, record) in &records {
        if record.clone().in_force().is_live(now) {
            let listed = indexes[&record.user_id].as_ref().is_some_and(|index| {
                index
                    .keys
                    .iter()
                    .any(|e| e.id == record.key_id && e.all_hashes().any(|h| h == hash))
            });
            assert!(listed, "a live secret of {} is not listed", record.key_id);
        }
    }
    let expired: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|(_, record)| record.is_expired(now))
        .map(|(hash, _)| hash.as_str())
        .collect();
    for (user, index) in &indexes {
        let Some(index) = index else {
            continue;
        };
        let mut ids: Vec<&str> = index.keys.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            index.keys.len(),
            "{user}'s index shows a key twice"
        );
        // An entry counts unless its key's record says it has expired (as list tells it), or
        // it was revoked; and revoked keys are kept only up to a bound.
        let counted = index
            .keys
            .iter()
            .filter(|e| !expired.contains(e.hash.as_str()) && e.revocation.is_none())
            .count();
        assert!(counted <= max, "{user}'s index holds {counted} keys");
        assert!(
            index.keys.len() <= max + MAX_REVOKED_KEPT,
            "{user}'s index holds {} entries",
            index.keys.len()
        );
        assert_fail_closed_in(store, index, now);
    }
}

//! List and events: what a user sees, its order, its history and its size.

use super::*;

fn keys_are_listed_oldest_first(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let ids: Vec<String> = (0..5).map(|_| create_one(&store, "alice").id).collect();
    assert_eq!(listed_ids(&store, "alice"), ids);
}

fn a_list_racing_a_create_keeps_every_invariant(answers: SwapAnswers) {
    check_all_interleavings(answers, 2, |_| {
        [
            Request::List { user: "alice" },
            Request::Create { user: "alice" },
        ]
    });
}

fn list_answers_503_when_the_store_fails(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    create_one(&store, "alice");
    for n in 1..=3 {
        store.fail_nth(n);
        let listed = list(&store, "alice", NOW);
        assert!(
            matches!(listed, Err(ApiError::StoreUnavailable(_))),
            "op {n}: {listed:?}"
        );
    }
    assert_eq!(listed_ids(&store, "alice").len(), 1);
}

fn a_full_index_stays_within_its_byte_budget(answers: SwapAnswers) {
    // 100 keys, each named with 64 of the widest characters, holding 20 scopes of 30
    // characters, rolled; then more updates than the history keeps, each changing every
    // scope (an update event carries both lists).
    let store = MemoryStore::with_answers(answers);
    let wide: Vec<String> = (0..20).map(|i| format!("{i:030}")).collect();
    let other: Vec<String> = (20..40).map(|i| format!("{i:030}")).collect();
    let name = "\u{10FFFF}".repeat(crate::validate::MAX_NAME_CHARS);
    let max = 100;
    let mut ids = Vec::new();
    for _ in 0..max {
        let made = new_key();
        let record = NewKeyRecord {
            hash: &made.hash,
            id: &made.id,
            preview: "ak_...wxyz",
            name: &name,
            scopes: &wide,
            expires_at: None,
        };
        create(&store, "alice", &record, max, NOW).unwrap();
        roll_with(&store, "alice", &made.id, HOUR, NOW).1.unwrap();
        ids.push(made.id);
    }
    for (round, id) in ids.iter().cycle().take(2 * MAX_EVENTS).enumerate() {
        let scopes = if round % 2 == 0 { &other } else { &wide };
        let wanted = Settings {
            scopes: Some(scopes.clone()),
            ..Settings::default()
        };
        update_one(&store, "alice", id, &wanted).unwrap();
    }
    let space = UserSpace::of("alice");
    let head = Head::decode(&store.get(&space.head).unwrap().unwrap()).unwrap();
    let bytes = store
        .get(&space.index(head.version))
        .unwrap()
        .unwrap()
        .len();
    let allowed: Vec<String> = wide.iter().chain(&other).cloned().collect();
    let largest = largest_index_bytes(&allowed, "ak", max);
    assert!(
        bytes <= largest,
        "{bytes} bytes, more than the {largest} allowed for"
    );
    assert!(bytes <= MAX_INDEX_BYTES, "{bytes} bytes");
    // The history was let go by bytes before by count.
    let index = current_index(&store, "alice");
    let kept: usize = index.events.iter().map(event_bytes).sum();
    assert!(
        kept <= MAX_EVENT_BYTES && index.events.len() < MAX_EVENTS,
        "{kept}"
    );
}

fn the_index_keeps_the_latest_hundred_events(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = create_one(&store, "alice");
    for n in 0..MAX_EVENTS + 5 {
        update_one(&store, "alice", &made.id, &renamed(&format!("n{n}"))).unwrap();
    }
    let events = current_index(&store, "alice").events;
    assert_eq!(events.len(), MAX_EVENTS);
    assert_eq!(events.last().unwrap().name, format!("n{}", MAX_EVENTS + 4));
    assert_eq!(events[0].name, "n5");
}

fn events_record_creates_updates_and_deletes_newest_first_without_secrets(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    assert!(events(&store, "alice", NOW).unwrap().is_empty());
    let first = create_one(&store, "alice");
    let second = create_one(&store, "alice");
    update_one(&store, "alice", &first.id, &write_only()).unwrap();
    delete(&store, "alice", &second.id, NOW + 5).unwrap();
    let shown = events(&store, "alice", NOW).unwrap();
    let summary: Vec<(EventKind, &str)> =
        shown.iter().map(|e| (e.kind, e.key_id.as_str())).collect();
    assert_eq!(
        summary,
        [
            (EventKind::Deleted, second.id.as_str()),
            (EventKind::Updated, first.id.as_str()),
            (EventKind::Created, second.id.as_str()),
            (EventKind::Created, first.id.as_str()),
        ]
    );
    assert_eq!(
        (
            shown[0].at,
            shown[0].name.as_str(),
            shown[0].reason.as_deref()
        ),
        (NOW + 5, "name", None)
    );
    // Each user sees only their own history; a refused request is not in it.
    assert!(events(&store, "bob", NOW).unwrap().is_empty());
    assert_eq!(
        delete(&store, "bob", &first.id, NOW),
        Err(ApiError::KeyNotFound)
    );
    assert_eq!(events(&store, "alice", NOW).unwrap().len(), 4);
    let text = serde_json::to_string(&shown).unwrap();
    for secret in [&first.secret, &second.secret, &first.hash, &second.hash] {
        assert!(!text.contains(secret.as_str()));
    }
    assert_history_matches_keys(&store, "alice");
}

fn an_expired_key_removed_by_a_create_is_a_deleted_event(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made = keys_with_expired(&store, MAX - 1, 1);
    let expired = &made[MAX as usize - 1];
    create_one(&store, "alice");
    let shown = events(&store, "alice", NOW).unwrap();
    assert_eq!(shown[0].kind, EventKind::Created);
    let removal = &shown[1];
    assert_eq!(
        (
            removal.kind,
            removal.key_id.as_str(),
            removal.reason.as_deref()
        ),
        (EventKind::Deleted, expired.id.as_str(), Some("expired"))
    );
    assert_history_matches_keys(&store, "alice");
}

under_every_swap_answer!(
    keys_are_listed_oldest_first,
    a_list_racing_a_create_keeps_every_invariant,
    list_answers_503_when_the_store_fails,
    a_full_index_stays_within_its_byte_budget,
    the_index_keeps_the_latest_hundred_events,
    events_record_creates_updates_and_deletes_newest_first_without_secrets,
    an_expired_key_removed_by_a_create_is_a_deleted_event,
);

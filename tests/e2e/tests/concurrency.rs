//! Requests of one user that race: the limit holds, nothing live goes unlisted, deletes stick.

use e2e::{on_every_store, unique_user, App, Store};
use std::collections::HashSet;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    fifty_simultaneous_creates_for_a_new_user_give_exactly_twenty_keys,
    simultaneous_deletes_of_the_same_keys_leave_none_alive,
    creates_racing_deletes_keep_every_live_key_listed_and_the_limit,
);

fn key_of(body: &serde_json::Value) -> (String, String) {
    (
        body["id"].as_str().unwrap().to_owned(),
        body["key"].as_str().unwrap().to_owned(),
    )
}

fn fifty_simultaneous_creates_for_a_new_user_give_exactly_twenty_keys(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("racer");
    let replies: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (app, user) = (&app, &user);
                scope.spawn(move || app.create(user, &format!("key {i}"), &["read"]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<_> = replies
        .iter()
        .filter(|r| r.status == 201)
        .map(|r| key_of(&r.body))
        .collect();
    let refused = replies
        .iter()
        .filter(|r| r.status == 409 && r.code() == Some("key_limit_reached"))
        .count();
    assert_eq!(
        created.len(),
        20,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused, 30);
    let listed: HashSet<String> = app.listed_ids(&user).into_iter().collect();
    assert_eq!(listed.len(), 20);
    for (id, key) in &created {
        assert!(listed.contains(id), "created key {id} is not listed");
        assert!(app.verifies(key), "created key {id} does not verify");
    }
}

fn simultaneous_deletes_of_the_same_keys_leave_none_alive(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("deleters");
    let keys: Vec<_> = (0..10)
        .map(|i| key_of(&app.create_ok(&user, &format!("k{i}"), &["read"])))
        .collect();
    let replies: Vec<(usize, u16)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let (app, user, keys) = (&app, &user, &keys);
                scope.spawn(move || (i % 10, app.delete(user, &keys[i % 10].0).status))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (index, (_, key)) in keys.iter().enumerate() {
        let statuses: Vec<u16> = replies
            .iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, s)| *s)
            .collect();
        assert!(
            statuses.iter().all(|s| *s == 200 || *s == 404),
            "{statuses:?}"
        );
        assert!(statuses.contains(&200), "{statuses:?}");
        assert!(!app.verifies(key));
    }
    assert!(app.listed_ids(&user).is_empty());
}

fn creates_racing_deletes_keep_every_live_key_listed_and_the_limit(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("churn");
    let old: Vec<_> = (0..20)
        .map(|i| key_of(&app.create_ok(&user, &format!("old {i}"), &["read"])))
        .collect();
    let (deleted, created): (Vec<_>, Vec<_>) = std::thread::scope(|scope| {
        let deletes: Vec<_> = old
            .iter()
            .map(|(id, key)| {
                let (app, user) = (&app, &user);
                scope.spawn(move || (app.delete(user, id).status, key.clone()))
            })
            .collect();
        let creates: Vec<_> = (0..20)
            .map(|i| {
                let (app, user) = (&app, &user);
                scope.spawn(move || app.create(user, &format!("new {i}"), &["read"]))
            })
            .collect();
        (
            deletes.into_iter().map(|h| h.join().unwrap()).collect(),
            creates.into_iter().map(|h| h.join().unwrap()).collect(),
        )
    });
    assert!(deleted.iter().all(|(status, _)| *status == 200));
    for (_, key) in &deleted {
        assert!(!app.verifies(key), "a deleted key verifies");
    }
    let listed: HashSet<String> = app.listed_ids(&user).into_iter().collect();
    assert!(listed.len() <= 20);
    for reply in &created {
        assert!(reply.status == 201 || reply.status == 409, "{}", reply.text);
        if reply.status == 201 {
            let (id, key) = key_of(&reply.body);
            assert!(listed.contains(&id) && app.verifies(&key));
        }
    }
    assert_eq!(
        listed.len(),
        created.iter().filter(|r| r.status == 201).count()
    );
}

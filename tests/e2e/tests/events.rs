//! `GET /v1/keys.events`: each user's latest changes, newest first, recorded in the same swap as
//! the change itself; never a secret or a hash, and a refused request is not in it.

use e2e::{assert_error, on_every_store, shared_app, skip_on_spin, unique_user, App, Store};
use serde_json::json;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    the_history_shows_created_updated_and_deleted_newest_first,
    every_racing_rename_answered_200_is_in_the_history,
);

fn events(app: &App, user: &str) -> e2e::Reply {
    app.as_user(user, "GET", "/v1/keys.events", None)
}

fn the_history_shows_created_updated_and_deleted_newest_first(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("historian");
    assert_eq!(events(&app, &user).body, json!({"events": []}));
    let first = app.create_ok(&user, "first", &["read"]);
    let second = app.create_ok(&user, "second", &["read", "write"]);
    let body = json!({"id": first["id"], "name": "renamed", "enabled": false}).to_string();
    let updated = app.as_user(&user, "POST", "/v1/keys.update", Some(&body));
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(
        app.delete(&user, second["id"].as_str().unwrap()).status,
        200
    );
    // Refused requests are not changes.
    assert_error(&app.create(&user, "", &["read"]), 400, "invalid_name");
    let other = unique_user("other");
    assert_eq!(
        app.delete(&other, first["id"].as_str().unwrap()).status,
        404
    );

    let reply = events(&app, &user);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let shown = reply.body["events"].as_array().unwrap();
    let at = shown[0]["at"].clone();
    assert!(at.as_str().unwrap().ends_with('Z'));
    assert_eq!(
        shown
            .iter()
            .map(|e| (e["type"].clone(), e["key_id"].clone()))
            .collect::<Vec<_>>(),
        [
            (json!("deleted"), second["id"].clone()),
            (json!("updated"), first["id"].clone()),
            (json!("created"), second["id"].clone()),
            (json!("created"), first["id"].clone()),
        ]
    );
    assert_eq!(
        shown[1],
        json!({
            "type": "updated", "at": shown[1]["at"], "key_id": first["id"], "name": "renamed",
            "changes": {
                "name": {"from": "first", "to": "renamed"},
                "enabled": {"from": true, "to": false},
            },
        })
    );
    assert_eq!(shown[0]["name"], "second");
    for secret in [&first["key"], &second["key"]] {
        let secret = secret.as_str().unwrap();
        assert!(!reply.text.contains(secret));
        assert!(!reply.text.contains(&shared::key::key_hash(secret)));
    }
    // Another user's history is their own.
    assert_eq!(events(&app, &other).body, json!({"events": []}));
}

/// Three bursts of ten racing renames of one key, thirty names in all: every rename answered 200
/// happened, so the history shows each as one `updated` event, in an order where each starts
/// from the name the one before left, ending with the name list and verify show.
///
/// No name is used twice, nor is any the key's before its own rename: an update to the name the
/// key already has changes nothing and records no event, by design. Reusing a burst's names in
/// the next (each burst renaming to `name 0` … `name 9`) shows one event fewer per burst whenever
/// the rename to the name the previous burst left reads the key before any other rename of its
/// burst lands: on DynamoDB, whose slower operations let all ten read it first, every time.
fn every_racing_rename_answered_200_is_in_the_history(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("renamer");
    let created = app.create_ok(&user, "original", &["read"]);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let mut names = Vec::new();
    for burst in 0..3 {
        let burst_names: Vec<String> = (0..10).map(|n| format!("burst {burst} name {n}")).collect();
        let replies: Vec<e2e::Reply> = std::thread::scope(|scope| {
            let handles: Vec<_> = (burst_names.iter())
                .map(|name| {
                    let (app, user) = (&app, &user);
                    let body = json!({"id": id, "name": name}).to_string();
                    scope.spawn(move || app.as_user(user, "POST", "/v1/keys.update", Some(&body)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for reply in &replies {
            assert_eq!(reply.status, 200, "burst {burst}: {}", reply.text);
        }
        names.extend(burst_names);
    }

    let reply = events(&app, &user);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let mut updates: Vec<&serde_json::Value> = (reply.body["events"].as_array().unwrap())
        .iter()
        .filter(|e| e["type"] == "updated")
        .collect();
    updates.reverse();
    let mut shown: Vec<String> = (updates.iter())
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(updates.len(), 30, "renamed to, oldest first: {shown:?}");
    // One chain of renames: each from the name the one before left.
    let mut from = json!("original");
    for event in &updates {
        assert_eq!(event["key_id"], id);
        assert_eq!(
            event["changes"],
            json!({"name": {"from": from, "to": event["name"]}}),
            "{}",
            reply.text
        );
        from = event["name"].clone();
    }
    let last = from;
    shown.sort();
    names.sort();
    assert_eq!(shown, names);
    // List and verify agree with the history on where the renames ended.
    assert_eq!(app.list(&user).body["keys"][0]["name"], last);
    assert_eq!(app.verify(key, None).body["name"], last);
}

#[test]
fn the_history_costs_the_reads_of_list_and_needs_a_token() {
    if skip_on_spin("counts store operations (the local host's X-Kv-Reads header)") {
        return;
    }
    let app = shared_app();
    let user = unique_user("reads");
    app.create_ok(&user, "one", &["read"]);
    app.create_ok(&user, "two", &["read"]);
    let list = app.list(&user);
    let history = events(app, &user);
    assert_eq!(history.kv_reads(), list.kv_reads());
    assert_eq!((history.kv_reads(), history.kv_writes()), (4, 0));
    let unsigned = app.request("GET", "/v1/keys.events", &[], None);
    assert_error(&unsigned, 401, "unauthorized");
    assert_error(
        &app.as_user(&user, "POST", "/v1/keys.events", Some("{}")),
        405,
        "method_not_allowed",
    );
}

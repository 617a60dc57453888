//! `POST /v1/keys.update`: rename, change scopes, disable and enable a key; the very next
//! verify sees the change, racing updates leave one of them whole, and every 4xx changes nothing.

use e2e::{assert_error, on_every_store, shared_app, unique_user, App, Store};
use serde_json::json;

// Store-sensitive: each runs on SQLite and on a real Redis (as Spin 4.1 speaks it, and fixed).
on_every_store!(
    an_update_is_seen_by_the_very_next_verify,
    racing_updates_leave_one_of_them_whole,
);

fn update(app: &App, user: &str, body: serde_json::Value) -> e2e::Reply {
    app.as_user(user, "POST", "/v1/keys.update", Some(&body.to_string()))
}

fn an_update_is_seen_by_the_very_next_verify(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("updater");
    let created = app.create_ok(&user, "deploy", &["read", "write"]);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    assert_eq!(app.verify(key, Some("write")).status, 200);

    // Narrowing scopes is effective at once.
    let narrowed = update(&app, &user, json!({"id": id, "scopes": ["read"]}));
    assert_eq!(narrowed.status, 200, "{}", narrowed.text);
    assert_eq!(narrowed.body["scopes"], json!(["read"]));
    assert_eq!(narrowed.body["enabled"], true);
    assert_eq!(narrowed.body["preview"], created["preview"]);
    assert_eq!(
        app.verify(key, Some("write")).body["code"],
        "insufficient_scope"
    );
    assert_eq!(app.verify(key, Some("read")).status, 200);

    // Disabling too; the key and its id stay.
    let disabled = update(&app, &user, json!({"id": id, "enabled": false}));
    assert_eq!(disabled.body["enabled"], false, "{}", disabled.text);
    let refused = app.verify(key, None);
    assert_eq!(
        (refused.status, &refused.body),
        (401, &json!({"valid": false, "code": "key_disabled"}))
    );
    assert_eq!(app.list(&user).body["keys"][0]["enabled"], false);

    // Enabled and renamed: valid again, with the new name everywhere.
    let renamed = update(
        &app,
        &user,
        json!({"id": id, "enabled": true, "name": "prod deploy"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let valid = app.verify(key, None);
    assert_eq!(
        (valid.status, &valid.body["name"]),
        (200, &json!("prod deploy"))
    );
    let listed = app.list(&user);
    assert_eq!(listed.body["keys"][0]["name"], "prod deploy");
    assert_eq!(listed.body["keys"][0], renamed.body);
}

fn racing_updates_leave_one_of_them_whole(store: Store) {
    let app = App::start_on(store);
    let user = unique_user("racer");
    let created = app.create_ok(&user, "raced", &["read"]);
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let scopes = ["read", "write", "admin"];
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        // Thirty, as measured on Spin's DynamoDB store before its increments were retried
        // (5 of 30 answered 200).
        let handles: Vec<_> = (0..30)
            .map(|n| {
                let (app, user) = (&app, &user);
                scope.spawn(move || {
                    let body =
                        json!({"id": id, "name": format!("n{n}"), "scopes": [scopes[n % 3]]});
                    update(app, user, body).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Whatever won, list and verify agree on it, name and scopes together.
    let listed = &app.list(&user).body["keys"][0];
    let n: usize = listed["name"].as_str().unwrap()[1..].parse().unwrap();
    assert_eq!(listed["scopes"], json!([scopes[n % 3]]));
    let verified = app.verify(key, None);
    assert_eq!(verified.body["name"], listed["name"]);
    assert_eq!(verified.body["scopes"], listed["scopes"]);
}

#[test]
fn bad_updates_are_refused_with_a_code_and_change_nothing() {
    let app = shared_app();
    let user = unique_user("bad-update");
    let created = app.create_ok(&user, "keep", &["read"]);
    let id = created["id"].as_str().unwrap();
    let before = app.list(&user).body;
    for (body, status, code) in [
        (json!({"id": id}), 400, "invalid_json"),
        (json!({"id": id, "enabled": "no"}), 400, "invalid_json"),
        (json!({"id": id, "name": ""}), 400, "invalid_name"),
        (json!({"id": id, "name": "\u{3164}"}), 400, "invalid_name"),
        (
            json!({"id": id, "name": "ke\u{00AD}ep"}),
            400,
            "invalid_name",
        ),
        (json!({"id": id, "scopes": ["root"]}), 400, "invalid_scopes"),
        (json!({"id": "nope", "enabled": false}), 400, "invalid_id"),
        (
            json!({"id": "key_0123456789ABCDEFGHIJKL", "enabled": false}),
            404,
            "key_not_found",
        ),
    ] {
        assert_error(&update(app, &user, body.clone()), status, code);
    }
    // A member no update takes, or one given twice: nothing is changed, the known one
    // beside it included (an outside check's `enabeld` renamed the key and left it enabled).
    for (body, code, member) in [
        (
            format!(r#"{{"id": "{id}", "name": "renamed", "enabeld": false}}"#),
            "unknown_member",
            "enabeld",
        ),
        (
            format!(r#"{{"id": "{id}", "scopes": ["write"], "expires_at": null}}"#),
            "unknown_member",
            "expires_at",
        ),
        (
            format!(r#"{{"id": "{id}", "enabled": false, "enabled": true}}"#),
            "invalid_json",
            "enabled",
        ),
    ] {
        let reply = app.as_user(&user, "POST", "/v1/keys.update", Some(&body));
        assert_error(&reply, 400, code);
        assert_eq!(reply.body["error"]["member"], member, "{body}");
    }
    // Someone else's key is not found, as for delete.
    let other = unique_user("other");
    assert_error(
        &update(app, &other, json!({"id": id, "enabled": false})),
        404,
        "key_not_found",
    );
    assert_eq!(app.list(&user).body, before);
    assert!(app.verifies(created["key"].as_str().unwrap()));
    // Method, token and size, as on every management route.
    assert_error(
        &app.as_user(&user, "GET", "/v1/keys.update", None),
        405,
        "method_not_allowed",
    );
    let unsigned = app.request("POST", "/v1/keys.update", &[], Some(b"{}"));
    assert_error(&unsigned, 401, "unauthorized");
    let huge = format!("{{\"id\": \"{id}\", \"name\": \"{}\"}}", "a".repeat(20_000));
    assert_error(
        &update(app, &user, serde_json::from_str(&huge).unwrap()),
        413,
        "payload_too_large",
    );
}

#[test]
fn roll_and_delete_refuse_members_they_do_not_take_and_change_nothing() {
    let app = shared_app();
    let user = unique_user("strict-roll-delete");
    let created = app.create_ok(&user, "keep", &["read"]);
    let id = created["id"].as_str().unwrap();
    let before = app.list(&user).body;
    for (path, body, code, member) in [
        (
            "/v1/keys.roll",
            format!(r#"{{"id": "{id}", "grace": 3600}}"#),
            "unknown_member",
            "grace",
        ),
        (
            "/v1/keys.roll",
            format!(r#"{{"id": "{id}", "grace_seconds": 60, "grace_seconds": 0}}"#),
            "invalid_json",
            "grace_seconds",
        ),
        (
            "/v1/keys.delete",
            format!(r#"{{"id": "{id}", "confirm": true}}"#),
            "unknown_member",
            "confirm",
        ),
        (
            "/v1/keys.delete",
            format!(r#"{{"id": "key_0123456789ABCDEFGHIJKL", "id": "{id}"}}"#),
            "invalid_json",
            "id",
        ),
    ] {
        let reply = app.as_user(&user, "POST", path, Some(&body));
        assert_error(&reply, 400, code);
        assert_eq!(reply.body["error"]["member"], member, "{path} {body}");
    }
    assert_eq!(app.list(&user).body, before);
    assert!(app.verifies(created["key"].as_str().unwrap()));
}

//! No answer may be kept by a cache in front of the app: a stored `200 valid:true` would outlive
//! the key's deletion, and create's answer holds the secret.

use e2e::{shared_app, unique_user};
use serde_json::json;

#[test]
fn every_answer_of_every_function_says_no_store() {
    let app = shared_app();
    let user = unique_user("cacheless");
    let created = app.create(&user, "k", &["read"]);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    let answers = [
        ("create 201", created),
        (
            "create 400",
            app.as_user(&user, "POST", "/v1/keys.create", Some("{")),
        ),
        (
            "create 401",
            app.request("POST", "/v1/keys.create", &[], Some(b"{}")),
        ),
        (
            "create 405",
            app.as_user(&user, "GET", "/v1/keys.create", None),
        ),
        ("list 200", app.list(&user)),
        ("verify 200", app.verify(&key, Some("read"))),
        ("verify 403", app.verify(&key, Some("admin"))),
        (
            "verify 200, forward-auth",
            app.request("GET", "/v1/keys.verify", &[("x-api-key", &key)], None),
        ),
        ("verify 401", app.verify("ak_nonsense", None)),
        ("delete 200", app.delete(&user, &id)),
        ("delete 404", app.delete(&user, &id)),
        (
            "delete 400",
            app.as_user(
                &user,
                "POST",
                "/v1/keys.delete",
                Some(&json!({}).to_string()),
            ),
        ),
    ];
    for (what, reply) in answers {
        assert_eq!(
            reply.header("cache-control"),
            Some("no-store"),
            "{what}: {} {}",
            reply.status,
            reply.text
        );
        assert_eq!(
            reply
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
                .count(),
            1,
            "{what}: one Cache-Control header"
        );
    }
}

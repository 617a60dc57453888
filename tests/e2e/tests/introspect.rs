//! `/v1/keys.introspect`: OAuth 2.0 token introspection (RFC 7662) of API keys, as Dovecot's
//! oauth2 passdb and other RFC 7662 clients call it.

use e2e::{shared_app, unique_user};
use serde_json::json;

fn introspect_form(app: &e2e::App, query: &str, form: &str) -> e2e::Reply {
    app.request(
        "POST",
        &format!("/v1/keys.introspect{query}"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    )
}

#[test]
fn an_rfc_7662_client_learns_whose_a_live_key_is_and_nothing_of_a_dead_one() {
    let app = shared_app();
    let user = unique_user("mailer");
    let created = app.create_ok(&user, "smtp relay", &["write", "read"]);
    let key = created["key"].as_str().unwrap();
    // Dovecot's `introspection_mode = post`: the key in the form, the client fields empty.
    let form = format!("token={key}&client_id=&client_secret=");
    let reply = introspect_form(app, "?scope=write", &form);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.body["active"], true);
    assert_eq!(reply.body["sub"], user.as_str());
    assert_eq!(reply.body["username"], user.as_str());
    assert_eq!(reply.body["client_id"], created["id"]);
    assert_eq!(reply.body["scope"], "write read");
    assert!(!reply.text.contains(key), "the key came back");

    // Dovecot's `introspection_mode = auth`: a GET with the key as the bearer token.
    let bearer = format!("Bearer {key}");
    let reply = app.request(
        "GET",
        "/v1/keys.introspect?scope=write",
        &[("authorization", &bearer)],
        None,
    );
    assert_eq!(reply.body["active"], true, "{}", reply.text);

    // A scope the key lacks, a mistyped key: inactive, and nothing more.
    let inactive = json!({"active": false});
    assert_eq!(introspect_form(app, "?scope=admin", &form).body, inactive);
    let typo = format!("token={}x", &key[..key.len() - 1]);
    assert_eq!(introspect_form(app, "", &typo).body, inactive);

    // Deleted: inactive on the very next call.
    let deleted = app.delete(&user, created["id"].as_str().unwrap());
    assert_eq!(deleted.status, 200);
    let reply = introspect_form(app, "", &form);
    assert_eq!((reply.status, reply.body), (200, inactive));
}

#[test]
fn a_form_without_exactly_one_token_is_an_invalid_request() {
    let app = shared_app();
    let reply = introspect_form(app, "", "token=a&token=b");
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body, json!({"error": "invalid_request"}));
    let reply = introspect_form(app, "?scopes=smtp", "token=a");
    assert_eq!(reply.status, 400);
}

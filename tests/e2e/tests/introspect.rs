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

#[test]
fn a_mail_server_with_a_fixed_login_gets_that_login_as_username_and_the_owner_as_sub() {
    let app = shared_app();
    let user = unique_user("Mailer");
    let created = app.create_ok(&user, "smtp", &["write"]);
    let form = format!("token={}", created["key"].as_str().unwrap());
    let reply = introspect_form(app, "?scope=write&username=apikey", &form);
    assert_eq!(reply.body["active"], true, "{}", reply.text);
    assert_eq!(reply.body["username"], "apikey");
    assert_eq!(reply.body["sub"], user.as_str());
    // A login that could not be a login is a configuration mistake, not an inactive key.
    let reply = introspect_form(app, "?username=api%20key", &form);
    assert_eq!(
        (reply.status, reply.body),
        (400, json!({"error": "invalid_request"}))
    );
}

#[test]
fn with_a_client_secret_configured_only_callers_that_show_it_are_answered() {
    let secret = "introspection-secret-for-gateways";
    let app = e2e::App::start_with(
        spin_host::MemoryBackend::new(),
        &[("introspection_client_secret", secret)],
    );
    let user = unique_user("gated");
    let key = app.create_ok(&user, "smtp", &["write"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Shown in the form, as Dovecot's post mode sends its `client_secret`.
    let shown = format!("token={key}&client_id=dovecot&client_secret={secret}");
    let reply = introspect_form(&app, "", &shown);
    assert_eq!(reply.body["active"], true, "{}", reply.text);
    // Not shown, or wrong: 401 invalid_client, the key not judged.
    for form in [
        format!("token={key}"),
        format!("token={key}&client_secret=guess"),
    ] {
        let reply = introspect_form(&app, "", &form);
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(reply.body, json!({"error": "invalid_client"}));
        assert!(reply.header("www-authenticate").is_some());
    }
    // verify itself is not gated: the secret is the introspection endpoint's only.
    let reply = app.request("GET", "/v1/keys.verify", &[("x-api-key", &key)], None);
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[test]
fn methods_other_than_get_and_post_are_405_with_allow() {
    let app = shared_app();
    let key = app.create_ok(&unique_user("methods"), "k", &["read"])["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let form = format!("token={key}");
    // An outside run's case: TRACE with a form body answered `200 {"active": false}`.
    for method in ["TRACE", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let reply = app.request(
            method,
            "/v1/keys.introspect",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(form.as_bytes()),
        );
        assert_eq!(reply.status, 405, "{method}: {}", reply.text);
        assert_eq!(reply.header("allow"), Some("GET, POST"), "{method}");
        assert_eq!(reply.body, json!({"error": "invalid_request"}));
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

#[test]
fn an_empty_or_missing_token_is_an_invalid_request() {
    let app = shared_app();
    let invalid = (400, json!({"error": "invalid_request"}));
    for form in [
        "token=",
        "token_type_hint=access_token",
        "",
        "token=&token=x",
    ] {
        let reply = introspect_form(app, "", form);
        assert_eq!((reply.status, reply.body), invalid, "{form:?}");
    }
    let reply = app.request("GET", "/v1/keys.introspect", &[], None);
    assert_eq!((reply.status, reply.body), invalid);
}

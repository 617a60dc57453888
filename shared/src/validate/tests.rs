//! Tests of every validation rule, at and past each bound.

use super::*;

fn allowed() -> Vec<String> {
    vec!["read".into(), "write".into(), "emails:send".into()]
}

fn create(body: &str) -> Result<CreateInput, ApiError> {
    create_input(body.as_bytes(), &allowed(), NOW)
}

/// 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;

fn code(result: Result<CreateInput, ApiError>) -> &'static str {
    result.expect_err("should be refused").code()
}

#[test]
fn a_valid_create_is_trimmed_and_keeps_scope_order() {
    let input = create(r#"{"name": "  CI deploy ", "scopes": ["write", "read"]}"#).unwrap();
    assert_eq!(
        input,
        CreateInput {
            name: "CI deploy".into(),
            scopes: vec!["write".into(), "read".into()],
            expires_at: None,
        }
    );
}

#[test]
fn a_roll_names_the_key_and_a_grace_of_up_to_seven_days() {
    let id = "key_0123456789ABCDEFGHIJKL";
    let roll = |rest: &str| roll_input(format!(r#"{{"id": "{id}"{rest}}}"#).as_bytes());
    assert_eq!(roll(""), Ok((id.to_owned(), 0)));
    assert_eq!(roll(r#", "grace_seconds": null"#), Ok((id.to_owned(), 0)));
    assert_eq!(roll(r#", "grace_seconds": 0"#), Ok((id.to_owned(), 0)));
    assert_eq!(
        roll(r#", "grace_seconds": 604800"#),
        Ok((id.to_owned(), 604_800))
    );
    for grace in [
        "-1", "604801", "1.5", "60.0", "\"60\"", "true", "1e3", "[60]",
    ] {
        assert_eq!(
            roll(&format!(r#", "grace_seconds": {grace}"#)),
            Err(ApiError::InvalidGraceSeconds),
            "{grace}"
        );
    }
    assert_eq!(
        roll_input(br#"{"grace_seconds": 60}"#),
        Err(ApiError::InvalidId)
    );
    assert_eq!(
        roll_input(b"[]").map(|_| ()).unwrap_err().code(),
        "invalid_json"
    );
}

#[test]
fn an_update_names_the_key_and_at_least_one_setting() {
    let update = |body: &str| update_input(body.as_bytes(), &allowed());
    let id = "key_0123456789ABCDEFGHIJKL";
    let (got_id, settings) = update(&format!(
        r#"{{"id": "{id}", "name": " new ", "scopes": ["read"], "enabled": false}}"#
    ))
    .unwrap();
    assert_eq!(got_id, id);
    assert_eq!(
        settings,
        Settings {
            name: Some("new".into()),
            scopes: Some(vec!["read".into()]),
            enabled: Some(false),
        }
    );
    let (_, only_enabled) = update(&format!(
        r#"{{"id": "{id}", "enabled": true, "name": null}}"#
    ))
    .unwrap();
    assert_eq!(only_enabled.enabled, Some(true));
    assert_eq!(only_enabled.name, None);
    for (body, code) in [
        (format!(r#"{{"id": "{id}"}}"#), "invalid_json"),
        (format!(r#"{{"id": "{id}", "name": null}}"#), "invalid_json"),
        (
            format!(r#"{{"id": "{id}", "enabled": "no"}}"#),
            "invalid_json",
        ),
        (format!(r#"{{"id": "{id}", "name": ""}}"#), "invalid_name"),
        (
            format!(r#"{{"id": "{id}", "scopes": []}}"#),
            "invalid_scopes",
        ),
        (
            format!(r#"{{"id": "{id}", "scopes": ["root"]}}"#),
            "invalid_scopes",
        ),
        (
            r#"{"id": "nope", "enabled": true}"#.to_owned(),
            "invalid_id",
        ),
        (r#"{"enabled": true}"#.to_owned(), "invalid_id"),
        ("[]".to_owned(), "invalid_json"),
    ] {
        assert_eq!(
            update(&body).map(|_| ()).unwrap_err().code(),
            code,
            "{body}"
        );
    }
}

#[test]
fn keys_never_expire_unless_asked_to() {
    for body in [
        r#"{"name": "k", "scopes": ["read"]}"#,
        r#"{"name": "k", "scopes": ["read"], "expires_at": null}"#,
    ] {
        assert_eq!(create(body).unwrap().expires_at, None, "{body}");
    }
}

#[test]
fn expiry_is_any_rfc_3339_time_in_the_next_ten_years() {
    let expiry = |at: &str| {
        create(&serde_json::json!({"name": "k", "scopes": ["read"], "expires_at": at}).to_string())
            .map(|input| input.expires_at)
    };
    assert_eq!(expiry("2027-01-15T08:00:01Z"), Ok(Some(NOW + 1)));
    assert_eq!(expiry("2027-01-15T09:00:01+01:00"), Ok(Some(NOW + 1)));
    assert_eq!(expiry("2027-01-15T08:00:01.999Z"), Ok(Some(NOW + 1)));
    assert_eq!(
        expiry("2037-01-15T08:00:00Z").unwrap(),
        Some(NOW + MAX_EXPIRY_SECS)
    );
    for refused in [
        "2027-01-15T08:00:00Z", // now
        "2026-12-31T23:59:59Z", // the past
        "2037-01-16T08:00:00Z", // ten years and a day
        "2027-02-01",           // not a time
        "tomorrow",
        "",
    ] {
        assert_eq!(
            expiry(refused).map_err(|e| e.code()),
            Err("invalid_expires_at"),
            "{refused}"
        );
    }
    let number = r#"{"name": "k", "scopes": ["read"], "expires_at": 1900000000}"#;
    assert_eq!(code(create(number)), "invalid_expires_at");
}

#[test]
fn names_may_be_any_unicode_up_to_64_characters() {
    let name = "日本語のキー🔑é".repeat(8); // 64 characters, many more bytes
    assert_eq!(name.chars().count(), 64);
    let input = create(&serde_json::json!({"name": name, "scopes": ["read"]}).to_string()).unwrap();
    assert_eq!(input.name, name);
}

#[test]
fn bad_bodies_are_invalid_json() {
    for body in [
        "",
        "not json",
        "[]",
        "\"name\"",
        "null",
        "{\"name\": \"a\",}",
    ] {
        assert_eq!(code(create(body)), "invalid_json", "{body:?}");
    }
}

#[test]
fn bad_names_are_invalid_name() {
    let long = "a".repeat(65);
    for name in [
        serde_json::json!(null),
        serde_json::json!(5),
        serde_json::json!(""),
        serde_json::json!("   "),
        serde_json::json!(long),
        serde_json::json!("tab\there"),
        serde_json::json!("new\nline"),
        serde_json::json!("nul\u{0}"),
        serde_json::json!("del\u{7f}"),
        // "Trojan Source": an override that shows `prod` for `dorp`, an isolate, a mark.
        serde_json::json!("\u{202E}dorp"),
        serde_json::json!("admin\u{2066}key\u{2069}"),
        serde_json::json!("rtl\u{200F}mark"),
        serde_json::json!("arabic\u{061C}mark"),
        // Zero-width characters that make look-alike names differ.
        serde_json::json!("pro\u{200B}d"),
        serde_json::json!("pro\u{200D}d"),
        serde_json::json!("pro\u{200C}d"),
        serde_json::json!("pro\u{2060}d"),
        serde_json::json!("\u{FEFF}prod"),
    ] {
        let body = serde_json::json!({"name": name, "scopes": ["read"]}).to_string();
        assert_eq!(code(create(&body)), "invalid_name", "{body}");
    }
    assert_eq!(code(create(r#"{"scopes": ["read"]}"#)), "invalid_name");
}

/// The characters issue 19's review found passing `invalid_name`, and more of their kind.
fn invisible_characters() -> Vec<char> {
    let mut chars = vec![
        '\u{3164}', // HANGUL FILLER
        '\u{115F}', // HANGUL CHOSEONG FILLER
        '\u{1160}', // HANGUL JUNGSEONG FILLER
        '\u{FFA0}', // HALFWIDTH HANGUL FILLER
        '\u{2800}', // BRAILLE PATTERN BLANK
        '\u{00AD}', // SOFT HYPHEN
        '\u{034F}', // COMBINING GRAPHEME JOINER
        '\u{180B}', // MONGOLIAN FREE VARIATION SELECTOR ONE
        '\u{180C}',
        '\u{180D}',
        '\u{180E}',  // MONGOLIAN VOWEL SEPARATOR
        '\u{200B}',  // ZERO WIDTH SPACE
        '\u{200C}',  // ZERO WIDTH NON-JOINER
        '\u{200D}',  // ZERO WIDTH JOINER (alone, or between letters)
        '\u{2060}',  // WORD JOINER
        '\u{FEFF}',  // ZERO WIDTH NO-BREAK SPACE
        '\u{1D173}', // MUSICAL SYMBOL BEGIN BEAM
    ];
    chars.extend('\u{2061}'..='\u{2064}'); // invisible operators
    chars.extend('\u{FE00}'..='\u{FE0F}'); // variation selectors
    chars.extend('\u{E0000}'..='\u{E007F}'); // tags
    chars.extend('\u{E0100}'..='\u{E01EF}'); // variation selectors supplement
    chars
}

fn name_of(name: &str) -> Result<CreateInput, ApiError> {
    create(&serde_json::json!({"name": name, "scopes": ["read"]}).to_string())
}

#[test]
fn invisible_characters_are_invalid_name_alone_and_inside_a_name() {
    for c in invisible_characters() {
        let code_point = format!("U+{:04X}", c as u32);
        for name in [
            c.to_string(),
            c.to_string().repeat(3),
            format!("pro{c}d"),
            format!("{c}prod"),
            format!("prod{c}"),
        ] {
            assert_eq!(
                name_of(&name).map(|_| ()).map_err(|e| e.code()),
                Err("invalid_name"),
                "{code_point} in {name:?}"
            );
        }
    }
}

#[test]
fn emoji_keep_the_joiners_and_selectors_they_are_drawn_with() {
    for name in [
        "👩\u{200D}💻 laptop",                 // woman technologist
        "👨\u{1F3FD}\u{200D}💻",               // with a skin tone
        "🏳\u{FE0F}\u{200D}🌈 team",            // rainbow flag
        "❤\u{FE0F}\u{200D}🔥",                 // heart on fire
        "🧘\u{200D}\u{2640}\u{FE0F} yoga",     // woman in lotus position
        "👩\u{200D}❤\u{FE0F}\u{200D}👨",       // couple with heart
        "I ❤\u{FE0F} prod",                    // red heart
        "#\u{FE0F}\u{20E3} 1\u{FE0F}\u{20E3}", // keycaps
        "🔑 deploy",
        "🇫🇷 Paris", // regional indicators are visible letters of a flag
    ] {
        assert_eq!(name_of(name).map(|input| input.name), Ok(name.to_owned()));
    }
}

#[test]
fn joiners_and_selectors_outside_emoji_are_invalid_name() {
    for name in [
        "pro\u{200D}d", // ZWJ between letters
        "🔑\u{200D}",   // ZWJ with nothing to join
        "\u{200D}🔑",
        "🔑\u{200D}\u{200D}💻", // two joiners
        "🔑\u{200D}a",          // ZWJ before a letter
        "a\u{FE0F}",            // VS16 after a letter
        "1\u{FE0F} prod",       // after a digit, outside a keycap
        "🔑\u{FE0F}",           // after an emoji drawn as emoji anyway
        "❤\u{FE0F}\u{FE0F}",    // twice
        "❤\u{FE0E}",            // VS15, the text form
        "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}", // tag sequence
        "\u{3164}\u{3164}",     // looks blank
    ] {
        assert_eq!(
            name_of(name).map(|_| ()).map_err(|e| e.code()),
            Err("invalid_name"),
            "{name:?}"
        );
    }
}

#[test]
fn bad_scopes_are_invalid_scopes() {
    for scopes in [
        serde_json::json!(null),
        serde_json::json!("read"),
        serde_json::json!([]),
        serde_json::json!(["read", "read"]),
        serde_json::json!(["admin"]),
        serde_json::json!(["READ"]),
        serde_json::json!([1]),
        serde_json::json!([["read"]]),
    ] {
        let body = serde_json::json!({"name": "n", "scopes": scopes}).to_string();
        assert_eq!(code(create(&body)), "invalid_scopes", "{body}");
    }
    assert_eq!(code(create(r#"{"name": "n"}"#)), "invalid_scopes");
}

#[test]
fn delete_needs_a_key_id() {
    let id = crate::key::generate("ak").unwrap().id;
    assert_eq!(
        delete_input(format!(r#"{{"id": "{id}"}}"#).as_bytes()),
        Ok(id)
    );
    for body in [
        r#"{}"#,
        r#"{"id": 5}"#,
        r#"{"id": "nope"}"#,
        r#"{"id": ""}"#,
    ] {
        assert_eq!(
            delete_input(body.as_bytes()),
            Err(ApiError::InvalidId),
            "{body}"
        );
    }
    assert_eq!(delete_input(b"x").unwrap_err().code(), "invalid_json");
}

#[test]
fn verify_body_fields_are_optional_strings() {
    assert_eq!(
        verify_input(br#"{"key": "k", "scope": "read"}"#),
        Ok(VerifyInput {
            key: Some("k".into()),
            scope: Some("read".into())
        })
    );
    assert_eq!(
        verify_input(br#"{"key": 5}"#),
        Ok(VerifyInput {
            key: None,
            scope: None
        })
    );
    for body in ["[", r#"["k"]"#, r#""k""#, "null", r#"{"key": "k"} x"#, ""] {
        assert_eq!(
            verify_input(body.as_bytes()).unwrap_err().code(),
            "invalid_json",
            "{body}"
        );
    }
    assert_eq!(
        verify_input(br#"{"key": "k\u00e9"}"#),
        Ok(VerifyInput {
            key: Some("k\u{e9}".into()),
            scope: None
        })
    );
    for other in ["[1]", r#"{"k": 1}"#, "true", "1.5", "-1", "null"] {
        let body = format!(r#"{{"key": {other}}}"#);
        assert_eq!(verify_input(body.as_bytes()).unwrap().key, None, "{other}");
    }
    assert_eq!(
        verify_input(br#"{"key": "k", "scope": ""}"#).unwrap().scope,
        Some(String::new()),
        "kept for verify to refuse"
    );
    assert_eq!(
        verify_input(br#"{"key": "k", "scope": null}"#)
            .unwrap()
            .scope,
        None
    );
    for scope in [r#"["admin"]"#, "1", "true", r#"{"a": 1}"#] {
        let body = format!(r#"{{"key": "k", "scope": {scope}}}"#);
        assert_eq!(
            verify_input(body.as_bytes()).unwrap_err().code(),
            "invalid_json",
            "{scope}"
        );
    }
}

/// A key id of the right format.
const ID: &str = "key_0123456789ABCDEFGHIJKL";

/// A body reader, its outcome reduced to accepted or the refusal.
type Reader = Box<dyn Fn(&[u8]) -> Result<(), ApiError>>;

/// Every body reader, each with a body it accepts (`{}` in it is where another member may go).
fn readers() -> Vec<(&'static str, String, Reader)> {
    vec![
        (
            "create",
            r#"{"name": "n", "scopes": ["read"], "expires_at": null{}}"#.into(),
            Box::new(|body| create_input(body, &allowed(), NOW).map(|_| ())),
        ),
        (
            "update",
            format!(r#"{{"id": "{ID}", "name": "n", "enabled": true{{}}}}"#),
            Box::new(|body| update_input(body, &allowed()).map(|_| ())),
        ),
        (
            "roll",
            format!(r#"{{"id": "{ID}", "grace_seconds": 60{{}}}}"#),
            Box::new(|body| roll_input(body).map(|_| ())),
        ),
        (
            "delete",
            format!(r#"{{"id": "{ID}"{{}}}}"#),
            Box::new(|body| delete_input(body).map(|_| ())),
        ),
        (
            "verify",
            r#"{"key": "k", "scope": "read"{}}"#.into(),
            Box::new(|body| verify_input(body).map(|_| ())),
        ),
    ]
}

#[test]
fn a_member_given_twice_in_any_object_of_any_body_is_invalid_json() {
    for (reader, body, read) in readers() {
        assert_eq!(read(body.replace("{}", "").as_bytes()), Ok(()), "{reader}");
        // Each member the body has, given again after it (`null` or another value), so that
        // the last one would have counted.
        let members: Vec<String> =
            serde_json::from_str::<Map<String, Value>>(&body.replace("{}", ""))
                .unwrap()
                .into_iter()
                .map(|(name, _)| name)
                .collect();
        for member in &members {
            for again in ["null", r#""other""#, "[]"] {
                let twice = body.replace("{}", &format!(r#", "{member}": {again}"#));
                let refused = read(twice.as_bytes()).unwrap_err();
                assert_eq!(refused.code(), "invalid_json", "{reader}: {twice}");
                assert_eq!(refused.status(), 400);
                if reader != "verify" {
                    assert_eq!(refused, ApiError::RepeatedMember(member.clone()));
                    assert_eq!(refused.body()["error"]["member"], member.as_str());
                }
            }
        }
        // Inside a member's value, however deep: the member's own check does not hide it.
        let first = &members[0];
        let nested = body.replacen(
            &format!(r#""{first}": "#),
            &format!(r#""{first}": [{{"a": {{"b": 1, "b": 2}}}}], "ignored": "#),
            1,
        );
        let refused = read(nested.as_bytes()).unwrap_err();
        assert_eq!(refused.code(), "invalid_json", "{reader}: {nested}");
    }
}

#[test]
fn a_member_no_body_takes_is_unknown_member_naming_it() {
    for (reader, body, read) in readers() {
        for (member, value) in [
            ("rate_limits", r#"[{"limit": 10, "duration": 60000}]"#),
            ("expire_at", r#""2026-12-08T00:00:00Z""#),
            ("enabeld", "false"),
            ("Scope", "null"),
            ("", "1"),
        ] {
            let with = body.replace("{}", &format!(r#", "{member}": {value}"#));
            let refused = read(with.as_bytes()).unwrap_err();
            assert_eq!(refused.code(), "unknown_member", "{reader}: {with}");
            assert_eq!(refused.status(), 400);
            let ApiError::UnknownMember {
                member: named,
                known,
            } = &refused
            else {
                panic!("{refused:?}");
            };
            assert_eq!(named, member);
            assert!(!known.contains(&member));
            let error = &refused.body()["error"];
            assert_eq!(error["member"], member, "{reader}");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(&format!("`{member}`")), "{message}");
        }
        // The first in the body is named; a body that is also broken is invalid_json.
        let two = body.replace("{}", r#", "z_first": 1, "a_second": 2"#);
        assert_eq!(
            read(two.as_bytes()),
            Err(ApiError::UnknownMember {
                member: "z_first".into(),
                known: match reader {
                    "create" => CREATE_MEMBERS,
                    "update" => UPDATE_MEMBERS,
                    "roll" => ROLL_MEMBERS,
                    "delete" => DELETE_MEMBERS,
                    _ => VERIFY_MEMBERS,
                },
            }),
            "{reader}"
        );
        let broken = body.replace("{}", r#", "rate_limits": 1,"#);
        assert_eq!(
            read(broken.as_bytes()).unwrap_err().code(),
            "invalid_json",
            "{broken}"
        );
    }
}

#[test]
fn each_body_takes_the_members_it_documents_and_no_other() {
    // The lists the readers check against are the bodies' documented members, and
    // openapi.yaml says that there are no others.
    use crate::error::openapi;
    for (schema, members, refusals) in [
        ("CreateKeyRequest", CREATE_MEMBERS, "CreateBadRequestError"),
        ("UpdateKeyRequest", UPDATE_MEMBERS, "UpdateBadRequestError"),
        ("RollKeyRequest", ROLL_MEMBERS, "RollBadRequestError"),
        ("DeleteKeyRequest", DELETE_MEMBERS, "DeleteBadRequestError"),
        ("VerifyRequest", VERIFY_MEMBERS, "VerifyBadRequest"),
    ] {
        let codes = openapi::values(refusals, "code");
        for code in ["invalid_json", "unknown_member"] {
            assert!(codes.iter().any(|c| c == code), "{refusals}: {code}");
        }
        let mut documented = openapi::properties(schema);
        let mut members: Vec<&str> = members.to_vec();
        documented.sort();
        members.sort();
        assert_eq!(documented, members, "{schema}");
        assert!(
            openapi::closed(schema),
            "{schema}: additionalProperties: false"
        );
    }
}

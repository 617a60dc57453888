//! The console component over HTTP: what it serves, with which headers, and what it refuses.
//! (The page itself is tested in a real browser by `tests/console/run.sh`.)

use e2e::{shared_app, Reply};

/// The CSP directives the page's safety rests on.
const REQUIRED_CSP: [&str; 8] = [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "require-trusted-types-for 'script'",
];

fn assert_security_headers(reply: &Reply, what: &str) {
    let csp = reply.header("content-security-policy").unwrap_or_default();
    for directive in REQUIRED_CSP {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe"), "{what}: CSP {csp:?}");
    assert_eq!(
        reply.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        reply.header("referrer-policy"),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(reply.header("x-frame-options"), Some("DENY"), "{what}");
}

#[test]
fn the_page_is_served_with_a_strict_csp_and_security_headers() {
    let app = shared_app();
    for path in ["/console", "/console/", "/console/index.html"] {
        let reply = app.request("GET", path, &[], None);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
        assert_security_headers(&reply, path);
        // The page shows a new key's secret once: no copy of it is to be kept anywhere.
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{path}");
        assert!(reply
            .text
            .contains("<script src=\"/console/console.js\" defer></script>"));
        assert!(reply.text.contains("Generate API Key"));
    }
}

#[test]
fn the_page_has_no_inline_script_or_style() {
    let page = shared_app().request("GET", "/console", &[], None).text;
    assert_eq!(
        page.matches("<script").count(),
        1,
        "only the one script file"
    );
    assert!(!page.contains("<style"));
    assert!(!page.contains(" style="));
    assert!(
        !has_event_handler_attribute(&page),
        "no inline onclick= and the like"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from elsewhere"
    );
}

/// Whether `html` has an attribute like ` onclick=`: ` on`, letters, `=`.
fn has_event_handler_attribute(html: &str) -> bool {
    html.match_indices(" on").any(|(at, _)| {
        let rest = &html[at + 3..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        letters > 0 && rest[letters..].starts_with('=')
    })
}

#[test]
fn script_style_and_icon_have_their_content_types() {
    let app = shared_app();
    for (path, content_type) in [
        ("/console/console.js", "text/javascript; charset=utf-8"),
        ("/console/console.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let reply = app.request("GET", path, &[], None);
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert_eq!(reply.header("cache-control"), Some("no-cache"), "{path}");
        assert!(!reply.text.is_empty(), "{path}");
        assert_security_headers(&reply, path);
    }
}

#[test]
fn the_root_redirects_to_the_console() {
    let reply = shared_app().request("GET", "/", &[], None);
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some("/console"));
    assert_security_headers(&reply, "/");
}

#[test]
fn other_paths_under_console_are_404() {
    let app = shared_app();
    for path in [
        "/console/missing.js",
        "/console/console.js/x",
        "/console/..%2Fv1",
        "/consolex",
    ] {
        let reply = app.request("GET", path, &[], None);
        assert_eq!(reply.status, 404, "{path}");
    }
    let reply = app.request("GET", "/console/missing.js", &[], None);
    assert_security_headers(&reply, "404");
}

#[test]
fn only_get_and_head_are_answered() {
    let app = shared_app();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let reply = app.request(method, "/console", &[], Some(b"x"));
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method}");
        assert_security_headers(&reply, method);
    }
    let head = app.request("HEAD", "/console/console.js", &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(head.text.is_empty());
}

//! The console: the API Keys page (`/console`) as static files embedded at build time. The page
//! calls the public HTTP API from the browser with the signed-in person's token; this component
//! holds no store, no variable and no secret.

use shared::spin::{respond, Length};
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

/// No inline script or style, nothing from another origin, no framing, no form posts, and no
/// HTML built from strings (Trusted Types with no policy makes `innerHTML = "..."` throw): a
/// key name holding markup can only ever be text.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// Where the page lives; `/` sends the browser here (the URL fragment, and so a `#token=`,
/// survives the redirect).
const PAGE: &str = "/console";

/// A file of the console.
struct Asset {
    content_type: &'static str,
    cache_control: &'static str,
    body: &'static [u8],
}

/// Files are not fingerprinted: revalidate so that a new build shows at once.
const REVALIDATE: &str = "no-cache";

/// The page itself is never stored. It shows a new key's secret once, and a stored page must
/// not bring it back (Back, the back-forward cache). Some Chrome versions put `no-store` pages
/// in the back-forward cache all the same, so the page also forgets every secret on `pagehide`
/// (console.js); this header is the part the browser can be told.
const NO_STORE: &str = "no-store";

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    cache_control: NO_STORE,
    body: include_bytes!("../assets/index.html"),
};
const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    cache_control: REVALIDATE,
    body: include_bytes!("../assets/console.js"),
};
const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    cache_control: REVALIDATE,
    body: include_bytes!("../assets/console.css"),
};
const ICON: Asset = Asset {
    content_type: "image/svg+xml",
    cache_control: REVALIDATE,
    body: include_bytes!("../assets/icon.svg"),
};

/// What a request gets.
enum Answer {
    File(&'static Asset),
    Redirect(&'static str),
    NotFound,
    MethodNotAllowed,
}

#[http_component]
fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let method = request.method().to_string();
    let path_with_query = request.path_with_query().unwrap_or_default();
    let path = path_with_query
        .split_once('?')
        .map_or(path_with_query.as_str(), |(path, _)| path);
    let Reply {
        status,
        headers,
        body,
    } = reply(route(&method, path));
    // A `HEAD` gets the headers of a `GET` without its body, and so no length to declare.
    if method == "HEAD" {
        respond(status, headers, b"", Length::Undeclared, response_out)
    } else {
        respond(status, headers, body, Length::Declared, response_out)
    }
}

/// What an [`Answer`] is sent as (see [`respond`]).
struct Reply {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: &'static [u8],
}

/// The answer to `method` on `path`: an unknown path is 404 whatever the method, a known one is
/// only read (GET or HEAD).
fn route(method: &str, path: &str) -> Answer {
    let answer = match path {
        "/" => Answer::Redirect(PAGE),
        "/console" | "/console/" | "/console/index.html" => Answer::File(&INDEX),
        "/console/console.js" => Answer::File(&SCRIPT),
        "/console/console.css" => Answer::File(&STYLE),
        "/console/icon.svg" => Answer::File(&ICON),
        _ => return Answer::NotFound,
    };
    if matches!(method, "GET" | "HEAD") {
        answer
    } else {
        Answer::MethodNotAllowed
    }
}

/// The status, headers and body of `answer`, sent in one write (see [`respond`]).
fn reply(answer: Answer) -> Reply {
    let mut headers = vec![
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        // The page's own URL never leaves it, should a token ever sit in one.
        ("referrer-policy", "no-referrer"),
        // For browsers that predate `frame-ancestors`.
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ];
    let text = [
        ("content-type", "text/plain; charset=utf-8"),
        ("cache-control", NO_STORE),
    ];
    let (status, body): (u16, &'static [u8]) = match answer {
        Answer::File(asset) => {
            headers.push(("content-type", asset.content_type));
            headers.push(("cache-control", asset.cache_control));
            (200, asset.body)
        }
        Answer::Redirect(location) => {
            headers.push(("location", location));
            headers.push(("cache-control", NO_STORE));
            (302, b"")
        }
        Answer::NotFound => {
            headers.extend(text);
            (404, b"Not found\n")
        }
        Answer::MethodNotAllowed => {
            headers.extend(text);
            headers.push(("allow", "GET, HEAD"));
            (405, b"Method not allowed\n")
        }
    };
    let headers = headers
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.as_bytes().to_vec()))
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

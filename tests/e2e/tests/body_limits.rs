//! No request holds more than its 16 KiB body limit in memory: a huge body, declared or chunked,
//! is answered `413` before it has been sent, and the host's resident memory stays flat.

use e2e::App;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const HUGE: usize = 200_000_000;
/// Sent before the client waits for an answer: far less than the body, more than the limit.
const FIRST_PART: usize = 1 << 20;

/// POSTs `HUGE` bytes to `path`, with a declared length or chunked. After `FIRST_PART` bytes
/// the client waits for the answer, then sends the rest. Returns the status and how many body
/// bytes had been sent when the answer came.
fn post_huge(app: &App, path: &str, chunked: bool) -> (u16, usize) {
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {HUGE}")
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let sent = AtomicUsize::new(0);
    let (answered, wait_for_answer) = mpsc::channel::<()>();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    std::thread::scope(|scope| {
        let sent = &sent;
        scope.spawn(move || {
            let chunk = vec![b' '; 64 * 1024];
            while sent.load(Ordering::SeqCst) < HUGE {
                if sent.load(Ordering::SeqCst) == FIRST_PART {
                    let _ = wait_for_answer.recv_timeout(Duration::from_secs(60));
                }
                let framed = if chunked {
                    [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat()
                } else {
                    chunk.clone()
                };
                // The server may close once it has answered: the rest is not its business.
                if stream.write_all(&framed).is_err() {
                    return;
                }
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            if chunked {
                let _ = stream.write_all(b"0\r\n\r\n");
            }
        });
        let mut status_line = String::new();
        reader.read_line(&mut status_line).expect("an answer");
        let sent_when_answered = sent.load(Ordering::SeqCst);
        let _ = answered.send(());
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        (status, sent_when_answered)
    })
}

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn huge_bodies_get_413_before_they_are_sent_and_memory_stays_flat() {
    let app = App::start();
    // Warm up: every component instantiated once, so the pool's resident memory is counted.
    for path in ["/v1/keys.verify", "/v1/keys.create", "/v1/keys.delete"] {
        app.request("POST", path, &[], Some(b"{}"));
    }
    let before = resident_bytes();
    for path in ["/v1/keys.verify", "/v1/keys.create", "/v1/keys.delete"] {
        for chunked in [false, true] {
            let (status, sent) = post_huge(&app, path, chunked);
            assert_eq!(status, 413, "{path}, chunked: {chunked}");
            assert!(
                sent <= FIRST_PART,
                "{path}, chunked: {chunked}: answered only after {sent} bytes"
            );
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    // Six 200 MB bodies: held in memory they would take gigabytes (or trap the instance).
    assert!(
        grown < 64 << 20,
        "resident memory grew by {} MiB",
        grown >> 20
    );
}

#[test]
fn deeply_nested_bodies_within_the_limit_are_invalid_json_not_a_crash() {
    // Components run on a 128 KiB stack (.cargo/config.toml): the JSON parser's depth limit,
    // not the stack, must end this, on every component that reads a body.
    let app = App::start();
    let limit = shared::http::MAX_BODY_BYTES;
    let arrays = "[".repeat(limit);
    let objects = "{\"a\":".repeat(limit / 5);
    for body in [&arrays, &objects] {
        let reply = app.request("POST", "/v1/keys.verify", &[], Some(body.as_bytes()));
        assert_eq!(
            (reply.status, &reply.body),
            (
                400,
                &serde_json::json!({"valid": false, "code": "invalid_json"})
            )
        );
        for path in ["/v1/keys.create", "/v1/keys.delete"] {
            let reply = app.as_user("nesting", "POST", path, Some(body));
            e2e::assert_error(&reply, 400, "invalid_json");
        }
    }
    // The instances survived as such: the next requests are answered normally.
    let created = app.create_ok("nesting", "after", &["read"]);
    assert!(app.verifies(created["key"].as_str().unwrap()));
}

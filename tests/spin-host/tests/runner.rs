//! Runs the probe component (`probe/`) through the host: routing, Spin headers, both
//! key-value interfaces, variables, the test clock, limits and fault injection.

use spin_host::{FaultyBackend, HostConfig, KvBackend, MemoryBackend, RunningHost, TestClock};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Builds the probe once per test run (about a minute the first time, cached after).
fn probe_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spin-host-probe");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(here.join("probe/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the probe component failed");
        target.join("wasm32-wasip2/release/spin_host_probe.wasm")
    })
}

/// A manifest for the probe in a fresh folder (so `.spin/` lands there).
fn app_dir(extra_vars: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "probe"
[variables]
greet_name = {{ default = "world" }}
must = {{ required = true }}
{extra_vars}
[[trigger.http]]
route = "/probe/..."
component = "probe"
[[trigger.http]]
route = "/exact"
component = "probe"
[component.probe]
source = "{}"
key_value_stores = ["default", "ghost"]
[component.probe.variables]
greeting = "hello {{{{ greet_name }}}} {{{{must}}}}"
[component.probe.build]
command = "exit 1"
"#,
        probe_wasm().display()
    );
    std::fs::write(dir.path().join("spin.toml"), manifest).expect("write manifest");
    dir
}

fn config(dir: &tempfile::TempDir, backend: Arc<dyn KvBackend>) -> HostConfig {
    let mut c = HostConfig::new(dir.path().join("spin.toml"));
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.build = false;
    c.backend = backend;
    c.kv_stats_header = true;
    c.quiet = true;
    c.variables.insert("must".into(), "yes".into());
    c
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A plain HTTP/1.0 GET, so the body simply runs to the end of the connection.
fn get(host: &RunningHost, path: &str) -> Reply {
    let mut s = std::net::TcpStream::connect(host.addr()).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http reply");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn routes_spin_headers_and_404() {
    let dir = app_dir("");
    let host = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .unwrap();
    assert!(host.url().starts_with("http://127.0.0.1:"));
    let r = get(&host, "/probe/headers?x=1");
    assert_eq!(r.status, 200);
    for line in [
        "spin-path-info=/headers",
        "spin-matched-route=/probe/...",
        "spin-raw-component-route=/probe/...",
        "spin-component-route=/probe",
        "spin-base-path=/",
        "spin-full-url=http://localhost/probe/headers?x=1",
        "spin-client-addr=127.0.0.1:",
    ] {
        assert!(r.body.contains(line), "missing {line} in\n{}", r.body);
    }
    assert_eq!(get(&host, "/exact").body, "path=/exact info=");
    let missing = get(&host, "/nowhere");
    assert_eq!((missing.status, missing.body.as_str()), (404, ""));
    host.shutdown().await;
}

#[tokio::test]
async fn key_value_through_both_interfaces_with_counts() {
    let dir = app_dir("");
    let host = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .unwrap();
    let r = get(&host, "/probe/set?a=1");
    assert_eq!(
        (r.header("x-kv-reads"), r.header("x-kv-writes")),
        (Some("0"), Some("1"))
    );
    get(&host, "/probe/set?b=2");
    assert_eq!(get(&host, "/probe/get?a").body, "1");
    assert_eq!(get(&host, "/probe/keys").body, "a,b");
    let many = get(&host, "/probe/many?b,zz,a");
    assert_eq!(many.body, "b=2,a=1", "absent keys are left out");
    assert_eq!(many.header("x-kv-reads"), Some("1"));
    assert_eq!(get(&host, "/probe/increment?n").body, "1");
    assert_eq!(get(&host, "/probe/increment?n").body, "2");
    let totals = host.kv_totals();
    assert_eq!((totals.reads, totals.writes), (3, 4));
    host.shutdown().await;
}

#[tokio::test]
async fn stores_not_granted_or_not_defined_are_refused_at_open() {
    let dir = app_dir("");
    let host = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .unwrap();
    let r = get(&host, "/probe/open");
    assert_eq!(
        r.body,
        r#"other=Some("Error::AccessDenied") ghost=Some("Error::NoSuchStore")"#
    );
    host.shutdown().await;
}

#[tokio::test]
async fn compare_and_swap_fails_on_change_and_upserts_on_absent() {
    let dir = app_dir("");
    let host = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .unwrap();
    assert_eq!(
        get(&host, "/probe/cas").body,
        "cas-failed seen=two retry=true now=three"
    );
    assert_eq!(
        get(&host, "/probe/cas-absent").body,
        "seen=- swapped=true now=mine"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn increment_on_a_non_counter_traps_only_that_request() {
    let dir = app_dir("");
    // The real SQLite file, to check nothing is written on the trap path.
    let host = spin_host::start(config(
        &dir,
        spin_host::SqliteBackend::lazy(dir.path().join(".spin/kv.db")),
    ))
    .await
    .unwrap();
    get(&host, "/probe/set?bad=xyz");
    let r = get(&host, "/probe/increment?bad");
    assert_eq!((r.status, r.body.as_str()), (500, ""));
    assert_eq!(get(&host, "/probe/get?bad").body, "xyz");
    assert_eq!(get(&host, "/probe/increment?good").body, "1");
    host.shutdown().await;
}

#[tokio::test]
async fn variables_render_and_unknown_names_are_errors() {
    let dir = app_dir("");
    let host = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .unwrap();
    let body = get(&host, "/probe/var").body;
    let parts: Vec<_> = body.split('|').collect();
    assert_eq!(parts[0], "hello world yes");
    assert!(parts[1].starts_with("Error::Undefined"), "{body}");
    assert!(parts[2].starts_with("Error::InvalidName"), "{body}");
    host.shutdown().await;
}

#[tokio::test]
async fn a_required_variable_without_value_stops_start_up() {
    let dir = app_dir("api_secret = { required = true }");
    let err = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .err()
        .expect("must fail");
    assert!(format!("{err:#}").contains("api_secret"), "{err:#}");
}

#[tokio::test]
async fn components_see_the_test_clock() {
    let dir = app_dir("");
    let mut c = config(&dir, MemoryBackend::new());
    let clock = TestClock::new();
    c.clock = clock.clone();
    let host = spin_host::start(c).await.unwrap();
    clock.set(UNIX_EPOCH + Duration::from_secs(1_000_000));
    assert_eq!(get(&host, "/probe/time").body, "1000000");
    clock.advance(Duration::from_secs(60));
    assert_eq!(get(&host, "/probe/time").body, "1000060");
    clock.reset();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seen: u64 = get(&host, "/probe/time").body.parse().unwrap();
    assert!(seen.abs_diff(now) < 5);
    host.shutdown().await;
}

#[tokio::test]
async fn runaway_and_memory_hungry_requests_fail_alone() {
    let dir = app_dir("");
    let mut c = config(&dir, MemoryBackend::new());
    c.request_timeout = Duration::from_millis(500);
    c.max_instance_memory = Some(16 << 20);
    let host = spin_host::start(c).await.unwrap();
    let started = Instant::now();
    assert_eq!(get(&host, "/probe/loop").status, 500);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(&host, "/probe/grow?64").status, 500);
    let within = get(&host, "/probe/grow?4");
    assert_eq!((within.status, within.body.as_str()), (200, "4"));
    assert_eq!(get(&host, "/exact").status, 200);
    host.shutdown().await;
}

#[tokio::test]
async fn without_a_configured_limit_an_instance_grows_as_on_spin() {
    // `spin up` sets no instance memory limit unless given `--max-instance-memory`
    // (SPIN-FACTS: a 300 MB body was buffered whole), so the host sets none either.
    let dir = app_dir("");
    let mut c = config(&dir, MemoryBackend::new());
    c.max_instance_memory = None;
    let host = spin_host::start(c).await.unwrap();
    let grown = get(&host, "/probe/grow?256");
    assert_eq!((grown.status, grown.body.as_str()), (200, "256"));
    host.shutdown().await;
}

#[tokio::test]
async fn injected_faults_reach_the_component_as_store_errors() {
    let dir = app_dir("");
    let faulty = FaultyBackend::new(MemoryBackend::new());
    let host = spin_host::start(config(&dir, faulty.clone()))
        .await
        .unwrap();
    get(&host, "/probe/set?a=1");
    faulty.fail_nth(1);
    assert_eq!(
        get(&host, "/probe/get?a").body,
        r#"error Error::Other("injected fault")"#
    );
    assert_eq!(get(&host, "/probe/get?a").body, "1");
    faulty.fail_all(true);
    assert!(get(&host, "/probe/increment?n")
        .body
        .contains("injected fault"));
    faulty.disarm();
    assert_eq!(faulty.ops(), 4);
    host.shutdown().await;
}

#[tokio::test]
async fn a_component_with_an_unknown_import_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(component (import "acme:nope/thing@1.0.0" (instance (export "f" (func)))))"#;
    std::fs::write(dir.path().join("app.wat"), wat).unwrap();
    let manifest = "spin_manifest_version = 2\n[[trigger.http]]\nroute = \"/...\"\n\
                    component = \"app\"\n[component.app]\nsource = \"app.wat\"\n";
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let err = spin_host::start(config(&dir, MemoryBackend::new()))
        .await
        .err()
        .expect("must fail");
    let text = format!("{err:#}");
    assert!(
        text.contains("acme:nope/thing@1.0.0") && text.contains("`app`"),
        "{text}"
    );
}

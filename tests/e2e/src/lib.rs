//! Harness of the end-to-end suite: builds the components once, serves `spin.toml` through
//! the local host (`spin-host`) with a chosen key-value backend — or through real `spin up`
//! when `SPIN_BIN` names a Spin binary — and speaks the HTTP contract.
//!
//! On Spin, a test that needs what only the local host offers (failures injected into the
//! store, a clock the test moves, the store-operation counters) says so with
//! [`skip_on_spin`], which prints the reason, and passes without running.

mod spin_up;
pub use spin_up::{moto_python, spin_bin, SpinInstance, SpinStore};

use serde_json::{json, Value};
use spin_host::{
    FaultyBackend, HostConfig, KvBackend, MemoryBackend, MemoryOutputPipe, RedisBackend,
    RedisCasAnswers, RedisServer, RunningHost, SqliteBackend, TestClock,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::{Duration, UNIX_EPOCH};

/// The `jwt_secret` every test app is started with.
pub const JWT_SECRET: &str = "e2e-secret-not-for-production-0123456789";

/// The instance memory limit every app of the suite runs with, on either runtime (Spin's
/// `--max-instance-memory`; Spin itself sets none by default). The suite passing under it shows
/// that every component, on every request the suite makes (bodies at their caps, 20 keys,
/// long histories, 16 KiB of JSON nesting), fits in 2 MiB; deploy/README.md recommends 8 MiB.
pub const INSTANCE_MEMORY_LIMIT: usize = 2 << 20;

/// The workspace root, where `spin.toml` is.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Builds the components once per test process with the build commands of `spin.toml`
/// (as `spin build` would; cargo skips them when nothing changed).
fn build_components() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let manifest = spin_host::manifest::Manifest::load(&workspace_root().join("spin.toml"))
            .expect("spin.toml loads");
        spin_host::manifest::run_builds(&manifest, true)
            .expect("spin.toml's build commands succeed");
    });
}

/// Whether the suite runs on real Spin (`SPIN_BIN` is set).
pub fn on_spin() -> bool {
    spin_bin().is_some()
}

/// On real Spin, prints why the calling test cannot run there and answers `true` (the test
/// returns at once); on the local host answers `false`.
pub fn skip_on_spin(reason: &str) -> bool {
    if on_spin() {
        eprintln!("skipped on Spin: {reason}");
    }
    on_spin()
}

/// The key-value stores the store-sensitive tests run on, each as `spin up` would use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Spin's default store (an in-memory SQLite database on the local host, a file on Spin).
    Sqlite,
    /// A real `redis-server`, spoken to as Spin 4.1 does (every swap answers `cas-failed`); on
    /// Spin, Spin's own Redis store, which does just that.
    RedisAsSpin41,
    /// A real `redis-server`, spoken to as Spin will once its `UNWATCH` is fixed (a lost race
    /// answers success). The local host only: real Spin is not fixed yet.
    RedisUnwatchFixed,
    /// Spin's DynamoDB store on a local DynamoDB-compatible server (moto), with consistent
    /// reads. Real Spin only: the local host has no DynamoDB backend.
    DynamoDb,
}

impl Store {
    /// Why this store cannot be tested on the runtime at hand, if it cannot.
    pub fn unavailable(self) -> Option<&'static str> {
        match (self, on_spin()) {
            (Store::RedisUnwatchFixed, true) => {
                Some("emulates a fix of Spin's Redis store that real Spin does not have yet")
            }
            (Store::DynamoDb, false) => {
                Some("the local host has no DynamoDB store: run with SPIN_BIN=… and MOTO_PYTHON=…")
            }
            (Store::DynamoDb, true) if moto_python().is_none() => Some(
                "no DynamoDB-compatible server: set MOTO_PYTHON to a Python with moto installed",
            ),
            _ => None,
        }
    }

    /// Runs `case` on this store, or prints why it cannot run here.
    pub fn run(self, case: fn(Store)) {
        match self.unavailable() {
            Some(reason) => eprintln!("skipped on {self:?}: {reason}"),
            None => case(self),
        }
    }

    fn redis_answers(self) -> Option<RedisCasAnswers> {
        match self {
            Store::Sqlite | Store::DynamoDb => None,
            Store::RedisAsSpin41 => Some(RedisCasAnswers::Spin41),
            Store::RedisUnwatchFixed => Some(RedisCasAnswers::UnwatchFixed),
        }
    }
}

/// Makes `<case>::sqlite`, `<case>::redis_as_spin_4_1`, `<case>::redis_unwatch_fixed` and
/// `<case>::dynamodb` tests of each `fn <case>(store: Store)`; each store the runtime at hand
/// lacks is skipped with its reason printed (see [`Store::unavailable`]).
#[macro_export]
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use $crate::Store;
            #[test]
            fn sqlite() {
                Store::Sqlite.run(super::$case)
            }
            #[test]
            fn redis_as_spin_4_1() {
                Store::RedisAsSpin41.run(super::$case)
            }
            #[test]
            fn redis_unwatch_fixed() {
                Store::RedisUnwatchFixed.run(super::$case)
            }
            #[test]
            fn dynamodb() {
                Store::DynamoDb.run(super::$case)
            }
        }
    )*};
}

/// A store several instances of the app share (see [`App::start_instance`]): Spin's SQLite
/// store (one file on Spin, one backend on the local host), or a Redis server of its own,
/// spoken to as Spin 4.1 does.
pub enum SharedStore {
    Sqlite(Arc<dyn KvBackend>),
    Redis(RedisServer),
}

impl SharedStore {
    /// A fresh store of the kind `store`; `None` for the kinds no two instances can share here.
    pub fn new(store: Store) -> Option<SharedStore> {
        match store {
            Store::Sqlite => Some(SharedStore::Sqlite(SqliteBackend::in_memory())),
            Store::RedisAsSpin41 => Some(SharedStore::Redis(
                RedisServer::start().expect("redis-server starts"),
            )),
            Store::RedisUnwatchFixed | Store::DynamoDb => None,
        }
    }
}

/// A running app: the local host (or real Spin) serving `spin.toml`, its store and its clock.
pub struct App {
    host: Option<RunningHost>,
    /// The `spin up` serving the app, on real Spin (then `store` and `clock` are not the app's).
    spin: Option<SpinInstance>,
    /// The Redis server this app started for itself, if any (stopped after the host).
    redis: Option<RedisServer>,
    runtime: tokio::runtime::Runtime,
    agent: ureq::Agent,
    pub url: String,
    /// The store, wrapped so tests can make chosen operations fail.
    pub store: Arc<FaultyBackend>,
    /// The wall clock the components see.
    pub clock: Arc<TestClock>,
    /// What the components wrote to stderr, Spin's component log.
    log: MemoryOutputPipe,
}

impl App {
    /// The app on a fresh in-memory store with default variables.
    pub fn start() -> App {
        App::start_with(MemoryBackend::new(), &[])
    }

    /// The app on a fresh store of the kind `store` (a Redis server of its own for Redis).
    pub fn start_on(store: Store) -> App {
        if on_spin() {
            let dir = state_folder();
            return match store {
                Store::Sqlite => App::on_spin(&SpinStore::Sqlite(dir.join("kv.db")), &[], &[]),
                Store::DynamoDb => App::on_spin(&SpinStore::DynamoDb, &[], &[]),
                Store::RedisAsSpin41 | Store::RedisUnwatchFixed => {
                    let server = RedisServer::start().expect("redis-server starts");
                    let mut app = App::on_spin(&SpinStore::Redis(server.url()), &[], &[]);
                    app.redis = Some(server);
                    app
                }
            };
        }
        match store.redis_answers() {
            None => App::start_with(SqliteBackend::in_memory(), &[]),
            Some(answers) => {
                let server = RedisServer::start().expect("redis-server starts");
                let mut app = App::start_on_redis(&server, answers, &[]);
                app.redis = Some(server);
                app
            }
        }
    }

    /// One instance of the app on a shared Redis `server`, serving only `components` (all if
    /// empty), as `spin up --runtime-config-file … --component-id …` would.
    pub fn start_on_redis(
        server: &RedisServer,
        answers: RedisCasAnswers,
        components: &[&str],
    ) -> App {
        if on_spin() {
            assert_eq!(
                answers,
                RedisCasAnswers::Spin41,
                "real Spin answers as Spin 4.1"
            );
            return App::on_spin(&SpinStore::Redis(server.url()), &[], components);
        }
        let backend = RedisBackend::new(&server.url(), answers).expect("redis backend");
        App::start_serving(backend, &[], components)
    }

    /// One instance of the app on `store`, which other instances started on it share, with
    /// `variables` set besides `jwt_secret` and serving only `components` (all if empty), as
    /// `spin up --component-id …` with a runtime config naming one store would.
    pub fn start_instance(
        store: &SharedStore,
        variables: &[(&str, &str)],
        components: &[&str],
    ) -> App {
        match (store, on_spin()) {
            (SharedStore::Sqlite(backend), true) => {
                let file = sqlite_file_standing_for(backend.clone());
                App::on_spin(&SpinStore::Sqlite(file), variables, components)
            }
            (SharedStore::Sqlite(backend), false) => {
                App::start_serving(backend.clone(), variables, components)
            }
            (SharedStore::Redis(server), true) => {
                App::on_spin(&SpinStore::Redis(server.url()), variables, components)
            }
            (SharedStore::Redis(server), false) => {
                let backend = RedisBackend::new(&server.url(), RedisCasAnswers::Spin41)
                    .expect("redis backend");
                App::start_serving(backend, variables, components)
            }
        }
    }

    /// Stops the Redis server this app started for itself.
    pub fn stop_redis(&mut self) {
        self.redis.as_mut().expect("an app on Redis").stop();
    }

    /// The app on `backend`, with `variables` (lower-case names) set besides `jwt_secret`.
    /// On Spin, apps started on one backend share one SQLite file instead.
    pub fn start_with(backend: Arc<dyn KvBackend>, variables: &[(&str, &str)]) -> App {
        if on_spin() {
            let file = sqlite_file_standing_for(backend);
            return App::on_spin(&SpinStore::Sqlite(file), variables, &[]);
        }
        App::start_serving(backend, variables, &[])
    }

    /// The app on Spin's SQLite store kept in `file` (as `spin up` keeps
    /// `.spin/sqlite_key_value.db`).
    pub fn start_on_sqlite_file(file: &Path) -> App {
        if on_spin() {
            return App::on_spin(&SpinStore::Sqlite(file.to_owned()), &[], &[]);
        }
        App::start_with(SqliteBackend::open(file).expect("sqlite store"), &[])
    }

    fn on_spin(store: &SpinStore, variables: &[(&str, &str)], components: &[&str]) -> App {
        build_components();
        let mut all = vec![("jwt_secret", JWT_SECRET)];
        all.extend_from_slice(variables);
        let spin = spin_bin().expect("SPIN_BIN");
        let manifest = workspace_root().join("spin.toml");
        let instance = SpinInstance::start(&spin, &manifest, store, &all, components);
        App {
            host: None,
            redis: None,
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            agent: agent(),
            url: instance.url.clone(),
            spin: Some(instance),
            // Not the app's: tests that need them skip on Spin (see `skip_on_spin`).
            store: FaultyBackend::new(MemoryBackend::new()),
            clock: TestClock::new(),
            log: MemoryOutputPipe::new(0),
        }
    }

    fn start_serving(
        backend: Arc<dyn KvBackend>,
        variables: &[(&str, &str)],
        components: &[&str],
    ) -> App {
        build_components();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = FaultyBackend::new(backend);
        let clock = TestClock::new();
        let mut config = HostConfig::new(workspace_root().join("spin.toml"));
        config.listen = "127.0.0.1:0".parse().expect("address");
        config.build = false;
        config.backend = store.clone();
        config.clock = clock.clone();
        config.kv_stats_header = true;
        config.quiet = true;
        config.components = components.iter().map(|c| (*c).to_owned()).collect();
        let log = MemoryOutputPipe::new(64 << 20);
        config.component_log = Some(log.clone());
        config.max_instance_memory = Some(INSTANCE_MEMORY_LIMIT);
        config
            .variables
            .insert("jwt_secret".into(), JWT_SECRET.into());
        for (name, value) in variables {
            config.variables.insert((*name).into(), (*value).into());
        }
        let host = runtime
            .block_on(spin_host::start(config))
            .expect("host starts");
        let url = host.url();
        App {
            host: Some(host),
            spin: None,
            redis: None,
            runtime,
            agent: agent(),
            url,
            store,
            clock,
            log,
        }
    }

    /// Everything the components have logged so far.
    pub fn component_log(&self) -> String {
        if let Some(spin) = &self.spin {
            return spin.component_log();
        }
        String::from_utf8_lossy(&self.log.contents()).into_owned()
    }

    /// Stops the app's clock at the current whole second, so that only the test moves it: a
    /// test that advances to one second before a boundary must not cross it because a real
    /// second went by meanwhile (timings are whole seconds).
    pub fn freeze_clock(&self) {
        assert!(self.spin.is_none(), "Spin's clock is the real one");
        self.clock
            .set(UNIX_EPOCH + std::time::Duration::from_secs(self.now() as u64));
    }

    /// Now on the app's clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64
    }

    /// A token for `user`, valid for an hour on the app's clock.
    pub fn token(&self, user: &str) -> String {
        shared::jwt::sign(
            &json!({ "sub": user, "exp": self.now() + 3600 }),
            JWT_SECRET.as_bytes(),
        )
    }

    /// Any request: method, path (with query), headers, body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let mut request = self.agent.request(method, &format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(bytes) => request.send_bytes(bytes),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{method} {path}: {error}"),
        };
        Reply::read(response)
    }

    /// `POST /v1/keys.create` as `user`.
    pub fn create(&self, user: &str, name: &str, scopes: &[&str]) -> Reply {
        let body = json!({ "name": name, "scopes": scopes }).to_string();
        self.as_user(user, "POST", "/v1/keys.create", Some(&body))
    }

    /// Creates a key and returns the 201 body; panics otherwise.
    pub fn create_ok(&self, user: &str, name: &str, scopes: &[&str]) -> Value {
        let reply = self.create(user, name, scopes);
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body
    }

    /// `GET /v1/keys.list` as `user`.
    pub fn list(&self, user: &str) -> Reply {
        self.as_user(user, "GET", "/v1/keys.list", None)
    }

    /// The ids `user`'s list shows, oldest first.
    pub fn listed_ids(&self, user: &str) -> Vec<String> {
        let reply = self.list(user);
        assert_eq!(reply.status, 200, "{}", reply.text);
        reply.body["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["id"].as_str().expect("id").to_owned())
            .collect()
    }

    /// `POST /v1/keys.delete` as `user`.
    pub fn delete(&self, user: &str, id: &str) -> Reply {
        self.as_user(
            user,
            "POST",
            "/v1/keys.delete",
            Some(&json!({ "id": id }).to_string()),
        )
    }

    /// `POST /v1/keys.verify` with a JSON body.
    pub fn verify(&self, key: &str, scope: Option<&str>) -> Reply {
        let body = match scope {
            Some(scope) => json!({ "key": key, "scope": scope }),
            None => json!({ "key": key }),
        };
        self.request(
            "POST",
            "/v1/keys.verify",
            &[("content-type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }

    /// Whether `key` verifies right now.
    pub fn verifies(&self, key: &str) -> bool {
        let reply = self.verify(key, None);
        assert!(
            matches!(reply.status, 200 | 401),
            "{} {}",
            reply.status,
            reply.text
        );
        reply.status == 200
    }

    /// A request signed in as `user`, with any body (valid or not).
    pub fn as_user(&self, user: &str, method: &str, path: &str, body: Option<&str>) -> Reply {
        let authorization = format!("Bearer {}", self.token(user));
        self.request(
            method,
            path,
            &[("authorization", &authorization)],
            body.map(str::as_bytes),
        )
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(host) = self.host.take() {
            self.runtime.block_on(host.shutdown());
        }
    }
}

/// The HTTP client of the tests. Redirects are answers to check (the console's `/`), not to
/// follow.
fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .redirects(0)
        .build()
}

/// A folder that lives as long as the test process (a Spin app's SQLite file).
fn state_folder() -> PathBuf {
    static ROOT: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let root = ROOT.get_or_init(|| tempfile::tempdir().expect("temporary folder"));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = root.path().join(n.to_string());
    std::fs::create_dir_all(&dir).expect("state folder");
    dir
}

/// On Spin, the SQLite file that stands for the local host's `backend`: apps started on one
/// backend share it, as they share the backend on the local host.
fn sqlite_file_standing_for(backend: Arc<dyn KvBackend>) -> PathBuf {
    type Files = Vec<(Arc<dyn KvBackend>, PathBuf)>;
    static FILES: std::sync::Mutex<Files> = std::sync::Mutex::new(Vec::new());
    let mut files = FILES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, file)) = files.iter().find(|(b, _)| Arc::ptr_eq(b, &backend)) {
        return file.clone();
    }
    let file = state_folder().join("kv.db");
    files.push((backend, file.clone()));
    file
}

/// A response: status, headers, body as text and as JSON (`Null` if it is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub body: Value,
}

impl Reply {
    fn read(response: ureq::Response) -> Reply {
        let status = response.status();
        let headers = response
            .headers_names()
            .into_iter()
            .flat_map(|name| {
                response
                    .all(&name)
                    .into_iter()
                    .map(|v| (name.clone(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let text = response.into_string().expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error code: `error.code` for management errors, `code` for verify.
    pub fn code(&self) -> Option<&str> {
        self.body["error"]["code"]
            .as_str()
            .or_else(|| self.body["code"].as_str())
    }

    /// Store reads this request made, from the host's counters.
    pub fn kv_reads(&self) -> u64 {
        self.header("x-kv-reads")
            .and_then(|v| v.parse().ok())
            .expect("x-kv-reads header")
    }

    /// Store writes this request made, from the host's counters.
    pub fn kv_writes(&self) -> u64 {
        self.header("x-kv-writes")
            .and_then(|v| v.parse().ok())
            .expect("x-kv-writes header")
    }
}

/// Asserts that `reply` cost no store operation, from the local host's counters; Spin counts
/// nothing, so there only the rest of the test runs.
pub fn assert_no_store_operation(reply: &Reply, context: &str) {
    if !on_spin() {
        assert_eq!((reply.kv_reads(), reply.kv_writes()), (0, 0), "{context}");
    }
}

/// Asserts the contract's error shape: status, stable code and a human message.
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.text);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        reply.text
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

/// A user id no other test uses, so tests can share one app.
pub fn unique_user(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}-{}-{n}", std::process::id())
}

/// One app per test binary, for tests that do not touch the store's fault injection or clock.
pub fn shared_app() -> &'static App {
    static APP: std::sync::OnceLock<App> = std::sync::OnceLock::new();
    APP.get_or_init(App::start)
}

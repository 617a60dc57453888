//! Harness of the end-to-end suite: builds the components once, serves `spin.toml` through
//! the local host (`spin-host`) with a chosen key-value backend, and speaks the HTTP contract.

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

/// The key-value stores the store-sensitive tests run on, each as `spin up` would use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// Spin's default store (an in-memory SQLite database here).
    Sqlite,
    /// A real `redis-server`, spoken to as Spin 4.1 does (every swap answers `cas-failed`).
    RedisAsSpin41,
    /// A real `redis-server`, spoken to as Spin will once its `UNWATCH` is fixed (a lost race
    /// answers success).
    RedisUnwatchFixed,
}

impl Store {
    fn redis_answers(self) -> Option<RedisCasAnswers> {
        match self {
            Store::Sqlite => None,
            Store::RedisAsSpin41 => Some(RedisCasAnswers::Spin41),
            Store::RedisUnwatchFixed => Some(RedisCasAnswers::UnwatchFixed),
        }
    }
}

/// Makes `<case>::sqlite`, `<case>::redis_as_spin_4_1` and `<case>::redis_unwatch_fixed` tests
/// of each `fn <case>(store: Store)`.
#[macro_export]
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {$(
        mod $case {
            use $crate::Store;
            #[test]
            fn sqlite() {
                super::$case(Store::Sqlite)
            }
            #[test]
            fn redis_as_spin_4_1() {
                super::$case(Store::RedisAsSpin41)
            }
            #[test]
            fn redis_unwatch_fixed() {
                super::$case(Store::RedisUnwatchFixed)
            }
        }
    )*};
}

/// A running app: the local host serving `spin.toml`, its store and its clock.
pub struct App {
    host: Option<RunningHost>,
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
        let backend = RedisBackend::new(&server.url(), answers).expect("redis backend");
        App::start_serving(backend, &[], components)
    }

    /// Stops the Redis server this app started for itself.
    pub fn stop_redis(&mut self) {
        self.redis.as_mut().expect("an app on Redis").stop();
    }

    /// The app on `backend`, with `variables` (lower-case names) set besides `jwt_secret`.
    pub fn start_with(backend: Arc<dyn KvBackend>, variables: &[(&str, &str)]) -> App {
        App::start_serving(backend, variables, &[])
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
        // Redirects are answers to check (the console's `/`), not to follow.
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .redirects(0)
            .build();
        App {
            host: Some(host),
            redis: None,
            runtime,
            agent,
            url,
            store,
            clock,
            log,
        }
    }

    /// Everything the components have logged so far.
    pub fn component_log(&self) -> String {
        String::from_utf8_lossy(&self.log.contents()).into_owned()
    }

    /// Stops the app's clock at the current whole second, so that only the test moves it: a
    /// test that advances to one second before a boundary must not cross it because a real
    /// second went by meanwhile (timings are whole seconds).
    pub fn freeze_clock(&self) {
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

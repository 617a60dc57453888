//! The benchmark: what verify costs next to an empty component on the same host, how it scales
//! with the number of stored users, what create, list and delete sustain, and how many store
//! operations each function makes. Prints a Markdown report.
//!
//! ```text
//! cargo run --release -p bench                      # local host, default SQLite store
//! cargo run --release -p bench -- --short           # a quick run that proves it works (CI)
//! cargo run --release -p bench -- --spin ../shared/tools/spin/spin   # on real `spin up`
//! cargo run --release -p bench -- --spin ../shared/tools/spin/spin --local-host-too   # both, one run
//! cargo run --release -p bench -- --url http://127.0.0.1:3000 --jwt-secret S   # any server
//! ```

mod wrk;

use anyhow::{bail, Context, Result};
use clap::Parser;
use e2e::{SpinInstance, SpinStore};
use serde_json::{json, Value};
use shared::memory::MemoryStore;
use shared::protocol::{self, NewKeyRecord};
use spin_host::{HostConfig, KvBackend, RedisBackend, RedisCasAnswers, RedisServer, SqliteBackend};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wrk::{Load, ServerCpu, Wrk};

#[derive(Parser)]
#[command(about = "Benchmark api-keys: verify next to an empty component, and the other functions")]
struct Args {
    /// A running server to measure instead of starting the local host (real `spin up` included).
    #[arg(long, requires = "jwt_secret")]
    url: Option<String>,
    /// The server's `jwt_secret`, to mint tokens for the users the benchmark creates.
    #[arg(long)]
    jwt_secret: Option<String>,
    /// Serve the app on real `spin up` (this Spin binary) instead of the local host: the same
    /// rows, the reference components included, on Spin's SQLite store and then on Redis, with
    /// the CPU time of Spin's processes per request. `SPIN_BIN` sets it too, as for the tests.
    #[arg(long, env = "SPIN_BIN", conflicts_with = "url")]
    spin: Option<PathBuf>,
    /// With `--spin`: measure the local host too, in the same run (first the local host, then
    /// Spin, the same rows and rounds), and put the two runtimes' ratios side by side.
    #[arg(long, requires = "spin")]
    local_host_too: bool,
    /// One second per measurement and small stores: proves the benchmark works.
    #[arg(long)]
    short: bool,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds of the verify and reference rows, interleaved; each row reports its median round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Users stored for the main measurements.
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    /// Users stored for the scaling measurement.
    #[arg(long, default_value_t = 100_000)]
    many_users: u64,
    /// Where to write the Markdown report (also printed).
    #[arg(long, default_value = "target/bench/report.md")]
    out: PathBuf,
}

/// The server under test and how to reach it.
struct Server {
    url: String,
    jwt_secret: String,
    agent: ureq::Agent,
    /// The local host's store, for seeding without the API; `None` for a remote server.
    local_store: Option<Arc<SqliteBackend>>,
    _host: Option<(tokio::runtime::Runtime, spin_host::RunningHost)>,
    /// The `spin up` serving the app, when the benchmark runs on real Spin.
    spin: Option<SpinInstance>,
}

/// Store reads and writes of one request, when the server reports them.
type StoreOps = Option<(u64, u64)>;

/// One HTTP answer, with the host's store counters when it sends them.
struct Answer {
    status: u16,
    body: Value,
    kv: StoreOps,
}

/// What the benchmark runs the app on.
enum Runtime {
    /// A server someone else started.
    Remote { url: String, jwt_secret: String },
    /// The local host (tests/spin-host), in this process.
    LocalHost,
    /// Real `spin up`, this binary.
    Spin(PathBuf),
}

impl Runtime {
    fn label(&self) -> String {
        match self {
            Runtime::Remote { url, .. } => url.clone(),
            Runtime::LocalHost => "local host (tests/spin-host), default SQLite store".to_owned(),
            Runtime::Spin(spin) => format!("real `spin up` ({}), SQLite store", spin.display()),
        }
    }
}

fn main() -> Result<()> {
    spin_host::no_backtraces_for_errors();
    let mut args = Args::parse();
    if args.short {
        (args.seconds, args.rounds, args.users, args.many_users) = (1, 1, 100, 1_000);
    }
    let runtimes = match (&args.url, &args.jwt_secret, &args.spin) {
        (Some(url), Some(secret), _) => vec![Runtime::Remote {
            url: url.clone(),
            jwt_secret: secret.clone(),
        }],
        (_, _, Some(spin)) if args.local_host_too => {
            vec![Runtime::LocalHost, Runtime::Spin(spin.clone())]
        }
        (_, _, Some(spin)) => vec![Runtime::Spin(spin.clone())],
        _ => vec![Runtime::LocalHost],
    };
    let mut reports = Vec::new();
    for runtime in &runtimes {
        reports.push(measure(&args, runtime)?);
    }
    let mut text = String::new();
    if reports.len() > 1 {
        text.push_str(&side_by_side(&reports));
    }
    for report in &reports {
        text.push_str(&report.markdown(&args));
    }
    println!("{text}");
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &text)?;
    Ok(())
}

/// Every row of the benchmark on one runtime.
fn measure(args: &Args, runtime: &Runtime) -> Result<Report> {
    let root = workspace_root();
    let scratch = tempfile::tempdir()?;
    let duration = Duration::from_secs(args.seconds);
    let server = match runtime {
        Runtime::Remote { url, jwt_secret } => Server::remote(url, jwt_secret),
        Runtime::Spin(spin) => Server::spin(&root, scratch.path(), spin, None)?,
        Runtime::LocalHost => Server::local(&root, scratch.path())?,
    };
    let mut report = Report {
        title: runtime.label(),
        ..Report::default()
    };
    let started = Instant::now();

    // Keys to present: a valid one, a deleted one, and a malformed one (checksum broken).
    server.seed_users(0, args.users)?;
    let owner = "bench-owner";
    let valid = server.create(owner, "valid")?;
    let deleted = server.create(owner, "deleted")?;
    let (valid_key, deleted_key) = (key_of(&valid)?, key_of(&deleted)?);
    let delete_answer = server.delete(owner, id_of(&deleted)?)?;
    let malformed_key = break_checksum(&valid_key);

    // Store operations per request (steady state: the first verify of a key also records its
    // last use, once an hour).
    let first_verify = server.verify(&valid_key)?;
    report.operations("create", &server.create_answer(owner, "ops")?);
    report.operations("list", &server.list(owner)?);
    report.operations("delete", &delete_answer);
    let ops = server.create(owner, "ops")?;
    report.operations(
        "update",
        &server.update(owner, id_of(&ops)?, json!({"enabled": false}))?,
    );
    report.operations(
        "update, changing nothing",
        &server.update(owner, id_of(&ops)?, json!({"enabled": false}))?,
    );
    report.operations(
        "roll, with a grace period",
        &server.roll(owner, id_of(&ops)?, 3600)?,
    );
    report.operations("roll again", &server.roll(owner, id_of(&ops)?, 0)?);
    report.operations("events", &server.events(owner)?);
    report.operations("verify, valid key (first use of the hour)", &first_verify);
    report.operations("verify, valid key", &server.verify(&valid_key)?);
    report.operations("verify, malformed key", &server.verify(&malformed_key)?);
    report.operations("verify, deleted key", &server.verify(&deleted_key)?);

    // The floor component reads a copy of the valid key's record: verify's one read, exactly.
    if let (Some(store), Some(hash)) = (&server.local_store, shared::key::parse(&valid_key)) {
        let record = store
            .get("default", &shared::protocol::record_key(&hash))?
            .context("the valid key's record")?;
        store.set("default", FLOOR_KEY, &record)?;
    }

    // Latency and throughput, verify next to the empty and the floor component.
    let wrk = Wrk {
        duration,
        scratch: scratch.path(),
        server_cpu: server.cpu(),
    };
    let verify_url = format!("{}/v1/keys.verify", server.url);
    // A reference component's row, if the server has it (a remote one may not).
    let reference = |name, path: &str, key: Option<&'static str>| {
        let headers: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
        let present = server
            .send("GET", path, None, &headers, None)
            .is_ok_and(|a| a.status == 200);
        present.then(|| (name, format!("{}{path}", server.url), key))
    };
    // The contract floor is sent a key as verify is; it only checks that one came.
    let references = [
        reference("empty component", "/bench/empty", None),
        reference(FLOOR, "/bench/floor", None),
        reference(
            CONTRACT_FLOOR,
            "/bench/contract-floor",
            Some(CONTRACT_FLOOR_KEY),
        ),
    ];
    // (row, URL, key sent in X-API-Key): the rows the ratio targets compare.
    let mut rows: Vec<(&str, String, Option<&str>)> = references.into_iter().flatten().collect();
    for (name, key) in [
        ("verify, valid key", &valid_key),
        ("verify, malformed key", &malformed_key),
        ("verify, deleted key", &deleted_key),
    ] {
        rows.push((name, verify_url.clone(), Some(key.as_str())));
    }
    for connections in [1, 32] {
        // Interleaved rounds, each starting one row further on: a slow spell of a noisy machine,
        // or whatever the row before leaves behind, falls on every row alike.
        let mut rounds: Vec<Vec<Load>> = vec![Vec::new(); rows.len()];
        for round in 0..args.rounds.max(1) {
            for turn in 0..rows.len() {
                let row = (round + turn) % rows.len();
                let (_, url, key) = &rows[row];
                let headers: Vec<(&str, &str)> =
                    key.map(|k| ("X-API-Key", k)).into_iter().collect();
                rounds[row].push(wrk.get(url, &headers, connections)?);
            }
        }
        for ((name, _, _), loads) in rows.iter().zip(rounds) {
            report
                .rounds
                .push((name.to_string(), connections, loads.clone()));
            report.load(
                name,
                connections,
                median_round(loads).context("no round ran")?,
            );
        }
    }

    // The same verify with the store in Redis (a redis-server of its own on loopback), as a
    // scaled-out deployment runs it: what the distributed store costs next to SQLite.
    if server.local_store.is_some() {
        let redis = RedisServer::start()?;
        let on_redis = match runtime {
            Runtime::Spin(spin) => Server::spin(&root, scratch.path(), spin, Some(&redis))?,
            _ => Server::local_on_redis(scratch.path(), &redis)?,
        };
        let wrk = Wrk {
            server_cpu: on_redis.cpu(),
            ..wrk
        };
        let key = key_of(&on_redis.create(owner, "valid")?)?;
        let created = on_redis.create_answer(owner, "ops")?;
        report.operations("create, Redis store", &created);
        report.operations(
            "delete, Redis store",
            &on_redis.delete(owner, id_of(&created.body)?)?,
        );
        on_redis.verify(&key)?;
        report.operations("verify, valid key, Redis store", &on_redis.verify(&key)?);
        let url = format!("{}/v1/keys.verify", on_redis.url);
        for connections in [1, 32] {
            let load = wrk.get(&url, &[("X-API-Key", &key)], connections)?;
            report.load("verify, valid key, Redis store", connections, load);
        }
    }

    // Create, list and delete, each create for a fresh user so none is refused.
    let body = json!({"name": "bench", "scopes": ["read"]}).to_string();
    let creates: Vec<String> = (0..50_000)
        .map(|i| {
            format!(
                "POST\t/v1/keys.create\t{}\t{body}",
                server.token(&format!("bench-create-{i}"))
            )
        })
        .collect();
    let create_load = wrk.listed(&server.url, &creates, 8)?;
    report.load("create", 8, create_load);
    let list_token = format!("Bearer {}", server.token(owner));
    let list_url = format!("{}/v1/keys.list", server.url);
    report.load(
        "list",
        8,
        wrk.get(&list_url, &[("Authorization", &list_token)], 8)?,
    );
    // Enough keys for the run at about the rate create sustained (deletes cost about the same).
    let doomed = server.seed_keys_to_delete(
        ((create_load.ok_rps * 2.0 * args.seconds as f64) as u64).clamp(200, 20_000),
    )?;
    let deletes: Vec<String> = doomed
        .iter()
        .map(|(user, id)| {
            format!(
                "POST\t/v1/keys.delete\t{}\t{}",
                server.token(user),
                json!({"id": id})
            )
        })
        .collect();
    report.load("delete", 8, wrk.listed(&server.url, &deletes, 8)?);

    // Scaling: the same verify with many more users stored.
    let few = wrk.get(&verify_url, &[("X-API-Key", &valid_key)], 1)?;
    server.seed_users(args.users, args.many_users)?;
    let many = wrk.get(&verify_url, &[("X-API-Key", &valid_key)], 1)?;
    report.scaling(args.users, few, args.many_users, many);

    if server.local_store.is_some() {
        report.sizes(&root);
    }
    report.took = started.elapsed();
    Ok(report)
}

/// The ratios the targets compare, one column per runtime, all from this run.
fn side_by_side(reports: &[Report]) -> String {
    let mut out =
        String::from("### Both runtimes, one run\n\n| ratio (req/s; lowest–highest round) |");
    for report in reports {
        let _ = write!(out, " {} |", report.title);
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(reports.len()));
    out.push('\n');
    for (measured, reference) in RATIOS {
        for connections in [1, 32] {
            let _ = write!(out, "| {measured} / {reference}, {connections} conn. |");
            for report in reports {
                let cell = report.ratio(measured, reference, connections).map_or(
                    "n/a".to_owned(),
                    |ratio| {
                        format!(
                            "{ratio:.2}×{}",
                            report.spread(measured, reference, connections)
                        )
                    },
                );
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

/// Builds the components and writes `scratch/spin.toml`: the app of `spin.toml`, plus the
/// reference components under `/bench/`, with absolute paths.
fn write_manifest(root: &Path, scratch: &Path) -> Result<()> {
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args(["build", "--profile", "wasm", "--target", "wasm32-wasip2"])
            .args(COMPONENTS.iter().flat_map(|package| ["-p", package]))
            .status()?;
    if !status.success() {
        bail!("building the components failed");
    }
    let wasm_dir = root.join("target/wasm32-wasip2/wasm");
    let mut manifest = std::fs::read_to_string(root.join("spin.toml"))?.replace(
        "source = \"target/wasm32-wasip2/wasm/",
        &format!("source = \"{}/", wasm_dir.display()),
    );
    manifest.push_str(&format!(
        "\n[[trigger.http]]\nroute = \"/bench/empty\"\ncomponent = \"empty\"\n\n[component.empty]\nsource = \"{0}/empty.wasm\"\n\n[[trigger.http]]\nroute = \"/bench/floor\"\ncomponent = \"floor\"\n\n[component.floor]\nsource = \"{0}/floor.wasm\"\nkey_value_stores = [\"default\"]\n\n[[trigger.http]]\nroute = \"/bench/contract-floor\"\ncomponent = \"contract-floor\"\n\n[component.contract-floor]\nsource = \"{0}/contract_floor.wasm\"\nkey_value_stores = [\"default\"]\n",
        wasm_dir.display()
    ));
    std::fs::write(scratch.join("spin.toml"), manifest)?;
    std::fs::create_dir_all(scratch.join(".spin"))?;
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

impl Server {
    fn remote(url: &str, secret: &str) -> Server {
        Server {
            url: url.trim_end_matches('/').to_owned(),
            jwt_secret: secret.to_owned(),
            agent: agent(),
            local_store: None,
            _host: None,
            spin: None,
        }
    }

    /// Whose CPU time the server's is (see [`ServerCpu`]).
    fn cpu(&self) -> ServerCpu {
        match (&self.spin, &self._host) {
            (Some(spin), _) => ServerCpu::Group(spin.process_group()),
            (None, Some(_)) => ServerCpu::ThisProcess,
            (None, None) => ServerCpu::Unknown,
        }
    }

    /// The app of `spin.toml`, plus the reference components under `/bench/`, on the local host
    /// with the default SQLite store in `scratch`.
    fn local(root: &Path, scratch: &Path) -> Result<Server> {
        write_manifest(root, scratch)?;
        let store = SqliteBackend::open(scratch.join(".spin/sqlite_key_value.db"))?;
        Server::on_local_host(scratch, store.clone(), Some(store))
    }

    /// The same app on real `spin up` (the binary `spin`): on its SQLite store in `scratch`,
    /// seeded through that file as the local host's is, or on `redis`.
    fn spin(
        root: &Path,
        scratch: &Path,
        spin: &Path,
        redis: Option<&RedisServer>,
    ) -> Result<Server> {
        write_manifest(root, scratch)?;
        let file = scratch.join(".spin/sqlite_key_value.db");
        let (store, local_store) = match redis {
            Some(redis) => (SpinStore::Redis(redis.url()), None),
            None => (
                SpinStore::Sqlite(file.clone()),
                Some(SqliteBackend::open(&file)?),
            ),
        };
        let jwt_secret = "bench-secret-for-measurements-only-0123".to_owned();
        let variables = [("jwt_secret", jwt_secret.as_str())];
        let instance =
            SpinInstance::start(spin, &scratch.join("spin.toml"), &store, &variables, &[]);
        Ok(Server {
            url: instance.url.clone(),
            jwt_secret,
            agent: agent(),
            local_store,
            _host: None,
            spin: Some(instance),
        })
    }

    /// The same app (after [`Server::local`] wrote its manifest) with its store on `redis`,
    /// spoken to as Spin 4.1 does.
    fn local_on_redis(scratch: &Path, redis: &RedisServer) -> Result<Server> {
        let backend = RedisBackend::new(&redis.url(), RedisCasAnswers::Spin41)?;
        Server::on_local_host(scratch, backend, None)
    }

    fn on_local_host(
        scratch: &Path,
        backend: Arc<dyn KvBackend>,
        local_store: Option<Arc<SqliteBackend>>,
    ) -> Result<Server> {
        let jwt_secret = "bench-secret-for-measurements-only-0123".to_owned();
        let mut config = HostConfig::new(scratch.join("spin.toml"));
        config.listen = "127.0.0.1:0".parse()?;
        config.build = false;
        config.backend = backend;
        config.kv_stats_header = true;
        config.quiet = true;
        config
            .variables
            .insert("jwt_secret".into(), jwt_secret.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let host = runtime.block_on(spin_host::start(config))?;
        Ok(Server {
            url: host.url(),
            jwt_secret,
            agent: agent(),
            local_store,
            _host: Some((runtime, host)),
            spin: None,
        })
    }

    fn token(&self, user: &str) -> String {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            + 3600;
        shared::jwt::sign(
            &json!({"sub": user, "exp": exp}),
            self.jwt_secret.as_bytes(),
        )
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Answer> {
        let mut request = self.agent.request(method, &format!("{}{path}", self.url));
        if let Some(user) = user {
            request = request.set("Authorization", &format!("Bearer {}", self.token(user)));
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(body) => request.send_string(&body.to_string()),
            None => request.call(),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(error) => bail!("{method} {path}: {error}"),
        };
        let status = response.status();
        let counter = |name: &str| response.header(name).and_then(|v| v.parse::<u64>().ok());
        let kv = counter("x-kv-reads").zip(counter("x-kv-writes"));
        let body = serde_json::from_str(&response.into_string()?).unwrap_or(Value::Null);
        Ok(Answer { status, body, kv })
    }

    fn create_answer(&self, user: &str, name: &str) -> Result<Answer> {
        self.send(
            "POST",
            "/v1/keys.create",
            Some(user),
            &[],
            Some(json!({"name": name, "scopes": ["read"]})),
        )
    }

    fn create(&self, user: &str, name: &str) -> Result<Value> {
        let answer = self.create_answer(user, name)?;
        if answer.status != 201 {
            bail!("create answered {}: {}", answer.status, answer.body);
        }
        Ok(answer.body)
    }

    fn list(&self, user: &str) -> Result<Answer> {
        self.send("GET", "/v1/keys.list", Some(user), &[], None)
    }

    fn delete(&self, user: &str, id: &str) -> Result<Answer> {
        self.send(
            "POST",
            "/v1/keys.delete",
            Some(user),
            &[],
            Some(json!({ "id": id })),
        )
    }

    fn verify(&self, key: &str) -> Result<Answer> {
        self.send("GET", "/v1/keys.verify", None, &[("X-API-Key", key)], None)
    }

    fn events(&self, user: &str) -> Result<Answer> {
        self.send("GET", "/v1/keys.events", Some(user), &[], None)
    }

    fn roll(&self, user: &str, id: &str, grace_seconds: u32) -> Result<Answer> {
        let body = json!({"id": id, "grace_seconds": grace_seconds});
        self.send("POST", "/v1/keys.roll", Some(user), &[], Some(body))
    }

    fn update(&self, user: &str, id: &str, settings: Value) -> Result<Answer> {
        let mut body = settings;
        body["id"] = json!(id);
        self.send("POST", "/v1/keys.update", Some(user), &[], Some(body))
    }

    /// Stores users `from..to`, one key each: natively through the storage protocol into the
    /// local SQLite file (one transaction), or through the API for a remote server.
    fn seed_users(&self, from: u64, to: u64) -> Result<()> {
        let users: Vec<String> = (from..to).map(|i| format!("bench-user-{i}")).collect();
        self.seed(&users).map(drop)
    }

    /// Creates `count` keys for deletion; returns their (user, id), spread over users so that
    /// no user holds more than the limit.
    fn seed_keys_to_delete(&self, count: u64) -> Result<Vec<(String, String)>> {
        let users: Vec<String> = (0..count)
            .map(|i| format!("bench-delete-{}", i / 10))
            .collect();
        self.seed(&users)
    }

    fn seed(&self, users: &[String]) -> Result<Vec<(String, String)>> {
        match &self.local_store {
            Some(store) => seed_natively(store.as_ref(), users),
            None => self.seed_through_api(users),
        }
    }

    fn seed_through_api(&self, users: &[String]) -> Result<Vec<(String, String)>> {
        let chunks: Vec<&[String]> = users.chunks(users.len().div_ceil(8).max(1)).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    scope.spawn(move || -> Result<Vec<(String, String)>> {
                        chunk
                            .iter()
                            .map(|user| {
                                Ok((user.clone(), id_of(&self.create(user, "seed")?)?.to_owned()))
                            })
                            .collect()
                    })
                })
                .collect();
            let mut all = Vec::new();
            for handle in handles {
                all.extend(
                    handle
                        .join()
                        .map_err(|_| anyhow::anyhow!("seeding thread panicked"))??,
                );
            }
            Ok(all)
        })
    }
}

/// Runs the real storage protocol against the in-memory model, then copies what it wrote into
/// the SQLite store in one transaction: the same entries the components would have written,
/// without one disk sync per operation.
fn seed_natively(store: &dyn KvBackend, users: &[String]) -> Result<Vec<(String, String)>> {
    let memory = MemoryStore::new();
    let scopes = vec!["read".to_owned()];
    let mut made = Vec::with_capacity(users.len());
    for user in users {
        let key = shared::key::generate("ak").map_err(|_| anyhow::anyhow!("no random source"))?;
        let record = NewKeyRecord {
            hash: &key.hash,
            id: &key.id,
            preview: &key.preview,
            name: "seed",
            scopes: &scopes,
            expires_at: None,
        };
        protocol::create(&memory, user, &record, 20, 1_800_000_000)
            .map_err(|e| anyhow::anyhow!("seeding: {e:?}"))?;
        made.push((user.clone(), key.id));
    }
    let entries: Vec<(String, Vec<u8>)> = memory.snapshot().into_iter().collect();
    store
        .set_many("default", &entries)
        .map_err(|e| anyhow::anyhow!("seeding SQLite: {e:?}"))?;
    Ok(made)
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// The packages of the components the benchmark builds and reports the size of: the app's and
/// the reference components (a `.wasm` file is named after its package, `-` as `_`).
const COMPONENTS: [&str; 11] = [
    "create",
    "list",
    "delete",
    "update",
    "roll",
    "events",
    "verify",
    "console",
    "empty",
    "floor",
    "contract-floor",
];

/// Where the benchmark puts the record the floor component reads (tests/floor-component).
const FLOOR_KEY: &str = "apikeys/v1/bench/floor";

/// The rows of the floor and the contract floor component (tests/contract-floor-component).
const FLOOR: &str = "floor component (one get)";
const CONTRACT_FLOOR: &str = "contract floor component (one get, the contract's headers)";

/// (measured, reference): the throughput ratios the report puts side by side for each runtime.
const RATIOS: [(&str, &str); 4] = [
    ("verify, valid key", FLOOR),
    ("verify, malformed key", "empty component"),
    (CONTRACT_FLOOR, FLOOR),
    ("verify, valid key", CONTRACT_FLOOR),
];

/// What the contract floor component is sent in `X-API-Key`: any key (it parses none).
const CONTRACT_FLOOR_KEY: &str = "ak_bench_contract_floor";

/// The round with the median throughput.
fn median_round(mut loads: Vec<Load>) -> Option<Load> {
    loads.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    loads.get(loads.len() / 2).copied()
}

fn key_of(created: &Value) -> Result<String> {
    created["key"]
        .as_str()
        .map(str::to_owned)
        .context("create answered no key")
}

fn id_of(created: &Value) -> Result<&str> {
    created["id"].as_str().context("create answered no id")
}

/// The same key with its last checksum character changed: well-shaped, but caught offline.
fn break_checksum(key: &str) -> String {
    let (head, last) = key.split_at(key.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

/// What the run measured, turned into Markdown at the end.
#[derive(Default)]
struct Report {
    /// The runtime measured.
    title: String,
    /// How long the whole measurement took.
    took: Duration,
    loads: Vec<(String, u32, Load)>,
    /// Every round of the interleaved rows, in round order: the spread of their ratios.
    rounds: Vec<(String, u32, Vec<Load>)>,
    /// Per request: what it was, its status, and (reads, writes) if the server counts them.
    operations: Vec<(String, u16, StoreOps)>,
    scaling: Option<(u64, Load, u64, Load)>,
    sizes: Vec<(String, u64)>,
}

impl Report {
    /// ` (rounds: lowest–highest)`: the ratio of `measured` to `reference` in each interleaved
    /// round (the same round of both), when there was more than one.
    fn spread(&self, measured: &str, reference: &str, connections: u32) -> String {
        let rounds = |name: &str| {
            self.rounds
                .iter()
                .find(|(n, c, _)| n == name && *c == connections)
                .map(|(_, _, loads)| loads)
        };
        let (Some(m), Some(r)) = (rounds(measured), rounds(reference)) else {
            return String::new();
        };
        let ratios: Vec<f64> = m
            .iter()
            .zip(r)
            .filter(|(_, r)| r.rps > 0.0)
            .map(|(m, r)| m.rps / r.rps)
            .collect();
        if ratios.len() < 2 {
            return String::new();
        }
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        format!(" (rounds: {low:.2}–{high:.2})")
    }

    fn load(&mut self, name: &str, connections: u32, load: Load) {
        self.loads.push((name.to_owned(), connections, load));
    }

    fn operations(&mut self, name: &str, answer: &Answer) {
        self.operations
            .push((name.to_owned(), answer.status, answer.kv));
    }

    fn scaling(&mut self, few_users: u64, few: Load, many_users: u64, many: Load) {
        self.scaling = Some((few_users, few, many_users, many));
    }

    fn sizes(&mut self, root: &Path) {
        for package in COMPONENTS {
            let name = package.replace('-', "_");
            let path = root.join(format!("target/wasm32-wasip2/wasm/{name}.wasm"));
            if let Ok(meta) = std::fs::metadata(path) {
                self.sizes.push((name.to_owned(), meta.len()));
            }
        }
    }

    /// Throughput of `measured` over that of `reference` (their median rounds).
    fn ratio(&self, measured: &str, reference: &str, connections: u32) -> Option<f64> {
        let (m, r) = (
            self.find(measured, connections)?,
            self.find(reference, connections)?,
        );
        (r.rps > 0.0).then(|| m.rps / r.rps)
    }

    fn find(&self, name: &str, connections: u32) -> Option<Load> {
        self.loads
            .iter()
            .find(|(n, c, _)| n == name && *c == connections)
            .map(|(_, _, l)| *l)
    }

    fn markdown(&self, args: &Args) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### Benchmark: {}\n", self.title);
        let rounds = match args.rounds.max(1) {
            1 => "one round".to_owned(),
            n => format!("the median of {n} interleaved rounds"),
        };
        let _ = writeln!(
            out,
            "{} s per measurement (reference and verify rows: {rounds}); {} users stored \
             (then {}); whole run {:.0} s.\n",
            args.seconds,
            args.users,
            args.many_users,
            self.took.as_secs_f64()
        );
        let _ = writeln!(
            out,
            "| requests | connections | req/s | ok req/s | p50 | p99 | host CPU per request |\n\
             |---|---|---|---|---|---|---|"
        );
        for (name, connections, load) in &self.loads {
            let _ = writeln!(
                out,
                "| {name} | {connections} | {:.0} | {:.0} | {} | {} | {} |",
                load.rps,
                load.ok_rps,
                ms(load.p50),
                ms(load.p99),
                load.host_cpu.map_or("n/a".into(), micros)
            );
        }
        let _ = writeln!(
            out,
            "\n| store operations per request | status | reads | writes |\n|---|---|---|---|"
        );
        for (name, status, kv) in &self.operations {
            let (reads, writes) = kv.map_or(("n/a".into(), "n/a".into()), |(r, w)| {
                (r.to_string(), w.to_string())
            });
            let _ = writeln!(out, "| {name} | {status} | {reads} | {writes} |");
        }
        let _ = writeln!(out, "\n| target | measured | met |\n|---|---|---|");
        // (row, measured, reference, target): throughput of `measured` ≥ target × `reference`.
        let ratio_targets = [
            ("verify", "verify, valid key", "empty component", 0.8),
            ("verify, valid key", "verify, valid key", FLOOR, 0.97),
            (
                "verify, malformed key",
                "verify, malformed key",
                "empty component",
                0.97,
            ),
        ];
        for (row, measured, reference, target) in ratio_targets {
            for connections in [1, 32] {
                if let (Some(m), Some(r)) = (
                    self.find(measured, connections),
                    self.find(reference, connections),
                ) {
                    let ratio = m.rps / r.rps;
                    let spread = self.spread(measured, reference, connections);
                    let _ = writeln!(out, "| {row} ≥ {target}× {reference} (req/s, {connections} conn.) | {ratio:.2}×{spread} | {} |", yes(ratio >= target));
                }
            }
        }
        // Issue 10's comparisons (every target but the first, the older one against the empty
        // component) in the host's CPU time per request: what verify's own work costs the
        // server, apart from the load generator's share of the machine.
        for (_, measured, reference, _) in ratio_targets.iter().skip(1) {
            for connections in [1, 32] {
                let cpu = |name| self.find(name, connections).and_then(|l| l.host_cpu);
                if let (Some(m), Some(r)) = (cpu(measured), cpu(reference)) {
                    let extra = m.as_secs_f64() - r.as_secs_f64();
                    let _ = writeln!(
                        out,
                        "| (measured, no target) {measured} next to {reference} (host CPU per \
                         request, {connections} conn.) | {} vs {}: {:+.0} µs, {:.2}× | — |",
                        micros(m),
                        micros(r),
                        extra * 1e6,
                        r.as_secs_f64() / m.as_secs_f64()
                    );
                }
            }
        }
        // How close any verify can come to the floor: the contract floor component does what
        // the contract makes every verify do, and nothing of verify's own work.
        for (measured, reference) in [
            (CONTRACT_FLOOR, FLOOR),
            ("verify, valid key", CONTRACT_FLOOR),
        ] {
            for connections in [1, 32] {
                let (Some(m), Some(r)) = (
                    self.find(measured, connections),
                    self.find(reference, connections),
                ) else {
                    continue;
                };
                let cpu = match (m.host_cpu, r.host_cpu) {
                    (Some(m), Some(r)) => {
                        format!("; host CPU per request {} vs {}", micros(m), micros(r))
                    }
                    _ => String::new(),
                };
                let spread = self.spread(measured, reference, connections);
                let _ = writeln!(
                    out,
                    "| (measured, no target) {measured} next to {reference} ({connections} \
                     conn.) | {:.2}× req/s{spread}{cpu} | — |",
                    m.rps / r.rps
                );
            }
        }
        for connections in [1, 32] {
            if let (Some(redis), Some(sqlite), Some(empty)) = (
                self.find("verify, valid key, Redis store", connections),
                self.find("verify, valid key", connections),
                self.find("empty component", connections),
            ) {
                let _ = writeln!(
                    out,
                    "| (measured, no target) verify on Redis vs SQLite vs empty ({connections} conn.) | {:.2}× SQLite, {:.2}× empty | — |",
                    redis.rps / sqlite.rps,
                    redis.rps / empty.rps
                );
            }
        }
        let ops = |name: &str| {
            self.operations
                .iter()
                .find(|(n, _, _)| n == name)
                .and_then(|(_, _, kv)| *kv)
        };
        if let (Some(valid), Some(malformed), Some(deleted)) = (
            ops("verify, valid key"),
            ops("verify, malformed key"),
            ops("verify, deleted key"),
        ) {
            let _ = writeln!(
                out,
                "| 1 read per valid verify, 0 writes | {} read, {} writes | {} |",
                valid.0,
                valid.1,
                yes(valid == (1, 0))
            );
            let _ = writeln!(
                out,
                "| 0 reads per malformed verify | {} | {} |",
                malformed.0,
                yes(malformed == (0, 0))
            );
            let _ = writeln!(
                out,
                "| deleted key: 1 read, 0 writes | {} read, {} writes | {} |",
                deleted.0,
                deleted.1,
                yes(deleted == (1, 0))
            );
        }
        if let Some((_, size)) = self.sizes.iter().find(|(n, _)| n == "verify") {
            for limit_kb in [300, 220] {
                let _ = writeln!(
                    out,
                    "| verify.wasm ≤ {limit_kb} KB | {:.1} KB | {} |",
                    *size as f64 / 1000.0,
                    yes(*size <= limit_kb * 1000)
                );
            }
        }
        if let Some((few_users, few, many_users, many)) = self.scaling {
            let ratio = many.p50.as_secs_f64() / few.p50.as_secs_f64();
            let _ = writeln!(
                out,
                "| verify p50 with {many_users} users ≤ 1.2× with {few_users} | {} vs {} ({ratio:.2}×) | {} |",
                ms(many.p50),
                ms(few.p50),
                yes(ratio <= 1.2)
            );
        }
        if !self.sizes.is_empty() {
            let _ = writeln!(out, "\n| component | .wasm bytes |\n|---|---|");
            for (name, size) in &self.sizes {
                let _ = writeln!(out, "| {name} | {size} |");
            }
        }
        out
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.0} µs", duration.as_secs_f64() * 1e6)
}

fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn yes(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "**no**"
    }
}

//! The benchmark: what verify costs next to an empty and a one-read component on the same host,
//! at 1, 2, 8 and 32 connections and on one connection per request, on SQLite and on Redis; how
//! it scales with the number of stored users, what create, list and delete sustain, and how many
//! store operations each function makes. Prints a Markdown report.
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
            Runtime::LocalHost => "local host (tests/spin-host)".to_owned(),
            Runtime::Spin(spin) => format!("real `spin up` ({})", spin.display()),
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
        default_store: match runtime {
            Runtime::Remote { .. } => "its store",
            Runtime::LocalHost | Runtime::Spin(_) => "SQLite",
        },
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
    let keys = Keys {
        malformed: break_checksum(&valid_key),
        valid: valid_key,
        deleted: deleted_key,
    };

    // Store operations per request (steady state: the first verify of a key also records its
    // last use, once an hour).
    let first_verify = server.verify(&keys.valid)?;
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
    report.operations("verify, valid key", &server.verify(&keys.valid)?);
    report.operations("verify, malformed key", &server.verify(&keys.malformed)?);
    report.operations("verify, deleted key", &server.verify(&keys.deleted)?);

    // The floor component reads a copy of the valid key's record: verify's one read, exactly.
    if let Some(store) = &server.local_store {
        copy_record_for_floor(store.as_ref(), &keys.valid)?;
    }

    // Latency and throughput, verify next to the empty and the floor component, at each number
    // of connections, and on one connection also with a connection per request.
    let wrk = Wrk {
        duration,
        scratch: scratch.path(),
        server_cpu: server.cpu(),
    };
    measure_rows(
        &mut report,
        &wrk,
        &server,
        Store::Default,
        &keys,
        args.rounds,
    )?;

    // The same rows with the store in Redis (a redis-server of its own on loopback), as a
    // scaled-out deployment runs it: what the distributed store costs next to SQLite.
    if server.local_store.is_some() {
        let redis = RedisServer::start()?;
        let on_redis = match runtime {
            Runtime::Spin(spin) => Server::spin(&root, scratch.path(), spin, Some(&redis))?,
            _ => Server::local_on_redis(scratch.path(), &redis)?,
        };
        let valid = on_redis.create(owner, "valid")?;
        let deleted = on_redis.create(owner, "deleted")?;
        on_redis.delete(owner, id_of(&deleted)?)?;
        let valid_key = key_of(&valid)?;
        let keys = Keys {
            malformed: break_checksum(&valid_key),
            valid: valid_key,
            deleted: key_of(&deleted)?,
        };
        let created = on_redis.create_answer(owner, "ops")?;
        report.operations("create, Redis store", &created);
        report.operations(
            "delete, Redis store",
            &on_redis.delete(owner, id_of(&created.body)?)?,
        );
        on_redis.verify(&keys.valid)?;
        report.operations(
            "verify, valid key, Redis store",
            &on_redis.verify(&keys.valid)?,
        );
        // Written as Spin writes it: the same key in the same Redis database.
        let direct = RedisBackend::new(&redis.url(), RedisCasAnswers::Spin41)?;
        copy_record_for_floor(direct.as_ref(), &keys.valid)?;
        let wrk = Wrk {
            server_cpu: on_redis.cpu(),
            ..wrk
        };
        measure_rows(
            &mut report,
            &wrk,
            &on_redis,
            Store::Redis,
            &keys,
            args.rounds,
        )?;
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
    let verify_url = format!("{}/v1/keys.verify", server.url);
    let few = wrk.get(&verify_url, &[("X-API-Key", &keys.valid)], 1)?;
    server.seed_users(args.users, args.many_users)?;
    let many = wrk.get(&verify_url, &[("X-API-Key", &keys.valid)], 1)?;
    report.scaling(args.users, few, args.many_users, many);

    if server.local_store.is_some() {
        report.sizes(&root);
    }
    report.took = started.elapsed();
    Ok(report)
}

/// The keys verify is sent: a valid one, one whose checksum is broken, and a deleted one.
struct Keys {
    valid: String,
    malformed: String,
    deleted: String,
}

/// Stores a copy of `key`'s record where the floor components read it (tests/floor-component).
fn copy_record_for_floor(store: &dyn KvBackend, key: &str) -> Result<()> {
    let hash = shared::key::parse(key).context("the valid key parses")?;
    let record = store
        .get("default", &shared::protocol::record_key(&hash))
        .map_err(|e| anyhow::anyhow!("reading the valid key's record: {e:?}"))?
        .context("the valid key's record")?;
    store
        .set("default", FLOOR_KEY, &record)
        .map_err(|e| anyhow::anyhow!("writing the floor's record: {e:?}"))
}

/// One row to measure: what it is called, where it is sent, the key in `X-API-Key`.
struct Planned<'a> {
    name: &'static str,
    url: String,
    key: Option<&'a str>,
    at: At,
}

/// The reference rows and verify's three keys on `server` (its store: `store`): at each of
/// [`CONNECTIONS`] in interleaved rounds, and at one connection also with `Connection: close`
/// in the same rounds, so that every ratio compares rows that met the same spells of a noisy
/// machine. The contract floor is measured at 1 and 32 connections only (its ratios).
fn measure_rows(
    report: &mut Report,
    wrk: &Wrk,
    server: &Server,
    store: Store,
    keys: &Keys,
    rounds: usize,
) -> Result<()> {
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
        reference(EMPTY, "/bench/empty", None),
        reference(FLOOR, "/bench/floor", None),
        reference(
            CONTRACT_FLOOR,
            "/bench/contract-floor",
            Some(CONTRACT_FLOOR_KEY),
        ),
    ];
    let verify_url = format!("{}/v1/keys.verify", server.url);
    let mut rows: Vec<(&'static str, String, Option<&str>)> =
        references.into_iter().flatten().collect();
    for (name, key) in [
        (VALID, &keys.valid),
        (MALFORMED, &keys.malformed),
        (DELETED, &keys.deleted),
    ] {
        rows.push((name, verify_url.clone(), Some(key.as_str())));
    }
    for connections in CONNECTIONS {
        let kept = rows
            .iter()
            .filter(|(name, _, _)| *name != CONTRACT_FLOOR || [1, 32].contains(&connections))
            .map(|(name, url, key)| (false, name, url, key));
        let closing = rows
            .iter()
            .filter(|(name, _, _)| connections == 1 && *name != CONTRACT_FLOOR)
            .map(|(name, url, key)| (true, name, url, key));
        let planned: Vec<Planned> = kept
            .chain(closing)
            .map(|(close, name, url, key)| Planned {
                name,
                url: url.clone(),
                key: *key,
                at: At {
                    store,
                    connections,
                    close,
                },
            })
            .collect();
        // Interleaved rounds, each starting one row further on: a slow spell of a noisy machine,
        // or whatever the row before leaves behind, falls on every row alike.
        let mut measured: Vec<Vec<Load>> = vec![Vec::new(); planned.len()];
        for round in 0..rounds.max(1) {
            for turn in 0..planned.len() {
                let row = (round + turn) % planned.len();
                let Planned { url, key, at, .. } = &planned[row];
                let mut headers: Vec<(&str, &str)> =
                    key.map(|k| ("X-API-Key", k)).into_iter().collect();
                if at.close {
                    headers.push(("Connection", "close"));
                }
                measured[row].push(wrk.get(url, &headers, connections)?);
            }
        }
        for (row, loads) in planned.iter().zip(measured) {
            report.record(row.name, row.at, loads)?;
        }
    }
    Ok(())
}

/// The ratios the report puts side by side for each runtime and store: (what, measured,
/// reference), each a row's name, connections and whether it closed its connections.
fn comparisons() -> Vec<(String, Id, Id)> {
    let mut out = Vec::new();
    for (measured, reference) in [(VALID, FLOOR), (MALFORMED, EMPTY)] {
        for connections in CONNECTIONS {
            out.push((
                format!("{measured} / {reference}, {connections} conn."),
                (measured, connections, false),
                (reference, connections, false),
            ));
        }
    }
    for (measured, reference) in [(CONTRACT_FLOOR, FLOOR), (VALID, CONTRACT_FLOOR)] {
        for connections in [1, 32] {
            out.push((
                format!("{measured} / {reference}, {connections} conn."),
                (measured, connections, false),
                (reference, connections, false),
            ));
        }
    }
    for name in [VALID, MALFORMED, DELETED, FLOOR, EMPTY] {
        out.push((
            format!("{name}: one kept-alive connection / a connection per request"),
            (name, 1, false),
            (name, 1, true),
        ));
    }
    out
}

/// The ratios of [`comparisons`], one column per runtime and store, all from this run.
fn side_by_side(reports: &[Report]) -> String {
    let columns: Vec<(&Report, Store)> = reports
        .iter()
        .flat_map(|report| report.stores().into_iter().map(move |s| (report, s)))
        .collect();
    let mut out =
        String::from("### Both runtimes, one run\n\n| ratio (req/s; lowest–highest round) |");
    for (report, store) in &columns {
        let _ = write!(out, " {}, {} |", report.title, report.store_label(*store));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for (what, measured, reference) in comparisons() {
        let _ = write!(out, "| {what} |");
        for (report, store) in &columns {
            let (m, r) = (at(measured, *store), at(reference, *store));
            let cell = report.ratio(m, r).map_or("n/a".to_owned(), |ratio| {
                format!("{ratio:.2}×{}", report.spread(m, r))
            });
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
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

/// The rows the ratios compare: the reference components (tests/empty-component,
/// tests/floor-component, tests/contract-floor-component) and verify's three keys.
const EMPTY: &str = "empty component";
const FLOOR: &str = "floor component (one get)";
const CONTRACT_FLOOR: &str = "contract floor component (one get, the contract's headers)";
const VALID: &str = "verify, valid key";
const MALFORMED: &str = "verify, malformed key";
const DELETED: &str = "verify, deleted key";

/// The numbers of connections the reference and verify rows are measured at: one (a gateway
/// that asks one question at a time over one kept-alive connection), two, eight, and 32 (more
/// than the machine's cores can serve at once).
const CONNECTIONS: [u32; 4] = [1, 2, 8, 32];

/// What the contract floor component is sent in `X-API-Key`: any key (it parses none).
const CONTRACT_FLOOR_KEY: &str = "ak_bench_contract_floor";

/// The store the server of a row used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Store {
    /// The runtime's default store: SQLite beside the app (a remote server's own, unknown).
    #[default]
    Default,
    /// A redis-server of the benchmark's own.
    Redis,
}

/// How a row was measured: its store, its number of connections, and whether each request
/// came on a connection of its own (`Connection: close`) rather than on kept-alive ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct At {
    store: Store,
    connections: u32,
    close: bool,
}

/// A row without its store: name, connections, `Connection: close`.
type Id = (&'static str, u32, bool);

/// `id` on `store`.
fn at((name, connections, close): Id, store: Store) -> (&'static str, At) {
    (
        name,
        At {
            store,
            connections,
            close,
        },
    )
}

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

/// One measured row: its median round, and every round in order (the spread of its ratios).
struct Measured {
    name: String,
    at: At,
    load: Load,
    rounds: Vec<Load>,
}

/// What the run measured, turned into Markdown at the end.
#[derive(Default)]
struct Report {
    /// The runtime measured.
    title: String,
    /// What [`Store::Default`] is on this runtime.
    default_store: &'static str,
    /// How long the whole measurement took.
    took: Duration,
    measured: Vec<Measured>,
    /// Per request: what it was, its status, and (reads, writes) if the server counts them.
    operations: Vec<(String, u16, StoreOps)>,
    scaling: Option<(u64, Load, u64, Load)>,
    sizes: Vec<(String, u64)>,
}

impl Report {
    /// A row measured in `rounds`, reported by its median round.
    fn record(&mut self, name: &str, at: At, rounds: Vec<Load>) -> Result<()> {
        let load = median_round(rounds.clone()).context("no round ran")?;
        self.measured.push(Measured {
            name: name.to_owned(),
            at,
            load,
            rounds,
        });
        Ok(())
    }

    /// A row measured once, on kept-alive connections to the default store.
    fn load(&mut self, name: &str, connections: u32, load: Load) {
        self.measured.push(Measured {
            name: name.to_owned(),
            at: At {
                store: Store::Default,
                connections,
                close: false,
            },
            load,
            rounds: vec![load],
        });
    }

    fn find(&self, (name, at): (&str, At)) -> Option<&Measured> {
        self.measured.iter().find(|m| m.name == name && m.at == at)
    }

    /// The stores this runtime was measured on.
    fn stores(&self) -> Vec<Store> {
        [Store::Default, Store::Redis]
            .into_iter()
            .filter(|store| self.measured.iter().any(|m| m.at.store == *store))
            .collect()
    }

    fn store_label(&self, store: Store) -> &'static str {
        match store {
            Store::Default => self.default_store,
            Store::Redis => "Redis",
        }
    }

    /// Throughput of `measured` over that of `reference` (their median rounds).
    fn ratio(&self, measured: (&str, At), reference: (&str, At)) -> Option<f64> {
        let (m, r) = (self.find(measured)?, self.find(reference)?);
        (r.load.rps > 0.0).then(|| m.load.rps / r.load.rps)
    }

    /// ` (rounds: lowest–highest)`: the ratio of `measured` to `reference` in each interleaved
    /// round (the same round of both), when there was more than one.
    fn spread(&self, measured: (&str, At), reference: (&str, At)) -> String {
        let (Some(m), Some(r)) = (self.find(measured), self.find(reference)) else {
            return String::new();
        };
        let ratios: Vec<f64> = m
            .rounds
            .iter()
            .zip(&r.rounds)
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
        self.sweep(&mut out);
        let _ = writeln!(
            out,
            "| requests | store | connections | req/s | ok req/s | p50 | p99 | host CPU per \
             request |\n|---|---|---|---|---|---|---|---|"
        );
        for Measured { name, at, load, .. } in &self.measured {
            let close = if at.close {
                ", `Connection: close`"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {}{close} | {:.0} | {:.0} | {} | {} | {} |",
                self.store_label(at.store),
                at.connections,
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
        self.targets(&mut out);
        self.comparisons(&mut out);
        let ops = |name: &str| {
            self.operations
                .iter()
                .find(|(n, _, _)| n == name)
                .and_then(|(_, _, kv)| *kv)
        };
        if let (Some(valid), Some(malformed), Some(deleted)) =
            (ops(VALID), ops(MALFORMED), ops(DELETED))
        {
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

    /// The reference and verify rows in one table: each store's rows at each number of
    /// connections, and at one connection with a connection per request.
    fn sweep(&self, out: &mut String) {
        let _ = write!(out, "req/s · p50 / p99 (ms)\n\n| requests | store |");
        for connections in CONNECTIONS {
            let _ = write!(out, " {connections} conn. |");
        }
        let _ = writeln!(
            out,
            " 1 conn., `Connection: close` |\n|---|---|{}---|",
            "---|".repeat(CONNECTIONS.len())
        );
        for store in self.stores() {
            for name in [EMPTY, FLOOR, CONTRACT_FLOOR, VALID, MALFORMED, DELETED] {
                let ats: Vec<At> = CONNECTIONS
                    .into_iter()
                    .map(|connections| (connections, false))
                    .chain([(1, true)])
                    .map(|(connections, close)| At {
                        store,
                        connections,
                        close,
                    })
                    .collect();
                if !ats.iter().any(|at| self.find((name, *at)).is_some()) {
                    continue;
                }
                let _ = write!(out, "| {name} | {} |", self.store_label(store));
                for at in ats {
                    let cell = self.find((name, at)).map_or("—".to_owned(), |m| {
                        format!(
                            "{:.0} · {:.2} / {:.2}",
                            m.load.rps,
                            m.load.p50.as_secs_f64() * 1e3,
                            m.load.p99.as_secs_f64() * 1e3
                        )
                    });
                    let _ = write!(out, " {cell} |");
                }
                out.push('\n');
            }
        }
        out.push('\n');
    }

    /// The targets' rows of the table of targets.
    fn targets(&self, out: &mut String) {
        let kept = |store, connections| At {
            store,
            connections,
            close: false,
        };
        // The older target, against an empty component heavier than today's.
        for connections in [1, 32] {
            let (m, r) = (
                (VALID, kept(Store::Default, connections)),
                (EMPTY, kept(Store::Default, connections)),
            );
            if let Some(ratio) = self.ratio(m, r) {
                let _ = writeln!(
                    out,
                    "| verify ≥ 0.8× {EMPTY} (req/s, {connections} conn., {}) | {ratio:.2}×{} | {} |",
                    self.default_store,
                    self.spread(m, r),
                    yes(ratio >= 0.8)
                );
            }
        }
        for store in self.stores() {
            let label = self.store_label(store);
            for (measured, reference) in [(VALID, FLOOR), (MALFORMED, EMPTY)] {
                for connections in [1, 32] {
                    let (m, r) = (
                        (measured, kept(store, connections)),
                        (reference, kept(store, connections)),
                    );
                    if let Some(ratio) = self.ratio(m, r) {
                        let _ = writeln!(
                            out,
                            "| {measured} ≥ 0.97× {reference} (req/s, {connections} conn., \
                             {label}) | {ratio:.2}×{} | {} |",
                            self.spread(m, r),
                            yes(ratio >= 0.97)
                        );
                    }
                }
            }
            // One gateway connection, one question at a time: as fast as opening a connection
            // for each (issue 30: a response written in two parts waited for a delayed ACK).
            let (m, r) = (
                (VALID, kept(store, 1)),
                (
                    VALID,
                    At {
                        close: true,
                        ..kept(store, 1)
                    },
                ),
            );
            if let Some(ratio) = self.ratio(m, r) {
                let _ = writeln!(
                    out,
                    "| {VALID} on one kept-alive connection ≥ 0.9× with a connection per \
                     request (req/s, {label}) | {ratio:.2}×{} | {} |",
                    self.spread(m, r),
                    yes(ratio >= 0.9)
                );
            }
            if let Some(one) = self.find((VALID, kept(store, 1))) {
                let _ = writeln!(
                    out,
                    "| {VALID}, p99 on one kept-alive connection < 5 ms ({label}) | {} | {} |",
                    ms(one.load.p99),
                    yes(one.load.p99 < Duration::from_millis(5))
                );
            }
        }
    }

    /// Comparisons without a target: CPU per request, the contract floor, Redis next to SQLite.
    fn comparisons(&self, out: &mut String) {
        let kept = |store, connections| At {
            store,
            connections,
            close: false,
        };
        for store in self.stores() {
            let label = self.store_label(store);
            // Issue 10's comparisons in the host's CPU time per request: what verify's own work
            // costs the server, apart from the load generator's share of the machine.
            for (measured, reference) in [(VALID, FLOOR), (MALFORMED, EMPTY)] {
                for connections in [1, 32] {
                    let cpu = |name| {
                        self.find((name, kept(store, connections)))
                            .and_then(|m| m.load.host_cpu)
                    };
                    if let (Some(m), Some(r)) = (cpu(measured), cpu(reference)) {
                        let extra = m.as_secs_f64() - r.as_secs_f64();
                        let _ = writeln!(
                            out,
                            "| (measured, no target) {measured} next to {reference} (host CPU \
                             per request, {connections} conn., {label}) | {} vs {}: {:+.0} µs, \
                             {:.2}× | — |",
                            micros(m),
                            micros(r),
                            extra * 1e6,
                            r.as_secs_f64() / m.as_secs_f64()
                        );
                    }
                }
            }
            // How close any verify can come to the floor: the contract floor component does
            // what the contract makes every verify do, and nothing of verify's own work.
            for (measured, reference) in [(CONTRACT_FLOOR, FLOOR), (VALID, CONTRACT_FLOOR)] {
                for connections in [1, 32] {
                    let (m, r) = (
                        (measured, kept(store, connections)),
                        (reference, kept(store, connections)),
                    );
                    let (Some(found_m), Some(found_r)) = (self.find(m), self.find(r)) else {
                        continue;
                    };
                    let cpu = match (found_m.load.host_cpu, found_r.load.host_cpu) {
                        (Some(m), Some(r)) => {
                            format!("; host CPU per request {} vs {}", micros(m), micros(r))
                        }
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        out,
                        "| (measured, no target) {measured} next to {reference} ({connections} \
                         conn., {label}) | {:.2}× req/s{}{cpu} | — |",
                        found_m.load.rps / found_r.load.rps,
                        self.spread(m, r)
                    );
                }
            }
        }
        for connections in CONNECTIONS {
            let rps = |name, store| {
                self.find((name, kept(store, connections)))
                    .map(|m| m.load.rps)
            };
            if let (Some(redis), Some(sqlite), Some(empty)) = (
                rps(VALID, Store::Redis),
                rps(VALID, Store::Default),
                rps(EMPTY, Store::Default),
            ) {
                let _ = writeln!(
                    out,
                    "| (measured, no target) verify on Redis vs {} vs empty ({connections} \
                     conn.) | {:.2}× {}, {:.2}× empty | — |",
                    self.default_store,
                    redis / sqlite,
                    self.default_store,
                    redis / empty
                );
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(rps: f64, p99_ms: u64) -> Load {
        Load {
            rps,
            ok_rps: rps,
            requests: rps,
            p50: Duration::from_micros(200),
            p99: Duration::from_millis(p99_ms),
            host_cpu: None,
        }
    }

    fn at(connections: u32, close: bool) -> At {
        At {
            store: Store::Default,
            connections,
            close,
        }
    }

    #[test]
    fn one_kept_alive_connection_is_compared_with_a_connection_per_request_round_by_round() {
        let mut report = Report {
            title: "test".into(),
            default_store: "SQLite",
            ..Report::default()
        };
        let rounds = vec![load(1000.0, 3), load(3000.0, 3), load(2000.0, 3)];
        report.record(VALID, at(1, false), rounds).unwrap();
        let rounds = vec![load(1000.0, 1), load(1000.0, 1), load(4000.0, 1)];
        report.record(VALID, at(1, true), rounds).unwrap();
        let (kept, fresh) = ((VALID, at(1, false)), (VALID, at(1, true)));
        // The medians, 2000 and 1000; each round with the same round of the other row.
        assert_eq!(report.ratio(kept, fresh), Some(2.0));
        assert_eq!(report.spread(kept, fresh), " (rounds: 0.50–3.00)");
        let text = report.markdown(&Args::parse_from(["bench"]));
        assert!(text.contains(
            "| verify, valid key on one kept-alive connection ≥ 0.9× with a connection per \
             request (req/s, SQLite) | 2.00× (rounds: 0.50–3.00) | yes |"
        ));
        assert!(text.contains(
            "| verify, valid key, p99 on one kept-alive connection < 5 ms (SQLite) | 3.00 ms | yes |"
        ));
        // The sweep: the rows not measured show as such, never as another row's figures.
        assert!(text.contains(
            "| verify, valid key | SQLite | 2000 · 0.20 / 3.00 | — | — | — | 1000 · 0.20 / 1.00 |"
        ));
        assert!(!text.contains("| Redis |"), "no Redis row was measured");
    }

    #[test]
    fn rows_of_another_store_or_connection_count_are_not_compared() {
        let mut report = Report::default();
        report
            .record(VALID, at(32, false), vec![load(500.0, 9)])
            .unwrap();
        let redis = At {
            store: Store::Redis,
            ..at(32, false)
        };
        report.record(FLOOR, redis, vec![load(1000.0, 9)]).unwrap();
        report
            .record(FLOOR, at(1, false), vec![load(1000.0, 9)])
            .unwrap();
        assert_eq!(
            report.ratio((VALID, at(32, false)), (FLOOR, at(32, false))),
            None
        );
        report
            .record(FLOOR, at(32, false), vec![load(1000.0, 9)])
            .unwrap();
        assert_eq!(
            report.ratio((VALID, at(32, false)), (FLOOR, at(32, false))),
            Some(0.5)
        );
        assert_eq!(report.stores(), vec![Store::Default, Store::Redis]);
    }
}

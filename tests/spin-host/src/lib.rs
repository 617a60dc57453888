//! A small wasmtime host that runs the Spin app described by a `spin.toml` the way `spin up`
//! does, for local runs and end-to-end tests.
//!
//! Layers: [`manifest`] → [`router`] → [`runner`] → [`providers`] (key-value and variables)
//! over a replaceable [`KvBackend`].
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use spin_host::{HostConfig, MemoryBackend};
//! let mut config = HostConfig::new("spin.toml");
//! config.listen = "127.0.0.1:0".parse()?;
//! config.build = false;
//! config.backend = MemoryBackend::new();
//! let host = spin_host::start(config).await?;
//! println!("{}", host.url());
//! host.shutdown().await;
//! # Ok(()) }
//! ```

pub mod clock;
pub mod kv;
pub mod kv_redis;
pub mod manifest;
pub mod providers;
pub mod redis_server;
pub mod router;
pub mod runner;
pub mod runtime_config;

pub use clock::TestClock;
pub use kv::{
    FaultyBackend, KvBackend, KvCas, KvError, MemoryBackend, SqliteBackend, INJECTED_FAULT,
};
pub use kv_redis::{RedisBackend, RedisCasAnswers};
pub use redis_server::RedisServer;

use anyhow::{Context, Result};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use manifest::Manifest;
use providers::KvCounters;
use router::Router;
use runner::{empty_body, App, Outcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
pub use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How to run the app.
pub struct HostConfig {
    pub manifest: PathBuf,
    /// Port 0 picks a free port; see [`RunningHost::addr`].
    pub listen: SocketAddr,
    /// Run each component's `[component.<id>.build]` command first.
    pub build: bool,
    pub backend: Arc<dyn KvBackend>,
    pub clock: Arc<TestClock>,
    /// Application variable values by lowercase name; they win over `SPIN_VARIABLE_*`.
    pub variables: HashMap<String, String>,
    /// Add `x-kv-reads` / `x-kv-writes` to every component response.
    pub kv_stats_header: bool,
    /// Longest a request may run before it is trapped (answered 500).
    pub request_timeout: Duration,
    /// Print nothing at start-up.
    pub quiet: bool,
    /// Serve only these components (Spin's `--component-id`); empty serves all.
    pub components: Vec<String>,
    /// Collect the components' stderr (their log) here instead of printing it (tests).
    pub component_log: Option<MemoryOutputPipe>,
    /// Most memory one instance may use, in bytes; `None` (Spin's default) leaves only wasm32's
    /// 4 GiB. Defaults to `SPIN_MAX_INSTANCE_MEMORY`, which `spin up` reads too.
    pub max_instance_memory: Option<usize>,
}

impl HostConfig {
    /// Defaults like `spin up`: 127.0.0.1:3000, build first, the SQLite store at
    /// `<manifest dir>/.spin/sqlite_key_value.db` (opened on first use), the real clock.
    pub fn new(manifest: impl Into<PathBuf>) -> Self {
        let manifest = manifest.into();
        let absolute = std::path::absolute(&manifest).unwrap_or_else(|_| manifest.clone());
        let dir = absolute.parent().map(PathBuf::from).unwrap_or_default();
        HostConfig {
            manifest,
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            build: true,
            backend: SqliteBackend::lazy(dir.join(".spin").join("sqlite_key_value.db")),
            clock: TestClock::new(),
            variables: HashMap::new(),
            kv_stats_header: false,
            request_timeout: Duration::from_secs(30),
            quiet: false,
            components: Vec::new(),
            component_log: None,
            max_instance_memory: std::env::var("SPIN_MAX_INSTANCE_MEMORY")
                .ok()
                .and_then(|bytes| bytes.trim().parse().ok()),
        }
    }
}

/// Store calls made by components since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvTotals {
    pub reads: u64,
    pub writes: u64,
}

/// A host serving requests on its own multi-threaded runtime until shut down.
pub struct RunningHost {
    addr: SocketAddr,
    totals: Arc<KvCounters>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningHost {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cumulative store reads and writes of all requests.
    pub fn kv_totals(&self) -> KvTotals {
        KvTotals {
            reads: self.totals.reads(),
            writes: self.totals.writes(),
        }
    }

    /// Stops listening and drops in-flight requests.
    pub async fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // `shutdown_background` never blocks, so this is safe inside another runtime.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Keeps `RUST_BACKTRACE=1` from costing every request a backtrace. Call first in `main`,
/// before any thread starts (it sets an environment variable).
///
/// wasmtime disposes of each finished request's idle fiber by resuming it with an error value,
/// and std captures a backtrace for every error value while `RUST_BACKTRACE` is set: measured
/// with callgrind, 76,000 instructions, a quarter of a request. Error values' backtraces are
/// governed by `RUST_LIB_BACKTRACE` first, so it is set to `0` unless given; panics still print
/// theirs.
pub fn no_backtraces_for_errors() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// Loads, builds (if asked), compiles and starts serving the app.
pub async fn start(config: HostConfig) -> Result<RunningHost> {
    let mut manifest = Manifest::load(&config.manifest)?;
    if !config.components.is_empty() {
        manifest.retain_components(&config.components)?;
    }
    if config.build {
        let (m, quiet) = (manifest.clone(), config.quiet);
        tokio::task::spawn_blocking(move || manifest::run_builds(&m, quiet)).await??;
    }
    let app_vars = manifest.app_variables(&config.variables, |name| std::env::var(name).ok())?;
    let router = Router::new(&manifest.routes)?;

    let (backend, clock, timeout) = (
        config.backend.clone(),
        config.clock.clone(),
        config.request_timeout,
    );
    let load_manifest = manifest.clone();
    let mut app = tokio::task::spawn_blocking(move || {
        App::load(&load_manifest, &app_vars, backend, clock, timeout)
    })
    .await??;
    app.component_log = config.component_log.clone();
    app.max_instance_memory = config.max_instance_memory;
    let app = Arc::new(app);

    let std_listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;

    // Its own runtime keeps the host multi-threaded whatever runtime the caller uses. It is
    // made last: dropping a runtime on an error path inside the caller's runtime would panic.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spin-host")
        .build()?;
    let listener = {
        let _enter = runtime.enter();
        tokio::net::TcpListener::from_std(std_listener)
    };
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            runtime.shutdown_background();
            return Err(e.into());
        }
    };
    if !config.quiet {
        print_routes(&router, addr);
    }
    let server = Arc::new(Server {
        app: app.clone(),
        router,
        kv_stats_header: config.kv_stats_header,
        timeout,
    });
    runtime.spawn(accept_loop(listener, server));
    Ok(RunningHost {
        addr,
        totals: app.totals.clone(),
        runtime: Some(runtime),
    })
}

fn print_routes(router: &Router, addr: SocketAddr) {
    let base = format!("http://{addr}");
    println!("\nServing {base}");
    println!("Available Routes:");
    for route in router.routes() {
        println!("  {}: {base}{}", route.component, route.display());
    }
}

struct Server {
    app: Arc<App>,
    router: Router,
    kv_stats_header: bool,
    timeout: Duration,
}

async fn accept_loop(listener: tokio::net::TcpListener, server: Arc<Server>) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                eprintln!("spin-host: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No `TCP_NODELAY`, as on Spin (its source never sets it): a component that hands its
        // response over before writing the body gets the same ~40 ms delayed-ACK stall here on
        // a kept-alive connection as it would there (see `shared::spin::respond`).
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, std::convert::Infallible>(server.serve(req, client).await) }
            });
            // Client disconnects mid-request are not the host's problem.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn status_only(status: hyper::StatusCode) -> hyper::Response<HyperOutgoingBody> {
    let mut response = hyper::Response::new(empty_body());
    *response.status_mut() = status;
    response
}

impl Server {
    async fn serve(
        &self,
        mut req: hyper::Request<hyper::body::Incoming>,
        client: SocketAddr,
    ) -> hyper::Response<HyperOutgoingBody> {
        let Some(route) = self.router.route(req.uri().path()) else {
            return status_only(hyper::StatusCode::NOT_FOUND);
        };
        // Spin refuses a request with any header value that is not UTF-8 before a component
        // runs: an empty 500, logged as "invalid utf-8 sequence" (measured on Spin 4.1).
        if req
            .headers()
            .values()
            .any(|value| std::str::from_utf8(value.as_bytes()).is_err())
        {
            return status_only(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        }
        let host = req
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_owned();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let full_url = format!("http://{host}{path_and_query}");
        let headers = req.headers_mut();
        // Transport-level, meaningless to the guest (Spin removes it too).
        headers.remove(hyper::header::CONNECTION);
        if !headers.contains_key(hyper::header::HOST) {
            if let Ok(v) = hyper::header::HeaderValue::from_str(&host) {
                headers.insert(hyper::header::HOST, v);
            }
        }
        for (name, value) in route.spin_headers(&full_url, client) {
            // Values come from the request path; ones that are not valid header text are skipped.
            if let (Ok(n), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(name.as_bytes()),
                hyper::header::HeaderValue::from_str(&value),
            ) {
                headers.insert(n, v);
            }
        }
        // The epoch deadline stops running wasm; this also ends a guest stuck waiting on the host.
        let limit = self.timeout + Duration::from_secs(1);
        match tokio::time::timeout(limit, self.app.handle(&route, req)).await {
            Ok(Ok(Outcome { mut response, kv })) => {
                if self.kv_stats_header {
                    let h = response.headers_mut();
                    h.insert("x-kv-reads", kv.reads().into());
                    h.insert("x-kv-writes", kv.writes().into());
                }
                response
            }
            Ok(Err(e)) => {
                eprintln!(
                    "spin-host: error processing request for `{}`: {e:#}",
                    route.component
                );
                status_only(hyper::StatusCode::INTERNAL_SERVER_ERROR)
            }
            Err(_) => {
                eprintln!("spin-host: request for `{}` timed out", route.component);
                status_only(hyper::StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

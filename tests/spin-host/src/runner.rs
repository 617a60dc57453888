//! Compiles each component once and runs one request in a fresh `Store` and instance, with a
//! memory limit and an epoch deadline, as Spin does.

use crate::clock::{TestClock, WasiClock};
use crate::kv::KvBackend;
use crate::manifest::Manifest;
use crate::providers::{self, KvCounters, KvDispatch, Variables};
use crate::router::RouteMatch;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// How often the epoch advances: guests yield this often and deadlines are checked.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What one instance's `Store` holds.
pub struct RequestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    limits: StoreLimits,
    kv: KvDispatch,
    vars: Variables,
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// One pre-instantiated component and what each of its instances gets.
struct Prepared {
    pre: ProxyPre<RequestState>,
    key_value_stores: Arc<[String]>,
    variables: Arc<HashMap<String, String>>,
    environment: Vec<(String, String)>,
}

/// Everything every request needs, shared by all of them.
pub struct App {
    engine: Engine,
    components: HashMap<String, Prepared>,
    backend: Arc<dyn KvBackend>,
    clock: Arc<TestClock>,
    pub totals: Arc<KvCounters>,
    request_timeout: Duration,
    /// Where components' stderr goes instead of the host's own (tests read it).
    pub component_log: Option<MemoryOutputPipe>,
    /// Most linear memory one instance may grow to (Spin's `--max-instance-memory`).
    pub max_instance_memory: Option<usize>,
}

/// How a request ended.
pub struct Outcome {
    pub response: hyper::Response<HyperOutgoingBody>,
    pub kv: Arc<KvCounters>,
}

/// The one engine of this process, with its epoch thread. Hosts share it so that tests which
/// start many hosts compile each component once and share one instance pool.
fn engine() -> Result<Engine> {
    static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);
    let mut slot = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(engine) = slot.as_ref() {
        return Ok(engine.clone());
    }
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Wasmtime's on-disk cache (as the `wasmtime` CLI uses it): a restart skips compiling
    // unchanged components, which in a debug build of this host takes seconds each.
    config.cache(Cache::new(CacheConfig::new()).ok());
    // `SPIN_HOST_PROFILE=perfmap` names the guests' compiled functions for `perf record`
    // (build the component unstripped to see Rust names): how the benchmark's costs are found.
    if std::env::var("SPIN_HOST_PROFILE").as_deref() == Ok("perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let mut pooled = config.clone();
    // Pooling reuses instance slots across requests (measured ~20% faster here); the limits
    // leave room for the few core instances and memories a spin-sdk component has.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(256)
        .total_core_instances(2048)
        .total_memories(1024)
        .total_tables(2048)
        .total_stacks(256)
        // As Spin sets them (crates/core): a slot reused by the next request is reset with
        // memset instead of being unmapped, so pages a request touches do not fault again.
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(1 << 19);
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Reserving the pool's address space can fail on small or restricted machines.
    let engine = Engine::new(&pooled).or_else(|_| Engine::new(&config))?;
    // A plain thread: a tokio task could itself be starved by guests busy on every worker.
    let ticking = engine.clone();
    std::thread::Builder::new()
        .name("spin-host-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            ticking.increment_epoch();
        })?;
    *slot = Some(engine.clone());
    Ok(engine)
}

/// Compiles a component, or reuses the compilation of identical bytes at the same path.
fn compile(engine: &Engine, path: &Path) -> Result<Component> {
    static COMPILED: Mutex<BTreeMap<PathBuf, (Vec<u8>, Component)>> = Mutex::new(BTreeMap::new());
    let bytes = std::fs::read(path)?;
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((seen, component)) = compiled.get(path) {
        if *seen == bytes {
            return Ok(component.clone());
        }
    }
    let component = Component::new(engine, &bytes)?;
    compiled.insert(path.to_path_buf(), (bytes, component.clone()));
    Ok(component)
}

pub fn empty_body() -> HyperOutgoingBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl App {
    /// Compiles and pre-instantiates every routed component; fails naming a component whose
    /// imports this host cannot satisfy.
    pub fn load(
        manifest: &Manifest,
        app_vars: &HashMap<String, String>,
        backend: Arc<dyn KvBackend>,
        clock: Arc<TestClock>,
        request_timeout: Duration,
    ) -> Result<App> {
        let engine = engine()?;
        let mut linker = Linker::<RequestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        providers::add_to_linker(&mut linker, |s| &mut s.kv, |s| &mut s.vars)?;

        let mut components = HashMap::new();
        for (_, id) in &manifest.routes {
            if components.contains_key(id) {
                continue;
            }
            let c = &manifest.components[id];
            let component = compile(&engine, &c.source).with_context(|| {
                format!("cannot load component `{id}` from {}", c.source.display())
            })?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(ProxyPre::new)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!("component `{id}` needs an import this host does not provide")
                })?;
            components.insert(
                id.clone(),
                Prepared {
                    pre,
                    key_value_stores: c.key_value_stores.clone().into(),
                    variables: Arc::new(manifest.component_variables(id, app_vars)?),
                    environment: c.environment.clone().into_iter().collect(),
                },
            );
        }
        Ok(App {
            engine,
            components,
            backend,
            clock,
            totals: Arc::default(),
            request_timeout,
            component_log: None,
            max_instance_memory: None,
        })
    }

    /// Runs the matched component on one request. `Err` means the component failed (trap,
    /// timeout, no response): the caller answers 500 like Spin.
    pub async fn handle(
        &self,
        route: &RouteMatch,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<Outcome> {
        let c = self
            .components
            .get(&route.component)
            .context("component not loaded")?;
        let kv = Arc::new(KvCounters::default());
        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdout()
            .envs(&c.environment)
            .wall_clock(WasiClock(self.clock.clone()));
        match &self.component_log {
            Some(log) => wasi.stderr(log.clone()),
            None => wasi.inherit_stderr(),
        };
        let wasi = wasi.build();
        let state = RequestState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            // Like Spin: no limit of the host's own (wasm32's 4 GiB) unless one is configured.
            limits: StoreLimitsBuilder::new()
                .memory_size(self.max_instance_memory.unwrap_or(usize::MAX))
                .build(),
            kv: KvDispatch::new(
                self.backend.clone(),
                c.key_value_stores.clone(),
                kv.clone(),
                self.totals.clone(),
            ),
            vars: Variables(c.variables.clone()),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Every epoch tick the guest yields to the runtime (so a busy guest cannot starve other
        // requests or the server) and is trapped once its time is up.
        let deadline = Instant::now() + self.request_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });

        let (sender, receiver) = tokio::sync::oneshot::channel();
        // A body the component leaves unread is not drained: the connection closes with it
        // unread, as on Spin, whose client still sending then sees a reset, not the answer.
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = c.pre.clone();
        // The guest may go on writing the body after sending the head, so it runs in its own task.
        let task = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(Outcome { response, kv }),
            Ok(Err(code)) => anyhow::bail!("component sent an error response: {code:?}"),
            // The sender was dropped with the store: the task tells what happened.
            Err(_) => match task.await {
                Ok(Ok(())) => anyhow::bail!("component returned without sending a response"),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("component failed")),
                Err(e) => Err(anyhow::Error::from(e).context("component task failed")),
            },
        }
    }
}

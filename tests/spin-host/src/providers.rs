//! The Spin imports this host provides: one key-value dispatcher that maps both
//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue/*@0.2.0-draft2` onto a `KvBackend`, and
//! `fermyon:spin/variables@2.0.0`.

use crate::kv::{KvBackend, KvCas, KvError, KvResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

wasmtime::component::bindgen!({
    path: "wit",
    world: "spin-host:host/spin-imports",
    // Backends are synchronous and fast; `trappable` lets `increment` trap like Spin panics.
    imports: { default: trappable },
    with: {
        "fermyon:spin/key-value.store": SpinStore,
        "wasi:keyvalue/store.bucket": WasiBucket,
        "wasi:keyvalue/atomics.cas": CasState,
    },
});

use fermyon::spin::key_value as spin_kv;
use fermyon::spin::variables as spin_vars;
use wasi::keyvalue::atomics::{self, CasError};
use wasi::keyvalue::{batch, store as wasi_kv};

type Trappable<T> = wasmtime::Result<T>;

/// An open `fermyon:spin/key-value` store: the label it was opened with.
pub struct SpinStore(String);
/// An open `wasi:keyvalue` bucket.
pub struct WasiBucket(String);
/// A compare-and-swap in progress: the backend's own (which, on Redis, holds a connection of its
/// own with a `WATCH` on the key), and where it points, for the fresh one a failed swap returns.
pub struct CasState {
    store: String,
    key: String,
    cas: Box<dyn KvCas>,
}

/// Store reads and writes, counted per request and in total.
#[derive(Debug, Default)]
pub struct KvCounters {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl KvCounters {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// Per-instance key-value state: which labels the component may open, and its own handles.
pub struct KvDispatch {
    backend: Arc<dyn KvBackend>,
    allowed: Arc<[String]>,
    table: ResourceTable,
    request: Arc<KvCounters>,
    totals: Arc<KvCounters>,
}

enum Op {
    Read,
    Write,
}

type SpinResult<T> = Trappable<Result<T, spin_kv::Error>>;
type WasiResult<T> = Trappable<Result<T, wasi_kv::Error>>;
type Backend<'a> = &'a dyn KvBackend;

/// Splits a backend result into the interface's error (`other`) or a trap.
fn lift<T, E>(r: KvResult<T>, other: impl FnOnce(String) -> E) -> Trappable<Result<T, E>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(KvError::Trap(msg)) => Err(wasmtime::Error::msg(msg)),
        Err(e) => Ok(Err(other(e.to_string()))),
    }
}

impl KvDispatch {
    pub fn new(
        backend: Arc<dyn KvBackend>,
        allowed: Arc<[String]>,
        request: Arc<KvCounters>,
        totals: Arc<KvCounters>,
    ) -> KvDispatch {
        let table = ResourceTable::new();
        KvDispatch {
            backend,
            allowed,
            table,
            request,
            totals,
        }
    }

    /// Refused at open exactly as Spin refuses: not granted in `key_value_stores` is
    /// `access-denied` even if it exists; granted but not defined is `no-such-store`.
    fn open_check(&self, label: &str) -> Result<(), wasi_kv::Error> {
        if !self.allowed.iter().any(|l| l == label) {
            Err(wasi_kv::Error::AccessDenied)
        } else if !self.backend.store_exists(label) {
            Err(wasi_kv::Error::NoSuchStore)
        } else {
            Ok(())
        }
    }

    /// Counts one store call and hands out the backend.
    fn count(&self, op: Op) -> Backend<'_> {
        let (mine, all) = match op {
            Op::Read => (&self.request.reads, &self.totals.reads),
            Op::Write => (&self.request.writes, &self.totals.writes),
        };
        mine.fetch_add(1, Ordering::Relaxed);
        all.fetch_add(1, Ordering::Relaxed);
        self.backend.as_ref()
    }

    /// One `fermyon:spin/key-value` call on the store behind `s`.
    fn spin<T>(
        &self,
        s: &Resource<SpinStore>,
        op: Op,
        f: impl FnOnce(Backend, &str) -> KvResult<T>,
    ) -> SpinResult<T> {
        let label = &self.table.get(s)?.0;
        lift(f(self.count(op), label), spin_kv::Error::Other)
    }

    /// One `wasi:keyvalue` call on the bucket behind `b`.
    fn wasi<T>(
        &self,
        b: &Resource<WasiBucket>,
        op: Op,
        f: impl FnOnce(Backend, &str) -> KvResult<T>,
    ) -> WasiResult<T> {
        let label = &self.table.get(b)?.0;
        lift(f(self.count(op), label), wasi_kv::Error::Other)
    }

    /// Starts a compare-and-swap, as Spin's `cas.new` does (on Redis: a new connection).
    fn cas_new(&mut self, store: String, key: String) -> WasiResult<Resource<CasState>> {
        let started = self.backend.clone().cas(&store, &key);
        Ok(match lift(started, wasi_kv::Error::Other)? {
            Ok(cas) => Ok(self.table.push(CasState { store, key, cas })?),
            Err(e) => Err(e),
        })
    }

    /// Reads the value for a CAS and remembers it, as Spin's `current()` does.
    fn cas_read(&mut self, cas: &Resource<CasState>) -> WasiResult<Option<Vec<u8>>> {
        self.count(Op::Read);
        let read = self.table.get_mut(cas)?.cas.current();
        lift(read, wasi_kv::Error::Other)
    }
}

impl spin_kv::Host for KvDispatch {}

impl spin_kv::HostStore for KvDispatch {
    fn open(&mut self, label: String) -> SpinResult<Resource<SpinStore>> {
        Ok(match self.open_check(&label) {
            Ok(()) => Ok(self.table.push(SpinStore(label))?),
            Err(wasi_kv::Error::AccessDenied) => Err(spin_kv::Error::AccessDenied),
            Err(_) => Err(spin_kv::Error::NoSuchStore),
        })
    }

    fn get(&mut self, s: Resource<SpinStore>, key: String) -> SpinResult<Option<Vec<u8>>> {
        self.spin(&s, Op::Read, |b, l| b.get(l, &key))
    }

    fn set(&mut self, s: Resource<SpinStore>, key: String, value: Vec<u8>) -> SpinResult<()> {
        self.spin(&s, Op::Write, |b, l| b.set(l, &key, &value))
    }

    fn delete(&mut self, s: Resource<SpinStore>, key: String) -> SpinResult<()> {
        self.spin(&s, Op::Write, |b, l| b.delete(l, &key))
    }

    fn exists(&mut self, s: Resource<SpinStore>, key: String) -> SpinResult<bool> {
        self.spin(&s, Op::Read, |b, l| b.exists(l, &key))
    }

    fn get_keys(&mut self, s: Resource<SpinStore>) -> SpinResult<Vec<String>> {
        self.spin(&s, Op::Read, |b, l| b.keys(l))
    }

    fn drop(&mut self, s: Resource<SpinStore>) -> Trappable<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl wasi_kv::Host for KvDispatch {
    fn open(&mut self, identifier: String) -> WasiResult<Resource<WasiBucket>> {
        Ok(match self.open_check(&identifier) {
            Ok(()) => Ok(self.table.push(WasiBucket(identifier))?),
            Err(e) => Err(e),
        })
    }
}

impl wasi_kv::HostBucket for KvDispatch {
    fn get(&mut self, b: Resource<WasiBucket>, key: String) -> WasiResult<Option<Vec<u8>>> {
        self.wasi(&b, Op::Read, |s, l| s.get(l, &key))
    }

    fn set(&mut self, b: Resource<WasiBucket>, key: String, value: Vec<u8>) -> WasiResult<()> {
        self.wasi(&b, Op::Write, |s, l| s.set(l, &key, &value))
    }

    fn delete(&mut self, b: Resource<WasiBucket>, key: String) -> WasiResult<()> {
        self.wasi(&b, Op::Write, |s, l| s.delete(l, &key))
    }

    fn exists(&mut self, b: Resource<WasiBucket>, key: String) -> WasiResult<bool> {
        self.wasi(&b, Op::Read, |s, l| s.exists(l, &key))
    }

    fn list_keys(
        &mut self,
        b: Resource<WasiBucket>,
        cursor: Option<String>,
    ) -> WasiResult<wasi_kv::KeyResponse> {
        // Spin returns every key in one response and has no cursors.
        if cursor.is_some() {
            let msg = "list_keys: cursor not supported".to_owned();
            return Ok(Err(wasi_kv::Error::Other(msg)));
        }
        let keys = self.wasi(&b, Op::Read, |s, l| s.keys(l))?;
        Ok(keys.map(|keys| wasi_kv::KeyResponse { keys, cursor: None }))
    }

    fn drop(&mut self, b: Resource<WasiBucket>) -> Trappable<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for KvDispatch {
    fn increment(&mut self, b: Resource<WasiBucket>, key: String, delta: i64) -> WasiResult<i64> {
        self.wasi(&b, Op::Write, |s, l| s.increment(l, &key, delta))
    }

    fn swap(&mut self, cas: Resource<CasState>, value: Vec<u8>) -> Trappable<Result<(), CasError>> {
        let CasState { store, key, cas } = self.table.delete(cas)?;
        self.count(Op::Write);
        Ok(Err(match cas.swap(&value) {
            Ok(()) => return Ok(Ok(())),
            Err(KvError::Trap(msg)) => return Err(wasmtime::Error::msg(msg)),
            Err(KvError::Other(msg)) => CasError::StoreError(wasi_kv::Error::Other(msg)),
            // Spin (factor-key-value's host) hands back a fresh CAS — `new`, then `current()`
            // on it — and answers a store error if either fails.
            Err(KvError::CasFailed) => {
                let fresh = match self.cas_new(store, key)? {
                    Ok(fresh) => fresh,
                    Err(e) => return Ok(Err(CasError::StoreError(e))),
                };
                match self.cas_read(&fresh)? {
                    Ok(_) => CasError::CasFailed(fresh),
                    Err(e) => CasError::StoreError(e),
                }
            }
        }))
    }
}

impl atomics::HostCas for KvDispatch {
    fn new(&mut self, b: Resource<WasiBucket>, key: String) -> WasiResult<Resource<CasState>> {
        // Like Spin, nothing is read until `current()`.
        let store = self.table.get(&b)?.0.clone();
        self.cas_new(store, key)
    }

    fn current(&mut self, cas: Resource<CasState>) -> WasiResult<Option<Vec<u8>>> {
        self.cas_read(&cas)
    }

    fn drop(&mut self, cas: Resource<CasState>) -> Trappable<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KvDispatch {
    fn get_many(
        &mut self,
        b: Resource<WasiBucket>,
        keys: Vec<String>,
    ) -> WasiResult<Vec<(String, Option<Vec<u8>>)>> {
        let found = self.wasi(&b, Op::Read, |s, l| s.get_many(l, &keys))?;
        // Absent keys are left out, as Spin's SQLite store leaves them out.
        Ok(found.map(|pairs| pairs.into_iter().map(|(k, v)| (k, Some(v))).collect()))
    }

    fn set_many(&mut self, b: Resource<WasiBucket>, kvs: Vec<(String, Vec<u8>)>) -> WasiResult<()> {
        self.wasi(&b, Op::Write, |s, l| s.set_many(l, &kvs))
    }

    fn delete_many(&mut self, b: Resource<WasiBucket>, keys: Vec<String>) -> WasiResult<()> {
        self.wasi(&b, Op::Write, |s, l| s.delete_many(l, &keys))
    }
}

/// One component's variables, already rendered from the application variables.
pub struct Variables(pub Arc<HashMap<String, String>>);

impl spin_vars::Host for Variables {
    fn get(&mut self, name: String) -> Trappable<Result<String, spin_vars::Error>> {
        if let Err(e) = crate::manifest::check_variable_name(&name) {
            return Ok(Err(spin_vars::Error::InvalidName(e.to_string())));
        }
        Ok(self
            .0
            .get(&name)
            .cloned()
            .ok_or_else(|| spin_vars::Error::Undefined(format!("no variable `{name}`"))))
    }
}

/// Adds the key-value and variables interfaces; `kv` and `vars` find each in the store data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    kv: fn(&mut T) -> &mut KvDispatch,
    vars: fn(&mut T) -> &mut Variables,
) -> wasmtime::Result<()> {
    spin_kv::add_to_linker::<T, HasSelf<KvDispatch>>(linker, kv)?;
    wasi_kv::add_to_linker::<T, HasSelf<KvDispatch>>(linker, kv)?;
    atomics::add_to_linker::<T, HasSelf<KvDispatch>>(linker, kv)?;
    batch::add_to_linker::<T, HasSelf<KvDispatch>>(linker, kv)?;
    spin_vars::add_to_linker::<T, HasSelf<Variables>>(linker, vars)?;
    Ok(())
}

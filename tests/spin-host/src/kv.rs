//! Key-value backends: one `KvBackend` trait, a SQLite store like `spin up`'s, an in-memory
//! twin, a wrapper that injects faults, and (in [`crate::kv_redis`]) Redis as Spin speaks it.
//!
//! The SQLite and in-memory semantics follow Spin's `key-value-spin` store, including its sharp
//! edges: a compare-and-swap whose `current()` saw the key absent is an upsert that always
//! wins, and `increment` stores an 8-byte little-endian i64 and cannot read anything else.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvError {
    /// The interface's `other(..)` error: I/O, an injected fault, a broken lock.
    Other(String),
    /// A compare-and-swap found the value changed since `current()` read it.
    CasFailed,
    /// Spin's host panics here (e.g. `increment` on a value that is not 8 bytes); this host
    /// traps the request instead and leaves the data as it was.
    Trap(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Other(m) => write!(f, "{m}"),
            KvError::CasFailed => write!(f, "compare-and-swap failed"),
            KvError::Trap(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for KvError {}

pub type KvResult<T> = Result<T, KvError>;

/// The operations of a key-value store, addressed by store label.
///
/// `get_many` returns only the keys that exist, in the order asked, each once (Spin's SQLite
/// store omits absent keys too).
pub trait KvBackend: Send + Sync {
    /// Whether a store with this label exists; only `default` does, as in `spin up`.
    fn store_exists(&self, label: &str) -> bool {
        label == "default"
    }
    fn get(&self, store: &str, key: &str) -> KvResult<Option<Vec<u8>>>;
    fn set(&self, store: &str, key: &str, value: &[u8]) -> KvResult<()>;
    /// No error if the key is absent.
    fn delete(&self, store: &str, key: &str) -> KvResult<()>;
    fn exists(&self, store: &str, key: &str) -> KvResult<bool>;
    /// Every key of the store.
    fn keys(&self, store: &str) -> KvResult<Vec<String>>;
    fn get_many(&self, store: &str, keys: &[String]) -> KvResult<Vec<(String, Vec<u8>)>>;
    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> KvResult<()>;
    fn delete_many(&self, store: &str, keys: &[String]) -> KvResult<()>;
    /// Absent counts as 0. SQLite stores the result as 8 little-endian bytes (a value of another
    /// length is `KvError::Trap` and stays untouched); Redis as decimal text.
    fn increment(&self, store: &str, key: &str, delta: i64) -> KvResult<i64>;
    /// Starts a compare-and-swap on `key`, as Spin's `cas.new` does; nothing is read yet.
    fn cas(self: Arc<Self>, store: &str, key: &str) -> KvResult<Box<dyn KvCas>>;
}

/// One compare-and-swap in progress (Spin's `Cas` resource): `current`, then `swap` once.
pub trait KvCas: Send {
    /// Reads the value now and remembers what the swap must compare with.
    fn current(&mut self) -> KvResult<Option<Vec<u8>>>;
    /// Writes `value` if the key still holds what `current` read. `Err(KvError::CasFailed)` is
    /// what the backend *answers*, which on Redis says nothing about whether it wrote.
    fn swap(self: Box<Self>, value: &[u8]) -> KvResult<()>;
}

/// Stores that compare values themselves (SQLite, memory): replace the value if it still equals
/// `expected` (`KvError::CasFailed` otherwise); with `expected: None`, write unconditionally —
/// the upsert Spin's SQLite store does when `current()` saw the key absent or was never called.
trait GuardedSwap: KvBackend {
    fn swap_if(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> KvResult<()>;
}

/// A compare-and-swap on a [`GuardedSwap`] store: remembers what `current` read.
struct RememberingCas<B> {
    backend: Arc<B>,
    store: String,
    key: String,
    seen: Option<Vec<u8>>,
}

impl<B: GuardedSwap + 'static> RememberingCas<B> {
    fn start(backend: Arc<B>, store: &str, key: &str) -> KvResult<Box<dyn KvCas>> {
        Ok(Box::new(RememberingCas {
            backend,
            store: store.to_owned(),
            key: key.to_owned(),
            seen: None,
        }))
    }
}

impl<B: GuardedSwap + 'static> KvCas for RememberingCas<B> {
    fn current(&mut self) -> KvResult<Option<Vec<u8>>> {
        self.seen = self.backend.get(&self.store, &self.key)?;
        Ok(self.seen.clone())
    }

    fn swap(self: Box<Self>, value: &[u8]) -> KvResult<()> {
        self.backend
            .swap_if(&self.store, &self.key, self.seen.as_deref(), value)
    }
}

fn decode_counter(value: Vec<u8>) -> KvResult<i64> {
    let bytes: [u8; 8] = value.try_into().map_err(|v: Vec<u8>| {
        KvError::Trap(format!(
            "increment: stored value has {} bytes, not 8",
            v.len()
        ))
    })?;
    Ok(i64::from_le_bytes(bytes))
}

/// Answers in the order asked, once per key, leaving absent keys out.
fn in_request_order(
    keys: &[String],
    mut found: BTreeMap<String, Vec<u8>>,
) -> Vec<(String, Vec<u8>)> {
    keys.iter().filter_map(|k| found.remove_entry(k)).collect()
}

/// Spin's default store: table `spin_key_value` in one SQLite file, one connection.
///
/// Like Spin, the file is opened on first use, so a bad path surfaces as a store error.
pub struct SqliteBackend {
    path: Option<PathBuf>,
    conn: Mutex<Option<Connection>>,
}

fn sql_err(e: rusqlite::Error) -> KvError {
    KvError::Other(e.to_string())
}

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3) \
                      ON CONFLICT(store, key) DO UPDATE SET value = ?3";
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2";

impl SqliteBackend {
    /// Open (or create) the database file, its folder and its table now.
    pub fn open(path: impl Into<PathBuf>) -> anyhow::Result<Arc<SqliteBackend>> {
        let backend = Self::lazy(path);
        backend
            .with_conn(|_| Ok(()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(backend)
    }

    /// Like `open`, but the file is only touched by the first operation.
    pub fn lazy(path: impl Into<PathBuf>) -> Arc<SqliteBackend> {
        Arc::new(SqliteBackend {
            path: Some(path.into()),
            conn: Mutex::new(None),
        })
    }

    /// A private database that vanishes with the backend (tests).
    pub fn in_memory() -> Arc<SqliteBackend> {
        Arc::new(SqliteBackend {
            path: None,
            conn: Mutex::new(None),
        })
    }

    fn connect(&self) -> anyhow::Result<Connection> {
        let conn = match &self.path {
            Some(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Connection::open(path)?
            }
            None => Connection::open_in_memory()?,
        };
        // Same schema as Spin so the file can be shared with `spin up`.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                PRIMARY KEY (store, key));",
        )?;
        // Another process (a real `spin up`) may hold the file briefly.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(conn)
    }

    /// Runs `f` on the one connection; requests take turns, which keeps every operation atomic.
    ///
    /// Inside `tokio::task::block_in_place` when on a multi-threaded runtime, as Spin runs every
    /// call of its SQLite store: the worker thread is handed over for the call, and what other
    /// tasks that frees to run, when, is part of how Spin behaves (a response handed over
    /// before its body is written goes out in two writes there: see `shared::spin::respond`).
    fn with_conn<T>(&self, f: impl FnOnce(&mut Connection) -> KvResult<T>) -> KvResult<T> {
        let multi_threaded = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        if multi_threaded {
            tokio::task::block_in_place(|| self.with_conn_here(f))
        } else {
            self.with_conn_here(f)
        }
    }

    fn with_conn_here<T>(&self, f: impl FnOnce(&mut Connection) -> KvResult<T>) -> KvResult<T> {
        let mut slot = self
            .conn
            .lock()
            .map_err(|_| KvError::Other("store lock poisoned".into()))?;
        if slot.is_none() {
            *slot = Some(
                self.connect()
                    .map_err(|e| KvError::Other(format!("cannot open store: {e:#}")))?,
            );
        }
        match slot.as_mut() {
            Some(conn) => f(conn),
            None => Err(KvError::Other("store not open".into())),
        }
    }

    fn placeholders(n: usize) -> String {
        (0..n)
            .map(|i| format!("?{}", i + 2))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl KvBackend for SqliteBackend {
    fn get(&self, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(SELECT).map_err(sql_err)?;
            stmt.query_row(params![store, key], |r| r.get(0))
                .optional()
                .map_err(sql_err)
        })
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
        self.with_conn(|c| {
            let mut stmt = c.prepare_cached(UPSERT).map_err(sql_err)?;
            stmt.execute(params![store, key, value])
                .map(drop)
                .map_err(sql_err)
        })
    }

    fn delete(&self, store: &str, key: &str) -> KvResult<()> {
        self.with_conn(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![store, key]))
                .map(drop)
                .map_err(sql_err)
        })
    }

    fn exists(&self, store: &str, key: &str) -> KvResult<bool> {
        Ok(self.get(store, key)?.is_some())
    }

    fn keys(&self, store: &str) -> KvResult<Vec<String>> {
        self.with_conn(|c| {
            let mut stmt = c
                .prepare_cached("SELECT key FROM spin_key_value WHERE store = ?1")
                .map_err(sql_err)?;
            let rows = stmt
                .query_map(params![store], |r| r.get(0))
                .map_err(sql_err)?;
            rows.collect::<Result<_, _>>().map_err(sql_err)
        })
    }

    fn get_many(&self, store: &str, keys: &[String]) -> KvResult<Vec<(String, Vec<u8>)>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One query for the whole batch, as Spin does.
        let sql = format!(
            "SELECT key, value FROM spin_key_value WHERE store = ?1 AND key IN ({})",
            Self::placeholders(keys.len())
        );
        let found = self.with_conn(|c| {
            let mut stmt = c.prepare(&sql).map_err(sql_err)?;
            let args = std::iter::once(store).chain(keys.iter().map(String::as_str));
            let rows = stmt
                .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sql_err)?;
            rows.collect::<Result<BTreeMap<_, _>, _>>().map_err(sql_err)
        })?;
        Ok(in_request_order(keys, found))
    }

    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> KvResult<()> {
        self.with_conn(|c| {
            let tx = c.transaction().map_err(sql_err)?;
            for (key, value) in entries {
                tx.prepare_cached(UPSERT)
                    .and_then(|mut s| s.execute(params![store, key, value]))
                    .map_err(sql_err)?;
            }
            tx.commit().map_err(sql_err)
        })
    }

    fn delete_many(&self, store: &str, keys: &[String]) -> KvResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM spin_key_value WHERE store = ?1 AND key IN ({})",
            Self::placeholders(keys.len())
        );
        self.with_conn(|c| {
            let args = std::iter::once(store).chain(keys.iter().map(String::as_str));
            c.execute(&sql, params_from_iter(args))
                .map(drop)
                .map_err(sql_err)
        })
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> KvResult<i64> {
        self.with_conn(|c| {
            // Read and write in one transaction so concurrent increments never lose an update.
            let tx = c.transaction().map_err(sql_err)?;
            let old: Option<Vec<u8>> = tx
                .query_row(SELECT, params![store, key], |r| r.get(0))
                .optional()
                .map_err(sql_err)?;
            // Returning early drops `tx`, which rolls back: nothing was written.
            let current = old.map(decode_counter).transpose()?.unwrap_or(0);
            // Spin (a release build) wraps on overflow.
            let new = current.wrapping_add(delta);
            tx.execute(UPSERT, params![store, key, new.to_le_bytes().as_slice()])
                .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(new)
        })
    }

    fn cas(self: Arc<Self>, store: &str, key: &str) -> KvResult<Box<dyn KvCas>> {
        RememberingCas::start(self, store, key)
    }
}

impl GuardedSwap for SqliteBackend {
    fn swap_if(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> KvResult<()> {
        let changed = self.with_conn(|c| {
            match expected {
                Some(old) => c
                    .prepare_cached(
                        "UPDATE spin_key_value SET value = ?4 WHERE store = ?1 AND key = ?2 AND value = ?3",
                    )
                    .and_then(|mut s| s.execute(params![store, key, old, value])),
                // Spin's upsert: the key was absent when read, so nothing guards the write.
                None => c.prepare_cached(UPSERT).and_then(|mut s| s.execute(params![store, key, value])),
            }
            .map_err(sql_err)
        })?;
        if changed == 1 {
            Ok(())
        } else {
            Err(KvError::CasFailed)
        }
    }
}

/// An in-memory store with the same semantics as `SqliteBackend`.
#[derive(Default)]
pub struct MemoryBackend {
    data: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

type MemMap = BTreeMap<(String, String), Vec<u8>>;

impl MemoryBackend {
    pub fn new() -> Arc<MemoryBackend> {
        Arc::new(MemoryBackend::default())
    }

    fn data(&self) -> KvResult<MutexGuard<'_, MemMap>> {
        self.data
            .lock()
            .map_err(|_| KvError::Other("store lock poisoned".into()))
    }
}

fn k(store: &str, key: &str) -> (String, String) {
    (store.to_owned(), key.to_owned())
}

impl KvBackend for MemoryBackend {
    fn get(&self, store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        Ok(self.data()?.get(&k(store, key)).cloned())
    }

    fn set(&self, store: &str, key: &str, value: &[u8]) -> KvResult<()> {
        self.data()?.insert(k(store, key), value.to_vec());
        Ok(())
    }

    fn delete(&self, store: &str, key: &str) -> KvResult<()> {
        self.data()?.remove(&k(store, key));
        Ok(())
    }

    fn exists(&self, store: &str, key: &str) -> KvResult<bool> {
        Ok(self.data()?.contains_key(&k(store, key)))
    }

    fn keys(&self, store: &str) -> KvResult<Vec<String>> {
        let data = self.data()?;
        Ok(data
            .keys()
            .filter(|(s, _)| s == store)
            .map(|(_, key)| key.clone())
            .collect())
    }

    fn get_many(&self, store: &str, keys: &[String]) -> KvResult<Vec<(String, Vec<u8>)>> {
        let data = self.data()?;
        let wanted: HashSet<&String> = keys.iter().collect();
        let found = wanted
            .into_iter()
            .filter_map(|key| data.get(&k(store, key)).map(|v| (key.clone(), v.clone())))
            .collect();
        Ok(in_request_order(keys, found))
    }

    fn set_many(&self, store: &str, entries: &[(String, Vec<u8>)]) -> KvResult<()> {
        let mut data = self.data()?;
        for (key, value) in entries {
            data.insert(k(store, key), value.clone());
        }
        Ok(())
    }

    fn delete_many(&self, store: &str, keys: &[String]) -> KvResult<()> {
        let mut data = self.data()?;
        for key in keys {
            data.remove(&k(store, key));
        }
        Ok(())
    }

    fn increment(&self, store: &str, key: &str, delta: i64) -> KvResult<i64> {
        let mut data = self.data()?;
        let current = data
            .get(&k(store, key))
            .cloned()
            .map(decode_counter)
            .transpose()?
            .unwrap_or(0);
        let new = current.wrapping_add(delta);
        data.insert(k(store, key), new.to_le_bytes().to_vec());
        Ok(new)
    }

    fn cas(self: Arc<Self>, store: &str, key: &str) -> KvResult<Box<dyn KvCas>> {
        RememberingCas::start(self, store, key)
    }
}

impl GuardedSwap for MemoryBackend {
    fn swap_if(
        &self,
        store: &str,
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> KvResult<()> {
        let mut data = self.data()?;
        let entry = k(store, key);
        match expected {
            Some(old) if data.get(&entry).map(Vec::as_slice) != Some(old) => {
                Err(KvError::CasFailed)
            }
            _ => {
                data.insert(entry, value.to_vec());
                Ok(())
            }
        }
    }
}

/// Wraps a backend and fails chosen operations with `other("injected fault")`, changing nothing.
///
/// Every trait call except `store_exists` and `cas` counts as one operation, and so do a
/// compare-and-swap's `current` and `swap`.
pub struct FaultyBackend {
    inner: Arc<dyn KvBackend>,
    ops: AtomicU64,
    /// Absolute operation number that fails once; 0 = none.
    fail_at: AtomicU64,
    /// Absolute operation number from which every operation fails; 0 = none.
    fail_from: AtomicU64,
    fail_all: AtomicBool,
}

/// The error text a failed injected operation carries.
pub const INJECTED_FAULT: &str = "injected fault";

impl FaultyBackend {
    pub fn new(inner: Arc<dyn KvBackend>) -> Arc<FaultyBackend> {
        Arc::new(FaultyBackend {
            inner,
            ops: AtomicU64::new(0),
            fail_at: AtomicU64::new(0),
            fail_from: AtomicU64::new(0),
            fail_all: AtomicBool::new(false),
        })
    }

    /// Fail once the `n`-th operation from now (1-based); `0` disarms it.
    pub fn fail_nth(&self, n: u64) {
        let at = if n == 0 {
            0
        } else {
            self.ops.load(Ordering::SeqCst) + n
        };
        self.fail_at.store(at, Ordering::SeqCst);
    }

    /// Fail the `n`-th operation from now (1-based) and every one after it, until
    /// [`FaultyBackend::disarm`]: a request that dies at that point, clean-up included.
    pub fn fail_from(&self, n: u64) {
        self.fail_from
            .store(self.ops.load(Ordering::SeqCst) + n.max(1), Ordering::SeqCst);
    }

    /// Fail every operation while `on`.
    pub fn fail_all(&self, on: bool) {
        self.fail_all.store(on, Ordering::SeqCst);
    }

    /// Operations attempted since creation, failed ones included.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Clear `fail_nth`, `fail_from` and `fail_all`.
    pub fn disarm(&self) {
        self.fail_at.store(0, Ordering::SeqCst);
        self.fail_from.store(0, Ordering::SeqCst);
        self.fail_all.store(false, Ordering::SeqCst);
    }

    /// Counts one operation and fails it if it is a chosen one.
    fn count(&self) -> KvResult<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        let nth = self
            .fail_at
            .compare_exchange(n, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        let from = self.fail_from.load(Ordering::SeqCst);
        if nth || (from != 0 && n >= from) || self.fail_all.load(Ordering::SeqCst) {
            return Err(KvError::Other(INJECTED_FAULT.into()));
        }
        Ok(())
    }

    fn op<T>(&self, run: impl FnOnce(&dyn KvBackend) -> KvResult<T>) -> KvResult<T> {
        self.count()?;
        run(self.inner.as_ref())
    }
}

impl KvBackend for FaultyBackend {
    fn store_exists(&self, label: &str) -> bool {
        self.inner.store_exists(label)
    }
    fn get(&self, s: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.op(|b| b.get(s, key))
    }
    fn set(&self, s: &str, key: &str, value: &[u8]) -> KvResult<()> {
        self.op(|b| b.set(s, key, value))
    }
    fn delete(&self, s: &str, key: &str) -> KvResult<()> {
        self.op(|b| b.delete(s, key))
    }
    fn exists(&self, s: &str, key: &str) -> KvResult<bool> {
        self.op(|b| b.exists(s, key))
    }
    fn keys(&self, s: &str) -> KvResult<Vec<String>> {
        self.op(|b| b.keys(s))
    }
    fn get_many(&self, s: &str, keys: &[String]) -> KvResult<Vec<(String, Vec<u8>)>> {
        self.op(|b| b.get_many(s, keys))
    }
    fn set_many(&self, s: &str, entries: &[(String, Vec<u8>)]) -> KvResult<()> {
        self.op(|b| b.set_many(s, entries))
    }
    fn delete_many(&self, s: &str, keys: &[String]) -> KvResult<()> {
        self.op(|b| b.delete_many(s, keys))
    }
    fn increment(&self, s: &str, key: &str, delta: i64) -> KvResult<i64> {
        self.op(|b| b.increment(s, key, delta))
    }
    fn cas(self: Arc<Self>, s: &str, key: &str) -> KvResult<Box<dyn KvCas>> {
        let inner = self.inner.clone().cas(s, key)?;
        Ok(Box::new(FaultyCas {
            faults: self,
            inner,
        }))
    }
}

/// A compare-and-swap whose `current` and `swap` count as operations of a [`FaultyBackend`].
struct FaultyCas {
    faults: Arc<FaultyBackend>,
    inner: Box<dyn KvCas>,
}

impl KvCas for FaultyCas {
    fn current(&mut self) -> KvResult<Option<Vec<u8>>> {
        self.faults.count()?;
        self.inner.current()
    }
    fn swap(self: Box<Self>, value: &[u8]) -> KvResult<()> {
        self.faults.count()?;
        self.inner.swap(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "default";

    fn backends() -> Vec<(&'static str, Arc<dyn KvBackend>)> {
        vec![
            ("sqlite", SqliteBackend::in_memory() as Arc<dyn KvBackend>),
            ("memory", MemoryBackend::new() as Arc<dyn KvBackend>),
        ]
    }

    /// Runs one behaviour against both backends so their semantics cannot drift apart.
    fn on_both(check: impl Fn(&Arc<dyn KvBackend>)) {
        for (name, b) in backends() {
            eprintln!("backend: {name}");
            check(&b);
        }
    }

    #[test]
    fn get_set_delete_exists_and_keys() {
        on_both(|b| {
            assert_eq!(b.get(S, "a").unwrap(), None);
            b.set(S, "a", b"1").unwrap();
            b.set(S, "b", b"2").unwrap();
            b.set("other", "c", b"3").unwrap();
            assert_eq!(b.get(S, "a").unwrap(), Some(b"1".to_vec()));
            assert!(b.exists(S, "b").unwrap());
            let mut keys = b.keys(S).unwrap();
            keys.sort();
            assert_eq!(keys, ["a", "b"]);
            b.delete(S, "a").unwrap();
            b.delete(S, "never").unwrap();
            assert!(!b.exists(S, "a").unwrap());
        });
    }

    #[test]
    fn get_many_omits_absent_keys_and_keeps_request_order() {
        on_both(|b| {
            b.set_many(
                S,
                &[("x".into(), b"1".to_vec()), ("y".into(), b"2".to_vec())],
            )
            .unwrap();
            let got = b
                .get_many(S, &["y".into(), "nope".into(), "x".into(), "y".into()])
                .unwrap();
            assert_eq!(
                got,
                [
                    ("y".to_string(), b"2".to_vec()),
                    ("x".to_string(), b"1".to_vec())
                ]
            );
            assert!(b.get_many(S, &[]).unwrap().is_empty());
            b.delete_many(S, &["x".into(), "nope".into()]).unwrap();
            assert_eq!(b.keys(S).unwrap(), ["y"]);
        });
    }

    #[test]
    fn cas_on_absent_key_is_an_upsert_that_always_wins() {
        on_both(|b| {
            let mut cas = b.clone().cas(S, "k").unwrap();
            assert_eq!(cas.current().unwrap(), None);
            // Another writer creates the key between current() and swap().
            b.set(S, "k", b"theirs").unwrap();
            cas.swap(b"mine").unwrap();
            assert_eq!(b.get(S, "k").unwrap(), Some(b"mine".to_vec()));
        });
    }

    #[test]
    fn cas_fails_when_value_changed_and_succeeds_when_unchanged() {
        on_both(|b| {
            b.set(S, "k", b"v1").unwrap();
            let mut cas = b.clone().cas(S, "k").unwrap();
            assert_eq!(cas.current().unwrap(), Some(b"v1".to_vec()));
            b.set(S, "k", b"v2").unwrap();
            assert_eq!(cas.swap(b"v3"), Err(KvError::CasFailed));
            assert_eq!(b.get(S, "k").unwrap(), Some(b"v2".to_vec()));
            let mut cas = b.clone().cas(S, "k").unwrap();
            cas.current().unwrap();
            cas.swap(b"v3").unwrap();
            assert_eq!(b.get(S, "k").unwrap(), Some(b"v3".to_vec()));
            // Deleted meanwhile: the guarded update finds no row.
            let mut cas = b.clone().cas(S, "k").unwrap();
            cas.current().unwrap();
            b.delete(S, "k").unwrap();
            assert_eq!(cas.swap(b"v4"), Err(KvError::CasFailed));
            assert!(!b.exists(S, "k").unwrap());
        });
    }

    #[test]
    fn increment_treats_absent_as_zero_and_stores_le_i64() {
        on_both(|b| {
            assert_eq!(b.increment(S, "n", 5).unwrap(), 5);
            assert_eq!(b.increment(S, "n", -7).unwrap(), -2);
            assert_eq!(b.get(S, "n").unwrap(), Some((-2i64).to_le_bytes().to_vec()));
        });
    }

    #[test]
    fn increment_on_non_8_byte_value_traps_and_changes_nothing() {
        on_both(|b| {
            b.set(S, "n", b"12").unwrap();
            assert!(matches!(b.increment(S, "n", 1), Err(KvError::Trap(_))));
            assert_eq!(b.get(S, "n").unwrap(), Some(b"12".to_vec()));
            // The store still works afterwards (Spin's poisoned mutex is not mirrored).
            b.set(S, "m", b"ok").unwrap();
        });
    }

    #[test]
    fn sqlite_file_uses_spins_table_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".spin/sqlite_key_value.db");
        SqliteBackend::open(&path)
            .unwrap()
            .set(S, "k", b"v")
            .unwrap();
        let conn = Connection::open(&path).unwrap();
        let v: Vec<u8> = conn
            .query_row(
                "SELECT value FROM spin_key_value WHERE store='default' AND key='k'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, b"v");
        assert_eq!(
            SqliteBackend::open(&path).unwrap().get(S, "k").unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn fault_injector_fails_the_nth_op_once_and_changes_nothing() {
        let f = FaultyBackend::new(MemoryBackend::new());
        f.set(S, "a", b"1").unwrap();
        f.fail_nth(2);
        assert_eq!(f.get(S, "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            f.set(S, "a", b"2"),
            Err(KvError::Other(INJECTED_FAULT.into()))
        );
        assert_eq!(f.get(S, "a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(f.ops(), 4);
    }

    #[test]
    fn fault_injector_fail_all_and_disarm() {
        let f = FaultyBackend::new(MemoryBackend::new());
        f.fail_all(true);
        assert!(f.increment(S, "n", 1).is_err());
        assert!(f.clone().cas(S, "n").unwrap().swap(b"x").is_err());
        f.fail_nth(1);
        f.disarm();
        assert_eq!(f.increment(S, "n", 1).unwrap(), 1);
        assert_eq!(f.ops(), 3);
    }
}

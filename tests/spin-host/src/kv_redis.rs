//! The `default` store in Redis, spoken as Spin's `key-value-redis` backend speaks it: the same
//! commands, and the same reading of the replies, misreports included.
//!
//! Read from spinframework/spin `crates/key-value-redis/src/store.rs` (Spin 4.1, redis crate
//! 0.32) and measured on real Spin 4.1 with Redis 7.0 (SPIN-FACTS.md):
//! - `get` `GET`, `set` `SET`, `delete` `DEL`, `exists` `EXISTS`, `get-keys` `KEYS *`,
//!   `set-many` `MSET`, `delete-many` `DEL`, `increment` `INCRBY` (Redis keeps the counter as
//!   decimal text, so a key written by `SET` with other bytes fails to increment: an error, not
//!   SQLite's panic). `get-many` sends `KEYS` with the keys as arguments, which Redis refuses for
//!   more than one key: it fails here as it fails there.
//! - A compare-and-swap opens a connection of its own at `cas.new`; `current()` sends
//!   `WATCH key` and `GET key` on it; `swap` sends `MULTI`, `SET`, `EXEC` there and then
//!   `UNWATCH key`. The write is sound: `EXEC` runs the `SET` only if the key did not change
//!   since `WATCH` (absent keys included). The answer is not: `UNWATCH` takes no argument, so
//!   Redis answers an error and Spin reports `cas-failed` after **every** swap, landed or not;
//!   and `EXEC`'s reply is read as `()`, which also accepts the nil of an aborted transaction,
//!   so with the stray argument gone a lost race is reported as **success**.
//!   [`RedisCasAnswers`] picks either behaviour, so the suite runs against today's Spin and the
//!   fixed one.
//!
//! Spin shares one multiplexed connection for plain commands; this host keeps a small pool of
//! blocking connections instead (the backends are synchronous), which no component can notice.
//! Unlike Spin, which waits for an unreachable Redis indefinitely, connections here time out,
//! so a stopped Redis answers store errors.

use crate::kv::{KvBackend, KvCas, KvError, KvResult};
use redis::{Client, Connection, RedisError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a connection attempt, a read or a write may take before it is a store error.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Idle pooled connections kept for plain commands.
const POOL_SIZE: usize = 16;

/// What a Redis compare-and-swap answers (its write is guarded either way). Also the value of
/// `spin-host up`'s hidden `--redis-cas` flag: `spin41` or `unwatch-fixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RedisCasAnswers {
    /// As Spin 4.1: `UNWATCH key` fails, so every swap answers `cas-failed`.
    #[default]
    Spin41,
    /// As Spin will once `UNWATCH` loses its argument: every swap whose commands went through
    /// answers success, a lost race (nil `EXEC`) included. For tests.
    UnwatchFixed,
}

/// Spin's Redis backend for the `default` store.
pub struct RedisBackend {
    client: Client,
    pool: Mutex<Vec<Connection>>,
    answers: RedisCasAnswers,
}

fn redis_err(e: RedisError) -> KvError {
    KvError::Other(format!("redis: {e}"))
}

impl RedisBackend {
    /// A backend for `url` (`redis://host:port[/db]`); no connection is made until first use,
    /// as Spin connects lazily too.
    pub fn new(url: &str, answers: RedisCasAnswers) -> anyhow::Result<Arc<RedisBackend>> {
        let client = Client::open(url).map_err(|e| anyhow::anyhow!("invalid Redis URL: {e}"))?;
        Ok(Arc::new(RedisBackend {
            client,
            pool: Mutex::new(Vec::new()),
            answers,
        }))
    }

    fn connect(&self) -> KvResult<Connection> {
        let connection = self
            .client
            .get_connection_with_timeout(TIMEOUT)
            .map_err(redis_err)?;
        connection
            .set_read_timeout(Some(TIMEOUT))
            .and_then(|()| connection.set_write_timeout(Some(TIMEOUT)))
            .map_err(redis_err)?;
        Ok(connection)
    }

    /// Runs `f` on a pooled connection; one that failed is dropped rather than reused.
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> KvResult<T> {
        let pooled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let mut connection = match pooled {
            Some(connection) => connection,
            None => self.connect()?,
        };
        let result = f(&mut connection).map_err(redis_err)?;
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < POOL_SIZE {
                pool.push(connection);
            }
        }
        Ok(result)
    }
}

impl KvBackend for RedisBackend {
    fn get(&self, _store: &str, key: &str) -> KvResult<Option<Vec<u8>>> {
        self.with_connection(|c| redis::cmd("GET").arg(key).query(c))
    }

    fn set(&self, _store: &str, key: &str, value: &[u8]) -> KvResult<()> {
        self.with_connection(|c| redis::cmd("SET").arg(key).arg(value).query(c))
    }

    fn delete(&self, _store: &str, key: &str) -> KvResult<()> {
        self.with_connection(|c| redis::cmd("DEL").arg(key).query(c))
    }

    fn exists(&self, _store: &str, key: &str) -> KvResult<bool> {
        self.with_connection(|c| redis::cmd("EXISTS").arg(key).query(c))
    }

    fn keys(&self, _store: &str) -> KvResult<Vec<String>> {
        self.with_connection(|c| redis::cmd("KEYS").arg("*").query(c))
    }

    fn get_many(&self, _store: &str, keys: &[String]) -> KvResult<Vec<(String, Vec<u8>)>> {
        // Spin sends `KEYS k1 k2 ...` (the crate's `keys`, not `MGET`) and reads pairs back.
        let pairs: Vec<(String, Option<Vec<u8>>)> =
            self.with_connection(|c| redis::cmd("KEYS").arg(keys).query(c))?;
        Ok(pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    fn set_many(&self, _store: &str, entries: &[(String, Vec<u8>)]) -> KvResult<()> {
        self.with_connection(|c| redis::cmd("MSET").arg(entries).query(c))
    }

    fn delete_many(&self, _store: &str, keys: &[String]) -> KvResult<()> {
        self.with_connection(|c| redis::cmd("DEL").arg(keys).query(c))
    }

    fn increment(&self, _store: &str, key: &str, delta: i64) -> KvResult<i64> {
        self.with_connection(|c| redis::cmd("INCRBY").arg(key).arg(delta).query(c))
    }

    fn cas(self: Arc<Self>, _store: &str, key: &str) -> KvResult<Box<dyn KvCas>> {
        // Redis transactions belong to a connection, so each compare-and-swap opens its own,
        // and closes it when dropped (which also drops its WATCH).
        Ok(Box::new(RedisCas {
            connection: self.connect()?,
            key: key.to_owned(),
            answers: self.answers,
        }))
    }
}

/// One compare-and-swap on its own connection.
struct RedisCas {
    connection: Connection,
    key: String,
    answers: RedisCasAnswers,
}

impl KvCas for RedisCas {
    fn current(&mut self) -> KvResult<Option<Vec<u8>>> {
        redis::cmd("WATCH")
            .arg(&self.key)
            .exec(&mut self.connection)
            .map_err(redis_err)?;
        redis::cmd("GET")
            .arg(&self.key)
            .query(&mut self.connection)
            .map_err(redis_err)
    }

    fn swap(mut self: Box<Self>, value: &[u8]) -> KvResult<()> {
        // MULTI; SET; EXEC. Read as `()`, as Spin reads it: the nil reply of a transaction that
        // the WATCH aborted passes as success.
        let transaction: Result<(), RedisError> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&self.key)
            .arg(value)
            .query(&mut self.connection);
        let mut unwatch = redis::cmd("UNWATCH");
        if self.answers == RedisCasAnswers::Spin41 {
            // Spin 4.1 passes the key, which Redis refuses ("wrong number of arguments"), and
            // reports that refusal as `cas-failed` whether the SET landed or not.
            unwatch.arg(&self.key);
        }
        unwatch
            .exec(&mut self.connection)
            .map_err(|_| KvError::CasFailed)?;
        // Spin reports any error of the transaction as `cas-failed` too.
        transaction.map_err(|_| KvError::CasFailed)
    }
}

//! The Redis backend against a real `redis-server`: Spin's commands, encodings and the answers
//! its compare-and-swap gives — the misreports of Spin 4.1 and of the fix to come.

use spin_host::{KvBackend, KvError, RedisBackend, RedisCasAnswers, RedisServer};
use std::sync::Arc;

const S: &str = "default";

fn backend(server: &RedisServer, answers: RedisCasAnswers) -> Arc<dyn KvBackend> {
    RedisBackend::new(&server.url(), answers).expect("backend")
}

#[test]
fn plain_commands_behave_as_spins_redis_store() {
    let server = RedisServer::start().expect("redis-server");
    let b = backend(&server, RedisCasAnswers::Spin41);
    assert_eq!(b.get(S, "a").unwrap(), None);
    b.set(S, "a", b"\x00binary\xff").unwrap();
    assert_eq!(b.get(S, "a").unwrap(), Some(b"\x00binary\xff".to_vec()));
    assert!(b.exists(S, "a").unwrap());
    b.delete(S, "a").unwrap();
    b.delete(S, "never").unwrap();
    assert!(!b.exists(S, "a").unwrap());
    b.set(S, "x", b"1").unwrap();
    assert_eq!(b.keys(S).unwrap(), ["x"]);
}

#[test]
fn increment_keeps_decimal_text_and_refuses_other_values() {
    let server = RedisServer::start().expect("redis-server");
    let b = backend(&server, RedisCasAnswers::Spin41);
    assert_eq!(b.increment(S, "n", 0).unwrap(), 0);
    assert_eq!(b.increment(S, "n", 5).unwrap(), 5);
    assert_eq!(b.get(S, "n").unwrap(), Some(b"5".to_vec()));
    // SQLite's 8-byte little-endian counter is no integer to Redis: an error, not a panic.
    b.set(S, "le", &7i64.to_le_bytes()).unwrap();
    assert!(matches!(b.increment(S, "le", 1), Err(KvError::Other(_))));
}

#[test]
fn get_many_fails_as_spins_keys_based_get_many_does() {
    let server = RedisServer::start().expect("redis-server");
    let b = backend(&server, RedisCasAnswers::Spin41);
    b.set(S, "a", b"1").unwrap();
    b.set(S, "b", b"2").unwrap();
    assert!(b.get_many(S, &["a".into(), "b".into()]).is_err());
}

/// Runs a swap that should land and one that loses a race; returns their answers.
fn landed_and_lost(b: &Arc<dyn KvBackend>) -> (Result<(), KvError>, Result<(), KvError>) {
    b.set(S, "k", b"v1").unwrap();
    let mut cas = b.clone().cas(S, "k").unwrap();
    assert_eq!(cas.current().unwrap(), Some(b"v1".to_vec()));
    let landed = cas.swap(b"v2");
    assert_eq!(
        b.get(S, "k").unwrap(),
        Some(b"v2".to_vec()),
        "the swap landed"
    );

    let mut cas = b.clone().cas(S, "k").unwrap();
    cas.current().unwrap();
    b.set(S, "k", b"theirs").unwrap();
    let lost = cas.swap(b"mine");
    assert_eq!(
        b.get(S, "k").unwrap(),
        Some(b"theirs".to_vec()),
        "WATCH kept the lost swap from writing"
    );
    (landed, lost)
}

#[test]
fn spin_4_1_answers_cas_failed_after_every_swap_landed_or_not() {
    let server = RedisServer::start().expect("redis-server");
    let (landed, lost) = landed_and_lost(&backend(&server, RedisCasAnswers::Spin41));
    assert_eq!(landed, Err(KvError::CasFailed));
    assert_eq!(lost, Err(KvError::CasFailed));
}

#[test]
fn with_unwatch_fixed_a_lost_race_is_answered_as_success() {
    let server = RedisServer::start().expect("redis-server");
    let (landed, lost) = landed_and_lost(&backend(&server, RedisCasAnswers::UnwatchFixed));
    assert_eq!(landed, Ok(()));
    assert_eq!(lost, Ok(()));
}

#[test]
fn a_swap_after_seeing_a_key_absent_is_guarded_unlike_sqlite() {
    let server = RedisServer::start().expect("redis-server");
    let b = backend(&server, RedisCasAnswers::UnwatchFixed);
    let mut cas = b.clone().cas(S, "new").unwrap();
    assert_eq!(cas.current().unwrap(), None);
    b.set(S, "new", b"theirs").unwrap();
    let _ = cas.swap(b"mine");
    assert_eq!(b.get(S, "new").unwrap(), Some(b"theirs".to_vec()));
}

#[test]
fn a_stopped_redis_is_a_store_error() {
    let mut server = RedisServer::start().expect("redis-server");
    let b = backend(&server, RedisCasAnswers::Spin41);
    b.set(S, "a", b"1").unwrap();
    server.stop();
    assert!(matches!(b.get(S, "a"), Err(KvError::Other(_))));
    assert!(matches!(b.clone().cas(S, "a"), Err(KvError::Other(_))));
}

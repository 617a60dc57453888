//! Keys, requests and readings of the store that the protocol tests share.

use super::*;

pub(super) struct Made {
    pub(super) secret: String,
    pub(super) hash: String,
    pub(super) id: String,
}

pub(super) fn new_key() -> Made {
    let k = key::generate("ak").unwrap();
    Made {
        secret: k.secret,
        hash: k.hash,
        id: k.id,
    }
}

pub(super) fn scopes() -> Vec<String> {
    vec!["read".to_string()]
}

pub(super) fn create_with<S: KeyValue>(
    store: &S,
    user: &str,
    made: &Made,
    max: u32,
    now: i64,
) -> Result<IndexEntry, ApiError> {
    create_expiring(store, user, made, max, now, None)
}

pub(super) fn create_expiring<S: KeyValue>(
    store: &S,
    user: &str,
    made: &Made,
    max: u32,
    now: i64,
    expires_at: Option<i64>,
) -> Result<IndexEntry, ApiError> {
    let scopes = scopes();
    let record = NewKeyRecord {
        hash: &made.hash,
        id: &made.id,
        preview: "ak...test",
        name: "name",
        scopes: &scopes,
        expires_at,
    };
    create(store, user, &record, max, now)
}

/// Alice's keys for a test at `NOW`: `live` that never expire, then `expired` ones whose expiry
/// is `NOW` (created an hour earlier).
pub(super) fn keys_with_expired(store: &MemoryStore, live: u32, expired: u32) -> Vec<Made> {
    let mut made: Vec<Made> = (0..live).map(|_| create_one(store, "alice")).collect();
    for _ in 0..expired {
        let key = new_key();
        create_expiring(store, "alice", &key, MAX, NOW - 3600, Some(NOW)).expect("create");
        made.push(key);
    }
    made
}

pub(super) fn create_one(store: &MemoryStore, user: &str) -> Made {
    let made = new_key();
    create_with(store, user, &made, MAX, NOW).expect("create");
    made
}

/// Whether the key answers valid at `NOW` (verify refuses an expired record it found).
pub(super) fn verifies(store: &MemoryStore, hash: &str) -> bool {
    verifies_at(store, hash, NOW)
}

pub(super) fn verifies_at(store: &MemoryStore, hash: &str, now: i64) -> bool {
    verify(store, hash, now)
        .expect("verify")
        .is_some_and(|record| !record.is_expired(now) && record.revocation.is_none())
}

/// A leak alert's revocation: found at `url`, in a commit.
pub(super) fn leak_at(url: &str, now: i64) -> Revocation {
    Revocation::new("leaked", Some(url), Some("commit"), now)
}

/// A request revoking `made[0]` on a leak alert.
pub(super) fn revoke_request(made: &[Made]) -> Request {
    Request::Revoke {
        hash: made[0].hash.clone(),
    }
}

pub(super) fn listed_ids(store: &MemoryStore, user: &str) -> Vec<String> {
    list(store, user, NOW)
        .expect("list")
        .into_iter()
        .map(|s| s.entry.id)
        .collect()
}

pub(super) fn write_only() -> Settings {
    Settings {
        scopes: Some(vec!["write".into()]),
        enabled: Some(false),
        ..Settings::default()
    }
}

pub(super) fn renamed(name: &str) -> Settings {
    Settings {
        name: Some(name.into()),
        scopes: Some(vec![name.into()]),
        enabled: Some(true),
    }
}

pub(super) fn update_one(
    store: &MemoryStore,
    user: &str,
    id: &str,
    wanted: &Settings,
) -> Result<KeySummary, ApiError> {
    update(store, user, id, wanted, &key::event_id().unwrap(), NOW)
}

/// Rolls `id` to a fresh secret with `grace` seconds for the old one: the new hash and answer.
pub(super) fn roll_with<S: KeyValue>(
    store: &S,
    user: &str,
    id: &str,
    grace: i64,
    now: i64,
) -> (String, Result<KeySummary, ApiError>) {
    let fresh = key::generate("ak").unwrap();
    let new = NewSecret {
        hash: &fresh.hash,
        preview: &fresh.preview,
    };
    let event = key::event_id().unwrap();
    let result = roll(store, user, id, &new, grace, &event, now);
    (fresh.hash, result)
}

pub(super) fn current_index(store: &MemoryStore, user: &str) -> Index {
    try_current_index(store, user).expect("the user has an index")
}

/// The index version `head` names, as it is (no repair); `None` for a user without a head.
pub(super) fn try_current_index(store: &MemoryStore, user: &str) -> Option<Index> {
    let space = UserSpace::of(user);
    let head = Head::decode(&store.get(&space.head).unwrap()?).unwrap();
    Some(read_index(store, &space, head.version).unwrap().unwrap())
}

/// The number of the index version `head` names (0 for a user without one).
pub(super) fn current_head(store: &MemoryStore, user: &str) -> u64 {
    let space = UserSpace::of(user);
    store
        .get(&space.head)
        .unwrap()
        .map_or(0, |bytes| Head::decode(&bytes).unwrap().version)
}

pub(super) fn roll_one(store: &MemoryStore, id: &str, grace: i64) -> (String, KeySummary) {
    let (hash, result) = roll_with(store, "alice", id, grace, NOW);
    (hash, result.expect("roll"))
}

/// A delete of alice's first key.
pub(super) fn delete_request(made: &[Made]) -> Request {
    Request::Delete {
        user: "alice",
        id: made[0].id.clone(),
    }
}

/// An update of alice's first key that takes rights away (see [`write_only`]).
pub(super) fn restricting_update(made: &[Made]) -> Request {
    Request::Update {
        user: "alice",
        id: made[0].id.clone(),
        wanted: write_only(),
    }
}

pub(super) fn roll_request(made: &[Made], grace: i64) -> Request {
    Request::Roll {
        user: "alice",
        id: made[0].id.clone(),
        grace,
    }
}

/// A store holding what `store` holds, to try something on without changing it.
pub(super) fn copy_of(store: &MemoryStore, answers: SwapAnswers) -> MemoryStore {
    let copy = MemoryStore::with_answers(answers);
    for (key, value) in store.snapshot() {
        copy.set(&key, &value).unwrap();
    }
    copy
}

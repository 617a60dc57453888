//! The chain of index versions and the store layout: heads, raced increments, garbage.

use super::*;

/// Spin's DynamoDB store: every `increment` that another request raced fails with an error
/// and changes nothing. This one loses the first `losses` attempts of every increment.
struct LosingIncrements {
    store: MemoryStore,
    losses: u32,
    lost_in_a_row: Cell<u32>,
    waits: std::cell::RefCell<Vec<u32>>,
}

impl KeyValue for LosingIncrements {
    type Cas = <MemoryStore as KeyValue>::Cas;
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key)
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.set(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key)
    }
    fn increment(&self, key: &str, delta: i64) -> Result<i64, StoreError> {
        if self.lost_in_a_row.get() < self.losses {
            self.lost_in_a_row.set(self.lost_in_a_row.get() + 1);
            return Err(StoreError("ConditionalCheckFailed".into()));
        }
        self.lost_in_a_row.set(0);
        self.store.increment(key, delta)
    }
    fn watch(&self, key: &str) -> Result<(Self::Cas, Option<Vec<u8>>), StoreError> {
        self.store.watch(key)
    }
    fn swap(&self, cas: Self::Cas, value: &[u8]) -> Result<crate::store::Swap, StoreError> {
        self.store.swap(cas, value)
    }
    fn back_off(&self, retry: u32) -> u32 {
        self.waits.borrow_mut().push(retry);
        retry
    }
}

#[test]
fn increments_that_lose_races_are_retried_after_growing_waits_up_to_their_bound() {
    let racing = |losses| LosingIncrements {
        store: MemoryStore::new(),
        losses,
        lost_in_a_row: Cell::new(0),
        waits: Default::default(),
    };
    // A first create increments twice (head, then seq): each loses INCREMENT_RETRIES times.
    let store = racing(INCREMENT_RETRIES);
    let made = new_key();
    create_with(&store, "alice", &made, MAX, NOW).expect("create after lost races");
    assert!(verifies(&store.store, &made.hash));
    assert_eq!(
        listed_ids(&store.store, "alice"),
        std::slice::from_ref(&made.id)
    );
    let retries: Vec<u32> = (1..=INCREMENT_RETRIES).collect();
    assert_eq!(*store.waits.borrow(), [retries.clone(), retries].concat());

    // One loss more than the bound: 503, and nothing was made.
    let store = racing(INCREMENT_RETRIES + 1);
    let made = new_key();
    let created = create_with(&store, "alice", &made, MAX, NOW);
    assert!(
        matches!(created, Err(ApiError::StoreUnavailable(_))),
        "{created:?}"
    );
    assert!(!verifies(&store.store, &made.hash));
    assert!(listed_ids(&store.store, "alice").is_empty());
}

#[test]
fn heads_written_by_redis_style_stores_keep_their_decimal_encoding() {
    let store = MemoryStore::new();
    let user = UserSpace::of("alice");
    // Redis stores increments as decimal text: start alice's head that way.
    store.set(&user.head, b"0").unwrap();
    let first = create_one(&store, "alice");
    let head = store.get(&user.head).unwrap().unwrap();
    assert!(head.iter().all(u8::is_ascii_digit), "{head:?}");
    create_one(&store, "alice");
    delete(&store, "alice", &first.id, NOW).unwrap();
    assert_eq!(listed_ids(&store, "alice").len(), 1);
}

#[test]
fn head_encodings_round_trip_and_are_never_confused() {
    for version in [0u64, 1, 9, 10, 12345678, 1 << 40] {
        for encoding in [IntEncoding::LittleEndian, IntEncoding::Decimal] {
            let decoded = Head::decode(&Head::encode(version, encoding)).unwrap();
            assert_eq!((decoded.version, decoded.encoding), (version, encoding));
        }
    }
    assert!(Head::decode(b"").is_err());
    assert!(Head::decode(b"12x").is_err());
    assert!(Head::decode(&[1, 2, 3]).is_err());
}

/// Whatever the swaps answered, nothing that is published is deleted and nothing unpublished
/// is left: after creates and deletes the store holds the head, the counter, the one index the
/// head names and one record per live key.
fn a_quiet_store_holds_exactly_the_live_data(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made: Vec<Made> = (0..4).map(|_| create_one(&store, "alice")).collect();
    delete(&store, "alice", &made[1].id, NOW).unwrap();
    let last = create_one(&store, "alice");
    let user = UserSpace::of("alice");
    let head = Head::decode(&store.get(&user.head).unwrap().unwrap())
        .unwrap()
        .version;
    let mut expected: Vec<String> = vec![user.head.clone(), user.seq.clone(), user.index(head)];
    for m in [&made[0], &made[2], &made[3], &last] {
        expected.push(record_key(&m.hash));
    }
    expected.sort();
    let stored: Vec<String> = store.snapshot().into_keys().collect();
    assert_eq!(stored, expected);
    assert_eq!(listed_ids(&store, "alice").len(), 4);
}

/// During a rolling upgrade a newer version may write a record this one cannot parse (a new
/// state, say): it may be a live key, so reclaim keeps it and verify refuses it.
fn a_record_this_version_cannot_read_is_never_reclaimed(answers: SwapAnswers) {
    let store = MemoryStore::with_answers(answers);
    let made: Vec<Made> = (0..MAX).map(|_| create_one(&store, "alice")).collect();
    let key = record_key(&made[0].hash);
    let newer = br#"{"state":"suspended_by_v2","user_id":"alice","key_id":"k","name":"n","scopes":[],"created_at":0}"#;
    store.set(&key, newer).unwrap();
    assert_eq!(
        create_with(
            &store,
            "alice",
            &new_key(),
            MAX,
            NOW + 10 * ABANDONED_AFTER_SECS
        ),
        Err(ApiError::KeyLimitReached(MAX))
    );
    assert_eq!(store.get(&key).unwrap().as_deref(), Some(&newer[..]));
    assert!(verify(&store, &made[0].hash, NOW).unwrap().is_none());
    // Its owner can still delete it.
    delete(&store, "alice", &made[0].id, NOW).unwrap();
    assert!(store.get(&key).unwrap().is_none());
}

under_every_swap_answer!(
    a_quiet_store_holds_exactly_the_live_data,
    a_record_this_version_cannot_read_is_never_reclaimed,
);

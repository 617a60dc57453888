//! Random sequences of requests, store failures, deaths and clock steps, each checked after
//! every step against a small model of what the users were told; a failing sequence is shrunk
//! to the shortest one that still fails, and printed.
//!
//! The model holds, per key, what its owner knows of it (its secrets and settings, from
//! answers that succeeded). A change that fails (503) or dies part-way may have been made or
//! not: right after it, verify must grant no more than the larger of the states before and
//! after it; then it is retried without trouble, as users do, and must succeed. A failed
//! create's or roll's secret that does not verify right after the failure must never verify
//! later (one that does was made whole, the answer lost: it is taken into the model, as its
//! owner would find the key in the list). After every step the invariants between operations hold (see
//! [`super::assert_invariants_between`]).
//!
//! `cargo test protocol::tests::sequences` runs [`DEFAULT_CASES`] sequences per store
//! behaviour from a fixed seed, so CI is repeatable; `PROPTEST_CASES=2000` runs more, and
//! `PROPTEST_RNG_SEED=N` other ones.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::collections::BTreeSet;

use model::*;

mod checks;
mod model;

/// Sequences per store behaviour in a plain `cargo test`.
const DEFAULT_CASES: u32 = 512;
/// The longest sequence.
const MAX_STEPS: usize = 40;
/// A small limit, so that sequences reach it often.
const LIMIT: u32 = 3;
const USERS: [&str; 2] = ["alice", "bob"];
const SCOPE_SETS: [&[&str]; 3] = [&["read"], &["read", "write"], &["write"]];

/// What a changing request asks for. Keys are chosen by number among those the model holds
/// (modulo their count), so that a shrunk sequence stays meaningful.
#[derive(Debug, Clone)]
enum Change {
    Create {
        user: usize,
        expires_in: Option<i64>,
    },
    Update {
        key: usize,
        scopes: usize,
        enabled: bool,
    },
    Roll {
        key: usize,
        grace: i64,
    },
    Delete {
        key: usize,
    },
    /// A leak alert for the key's current secret, or for its latest older one (if it has one);
    /// after a 503 (or a death) it is sent again only if `retried` (a scanner may give up).
    Revoke {
        key: usize,
        older: bool,
        retried: bool,
    },
}

/// What goes wrong while a change runs.
#[derive(Debug, Clone, Copy)]
enum Trouble {
    None,
    /// Its operations `from` to `from + count - 1` fail and change nothing.
    Outage {
        from: u64,
        count: u64,
    },
    /// Its operation `at` takes effect, then reports a failure.
    LostAnswer {
        at: u64,
    },
    /// It dies after `after` operations: nothing more of it runs, no clean-up.
    Dies {
        after: u64,
    },
}

#[derive(Debug, Clone)]
enum Step {
    Change(Change, Trouble),
    /// Verify the `secret`-th secret the sequence made (recording its use, as verify does).
    Verify {
        secret: usize,
    },
    List {
        user: usize,
    },
    Advance {
        secs: i64,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (0..USERS.len(), prop::option::weighted(0.25, 1..200i64))
            .prop_map(|(user, expires_in)| Change::Create { user, expires_in }),
        2 => (any::<usize>(), 0..SCOPE_SETS.len(), prop::bool::weighted(0.75))
            .prop_map(|(key, scopes, enabled)| Change::Update { key, scopes, enabled }),
        2 => (any::<usize>(), prop_oneof![Just(0i64), Just(60i64)])
            .prop_map(|(key, grace)| Change::Roll { key, grace }),
        1 => any::<usize>().prop_map(|key| Change::Delete { key }),
        1 => (any::<usize>(), any::<bool>(), prop::bool::weighted(0.6))
            .prop_map(|(key, older, retried)| Change::Revoke { key, older, retried }),
    ]
}

fn trouble() -> impl Strategy<Value = Trouble> {
    // Outages up to one operation longer than any retry bound of the protocol.
    let longest = MAX_ATTEMPTS as u64 + 1;
    prop_oneof![
        6 => Just(Trouble::None),
        2 => (1..40u64, 1..=longest).prop_map(|(from, count)| Trouble::Outage { from, count }),
        1 => (1..40u64).prop_map(|at| Trouble::LostAnswer { at }),
        1 => (0..40u64).prop_map(|after| Trouble::Dies { after }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (change(), trouble()).prop_map(|(c, t)| Step::Change(c, t)),
        3 => any::<usize>().prop_map(|secret| Step::Verify { secret }),
        1 => (0..USERS.len()).prop_map(|user| Step::List { user }),
        1 => prop_oneof![1..90i64, Just(ABANDONED_AFTER_SECS + 1)]
            .prop_map(|secs| Step::Advance { secs }),
    ]
}

struct Sequence {
    store: MemoryStore,
    model: Model,
    now: i64,
}

/// What a change's request came to.
enum Ran<T> {
    Answered(Result<T, ApiError>),
    /// 503, or it died: made or not, nobody knows.
    Struck,
}

impl Sequence {
    fn new(answers: SwapAnswers) -> Sequence {
        Sequence {
            store: MemoryStore::with_answers(answers),
            model: Model::default(),
            now: NOW,
        }
    }

    /// Runs `request` as one request that meets `trouble`.
    fn run<T>(
        &self,
        trouble: Trouble,
        request: impl FnOnce(&RequestView) -> Result<T, ApiError>,
    ) -> Ran<T> {
        let scheduler = Scheduler::new(Vec::new(), 1);
        match trouble {
            Trouble::Outage { from, count } => self.store.fail_from_nth(from, count),
            Trouble::LostAnswer { at } => self.store.fail_nth_after_effect(at),
            Trouble::None | Trouble::Dies { .. } => {}
        }
        let view = RequestView {
            store: &self.store,
            scheduler: &scheduler,
            me: 0,
            crash_after: match trouble {
                Trouble::Dies { after } => Some(after),
                _ => None,
            },
            done: Cell::new(0),
            after_each: None,
        };
        let result = request(&view);
        self.store.disarm();
        // A request that died part-way finds every later operation failing: it answers 503,
        // which nobody hears.
        match result {
            Err(ApiError::StoreUnavailable(_)) => Ran::Struck,
            result => Ran::Answered(result),
        }
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Change(change, trouble) => self.change(change, *trouble),
            Step::Verify { secret } => {
                if !self.model.secrets.is_empty() {
                    let hash = self.model.secrets[secret % self.model.secrets.len()].clone();
                    verify(&self.store, &hash, self.now).expect("verify");
                }
            }
            Step::List { user } => self.check_list(*user),
            Step::Advance { secs } => self.now += secs,
        }
    }

    fn change(&mut self, change: &Change, trouble: Trouble) {
        let now = self.now;
        match *change {
            Change::Create { user, expires_in } => {
                let made = new_key();
                self.model.secrets.push(made.hash.clone());
                let expires_at = expires_in.map(|secs| now + secs);
                let ran = self.run(trouble, |store| {
                    create_expiring(store, USERS[user], &made, LIMIT, now, expires_at)
                });
                let counted = self.model.counted(user, now);
                let surely_counted = self.model.surely_counted(user, now);
                let created = KeyModel {
                    user,
                    id: made.id.clone(),
                    hash: made.hash.clone(),
                    scopes: scopes(),
                    enabled: true,
                    expires_at,
                    previous: Vec::new(),
                    revoked: false,
                    doubt: None,
                };
                match ran {
                    Ran::Answered(Ok(_)) => {
                        assert!(surely_counted < LIMIT as usize, "a create beyond the limit");
                        self.model.keys.insert(made.id, created);
                    }
                    Ran::Answered(Err(ApiError::KeyLimitReached(_))) => {
                        let holding = counted + self.model.zombies_holding_slots(user, now);
                        assert!(
                            holding >= LIMIT as usize,
                            "a create refused with {counted} keys and fewer zombies than room"
                        );
                        self.model.never.insert(made.hash);
                    }
                    Ran::Answered(Err(e)) => panic!("a create answered {e:?}"),
                    Ran::Struck if self.verified(&made.hash).is_some() => {
                        // Made whole, the answer lost.
                        self.model.keys.insert(made.id, created);
                    }
                    Ran::Struck => {
                        self.model.never.insert(made.hash);
                        self.model.zombies.insert(made.id, (user, now));
                    }
                }
            }
            Change::Update {
                key,
                scopes,
                enabled,
            } => {
                let Some(before) = self.model.pick(key) else {
                    return;
                };
                let wanted = Settings {
                    name: None,
                    scopes: Some(SCOPE_SETS[scopes].iter().map(|s| s.to_string()).collect()),
                    enabled: Some(enabled),
                };
                let mut after = before.clone();
                after.scopes = wanted.scopes.clone().unwrap();
                after.enabled = enabled;
                let user = USERS[before.user];
                let updating = |store: &RequestView| {
                    let event = key::event_id().unwrap();
                    update(store, user, &before.id, &wanted, &event, now)
                };
                match self.run(trouble, updating) {
                    Ran::Answered(result) => self.updated(&before, after, result),
                    Ran::Struck => {
                        self.check_doubt(&before, &after);
                        let retried = self.run(Trouble::None, updating);
                        let Ran::Answered(result) = retried else {
                            panic!("a retried update answered 503 with the store well")
                        };
                        self.updated(&before, after, result);
                    }
                }
            }
            Change::Roll { key, grace } => {
                let Some(before) = self.model.pick(key) else {
                    return;
                };
                let (new, ran) = self.roll(trouble, &before, grace);
                let Ran::Struck = ran else {
                    return self.rolled(&before, new, grace, ran, None);
                };
                let mut whole = before.clone();
                whole.previous.push((before.hash.clone(), now + grace));
                whole.hash = new.clone();
                self.check_doubt(&before, &whole);
                let (before, limbo) = if self.verified(&new).is_some() {
                    // Made whole, the answer lost: the retry rolls its secret.
                    self.model.keys.insert(whole.id.clone(), whole.clone());
                    (whole, None)
                } else {
                    // Pending, and maybe not revoked (its clean-up met the outage too): the
                    // retry takes it for a roll in flight and activates it before rolling on,
                    // so it may verify in the retry's grace, as the replaced secret does. No
                    // one knows it; it grants nothing more.
                    (before, Some(new))
                };
                let (retried, ran) = self.roll(Trouble::None, &before, grace);
                self.rolled(&before, retried, grace, ran, limbo);
            }
            Change::Revoke {
                key,
                older,
                retried,
            } => self.revoke(key, older, retried, trouble),
            Change::Delete { key } => {
                let Some(before) = self.model.pick(key) else {
                    return;
                };
                let user = USERS[before.user];
                let deleting = |store: &RequestView| delete(store, user, &before.id, now);
                let result = match self.run(trouble, deleting) {
                    Ran::Answered(result) => result,
                    Ran::Struck => {
                        let mut dead = before.clone();
                        dead.expires_at = Some(i64::MIN);
                        self.check_doubt(&before, &dead);
                        match self.run(Trouble::None, deleting) {
                            // The first attempt may have finished the job.
                            Ran::Answered(Err(ApiError::KeyNotFound)) => Ok(()),
                            Ran::Answered(result) => result,
                            Ran::Struck => panic!("a retried delete answered 503"),
                        }
                    }
                };
                match result {
                    Ok(()) => {}
                    // Expired, and reclaimed by a create since.
                    Err(ApiError::KeyNotFound) if before.is_expired(now) => {}
                    Err(e) => panic!("a delete of a listed key answered {e:?}"),
                }
                let gone = self.model.keys.remove(&before.id).unwrap();
                self.model.never.insert(gone.hash);
                self.model
                    .never
                    .extend(gone.previous.into_iter().map(|(h, _)| h));
            }
        }
    }

    /// A leak alert for one of `key`'s secrets, meeting `trouble`: a live key (disabled or
    /// not) is revoked if its current secret leaked; an older secret in its grace is ended,
    /// the key living on; a key revoked before answers so again; an expired key, or an older
    /// secret past its grace, is no live key's.
    fn revoke(&mut self, key: usize, older: bool, retried: bool, trouble: Trouble) {
        let Some(before) = self.model.pick(key) else {
            return;
        };
        let now = self.now;
        let hash = match before.previous.last() {
            Some((hash, _)) if older => hash.clone(),
            _ => before.hash.clone(),
        };
        // The presented secret is the key's current one, or an older one in its grace.
        let usable = hash == before.hash
            || (before.previous.iter()).any(|(h, until)| *h == hash && now < *until);
        let live = usable && (before.revoked || !before.is_expired(now));
        // A revoked key may since have been let go (expired and reclaimed, or beyond the
        // revoked keys kept), its records with it; a failed roll's secret may be live or not.
        // An older secret a revocation ended answers a replayed alert as revoked, while the
        // key's history holds that event.
        let ambiguous = before.revoked
            || before.doubt.is_some()
            || self.model.limbo.contains(&hash)
            || self.model.ended.contains(&hash);
        // An older secret in its grace is ended alone: the key's current one did not leak.
        let ends_older = usable && hash != before.hash && !before.revoked && live;
        let revocation = leak_at("https://example.com/leak", now);
        let revoking = |store: &RequestView| revoke(store, &hash, &revocation, now);
        let mut after = before.clone();
        if ends_older {
            end_secret(&mut after, &hash, now);
        } else {
            after.revoked = live || ambiguous;
        }
        let result = match self.run(trouble, revoking) {
            Ran::Answered(result) => result,
            Ran::Struck if !retried && !ambiguous => {
                self.check_doubt(&before, &after);
                return self.revocation_died(before, &hash);
            }
            Ran::Struck => {
                self.check_doubt(&before, &after);
                match self.run(Trouble::None, revoking) {
                    Ran::Answered(result) => result,
                    Ran::Struck => panic!("a retried revocation answered 503 with the store well"),
                }
            }
        };
        let Ok(revoked) = result else {
            panic!("a revocation of {before:?} answered {result:?}");
        };
        if !ambiguous {
            assert_eq!(revoked, live, "a revocation of {before:?} at secret {hash}");
        }
        if !revoked {
            return;
        }
        // The whole key, or the older secret presented only: the index tells (for a key in
        // doubt or a failed roll's secret the model cannot).
        let key_revoked = before.revoked || self.index_shows_revoked(&before);
        if !ambiguous {
            assert_eq!(
                key_revoked, !ends_older,
                "a revocation of {before:?} at secret {hash}"
            );
        }
        let mut after = before;
        if key_revoked {
            after.revoked = true;
            after.doubt = None;
            let hashes = std::iter::once(&after.hash).chain(after.previous.iter().map(|(h, _)| h));
            self.model.never.extend(hashes.cloned());
        } else {
            end_secret(&mut after, &hash, now);
            self.model.never.insert(hash.clone());
            self.model.ended.insert(hash);
        }
        self.model.keys.insert(after.id.clone(), after);
    }

    /// Whether the index `key`'s owner's head names shows `key` revoked (read as it is).
    fn index_shows_revoked(&self, key: &KeyModel) -> bool {
        let copy = copy_of(&self.store, SwapAnswers::Truthful);
        try_current_index(&copy, USERS[key.user]).is_some_and(|index| {
            (index.keys.iter()).any(|e| e.id == key.id && e.revocation.is_some())
        })
    }

    /// A revocation of `before`'s secret `presented` that answered 503 or died and is not sent
    /// again: if the whole key's revocation reached none of its records, nothing happened to
    /// the key (an older secret it refused already stays refused: its end is never undone);
    /// if the index shows it, the key is revoked; otherwise the key is in doubt until a reader
    /// finishes it (see [`KeyModel::doubt`]).
    fn revocation_died(&mut self, before: KeyModel, presented: &str) {
        let copy = copy_of(&self.store, SwapAnswers::Truthful);
        let hashes: Vec<String> = std::iter::once(before.hash.clone())
            .chain(before.previous.iter().map(|(h, _)| h.clone()))
            .collect();
        let reached = hashes.iter().any(|hash| {
            copy.get(&record_key(hash))
                .unwrap()
                .as_deref()
                .and_then(parse_record)
                .is_some_and(|r| {
                    r.revocation.is_some()
                        || (r.restrictions.iter()).any(|x| x.revocation.is_some() && !x.ends_secret)
                })
        });
        if !reached {
            if presented != before.hash && !verifies_at(&copy, presented, self.now) {
                self.model.never.insert(presented.to_owned());
            }
            return;
        }
        let published = self.index_shows_revoked(&before);
        let refused: Vec<String> = (hashes.iter())
            .filter(|hash| {
                verify(&copy, hash, self.now)
                    .unwrap()
                    .is_some_and(|r| r.revocation.is_some())
            })
            .cloned()
            .collect();
        let mut after = before;
        if published {
            after.revoked = true;
            self.model.never.extend(hashes);
        } else {
            self.model.never.extend(refused.iter().cloned());
            after.doubt = Some(refused);
        }
        self.model.keys.insert(after.id.clone(), after);
    }

    fn updated(
        &mut self,
        before: &KeyModel,
        after: KeyModel,
        result: Result<KeySummary, ApiError>,
    ) {
        match result {
            Ok(_) => {
                self.model.keys.insert(after.id.clone(), after);
            }
            Err(ApiError::KeyNotFound)
                if before.is_expired(self.now) || before.revoked || before.doubt.is_some() => {}
            Err(e) => panic!("an update of a listed key answered {e:?}"),
        }
    }

    /// Rolls `key` with `grace`, meeting `trouble`: the new secret (known to the sequence from
    /// here on) and what the roll came to.
    fn roll(&mut self, trouble: Trouble, key: &KeyModel, grace: i64) -> (String, Ran<KeySummary>) {
        let now = self.now;
        let mut made = None;
        let ran = self.run(trouble, |store| {
            let (new, result) = roll_with(store, USERS[key.user], &key.id, grace, now);
            made = Some(new);
            result
        });
        let new = made.expect("a roll made a secret");
        self.model.secrets.push(new.clone());
        (new, ran)
    }

    /// After a roll answered; `limbo` is the secret of a failed roll before it, if it did not
    /// verify after that failure.
    fn rolled(
        &mut self,
        before: &KeyModel,
        new: String,
        grace: i64,
        ran: Ran<KeySummary>,
        limbo: Option<String>,
    ) {
        match ran {
            Ran::Answered(Ok(summary)) => {
                assert_eq!(summary.entry.hash, new, "a roll answered another secret");
                let mut after = before.clone();
                after.previous.push((before.hash.clone(), self.now + grace));
                if let Some(hash) = limbo {
                    self.model.limbo.insert(hash.clone());
                    after.previous.push((hash, self.now + grace));
                }
                after.hash = new;
                self.model.keys.insert(after.id.clone(), after);
            }
            Ran::Answered(Err(ApiError::KeyNotFound))
                if before.is_expired(self.now) || before.revoked || before.doubt.is_some() =>
            {
                self.model.never.insert(new);
            }
            Ran::Answered(Err(e)) => panic!("a roll of a listed key answered {e:?}"),
            Ran::Struck => panic!("a retried roll answered 503 with the store well"),
        }
    }
}

/// Ends `key`'s older secret `hash` at `now` in the model.
fn end_secret(key: &mut KeyModel, hash: &str, now: i64) {
    for (h, until) in key.previous.iter_mut() {
        if h == hash {
            *until = (*until).min(now);
        }
    }
}

fn run_sequences(answers: SwapAnswers) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0x5eed_0fa9_1ce5);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let outcome = runner.run(&prop::collection::vec(step(), 1..=MAX_STEPS), |steps| {
        let mut sequence = Sequence::new(answers);
        for step in &steps {
            sequence.apply(step);
            sequence.check();
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{answers:?}: {failure}");
    }
}

under_every_swap_answer!(run_sequences);

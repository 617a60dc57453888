//! List and events: the keys a user holds and the history of their changes.

use super::*;

/// The live keys of `user_id` at `now`, oldest first.
pub fn list<S: KeyValue>(store: &S, user_id: &str, now: i64) -> Result<Vec<KeySummary>, ApiError> {
    Ok(current_keys(store, user_id, now)?.1)
}

/// The latest changes to `user_id`'s keys, newest first (at most [`MAX_EVENTS`]); the reads of
/// [`list`], no more.
///
/// An event is in the index iff its change was published, and a publish is what deletes and
/// updates do (an update publishes only for a live key). A create publishes before its key goes
/// live, so its `created` event is shown only once that happened: the key is live now, or a
/// later event names it (it was updated, or deleted after). The `created` event of a create that
/// failed or is still in flight is not shown.
pub fn events<S: KeyValue>(store: &S, user_id: &str, now: i64) -> Result<Vec<Event>, ApiError> {
    let (index, live) = current_keys(store, user_id, now)?;
    let is_live = |key_id: &str| live.iter().any(|summary| summary.entry.id == key_id);
    let mut shown: Vec<Event> = index
        .events
        .iter()
        .enumerate()
        .filter(|(at, event)| {
            event.kind != EventKind::Created
                || is_live(&event.key_id)
                || index.events[at + 1..]
                    .iter()
                    .any(|later| later.key_id == event.key_id)
        })
        .map(|(_, event)| event.clone())
        .collect();
    shown.reverse();
    Ok(shown)
}

/// The index `head` names and its live keys, oldest first: head, index and one record per key
/// (more only for a rolled key whose older secrets are in their grace, or whose current secret
/// is not active because a roll is in flight: then its older secrets' records too). What it finds behind the index it repairs first (see
/// [`Repair`]), then reads again; a key that looks dead is judged again at the head it is
/// read from, so that a list overlapping a change never drops a key that is live before and
/// after it.
pub(super) fn current_keys<S: KeyValue>(
    store: &S,
    user_id: &str,
    now: i64,
) -> Result<(Index, Vec<KeySummary>), ApiError> {
    let user = UserSpace::of(user_id);
    for _ in 0..MAX_ATTEMPTS {
        let Some(head) = store.get(&user.head)? else {
            return Ok((Index::default(), Vec::new()));
        };
        let head = Head::decode(&head)?;
        let Some(index) = read_index(store, &user, head.version)? else {
            continue;
        };
        let mut repair = Repair::default();
        let mut summaries = Vec::with_capacity(index.keys.len());
        for entry in &index.keys {
            let standing = Standing::of(store, entry, user_id, now)?;
            repair.note(entry, &standing, head.version, now);
            if matches!(standing, Standing::Active(_)) {
                repair.note_older_secrets(store, entry, head.version, now)?;
            }
            // Entries of creates in flight or failed and of keys being deleted are not keys the
            // user can use: not shown. Keys mid-roll are, so every live secret is on the list.
            if let Some(record) = standing.shown() {
                summaries.push(KeySummary {
                    entry: entry.clone(),
                    last_used_at: record.last_used_at,
                    expires_at: record.expires_at,
                    previous_expires_at: entry.previous_expires_at(now),
                    revocation: entry.revocation_shown(&record),
                });
            }
        }
        if repair.changes_index() {
            repair.publish(store, &user, head, &index, now)?;
            continue;
        }
        repair.carry(store, &index, head.version)?;
        // The records were read after the index: a key that looks dead may have been changed
        // (rolled, say) by a version published since. Then the index read is stale: again.
        if repair.saw_dead && !still_at(store, &user, head)? {
            continue;
        }
        return Ok((index, summaries));
    }
    Err(ApiError::StoreUnavailable(cause::LOST_RACES))
}

/// What the records of a key's secrets say about the key.
// One at a time, on the stack: a record's size is not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Standing {
    /// Its current secret is active (the key may have expired): that record.
    Active(KeyRecord),
    /// A roll published a new secret, still pending and younger than
    /// [`ABANDONED_AFTER_SECS`]: the roll is in flight. The key lives on in its older
    /// secrets (`live`: one that verifies, if any).
    Rolling {
        pending: KeyRecord,
        live: Option<KeyRecord>,
    },
    /// A roll published a new secret that will never go live: revoked (the roll failed), gone,
    /// or pending longer than [`ABANDONED_AFTER_SECS`] (`abandoned`: its request died, or its
    /// store stayed down). The key is to get back the secret the roll replaced.
    RollFailed { abandoned: bool },
    /// Killed by a delete that has not published the key's removal yet.
    Deleted,
    /// Not a key of the user's: a create in flight or failed, or a record this version cannot
    /// read (a newer version's, during a rolling upgrade).
    Dead,
}

impl Standing {
    /// Reads the records of `entry`'s secrets as `user_id`'s: one read while its current secret
    /// is active, its older secrets' too only while a roll is in flight. Nothing is judged dead
    /// from a stale read (see [`read_record`]).
    pub(super) fn of<S: KeyValue>(
        store: &S,
        entry: &IndexEntry,
        user_id: &str,
        now: i64,
    ) -> Result<Standing, StoreError> {
        let current = match read_record(store, &entry.hash)? {
            Stored::Record(record) if record.user_id == user_id => Some(record),
            Stored::Unreadable | Stored::Record(_) => return Ok(Standing::Dead),
            Stored::Absent => None,
        };
        let rolled = !entry.previous.is_empty();
        Ok(match current {
            Some(record) if record.state == KeyState::Active => Standing::Active(record),
            Some(record) if record.state == KeyState::Deleted => Standing::Deleted,
            Some(record) if rolled && record.state == KeyState::Pending => {
                if now - record.created_at >= ABANDONED_AFTER_SECS {
                    Standing::RollFailed { abandoned: true }
                } else {
                    let mut live = None;
                    for previous in &entry.previous {
                        live = read_record(store, &previous.hash)?
                            .record()
                            .filter(|r| r.user_id == user_id && r.clone().in_force().is_live(now));
                        if live.is_some() {
                            break;
                        }
                    }
                    Standing::Rolling {
                        pending: record,
                        live,
                    }
                }
            }
            _ if rolled => Standing::RollFailed { abandoned: false },
            _ => Standing::Dead,
        })
    }

    /// The record list shows the key with: the current secret's, else (mid-roll) a live older
    /// one's or the pending one's. `None`: not shown.
    pub(super) fn shown(self) -> Option<KeyRecord> {
        match self {
            Standing::Active(record) => Some(record),
            Standing::Rolling { pending, live } => Some(live.unwrap_or(pending)),
            Standing::RollFailed { .. } | Standing::Deleted | Standing::Dead => None,
        }
    }
}

/// What a read of a user's keys found behind the index, to be put right before it answers, so
/// that no state left by a request that failed or died outlives the next read:
/// - a key whose roll failed or was abandoned gets back the secret it replaced, and its
///   `rolled` event leaves the history (nobody was given the new secret);
/// - a key a delete killed without publishing its removal is removed, with its `deleted` event;
/// - restrictions of a version still undecided [`ABANDONED_AFTER_SECS`] after they were written
///   belong to a request that died: the index is published again unchanged under a new number,
///   which decides them (their version can no longer land);
/// - a revocation written ahead on a record but not published (its request died, lost a race,
///   or is still in flight) is published, with its event: a revocation is finished by
///   whoever finds it, never dropped (see [`finish_revocation`]);
/// - records behind their entry (a change published but not carried, restrictions of a decided
///   version) are carried.
///
/// The first four publish one new index version; the reader then reads again and carries.
#[derive(Default)]
pub(super) struct Repair {
    undo_rolls: Vec<(String, bool)>,
    removals: Vec<String>,
    fence: bool,
    /// Keys (by id) to publish as revoked, with the revocation found written ahead.
    revocations: Vec<(String, Unpublished)>,
    carries: Vec<String>,
    saw_dead: bool,
}

impl Repair {
    fn note(&mut self, entry: &IndexEntry, standing: &Standing, head: u64, now: i64) {
        match standing {
            Standing::Active(record) => {
                self.note_secret(&entry.hash, record, entry, None, head, now)
            }
            Standing::RollFailed { abandoned } => {
                self.undo_rolls.push((entry.id.clone(), *abandoned));
            }
            Standing::Deleted => self.removals.push(entry.id.clone()),
            Standing::Dead => self.saw_dead = true,
            Standing::Rolling { .. } => {}
        }
    }

    /// Notes what the active record of one of `entry`'s secrets needs (`retire_at`: the end of
    /// its grace, for an older one): a fence if it holds a restriction abandoned undecided, a
    /// carry if it is behind the entry at `head`.
    #[allow(clippy::too_many_arguments)] // One secret: its hash, record and place in the entry.
    fn note_secret(
        &mut self,
        hash: &str,
        record: &KeyRecord,
        entry: &IndexEntry,
        retire_at: Option<i64>,
        head: u64,
        now: i64,
    ) {
        let abandoned = |r: &Restriction| r.version > head && now - r.at >= ABANDONED_AFTER_SECS;
        self.fence |= record.restrictions.iter().any(abandoned);
        let target = Target {
            entry,
            head,
            retire_at,
        };
        if let Some(found) = record.unpublished_revocation(hash, &target) {
            match self.revocations.iter_mut().find(|(id, _)| *id == entry.id) {
                None => self.revocations.push((entry.id.clone(), found)),
                Some((_, noted)) => *noted = noted.clone().or_stronger(found),
            }
        }
        if record.carried(&target).is_some() && !self.carries.contains(&entry.id) {
            self.carries.push(entry.id.clone());
        }
    }

    /// Notes what the records of `entry`'s older secrets still in their grace need: a
    /// restriction written on one while it was its key's current secret, by a request that
    /// died before a roll replaced it, shows nowhere else (a read a key costs more only while
    /// a roll's grace lasts). A plain read each: a stale one only delays the repair.
    fn note_older_secrets<S: KeyValue>(
        &mut self,
        store: &S,
        entry: &IndexEntry,
        head: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        for previous in entry.previous.iter().filter(|p| p.until > now) {
            let Some(record) = store
                .get(&record_key(&previous.hash))?
                .as_deref()
                .and_then(parse_record)
            else {
                continue;
            };
            if record.state == KeyState::Active {
                self.note_secret(
                    &previous.hash,
                    &record,
                    entry,
                    Some(previous.until),
                    head,
                    now,
                );
            }
        }
        Ok(())
    }

    fn changes_index(&self) -> bool {
        self.fence
            || !self.undo_rolls.is_empty()
            || !self.removals.is_empty()
            || !self.revocations.is_empty()
    }

    /// Publishes the index changes in one new version derived from `head`, if the head still
    /// names it (else someone else wrote meanwhile, and the caller reads again anyway).
    fn publish<S: KeyValue>(
        &self,
        store: &S,
        user: &UserSpace,
        head: Head,
        index: &Index,
        now: i64,
    ) -> Result<(), ApiError> {
        let mut next = index.clone();
        // Records that are garbage once this is published: rolls' secrets given back, and
        // tombstones of keys removed.
        let mut removed = Vec::new();
        for (id, abandoned) in &self.undo_rolls {
            let Some(position) = next.keys.iter().position(|e| &e.id == id) else {
                continue;
            };
            removed.extend(give_back(store, &mut next, position, *abandoned)?);
        }
        for id in &self.removals {
            if let Some(at) = next.keys.iter().position(|e| &e.id == id) {
                let entry = next.keys.remove(at);
                removed.extend(entry.all_hashes().map(str::to_owned));
                remove_entry(&mut next, entry, None, now);
            }
        }
        let (cas, current) = watch_head(store, user)?;
        if current.version != head.version {
            return Ok(());
        }
        let proposed = next_version(store, user, head)?;
        for (id, unpublished) in &self.revocations {
            if let Some(position) = next.keys.iter().position(|e| &e.id == id) {
                unpublished.publish_in(store, &mut next, position, proposed, now)?;
            }
        }
        publish(store, user, cas, head, proposed, &next)?;
        let mut versions = Versions::default();
        versions.note(head, proposed);
        let (_, now) = store.watch(&user.head)?;
        let now = now.as_deref().map(Head::decode).transpose()?;
        let landed = now.is_some_and(|now| now.version == proposed);
        if let Some(now) = now {
            versions.sweep(store, user, now.version);
        }
        if landed {
            for hash in removed {
                let _ = store.delete(&record_key(&hash));
            }
        }
        Ok(())
    }

    /// Carries every noted key's entry in `index` (version `head`) onto its secrets' records.
    fn carry<S: KeyValue>(&self, store: &S, index: &Index, head: u64) -> Result<(), StoreError> {
        for entry in index.keys.iter().filter(|e| self.carries.contains(&e.id)) {
            carry_all(store, entry, head)?;
        }
        Ok(())
    }
}

/// What the records of a key's secrets hold once carried (see [`carry_all`]).
pub(super) struct Carried {
    /// What the store holds for the key's current secret.
    pub(super) current: Stored,
    /// A revocation one of them is restricted by that the entry does not show: to be finished
    /// (see [`finish_revocation`]); the whole key's if there is one.
    pub(super) unpublished_revocation: Option<Unpublished>,
}

/// Brings the records of every secret of `entry`, as index version `head` has it, in line with
/// it, older secrets first (see [`carry`]), and says what they hold then.
pub(super) fn carry_all<S: KeyValue>(
    store: &S,
    entry: &IndexEntry,
    head: u64,
) -> Result<Carried, StoreError> {
    let mut carried = Carried {
        current: Stored::Absent,
        unpublished_revocation: None,
    };
    for (hash, target) in Target::all(entry, head) {
        let stored = carry(store, hash, &target)?;
        if let Stored::Record(record) = &stored {
            if let Some(found) = record.unpublished_revocation(hash, &target) {
                carried.unpublished_revocation =
                    Some(match carried.unpublished_revocation.take() {
                        Some(noted) => noted.or_stronger(found),
                        None => found,
                    });
            }
        }
        carried.current = stored;
    }
    Ok(carried)
}

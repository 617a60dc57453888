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
/// (more only for a key whose current secret is not active because a roll is in flight or died:
/// then its older secrets' records too).
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
        let Some(index) = read_index(store, &user, Head::decode(&head)?.version)? else {
            continue;
        };
        // Entries of creates in flight or abandoned, and of deletes that failed after killing
        // the key, are not keys the user can use: not shown. Keys mid-roll are (see
        // [`Standing`]), so every live secret is on the list.
        let mut summaries = Vec::with_capacity(index.keys.len());
        for entry in &index.keys {
            if let Some(record) = Standing::of(store, entry, user_id, now)?.shown() {
                summaries.push(KeySummary {
                    entry: entry.clone(),
                    last_used_at: record.last_used_at,
                    expires_at: record.expires_at,
                    previous_expires_at: entry.previous_expires_at(now),
                });
            }
        }
        return Ok((index, summaries));
    }
    Err(ApiError::StoreUnavailable)
}

/// What the records of a key's secrets say about the key.
pub(super) enum Standing {
    /// Its current secret is active (the key may have expired): that record.
    Active(KeyRecord),
    /// A roll published a new secret that is not active (pending or revoked): the roll is in
    /// flight, or it failed or died. The key lives on in a live older secret (`live`), or has
    /// none until it is rolled again. Either way it is the user's, to roll again or delete.
    MidRoll {
        live: Option<KeyRecord>,
        current: Option<KeyRecord>,
    },
    /// Not a key of the user's: a create in flight or failed, a delete in flight.
    Dead,
}

impl Standing {
    /// Reads the records of `entry`'s secrets as `user_id`'s: one read while its current secret
    /// is active, its older secrets' too only while it is not.
    pub(super) fn of<S: KeyValue>(
        store: &S,
        entry: &IndexEntry,
        user_id: &str,
        now: i64,
    ) -> Result<Standing, StoreError> {
        let record_of = |hash: &str| -> Result<Option<KeyRecord>, StoreError> {
            let record = store
                .get(&record_key(hash))?
                .as_deref()
                .and_then(parse_record);
            Ok(record.filter(|r| r.user_id == user_id))
        };
        let current = record_of(&entry.hash)?;
        if let Some(record) = current.as_ref().filter(|r| r.state == KeyState::Active) {
            return Ok(Standing::Active(record.clone()));
        }
        let mut live = None;
        for previous in &entry.previous {
            live = record_of(&previous.hash)?.filter(|r| r.is_live(now));
            if live.is_some() {
                break;
            }
        }
        let rolled = !entry.previous.is_empty() && current.is_some();
        Ok(if live.is_some() || rolled {
            Standing::MidRoll { live, current }
        } else {
            Standing::Dead
        })
    }

    /// The record list shows the key with: the current secret's, else a live older one's.
    pub(super) fn shown(self) -> Option<KeyRecord> {
        match self {
            Standing::Active(record) => Some(record),
            Standing::MidRoll { live, current } => live.or(current),
            Standing::Dead => None,
        }
    }
}

//! A user's index: its versions' entries (one per key), their older secrets, the events of
//! their history, and the settings an update asks for.

use super::*;

/// One key in a user's index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub id: String,
    pub hash: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub preview: String,
    /// Whether the key may verify. Absent: enabled.
    #[serde(default = "enabled", skip_serializing_if = "is_enabled")]
    pub enabled: bool,
    /// The index version that last changed this key's settings (0: none since create). It
    /// grows along the chain of published versions, so it orders any two states of the key.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub settings_version: u64,
    /// Older secrets of this key, replaced by a roll and verifying until their grace ends
    /// (at most [`MAX_PREVIOUS_SECRETS`] in their grace, and until the next roll those whose
    /// grace just ended). Listed here so that delete can kill them too. The one the latest
    /// roll replaced is last: while that roll's secret is not active, it is the one a
    /// withdrawn roll gives back (see [`IndexEntry::undo_roll`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousSecret>,
    /// Set once the key was revoked (see [`revoke`]): it stays listed, as revoked, until its
    /// owner deletes it, and no longer counts toward the limit. Only why and when: where the
    /// key was found (a URL of up to [`MAX_URL_BYTES`]) is kept in its records and its event,
    /// so that an index of revoked keys stays within its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation: Option<Revocation>,
}

/// An older secret of a rolled key: its hash, preview and the end of its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    pub hash: String,
    /// Unix seconds from which it no longer verifies.
    pub until: i64,
    /// Its preview, to show it again if the roll that replaced it is withdrawn. Empty in
    /// entries written before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preview: String,
}

impl IndexEntry {
    /// The hashes of all this key's secrets, older ones first: the order delete kills them in,
    /// so that a secret still live always has a listed entry (see [`delete`]).
    pub(super) fn all_hashes(&self) -> impl Iterator<Item = &str> {
        let previous = self.previous.iter().map(|p| p.hash.as_str());
        previous.chain(std::iter::once(self.hash.as_str()))
    }

    /// Gives the key back the secret its latest roll replaced, for a roll that failed or was
    /// abandoned before its secret went live (see [`roll`]); `false` if it has none. The roll's
    /// event leaves the history with it: nobody was told it happened.
    pub(super) fn undo_roll(&mut self, events: &mut Vec<Event>) -> bool {
        let Some(replaced) = self.previous.pop() else {
            return false;
        };
        self.hash = replaced.hash;
        if !replaced.preview.is_empty() {
            self.preview = replaced.preview;
        }
        let rolled = events
            .iter()
            .rposition(|e| e.kind == EventKind::Rolled && e.key_id == self.id);
        if let Some(at) = rolled {
            events.remove(at);
        }
        true
    }

    /// The key's revocation as its owner is shown it, if it was revoked: the entry's, with
    /// where the key was found as `record` (one of its secrets') has it.
    pub(super) fn revocation_shown(&self, record: &KeyRecord) -> Option<Revocation> {
        let published = self.revocation.as_ref()?;
        // Carried, or still the restriction of the revocation that was published; not another
        // one's that raced it and lost.
        let reported = (record.revocation.as_ref()).or_else(|| record.restriction_of(published));
        Some(reported.unwrap_or(published).clone())
    }

    /// When the last of the older secrets stops verifying, if one is still in its grace period.
    pub fn previous_expires_at(&self, now: i64) -> Option<i64> {
        self.previous
            .iter()
            .map(|p| p.until)
            .filter(|until| *until > now)
            .max()
    }
}

/// One immutable version of a user's list of keys, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub keys: Vec<IndexEntry>,
    /// The user's latest [`MAX_EVENTS`] changes, oldest first, published in the same swap as
    /// the change itself: an update that reads its own event back at the head knows it landed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// One change to a user's keys, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique (random): how the request that made the change recognises it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Unix seconds.
    pub at: i64,
    pub key_id: String,
    /// The key's name after the change.
    pub name: String,
    /// What changed, old to new (`updated`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// Why a key was removed other than by its owner's delete (`deleted`): `expired`, or
    /// `revoked` (let go to keep the index bounded); why it was revoked (`revoked`): `leaked`
    /// or `self`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Where a revoked key was found public, and what kind of place that was (`revoked`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The preview of the older secret a revocation ended, the key living on (`revoked`);
    /// absent when the revocation was of the whole key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_preview: Option<String>,
    /// Unix seconds when the secret a roll replaced stops verifying (`rolled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_expires_at: Option<i64>,
}

impl Event {
    pub(super) fn new(id: String, kind: EventKind, at: i64, entry: &IndexEntry) -> Event {
        Event {
            id,
            kind,
            at,
            key_id: entry.id.clone(),
            name: entry.name.clone(),
            changes: Vec::new(),
            reason: None,
            url: None,
            source: None,
            secret_preview: None,
            previous_key_expires_at: None,
        }
    }
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Created,
    Updated,
    Rolled,
    Deleted,
    Revoked,
}

impl Index {
    /// Appends `event`, keeping the latest [`MAX_EVENTS`] that fit in [`MAX_EVENT_BYTES`].
    pub(super) fn record(&mut self, event: Event) {
        self.events.push(event);
        let mut excess = self.events.len().saturating_sub(MAX_EVENTS);
        let mut bytes: usize = self.events[excess..].iter().map(event_bytes).sum();
        while bytes > MAX_EVENT_BYTES && excess + 1 < self.events.len() {
            bytes -= event_bytes(&self.events[excess]);
            excess += 1;
        }
        self.events.drain(..excess);
    }
}

/// The id of the event of key `key_id`'s removal: a key is removed once, so it is unique.
pub(super) fn removal_event_id(key_id: &str) -> String {
    format!("{key_id}/deleted")
}

/// One setting an update changed: `field` went from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// The settings an update asks for; `None` leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

impl IndexEntry {
    /// What `wanted` would change in this entry, old to new; empty if nothing.
    pub(super) fn changes_to(&self, wanted: &Settings) -> Vec<FieldChange> {
        let mut changes = Vec::new();
        let mut differs = |field: &str, from: serde_json::Value, to: serde_json::Value| {
            if from != to {
                changes.push(FieldChange {
                    field: field.to_owned(),
                    from,
                    to,
                });
            }
        };
        if let Some(name) = &wanted.name {
            differs("name", self.name.clone().into(), name.clone().into());
        }
        if let Some(scopes) = &wanted.scopes {
            differs("scopes", self.scopes.clone().into(), scopes.clone().into());
        }
        if let Some(enabled) = wanted.enabled {
            differs("enabled", self.enabled.into(), enabled.into());
        }
        changes
    }

    /// What `wanted` takes away from this key, as a restriction its records get before the
    /// change is published (see [`update`]): disabling it, or scopes it would no longer hold.
    /// `None` if it only widens or renames.
    pub(super) fn restriction_toward(
        &self,
        wanted: &Settings,
        version: u64,
        now: i64,
    ) -> Option<Restriction> {
        let disabled = self.enabled && wanted.enabled == Some(false);
        let narrowed = wanted
            .scopes
            .as_ref()
            .filter(|kept| self.scopes.iter().any(|scope| !kept.contains(scope)));
        (disabled || narrowed.is_some()).then(|| Restriction {
            version,
            at: now,
            disabled,
            scopes: narrowed.cloned(),
            retire_at: None,
            revocation: None,
            ends_secret: false,
        })
    }

    pub(super) fn apply(&mut self, wanted: &Settings, version: u64) {
        if let Some(name) = &wanted.name {
            self.name = name.clone();
        }
        if let Some(scopes) = &wanted.scopes {
            self.scopes = scopes.clone();
        }
        if let Some(enabled) = wanted.enabled {
            self.enabled = enabled;
        }
        self.settings_version = version;
    }
}

/// A key as list (and update) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    pub entry: IndexEntry,
    /// Unix seconds of the last verification, if any was recorded.
    pub last_used_at: Option<i64>,
    /// Unix seconds from which the key no longer verifies, if it expires.
    pub expires_at: Option<i64>,
    /// When the last older secret of a rolled key stops verifying, if one still does.
    pub previous_expires_at: Option<i64>,
    /// Why and when the key was revoked, and where it was found, if it was.
    pub revocation: Option<Revocation>,
}

impl KeySummary {
    /// Whether the key counts toward its user's limit at `now`: an expired key does not (the
    /// next create that needs its slot reclaims it), nor a revoked one.
    pub fn counts_toward_limit(&self, now: i64) -> bool {
        self.entry.revocation.is_none() && !has_expired(self.expires_at, now)
    }
}

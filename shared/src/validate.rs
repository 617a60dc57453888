//! Validation of request bodies: every rule on names, scopes, ids and keys, in one place.
//!
//! Each function takes the raw body and returns a typed value or the [`ApiError`] whose stable
//! code tells the client which field is wrong. Nothing here touches the store.
//!
//! Every body is read strictly, because a member that is silently dropped is a restriction
//! the client believes it set: a member given twice in any object is `invalid_json` (which of
//! the two counts would be the parser's choice), and a member the endpoint does not take is
//! `unknown_member` (a misspelled `expire_at` must not make a key that never expires). Both
//! name the member.

use crate::error::ApiError;
use crate::key;
use crate::protocol::{Settings, MAX_GRACE_SECS};
use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::RefCell;

/// Longest key name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 64;
/// Furthest ahead a key may be set to expire, in seconds: ten years, counted as the longest ten
/// calendar years (3,653 days), so that "the same day in ten years" is always accepted.
pub const MAX_EXPIRY_SECS: i64 = 3_653 * 86_400;

/// The members each body takes; any other is `400 unknown_member`. Adding a member to a body
/// is one line here (and the code that reads it).
pub const CREATE_MEMBERS: &[&str] = &["name", "scopes", "expires_at"];
/// See [`CREATE_MEMBERS`].
pub const UPDATE_MEMBERS: &[&str] = &["id", "name", "scopes", "enabled"];
/// See [`CREATE_MEMBERS`].
pub const ROLL_MEMBERS: &[&str] = &["id", "grace_seconds"];
/// See [`CREATE_MEMBERS`].
pub const DELETE_MEMBERS: &[&str] = &["id"];
/// See [`CREATE_MEMBERS`]: verify's JSON body (a misspelled `scopes` would otherwise skip the
/// scope check, as `?scopes=` would: that is `invalid_query`).
pub const VERIFY_MEMBERS: &[&str] = &["key", "scope"];

/// A valid create request.
#[derive(Debug, PartialEq, Eq)]
pub struct CreateInput {
    /// Trimmed name.
    pub name: String,
    /// Distinct, allowed scopes, in the order given.
    pub scopes: Vec<String>,
    /// When the key stops verifying (Unix seconds); `None`: never, the default.
    pub expires_at: Option<i64>,
}

/// A verify request presented in a JSON body.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifyInput {
    /// The presented key, if the body had one.
    pub key: Option<String>,
    /// The scope the caller requires, if any; an empty one is kept, for verify to refuse.
    pub scope: Option<String>,
}

/// Parses `{"name": ..., "scopes": [...], "expires_at"?: ...}` against the allowed scopes and
/// the time `now` (Unix seconds).
pub fn create_input(
    body: &[u8],
    allowed_scopes: &[String],
    now: i64,
) -> Result<CreateInput, ApiError> {
    let object = json_object(body, CREATE_MEMBERS)?;
    Ok(CreateInput {
        name: name(object.get("name"))?,
        scopes: scopes(object.get("scopes"), allowed_scopes)?,
        expires_at: expires_at(object.get("expires_at"), now)?,
    })
}

/// Parses `{"id": "key_..."}`.
pub fn delete_input(body: &[u8]) -> Result<String, ApiError> {
    let object = json_object(body, DELETE_MEMBERS)?;
    id(object.get("id"))
}

/// Parses `{"id": "key_...", "grace_seconds"?: n}`: the key to roll and how long its current
/// secret keeps verifying, 0 (the default, also for `null`) to [`MAX_GRACE_SECS`] seconds.
pub fn roll_input(body: &[u8]) -> Result<(String, i64), ApiError> {
    let object = json_object(body, ROLL_MEMBERS)?;
    let id = id(object.get("id"))?;
    let grace = match object.get("grace_seconds") {
        None | Some(Value::Null) => 0,
        Some(value) => value
            .as_i64()
            .filter(|secs| (0..=MAX_GRACE_SECS).contains(secs))
            .ok_or(ApiError::InvalidGraceSeconds)?,
    };
    Ok((id, grace))
}

/// Parses `{"id": "key_...", "name"?: ..., "scopes"?: [...], "enabled"?: bool}`: the id and at
/// least one setting (a `null` setting counts as absent), each under the same rules as create.
pub fn update_input(
    body: &[u8],
    allowed_scopes: &[String],
) -> Result<(String, Settings), ApiError> {
    let object = json_object(body, UPDATE_MEMBERS)?;
    let id = id(object.get("id"))?;
    let present = |field| object.get(field).filter(|value| !value.is_null());
    let settings = Settings {
        name: present("name").map(|v| name(Some(v))).transpose()?,
        scopes: present("scopes")
            .map(|v| scopes(Some(v), allowed_scopes))
            .transpose()?,
        enabled: match present("enabled") {
            None => None,
            Some(Value::Bool(enabled)) => Some(*enabled),
            Some(_) => {
                return Err(ApiError::InvalidJson(
                    "`enabled` must be true or false.".into(),
                ))
            }
        },
    };
    if settings == Settings::default() {
        return Err(ApiError::InvalidJson(
            "Give at least one of `name`, `scopes` and `enabled`.".into(),
        ));
    }
    Ok((id, settings))
}

fn id(value: Option<&Value>) -> Result<String, ApiError> {
    match value.and_then(Value::as_str) {
        Some(id) if key::is_valid_id(id) => Ok(id.to_owned()),
        _ => Err(ApiError::InvalidId),
    }
}

/// Parses `{"key": "...", "scope": "..."}`; a missing or non-string key is `None`, which
/// verify answers like any other invalid key. A `scope` that is neither a string nor null is
/// refused rather than ignored: dropping it would skip the check the caller asked for. So is,
/// as in every body, a member given twice in any object (`invalid_json`: `{"scope": "admin",
/// "scope": null}` must not require no scope) and any member but these two (`unknown_member`).
///
/// Read straight into its two members, without building a `serde_json::Value`: this is the
/// hot path, and the code a `Value` brings would be most of what verify's `.wasm` adds to the
/// floor (its size is its cold start).
pub fn verify_input(body: &[u8]) -> Result<VerifyInput, ApiError> {
    let members: VerifyMembers = serde_json::from_slice(body)
        .map_err(|_| ApiError::InvalidJson("The body must be a JSON object.".into()))?;
    if let Some(member) = members.unknown {
        return Err(ApiError::UnknownMember {
            member,
            known: VERIFY_MEMBERS,
        });
    }
    let scope = match members.scope {
        Member::Absent | Member::Null => None,
        // An empty one is kept: verify refuses it (`invalid_scope`) rather than read it as
        // "no scope required".
        Member::Text(scope) => Some(scope),
        Member::Other => return Err(ApiError::InvalidJson("`scope` must be a string.".into())),
    };
    let key = match members.key {
        Member::Text(key) => Some(key),
        _ => None,
    };
    Ok(VerifyInput { key, scope })
}

/// The two members of a verify body, each as the JSON gave it, and the first other member's
/// name, if any.
struct VerifyMembers {
    key: Member,
    scope: Member,
    unknown: Option<String>,
}

/// One member of a JSON object, as far as verify cares: a string, null, anything else.
enum Member {
    Absent,
    Null,
    Text(String),
    Other,
}

/// Whether `body` is JSON that gives no member twice in any of its objects (what else it must
/// be is the caller's to check): for a body read into a type of its own, such as a
/// secret-scanning alert, whose derived reader would take a repeated member it skips.
pub fn repeats_no_member(body: &[u8]) -> bool {
    serde_json::from_slice::<Member>(body).is_ok()
}

/// Notes member `name` of an object among those read before it, `names`; one given twice is an
/// error, and the body is refused whole as not valid JSON.
fn once<E: serde::de::Error>(names: &mut Vec<String>, name: &str) -> Result<(), E> {
    if names.iter().any(|seen| seen == name) {
        return Err(repeated());
    }
    names.push(name.to_owned());
    Ok(())
}

/// The error of a member given twice. (Fixed text: the caller names the member from what it
/// read, and formatting would cost verify's `.wasm`.)
fn repeated<E: serde::de::Error>() -> E {
    E::custom("a member is given twice")
}

impl<'de> Deserialize<'de> for VerifyMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = VerifyMembers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VerifyMembers, A::Error> {
                let mut members = VerifyMembers {
                    key: Member::Absent,
                    scope: Member::Absent,
                    unknown: None,
                };
                // Other members are read to the end, so that a body that is also not valid
                // JSON, or repeats one, is `invalid_json` wherever its other member stands.
                let mut names = Vec::new();
                while let Some(name) = map.next_key::<std::borrow::Cow<str>>()? {
                    once(&mut names, &name)?;
                    let value = map.next_value::<Member>()?;
                    match name.as_ref() {
                        "key" => members.key = value,
                        "scope" => members.scope = value,
                        other => {
                            members.unknown.get_or_insert_with(|| other.to_owned());
                        }
                    }
                }
                Ok(members)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl<'de> Visitor<'de> for MemberVisitor {
            type Value = Member;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, text: &str) -> Result<Member, E> {
                Ok(Member::Text(text.to_owned()))
            }
            fn visit_string<E>(self, text: String) -> Result<Member, E> {
                Ok(Member::Text(text))
            }
            fn visit_unit<E>(self) -> Result<Member, E> {
                Ok(Member::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            // Arrays and objects are read through, as `Member`s again (not serde's
            // `IgnoredAny`, which would skip a repeated member, nor a visitor of their own,
            // which would be another copy of serde_json's parser in verify's `.wasm`).
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Member, A::Error> {
                while seq.next_element::<Member>()?.is_some() {}
                Ok(Member::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = map.next_key::<std::borrow::Cow<str>>()? {
                    once(&mut names, &name)?;
                    map.next_value::<Member>()?;
                }
                Ok(Member::Other)
            }
        }
        deserializer.deserialize_any(MemberVisitor)
    }
}

/// Reads `body` as a JSON object whose members are all `known`. In this order: a body that is
/// not JSON, or gives a member twice in any object, or is not an object is `invalid_json`; one
/// with another member is `unknown_member`, naming the first in the body.
fn json_object(
    body: &[u8],
    known: &'static [&'static str],
) -> Result<Map<String, Value>, ApiError> {
    let found = RefCell::new(Found::default());
    let reader = Strict {
        known: Some(known),
        found: &found,
    };
    let mut parser = serde_json::Deserializer::from_slice(body);
    let parsed = reader.deserialize(&mut parser).and_then(|value| {
        parser.end()?;
        Ok(value)
    });
    let Found { repeated, unknown } = found.into_inner();
    if let Some(member) = repeated {
        return Err(ApiError::RepeatedMember(member));
    }
    let object = match parsed {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(ApiError::InvalidJson(
                "The body must be a JSON object.".into(),
            ))
        }
        Err(_) => return Err(ApiError::InvalidJson("The body is not valid JSON.".into())),
    };
    match unknown {
        Some(member) => Err(ApiError::UnknownMember { member, known }),
        None => Ok(object),
    }
}

/// What [`Strict`] found wrong while it read on: the member given twice (which ends the read)
/// and the first member not known.
#[derive(Default)]
struct Found {
    repeated: Option<String>,
    unknown: Option<String>,
}

/// Reads a JSON value as `serde_json::Value` does, but refuses an object that gives a member
/// twice (`Value` keeps the last), and notes the first member of the outer object that is not
/// `known`.
#[derive(Clone, Copy)]
struct Strict<'a> {
    /// The outer object's members; `None` inside it.
    known: Option<&'a [&'a str]>,
    found: &'a RefCell<Found>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }
    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }
    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = Strict {
            known: None,
            ..self
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = Strict {
            known: None,
            ..self
        };
        let mut object = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                let error = repeated();
                self.found.borrow_mut().repeated = Some(name);
                return Err(error);
            }
            if self
                .known
                .is_some_and(|known| !known.contains(&name.as_str()))
            {
                self.found
                    .borrow_mut()
                    .unknown
                    .get_or_insert_with(|| name.clone());
            }
            let value = map.next_value_seed(inner)?;
            object.insert(name, value);
        }
        Ok(Value::Object(object))
    }
}

fn name(value: Option<&Value>) -> Result<String, ApiError> {
    let Some(raw) = value.and_then(Value::as_str) else {
        return Err(ApiError::InvalidName("`name` must be a string.".into()));
    };
    let trimmed = raw.trim();
    let length = trimmed.chars().count();
    if length == 0 || length > MAX_NAME_CHARS {
        return Err(ApiError::InvalidName(format!(
            "`name` must be 1 to {MAX_NAME_CHARS} characters after trimming."
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::InvalidName(
            "`name` must not contain control characters.".into(),
        ));
    }
    if has_invisible_character(trimmed) {
        return Err(ApiError::InvalidName(
            "`name` must not contain invisible characters (bidirectional controls, zero-width \
             or other default-ignorable characters, blank fillers)."
                .into(),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Zero width joiner: joins two emoji into one (👩 + 💻 = 👩‍💻).
const ZWJ: char = '\u{200D}';
/// Variation selector 16: asks for the emoji form of a character that has a text form (❤ → ❤️).
const VS16: char = '\u{FE0F}';
/// Combining enclosing keycap, which ends a keycap emoji (`#`, `*`, `0`–`9`, VS16, U+20E3: #️⃣).
const KEYCAP: char = '\u{20E3}';

/// Whether `name` holds a character that is not seen where it stands: such characters let a
/// name look blank (a name of only U+3164 HANGUL FILLER), let two names that look alike differ,
/// or make one name read as another (the bidirectional controls of "Trojan Source").
///
/// Invisible are Unicode's `Default_Ignorable_Code_Point` characters (DerivedCoreProperties.txt,
/// from `icu_properties`' data of Unicode 18.0: soft hyphen, combining grapheme joiner, the
/// zero-width characters, bidirectional controls, invisible operators, variation selectors,
/// tags, the Hangul fillers U+115F, U+1160, U+3164 and U+FFA0, ...), plus blanks that are not
/// in that set: U+2800 BRAILLE PATTERN BLANK (and the Hangul fillers, named again so that the
/// rule does not rest on the set alone).
///
/// Two of them are kept where emoji need them, because there they are part of what is seen:
/// - ZWJ between two pictographs (an emoji, possibly with its skin tone or VS16, before it, and
///   a pictograph after it): 👩‍💻, 🏳️‍🌈, 👨🏽‍💻. Anywhere else ("pro\u{200D}d") it shows nothing.
/// - VS16 right after an emoji whose default form is text (Emoji, not Emoji_Presentation),
///   which it turns into its emoji form: ❤️, ☺️; after `#`, `*` or a digit only as part of a
///   keycap (#️⃣). After anything else it changes nothing that can be seen.
///
/// Everything else in the set is refused wherever it stands, including what some emoji use:
/// tag characters (the flags of England, Scotland and Wales), the text-form selector VS15, and
/// ZWNJ (which Persian and Indic scripts use between letters; a name can do without it).
fn has_invisible_character(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    (0..chars.len()).any(|at| {
        let before = at.checked_sub(1).map(|i| chars[i]);
        let after = chars.get(at + 1).copied();
        match chars[at] {
            ZWJ => !(before.is_some_and(ends_an_emoji) && after.is_some_and(is_pictograph)),
            VS16 => !before.is_some_and(|c| shown_differently_by_vs16(c, after)),
            c => is_invisible(c),
        }
    })
}

fn is_invisible(c: char) -> bool {
    use icu_properties::props::{BinaryProperty, DefaultIgnorableCodePoint};
    DefaultIgnorableCodePoint::for_char(c)
        || matches!(
            c,
            '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' | '\u{2800}'
        )
}

fn is_pictograph(c: char) -> bool {
    use icu_properties::props::{BinaryProperty, ExtendedPictographic};
    ExtendedPictographic::for_char(c)
}

/// What may stand before a ZWJ in an emoji sequence: a pictograph, a skin tone, or VS16 (itself
/// checked where it stands).
fn ends_an_emoji(c: char) -> bool {
    use icu_properties::props::{BinaryProperty, EmojiModifier};
    c == VS16 || is_pictograph(c) || EmojiModifier::for_char(c)
}

/// Whether VS16 after `c` (and before `after`) changes what is seen.
fn shown_differently_by_vs16(c: char, after: Option<char>) -> bool {
    use icu_properties::props::{BinaryProperty, Emoji, EmojiPresentation};
    if c.is_ascii() {
        // `#`, `*` and the digits are Emoji, but look the same with VS16 unless it makes a keycap.
        return Emoji::for_char(c) && after == Some(KEYCAP);
    }
    Emoji::for_char(c) && !EmojiPresentation::for_char(c)
}

fn scopes(value: Option<&Value>, allowed: &[String]) -> Result<Vec<String>, ApiError> {
    let invalid = |message: String| Err(ApiError::InvalidScopes(message));
    let Some(items) = value.and_then(Value::as_array) else {
        return invalid("`scopes` must be a list of strings.".into());
    };
    if items.is_empty() {
        return invalid("`scopes` must name at least one scope.".into());
    }
    let mut scopes: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Some(scope) = item.as_str() else {
            return invalid("`scopes` must contain only strings.".into());
        };
        if !allowed.iter().any(|a| a == scope) {
            return invalid(format!("Unknown scope; allowed: {}.", allowed.join(", ")));
        }
        if scopes.iter().any(|s| s == scope) {
            return invalid("`scopes` must not repeat a scope.".into());
        }
        scopes.push(scope.to_owned());
    }
    Ok(scopes)
}

/// An optional RFC 3339 time (any offset) in the future, at most [`MAX_EXPIRY_SECS`] ahead;
/// absent or `null` means the key never expires.
fn expires_at(value: Option<&Value>, now: i64) -> Result<Option<i64>, ApiError> {
    let invalid = |message: &str| Err(ApiError::InvalidExpiresAt(message.into()));
    let text = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text,
        Some(_) => return invalid("`expires_at` must be an RFC 3339 time or null."),
    };
    let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) else {
        return invalid("`expires_at` must be an RFC 3339 time, e.g. 2027-01-31T00:00:00Z.");
    };
    let at = time.timestamp();
    if at <= now {
        return invalid("`expires_at` must be in the future.");
    }
    if at - now > MAX_EXPIRY_SECS {
        return invalid("`expires_at` must be at most ten years ahead.");
    }
    Ok(Some(at))
}

#[cfg(test)]
mod tests;

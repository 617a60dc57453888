//! Configuration from Spin variables, with the documented defaults and checks.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `jwt_secret` | (none: management answers `configuration_error`) | HS256 secret of the tokens that sign users in, at least [`MIN_JWT_SECRET_BYTES`] bytes |
//! | `jwt_issuer` | empty: not checked | required `iss` |
//! | `jwt_audience` | empty: tokens with an `aud` are refused | required `aud` |
//! | `allowed_scopes` | [`DEFAULT_ALLOWED_SCOPES`] | comma-separated scopes a key may hold |
//! | `key_prefix` | [`DEFAULT_KEY_PREFIX`] | what new keys start with, before `_` |
//! | `max_keys_per_user` | [`DEFAULT_MAX_KEYS`] | 1 to [`MAX_KEYS_CEILING`] |
//!
//! Together, `max_keys_per_user` and `allowed_scopes` must keep a user's full index under
//! [`MAX_INDEX_BYTES`] (see [`largest_index_bytes`]).

use crate::key::is_valid_prefix;
use crate::protocol::{largest_index_bytes, MAX_INDEX_BYTES};

/// Shortest accepted `jwt_secret`, in bytes after trimming: HS256 needs a key of at least 256
/// bits (RFC 7518 §3.2).
pub const MIN_JWT_SECRET_BYTES: usize = 32;
/// Scopes allowed when `allowed_scopes` is empty or unset.
pub const DEFAULT_ALLOWED_SCOPES: &str = "read,write,admin";
/// Prefix of new keys when `key_prefix` is empty or unset.
pub const DEFAULT_KEY_PREFIX: &str = "ak";
/// Keys a user may hold when `max_keys_per_user` is empty or unset.
pub const DEFAULT_MAX_KEYS: u32 = 20;
/// Highest accepted `max_keys_per_user`: bounds what list and delete read.
pub const MAX_KEYS_CEILING: u32 = 100;
/// Longest scope name.
pub const MAX_SCOPE_LEN: usize = 64;

/// Where variable values come from: Spin's variables in a component, a map in tests.
pub trait Variables {
    /// The value of `name`, or `None` if it is not defined or empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// A configuration problem; its text goes to the log, never to a client.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// Settings of the management functions (create, list, delete).
#[derive(Debug, Clone)]
pub struct Config {
    pub jwt_secret: String,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub allowed_scopes: Vec<String>,
    pub key_prefix: String,
    pub max_keys_per_user: u32,
}

impl Config {
    /// Reads and checks every setting.
    pub fn load(vars: &impl Variables) -> Result<Config, ConfigError> {
        // Trimmed: a secret read from a file or a Kubernetes Secret often ends in a newline.
        let jwt_secret = vars
            .get("jwt_secret")
            .map(|secret| secret.trim().to_owned())
            .ok_or_else(|| ConfigError("jwt_secret is not set".into()))?;
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            // Names the variable, never its value.
            return Err(ConfigError(format!(
                "jwt_secret must be at least {MIN_JWT_SECRET_BYTES} bytes (HS256, RFC 7518 §3.2); \
                 make one with `openssl rand -base64 48`"
            )));
        }
        let allowed_scopes = parse_scopes(
            &vars
                .get("allowed_scopes")
                .unwrap_or_else(|| DEFAULT_ALLOWED_SCOPES.into()),
        )?;
        let key_prefix = vars
            .get("key_prefix")
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.into());
        if !is_valid_prefix(&key_prefix) {
            return Err(ConfigError(format!(
                "key_prefix must be 1-32 of [A-Za-z0-9_] not ending in _, got {key_prefix:?}"
            )));
        }
        let max_keys_per_user = match vars.get("max_keys_per_user") {
            None => DEFAULT_MAX_KEYS,
            Some(text) => text
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_KEYS_CEILING).contains(n))
                .ok_or_else(|| {
                    ConfigError(format!(
                        "max_keys_per_user must be 1-{MAX_KEYS_CEILING}, got {text:?}"
                    ))
                })?,
        };
        let largest = largest_index_bytes(&allowed_scopes, &key_prefix, max_keys_per_user);
        if largest > MAX_INDEX_BYTES {
            return Err(ConfigError(format!(
                "a user's full index could take {largest} bytes with max_keys_per_user = \
                 {max_keys_per_user} and these allowed_scopes, over the {MAX_INDEX_BYTES} bytes \
                 one store value may safely hold: lower max_keys_per_user, or allow fewer or \
                 shorter scopes"
            )));
        }
        Ok(Config {
            jwt_secret,
            jwt_issuer: vars.get("jwt_issuer"),
            jwt_audience: vars.get("jwt_audience"),
            allowed_scopes,
            key_prefix,
            max_keys_per_user,
        })
    }
}

/// Whether `scope` is a well-formed scope name: 1–64 of `[A-Za-z0-9:._-]`.
pub fn is_valid_scope_name(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
}

fn parse_scopes(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !is_valid_scope_name(scope) {
            return Err(ConfigError(format!(
                "allowed_scopes has an invalid scope {scope:?}"
            )));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    if scopes.is_empty() {
        return Err(ConfigError("allowed_scopes lists no scope".into()));
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);
    impl Variables for Map {
        fn get(&self, name: &str) -> Option<String> {
            self.0
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        }
    }

    fn load(pairs: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
        Config::load(&Map(pairs.iter().copied().collect()))
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn defaults_apply_when_only_the_secret_is_set() {
        let config = load(&[("jwt_secret", SECRET)]).unwrap();
        assert_eq!(config.allowed_scopes, vec!["read", "write", "admin"]);
        assert_eq!(config.key_prefix, "ak");
        assert_eq!(config.max_keys_per_user, 20);
        assert_eq!(config.jwt_issuer, None);
        assert_eq!(config.jwt_audience, None);
    }

    #[test]
    fn the_secret_is_required() {
        assert!(load(&[]).is_err());
        assert!(load(&[("jwt_secret", "")]).is_err());
    }

    #[test]
    fn the_secret_has_at_least_256_bits_after_trimming() {
        let error = load(&[("jwt_secret", "s")]).unwrap_err();
        assert!(error.0.contains("jwt_secret"), "{error:?}");
        assert!(
            !error.0.contains("\"s\""),
            "the value is never logged: {error:?}"
        );
        assert!(load(&[("jwt_secret", &SECRET[1..])]).is_err(), "31 bytes");
        // 31 bytes and a newline, as a secret file ends: still too short.
        assert!(load(&[("jwt_secret", "0123456789abcdef0123456789abcde\n")]).is_err());
        let config = load(&[("jwt_secret", "0123456789abcdef0123456789abcdef\n")]).unwrap();
        assert_eq!(
            config.jwt_secret, SECRET,
            "surrounding whitespace is trimmed"
        );
    }

    #[test]
    fn settings_are_read_and_checked() {
        let config = load(&[
            ("jwt_secret", SECRET),
            (
                "allowed_scopes",
                " emails:send , contacts:read,emails:send ",
            ),
            ("key_prefix", "zc_live"),
            ("max_keys_per_user", "5"),
            ("jwt_issuer", "iss"),
        ])
        .unwrap();
        assert_eq!(config.allowed_scopes, vec!["emails:send", "contacts:read"]);
        assert_eq!(config.key_prefix, "zc_live");
        assert_eq!(config.max_keys_per_user, 5);
        assert_eq!(config.jwt_issuer.as_deref(), Some("iss"));
        for bad in [
            ("max_keys_per_user", "0"),
            ("max_keys_per_user", "101"),
            ("max_keys_per_user", "x"),
        ] {
            assert!(load(&[("jwt_secret", SECRET), bad]).is_err(), "{bad:?}");
        }
        // A full index must fit in one store value: 100 keys may hold 20 scopes of 30
        // characters, not 60 of 60.
        let scopes = |count: usize, len: usize| -> &'static str {
            let list = (0..count)
                .map(|i| format!("{i:0len$}"))
                .collect::<Vec<_>>()
                .join(",");
            Box::leak(list.into_boxed_str())
        };
        let fits = scopes(20, 30);
        let config = load(&[
            ("jwt_secret", SECRET),
            ("allowed_scopes", fits),
            ("max_keys_per_user", "100"),
        ]);
        assert!(config.is_ok(), "{config:?}");
        let too_many = scopes(60, 60);
        let error = load(&[
            ("jwt_secret", SECRET),
            ("allowed_scopes", too_many),
            ("max_keys_per_user", "100"),
        ])
        .unwrap_err();
        assert!(error.0.contains("max_keys_per_user"), "{error:?}");
        for bad in [
            ("key_prefix", "a-b"),
            ("allowed_scopes", "a b"),
            ("allowed_scopes", ",,"),
        ] {
            assert!(load(&[("jwt_secret", SECRET), bad]).is_err(), "{bad:?}");
        }
    }
}

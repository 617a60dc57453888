//! Spin's runtime config file (`spin up --runtime-config-file FILE`): which backend serves the
//! app's key-value store, in Spin's own format, so `deploy/runtime-config/redis.toml` works here
//! unchanged.
//!
//! ```toml
//! [key_value_store.default]
//! type = "redis"                 # or "spin": SQLite at `path` (relative to this file),
//! url = "redis://127.0.0.1:6379" #     in memory without one
//! ```
//!
//! Other backends Spin knows (`azure_cosmos`, `aws_dynamo`) need their cloud and are refused
//! with a clear message; so are labels other than `default`, the only store this host serves.
//! Other sections (variables providers, LLMs, ...) are not this host's business and are ignored.

use crate::kv::{KvBackend, SqliteBackend};
use crate::kv_redis::{RedisBackend, RedisCasAnswers};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    key_value_store: BTreeMap<String, StoreConfig>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StoreConfig {
    Spin { path: Option<std::path::PathBuf> },
    Redis { url: String },
    AzureCosmos {},
    AwsDynamo {},
}

/// The backend the file chooses for the `default` store, or `None` if it names none (then the
/// default SQLite file beside `spin.toml` serves, as with `spin up`).
pub fn load(path: &Path, redis_answers: RedisCasAnswers) -> Result<Option<Arc<dyn KvBackend>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read runtime config {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base, redis_answers)
        .with_context(|| format!("invalid runtime config {}", path.display()))
}

/// Parses a runtime config's text; relative SQLite paths are taken from `base`.
pub fn parse(
    text: &str,
    base: &Path,
    redis_answers: RedisCasAnswers,
) -> Result<Option<Arc<dyn KvBackend>>> {
    let config: RuntimeConfig = toml::from_str(text)?;
    let mut chosen = None;
    for (label, store) in config.key_value_store {
        if label != "default" {
            bail!("key_value_store.{label}: the local host serves only the `default` store");
        }
        chosen = Some(match store {
            StoreConfig::Spin { path: Some(path) } => {
                SqliteBackend::open(base.join(path))? as Arc<dyn KvBackend>
            }
            StoreConfig::Spin { path: None } => SqliteBackend::in_memory(),
            StoreConfig::Redis { url } => RedisBackend::new(&url, redis_answers)?,
            StoreConfig::AzureCosmos {} | StoreConfig::AwsDynamo {} => bail!(
                "key_value_store.{label}: this backend needs its cloud service; the local host \
                 supports type = \"spin\" and type = \"redis\""
            ),
        });
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_here(text: &str) -> Result<Option<Arc<dyn KvBackend>>> {
        parse(text, Path::new("."), RedisCasAnswers::Spin41)
    }

    #[test]
    fn the_deployment_redis_config_parses_unchanged() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/runtime-config/redis.toml");
        let backend = load(&path, RedisCasAnswers::Spin41).unwrap();
        assert!(backend.is_some());
    }

    #[test]
    fn spin_type_is_sqlite_at_a_path_or_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[key_value_store.default]\ntype = \"spin\"\npath = \"data/kv.db\"\n";
        let backend = parse(text, dir.path(), RedisCasAnswers::Spin41)
            .unwrap()
            .unwrap();
        backend.set("default", "k", b"v").unwrap();
        assert!(dir.path().join("data/kv.db").exists());
        let memory = parse_here("[key_value_store.default]\ntype = \"spin\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(memory.get("default", "k").unwrap(), None);
    }

    #[test]
    fn no_store_section_keeps_the_default_store() {
        assert!(parse_here("").unwrap().is_none());
        let other = "[[config_provider]]\ntype = \"vault\"\nurl = \"http://vault\"\n";
        assert!(parse_here(other).unwrap().is_none());
    }

    #[test]
    fn unsupported_backends_and_labels_are_refused_by_name() {
        let cloud = parse_here("[key_value_store.default]\ntype = \"aws_dynamo\"\ntable = \"t\"\n");
        assert!(format!("{:#}", cloud.err().unwrap()).contains("supports type"));
        let label = parse_here("[key_value_store.other]\ntype = \"spin\"\n");
        assert!(format!("{:#}", label.err().unwrap()).contains("only the `default` store"));
        assert!(parse_here("[key_value_store.default]\ntype = \"carrier-pigeon\"\n").is_err());
    }
}

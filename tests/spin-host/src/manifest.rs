//! Reads a Spin manifest (version 2): the HTTP routes, the components and their build steps,
//! and resolves application variables into each component's variables as `spin up` does.

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Default, Deserialize)]
struct RawApplication {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Debug, Deserialize)]
struct RawHttpTrigger {
    route: toml::Value,
    component: toml::Value,
}

/// An application variable declared under `[variables]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawVariable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    build: Option<RawBuild>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawBuild {
    command: toml::Value,
    workdir: Option<String>,
}

/// A build step of one component.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildStep {
    pub commands: Vec<String>,
    /// Absolute folder the commands run in.
    pub workdir: PathBuf,
}

/// One component of the app, with its variables still as templates.
#[derive(Debug, Clone)]
pub struct Component {
    pub id: String,
    /// Absolute path of the `.wasm` file.
    pub source: PathBuf,
    pub key_value_stores: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    pub build: Option<BuildStep>,
}

/// A parsed manifest; paths are made absolute against the manifest's folder.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    /// Folder holding the manifest.
    pub dir: PathBuf,
    pub variables: BTreeMap<String, RawVariable>,
    /// `(route, component id)` in manifest order.
    pub routes: Vec<(String, String)>,
    pub components: BTreeMap<String, Component>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let path = std::path::absolute(path)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &dir).with_context(|| format!("invalid manifest {}", path.display()))
    }

    pub fn parse(text: &str, dir: &Path) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!("only spin_manifest_version = 2 is supported");
        }
        for (name, var) in &raw.variables {
            check_variable_name(name)?;
            if var.required && var.default.is_some() {
                bail!("variable `{name}` cannot be both required and have a default");
            }
        }
        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            let source = c.source.as_str().ok_or_else(|| {
                anyhow!("component `{id}`: only a local file path is supported as `source`")
            })?;
            for (name, template) in &c.variables {
                check_variable_name(name)?;
                for used in template_refs(template)? {
                    if !raw.variables.contains_key(&used) {
                        bail!(
                            "component `{id}` variable `{name}` uses undeclared variable `{used}`"
                        );
                    }
                }
            }
            let build = c.build.map(|b| build_step(&id, b, dir)).transpose()?;
            let component = Component {
                id: id.clone(),
                source: dir.join(source),
                key_value_stores: c.key_value_stores,
                variables: c.variables,
                environment: c.environment,
                build,
            };
            components.insert(id, component);
        }
        let mut routes = Vec::new();
        for t in raw.trigger.http {
            let component = t.component.as_str().ok_or_else(|| {
                anyhow!("trigger component must be the id of a [component.<id>] table")
            })?;
            if !components.contains_key(component) {
                bail!("trigger refers to unknown component `{component}`");
            }
            // `route = { private = true }` has no public route: Spin skips it too.
            if let Some(route) = t.route.as_str() {
                routes.push((route.to_owned(), component.to_owned()));
            }
        }
        Ok(Manifest {
            name: raw.application.name,
            dir: dir.to_path_buf(),
            variables: raw.variables,
            routes,
            components,
        })
    }

    /// Keeps only the components `ids` and their routes, as `spin up --component-id` does
    /// (so only they are built and served); fails naming an id the manifest does not have.
    pub fn retain_components(&mut self, ids: &[String]) -> Result<()> {
        if let Some(unknown) = ids.iter().find(|id| !self.components.contains_key(*id)) {
            bail!("no component `{unknown}` in the manifest");
        }
        self.components.retain(|id, _| ids.contains(id));
        self.routes.retain(|(_, component)| ids.contains(component));
        Ok(())
    }

    /// Values of the application variables: `overrides`, else env `SPIN_VARIABLE_<NAME>`, else
    /// the default. Fails naming a required variable that has no value.
    pub fn app_variables(
        &self,
        overrides: &HashMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<HashMap<String, String>> {
        let mut values = HashMap::new();
        for (name, var) in &self.variables {
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let value = overrides
                .get(name)
                .cloned()
                .or_else(|| env(&env_name))
                .or_else(|| var.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None if var.required => bail!(
                    "required variable `{name}` has no value: set the environment variable {env_name}"
                ),
                None => {}
            }
        }
        Ok(values)
    }

    /// One component's variables with `{{ app_var }}` rendered. A template naming a variable
    /// with no value fails, which is how Spin treats it too.
    pub fn component_variables(
        &self,
        id: &str,
        app: &HashMap<String, String>,
    ) -> Result<HashMap<String, String>> {
        let component = self
            .components
            .get(id)
            .ok_or_else(|| anyhow!("no component `{id}`"))?;
        component
            .variables
            .iter()
            .map(|(name, template)| {
                Ok((
                    name.clone(),
                    render(template, app)
                        .with_context(|| format!("component `{id}` variable `{name}`"))?,
                ))
            })
            .collect()
    }
}

fn build_step(id: &str, b: RawBuild, dir: &Path) -> Result<BuildStep> {
    let commands = match b.command {
        toml::Value::String(s) => vec![s],
        toml::Value::Array(a) => a
            .into_iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| anyhow!("component `{id}`: build commands must be strings"))?,
        _ => bail!("component `{id}`: build command must be a string or a list of strings"),
    };
    let workdir = b
        .workdir
        .map(|w| dir.join(w))
        .unwrap_or_else(|| dir.to_path_buf());
    Ok(BuildStep { commands, workdir })
}

/// Spin's rule for variable names: lowercase ASCII letters, digits and `_`, starting with a
/// letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        bail!("invalid variable name `{name}`: use lowercase letters, digits and `_`, starting with a letter")
    }
}

/// Splits a template into literal text and `{{ name }}` references.
fn parts(template: &str) -> Result<Vec<(bool, String)>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push((false, rest[..start].to_owned()));
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| anyhow!("unclosed `{{{{` in `{template}`"))?;
        let name = after[..end].trim();
        check_variable_name(name)?;
        out.push((true, name.to_owned()));
        rest = &after[end + 2..];
    }
    out.push((false, rest.to_owned()));
    Ok(out)
}

fn template_refs(template: &str) -> Result<Vec<String>> {
    Ok(parts(template)?
        .into_iter()
        .filter(|(r, _)| *r)
        .map(|(_, n)| n)
        .collect())
}

/// Renders `{{ name }}` references from `values`.
pub fn render(template: &str, values: &HashMap<String, String>) -> Result<String> {
    parts(template)?
        .into_iter()
        .map(|(is_ref, s)| {
            if is_ref {
                values
                    .get(&s)
                    .cloned()
                    .ok_or_else(|| anyhow!("variable `{s}` has no value"))
            } else {
                Ok(s)
            }
        })
        .collect()
}

/// Runs every component's build commands (`sh -c`), printing each; stops at the first failure.
/// Rust targets the commands name (`--target wasm32-wasip2`) are added through rustup first if
/// the toolchain lacks them, so a fresh machine builds without a manual step.
pub fn run_builds(manifest: &Manifest, quiet: bool) -> Result<()> {
    let commands = manifest
        .components
        .values()
        .filter_map(|c| c.build.as_ref())
        .flat_map(|b| b.commands.iter().map(String::as_str));
    add_missing_targets(&manifest.dir, commands)?;
    for c in manifest.components.values() {
        let Some(build) = &c.build else { continue };
        for command in &build.commands {
            if !quiet {
                println!("Building component {} with `{command}`", c.id);
            }
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&build.workdir)
                .status()
                .with_context(|| format!("cannot run build command for `{}`", c.id))?;
            if !status.success() {
                bail!(
                    "build command for component `{}` failed ({status}): {command}",
                    c.id
                );
            }
        }
    }
    if !quiet {
        println!("Finished building all Spin components");
    }
    Ok(())
}

/// The Rust targets a build command names with `--target X` or `--target=X`.
fn targets_named(command: &str) -> Vec<&str> {
    let mut words = command.split_whitespace();
    let mut targets = Vec::new();
    while let Some(word) = words.next() {
        if word == "--target" {
            targets.extend(words.next());
        } else if let Some(target) = word.strip_prefix("--target=") {
            targets.push(target);
        }
    }
    targets
}

/// Adds, with `rustup target add`, the targets `commands` name that the toolchain of `dir` (its
/// `rust-toolchain.toml`) does not have yet. Without rustup nothing is done: cargo explains.
fn add_missing_targets<'a>(dir: &Path, commands: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut needed: Vec<&str> = commands.flat_map(targets_named).collect();
    needed.sort_unstable();
    needed.dedup();
    if needed.is_empty() {
        return Ok(());
    }
    let rustup = |args: &[&str]| {
        std::process::Command::new("rustup")
            .args(args)
            .current_dir(dir)
            .output()
    };
    let Ok(listed) = rustup(&["target", "list", "--installed"]) else {
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&listed.stdout).into_owned();
    for target in needed
        .into_iter()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
    {
        eprintln!(
            "Adding the Rust target {target} that the build needs (rustup target add {target})"
        );
        let added = rustup(&["target", "add", target])?;
        if !added.status.success() {
            bail!(
                "rustup target add {target} failed: {}",
                String::from_utf8_lossy(&added.stderr).trim()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_commands_name_their_targets() {
        assert_eq!(
            targets_named("cargo build --profile wasm --target wasm32-wasip2 -p create"),
            ["wasm32-wasip2"]
        );
        assert_eq!(
            targets_named("cargo build --target=wasm32-wasip1"),
            ["wasm32-wasip1"]
        );
        assert!(targets_named("cargo build --release").is_empty());
        assert!(targets_named("cargo build --target").is_empty());
    }

    #[test]
    fn the_targets_of_the_apps_builds_are_installed_before_building() {
        // On a toolchain without the target, this adds it (and says so); with it, it is a no-op.
        let spin_toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let manifest = Manifest::load(&spin_toml).unwrap();
        add_missing_targets(
            &manifest.dir,
            ["cargo build --target wasm32-wasip2"].into_iter(),
        )
        .unwrap();
        let listed = std::process::Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(&manifest.dir)
            .output()
            .expect("rustup");
        assert!(String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l == "wasm32-wasip2"));
    }

    const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
jwt_secret = { required = true, secret = true }
region = { default = "eu" }
[[trigger.http]]
route = "/v1/keys.create"
component = "create"
[[trigger.http]]
route = { private = true }
component = "create"
[component.create]
source = "target/create.wasm"
key_value_stores = ["default"]
[component.create.variables]
secret = "{{ jwt_secret }}"
where = "region-{{region}}!"
[component.create.build]
command = "cargo build"
workdir = "functions/create"
"#;

    fn manifest() -> Manifest {
        Manifest::parse(APP, Path::new("/app")).unwrap()
    }

    #[test]
    fn parses_routes_components_and_build() {
        let m = manifest();
        assert_eq!(m.name, "demo");
        assert_eq!(
            m.routes,
            [("/v1/keys.create".to_string(), "create".to_string())]
        );
        let c = &m.components["create"];
        assert_eq!(c.source, Path::new("/app/target/create.wasm"));
        assert_eq!(c.key_value_stores, ["default"]);
        let build = c.build.clone().unwrap();
        assert_eq!(build.commands, ["cargo build"]);
        assert_eq!(build.workdir, Path::new("/app/functions/create"));
    }

    #[test]
    fn renders_templates_from_overrides_env_and_defaults() {
        let m = manifest();
        let env = |name: &str| (name == "SPIN_VARIABLE_JWT_SECRET").then(|| "from-env".to_string());
        let app = m.app_variables(&HashMap::new(), env).unwrap();
        let vars = m.component_variables("create", &app).unwrap();
        assert_eq!(vars["secret"], "from-env");
        assert_eq!(vars["where"], "region-eu!");
        let overrides = HashMap::from([("jwt_secret".to_string(), "over".to_string())]);
        let app = m.app_variables(&overrides, env).unwrap();
        assert_eq!(
            m.component_variables("create", &app).unwrap()["secret"],
            "over"
        );
    }

    #[test]
    fn missing_required_variable_names_it() {
        let err = manifest()
            .app_variables(&HashMap::new(), |_| None)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("jwt_secret") && text.contains("SPIN_VARIABLE_JWT_SECRET"),
            "{text}"
        );
    }

    #[test]
    fn rejects_undeclared_template_variable_and_unknown_component() {
        let bad = APP.replace("{{ jwt_secret }}", "{{ nope }}");
        assert!(Manifest::parse(&bad, Path::new("/")).is_err());
        let bad = APP.replace("component = \"create\"\n[[", "component = \"ghost\"\n[[");
        assert!(Manifest::parse(&bad, Path::new("/")).is_err());
    }

    #[test]
    fn component_ids_keep_only_those_components_and_routes() {
        let spin_toml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
        let mut m = Manifest::load(&spin_toml).unwrap();
        m.retain_components(&["verify".to_owned()]).unwrap();
        let routes: Vec<&str> = m.routes.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            routes,
            [
                "/v1/keys.verify",
                "/v1/keys.verify/...",
                "/v1/keys.introspect",
                "/healthz/verify"
            ]
        );
        assert_eq!(m.components.keys().collect::<Vec<_>>(), ["verify"]);
        let error = m.retain_components(&["nope".to_owned()]).unwrap_err();
        assert!(error.to_string().contains("no component `nope`"));
    }
}

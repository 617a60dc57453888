//! `spin-host up`: serve the app in `spin.toml` locally, like `spin up`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use spin_host::{HostConfig, RedisCasAnswers, SqliteBackend};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Runs a Spin app on a small wasmtime host, like `spin up`"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the components, then serve the app until Ctrl-C.
    Up {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
        /// Skip the components' build commands.
        #[arg(long)]
        no_build: bool,
        /// Add `x-kv-reads` and `x-kv-writes` headers to every response.
        #[arg(long)]
        kv_stats_header: bool,
        /// Spin's runtime config file: which backend serves the key-value store (`spin`, `redis`).
        #[arg(long, value_name = "FILE")]
        runtime_config_file: Option<PathBuf>,
        /// Serve only this component (repeatable), as `spin up --component-id`.
        #[arg(long, short = 'c', value_name = "ID")]
        component_id: Vec<String>,
        /// Most memory one component instance may use, in bytes (as `spin up
        /// --max-instance-memory`; default `SPIN_MAX_INSTANCE_MEMORY`, else no limit).
        #[arg(long, value_name = "BYTES")]
        max_instance_memory: Option<usize>,
        /// For tests: how a Redis compare-and-swap answers (`spin41`, as Spin 4.1 does, or
        /// `unwatch-fixed`, as Spin will once its stray UNWATCH argument is gone).
        #[arg(long, hide = true, value_enum, default_value = "spin41")]
        redis_cas: RedisCasAnswers,
    },
}

fn main() -> Result<()> {
    spin_host::no_backtraces_for_errors();
    let Command::Up {
        listen,
        manifest,
        no_build,
        kv_stats_header,
        runtime_config_file,
        component_id,
        max_instance_memory,
        redis_cas,
    } = Cli::parse().command;
    let mut config = HostConfig::new(&manifest);
    let chosen = match &runtime_config_file {
        Some(file) => spin_host::runtime_config::load(file, redis_cas)?,
        None => None,
    };
    config.backend = match chosen {
        Some(backend) => backend,
        None => {
            let dir = std::path::absolute(&manifest)?
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            // Open now so a bad path stops start-up instead of failing every request.
            SqliteBackend::open(dir.join(".spin").join("sqlite_key_value.db"))?
        }
    };
    config.components = component_id;
    config.listen = listen;
    config.build = !no_build;
    config.kv_stats_header = kv_stats_header;
    if max_instance_memory.is_some() {
        config.max_instance_memory = max_instance_memory;
    }

    // The host runs on its own runtime; this one only waits for Ctrl-C.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let host = spin_host::start(config).await?;
        tokio::signal::ctrl_c().await?;
        host.shutdown().await;
        Ok(())
    })
}

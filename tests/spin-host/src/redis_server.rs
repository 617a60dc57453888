//! A throwaway `redis-server` (Debian's package) on a loopback port of its own, for the tests
//! and the benchmark: started on demand, nothing persisted, stopped when dropped. On a machine
//! without one, it is obtained where the machine allows (see [`program`]), as the build adds
//! the wasm target itself: `cargo test` needs nothing installed by hand.

use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where Debian's `redis-tools` puts the Redis binary, which runs as the server when called
/// `redis-server` (Debian's `redis-server` package only adds that name, and a system service).
const DEBIAN_REDIS_BINARY: &str = "/usr/bin/redis-check-rdb";

/// The program to start as `redis-server`: the one on `PATH`; else Debian's Redis binary
/// (see [`DEBIAN_REDIS_BINARY`]), from `redis-tools`, installed once with `apt-get` when the
/// machine has it and this runs as root — `redis-tools`, not `redis-server`, so that no system
/// service is installed and started. Asked once per process.
fn program() -> Result<&'static Path> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("redis-server"))
                .find(|candidate| candidate.is_file())
        });
        if let Some(found) = on_path {
            return Ok(found);
        }
        let debian = Path::new(DEBIAN_REDIS_BINARY);
        if !debian.is_file() {
            install_redis_tools()?;
        }
        Ok(debian.to_path_buf())
    });
    found.as_deref().map_err(|why| anyhow::anyhow!("{why}"))
}

/// Installs Debian's `redis-tools` with `apt-get`, saying so in one line, if this machine can.
fn install_redis_tools() -> std::result::Result<(), String> {
    let refusal = "cannot run `redis-server`, and cannot install it here (needs root and \
        apt-get): install it (Debian: apt-get install redis-tools, or redis-server)";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let apt = Path::new("/usr/bin/apt-get").is_file();
    if !root || !apt {
        return Err(refusal.into());
    }
    eprintln!(
        "redis-server not found: installing Debian's redis-tools (apt-get install redis-tools)"
    );
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let install = [
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "redis-tools",
    ];
    // The package lists of a fresh machine may be empty: fetch them only then.
    let installed = quiet(&install) || (quiet(&["update", "-qq"]) && quiet(&install));
    if !installed {
        return Err(format!("{refusal}; apt-get install redis-tools failed"));
    }
    Ok(())
}

/// A running `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers.
    pub fn start() -> Result<RedisServer> {
        let mut last_error = None;
        // A port found free may be taken by another test's server before this one binds it;
        // then this one exits and another port is tried.
        for _ in 0..5 {
            match RedisServer::start_once() {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn start_once() -> Result<RedisServer> {
        // Ask the kernel for a free port, then hand it to Redis (it cannot pick one itself).
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut server = RedisServer { child: None, port };
        server.spawn_and_wait()?;
        Ok(server)
    }

    /// Starts the server again on its port after [`RedisServer::stop`], empty (nothing is
    /// persisted): the end of an outage, for tests of what the app does after one.
    pub fn start_again(&mut self) -> Result<()> {
        self.stop();
        self.spawn_and_wait()
    }

    /// Spawns `redis-server` on this server's port and waits until it answers there.
    fn spawn_and_wait(&mut self) -> Result<()> {
        let port = self.port;
        let child = Command::new(program()?)
            // The name decides what Debian's binary runs as (see [`DEBIAN_REDIS_BINARY`]).
            .arg0("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run `redis-server` (Debian: apt-get install redis-tools)")?;
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The server answering must be this one, not another test's on the same port.
            if self.process_id().ok() == Some(pid) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("redis-server exited at start ({status}); port {port} was taken");
            }
            if Instant::now() > deadline {
                bail!("redis-server (pid {pid}) did not answer on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of the server answering on this server's port.
    fn process_id(&self) -> Result<u32> {
        TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        let mut connection = redis::Client::open(self.url())?.get_connection()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut connection)?;
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .context("no process_id in INFO")?
            .trim()
            .parse()
            .context("process_id")
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A runtime config file's text that puts the `default` store on this server.
    pub fn runtime_config(&self) -> String {
        format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n",
            self.url()
        )
    }

    /// Stops the server now (to see what the app does without its store).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

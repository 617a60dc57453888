//! A throwaway `redis-server` (Debian's package) on a loopback port of its own, for the tests
//! and the benchmark: started on demand, nothing persisted, stopped when dropped.

use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let child = Command::new("redis-server")
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
            .context("cannot run `redis-server` (Debian: apt-get install redis-server)")?;
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

//! The app on real Spin: `spin up` (the binary `SPIN_BIN` names) serving `spin.toml` on a
//! store of its own — SQLite, Redis, or DynamoDB through a local DynamoDB-compatible server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The Spin binary the suite runs on, when `SPIN_BIN` names one.
pub fn spin_bin() -> Option<PathBuf> {
    std::env::var_os("SPIN_BIN")
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// Where a Spin instance keeps its `default` store.
pub enum SpinStore {
    /// Spin's SQLite store, in this file.
    Sqlite(PathBuf),
    /// A Redis server at this URL.
    Redis(String),
    /// A table of its own on the local DynamoDB-compatible server.
    DynamoDb,
}

/// One `spin up` process (and the trigger process it starts), stopped when dropped.
pub struct SpinInstance {
    child: Child,
    pub url: String,
    /// The folder of its runtime config, state and component logs.
    dir: tempfile::TempDir,
}

impl SpinInstance {
    /// Starts `spin up` (the binary `spin`) on `manifest` serving `components` (all if empty),
    /// with `variables` (lower-case names) and the store `store`; returns once it answers HTTP.
    pub fn start(
        spin: &Path,
        manifest: &Path,
        store: &SpinStore,
        variables: &[(&str, &str)],
        components: &[&str],
    ) -> SpinInstance {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut environment: Vec<(String, String)> = variables
            .iter()
            .map(|(name, value)| {
                (
                    format!("SPIN_VARIABLE_{}", name.to_uppercase()),
                    (*value).to_owned(),
                )
            })
            .collect();
        let store_config = match store {
            SpinStore::Sqlite(path) => {
                format!("type = \"spin\"\npath = {:?}\n", path.display().to_string())
            }
            SpinStore::Redis(url) => format!("type = \"redis\"\nurl = {url:?}\n"),
            SpinStore::DynamoDb => {
                let server = dynamodb_server();
                let table = server.new_table();
                environment.extend(server.environment());
                // Consistent reads: what the deploy docs require (Spin's default is eventual).
                format!(
                    "type = \"aws_dynamo\"\nregion = \"us-east-1\"\ntable = {table:?}\nconsistent_read = true\n"
                )
            }
        };
        let runtime_config = dir.path().join("runtime-config.toml");
        std::fs::write(
            &runtime_config,
            format!("[key_value_store.default]\n{store_config}"),
        )
        .expect("runtime config written");
        let port = free_port();
        let mut command = Command::new(spin);
        command
            .arg("up")
            .arg("-f")
            .arg(manifest)
            .arg("--runtime-config-file")
            .arg(&runtime_config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--max-instance-memory")
            .arg(crate::INSTANCE_MEMORY_LIMIT.to_string())
            .envs(environment)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for component in components {
            command.arg("-c").arg(component);
        }
        let child = spawn_group(&mut command);
        let instance = SpinInstance {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        instance.wait_until_serving(port);
        instance
    }

    fn wait_until_serving(&self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("spin up did not listen on port {port} within 60 s");
    }

    /// Its process group: `spin up` and the trigger process it starts (whose CPU time is the
    /// server's).
    pub fn process_group(&self) -> i32 {
        self.child.id() as i32
    }

    /// What the components wrote to stderr: Spin keeps it in `<state>/logs/<component>_stderr.txt`.
    pub fn component_log(&self) -> String {
        let mut log = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("state/logs")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with("_stderr.txt") {
                    log.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
                }
            }
        }
        log
    }
}

impl Drop for SpinInstance {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

/// Process groups this test process started and has not stopped yet: stopped at exit too,
/// since apps held in statics (`shared_app`) are never dropped.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

extern "C" fn stop_every_group_at_exit() {
    for group in RUNNING.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

/// Spawns `command` as the leader of a process group of its own, so that stopping it stops
/// what it starts too (`spin up` runs the HTTP trigger as a child process).
fn spawn_group(command: &mut Command) -> Child {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function with no captured state.
        unsafe { libc::atexit(stop_every_group_at_exit) };
    });
    std::os::unix::process::CommandExt::process_group(command, 0);
    let child = command.spawn().expect("a process of the suite starts");
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(child.id() as i32);
    child
}

/// Stops the process group `child` leads: TERM, then KILL for whatever is left.
fn stop_group(child: &mut Child) {
    let group = child.id() as i32;
    RUNNING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|g| *g != group);
    // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    // Spin waits for requests in flight, and one waiting on an unreachable Redis never ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// The local DynamoDB-compatible server of this test process (`tests/lib/dynamodb_server.py`,
/// moto serving one request at a time), started on first use, with a new table per app.
pub struct DynamoDbServer {
    /// Held in a static, never dropped: stopped at exit with the other process groups.
    _process: Child,
    port: u16,
    tables: Mutex<u32>,
}

/// The Python that has moto, or `None`: `MOTO_PYTHON`, else `target/moto-venv` if it exists.
pub fn moto_python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("MOTO_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(python));
    }
    let venv = crate::workspace_root().join("target/moto-venv/bin/python3");
    venv.exists().then_some(venv)
}

fn dynamodb_server() -> &'static DynamoDbServer {
    static SERVER: OnceLock<DynamoDbServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let python = moto_python().expect("a Python with moto (MOTO_PYTHON)");
        let port = free_port();
        let mut child = spawn_group(
            Command::new(python)
                .arg(crate::workspace_root().join("tests/lib/dynamodb_server.py"))
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let mut ready = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut ready)
            .expect("the server says it is ready");
        assert_eq!(
            ready.trim(),
            "ready",
            "the DynamoDB-compatible server failed"
        );
        DynamoDbServer {
            _process: child,
            port,
            tables: Mutex::new(0),
        }
    })
}

impl DynamoDbServer {
    /// What Spin's `aws_dynamo` store reads from the environment to reach this server.
    fn environment(&self) -> Vec<(String, String)> {
        [
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }

    /// Creates a table with a string partition key `PK` (as Spin's store wants); its name.
    fn new_table(&self) -> String {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        *tables += 1;
        let table = format!("apikeys-{}-{}", std::process::id(), *tables);
        let body = serde_json::json!({
            "TableName": table,
            "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "PK", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        });
        // The server checks no signature; the credential scope names the region.
        let authorization = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0";
        ureq::post(&format!("http://127.0.0.1:{}/", self.port))
            .set("x-amz-target", "DynamoDB_20120810.CreateTable")
            .set("content-type", "application/x-amz-json-1.0")
            .set("authorization", authorization)
            .send_string(&body.to_string())
            .expect("table created");
        table
    }
}

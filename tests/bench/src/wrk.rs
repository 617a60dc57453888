//! Runs the load generator, wrk, and reads its report: requests per second and the latency
//! percentiles of `--latency`.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// All answered requests per second.
    pub rps: f64,
    /// Requests per second that got a 2xx or 3xx answer.
    pub ok_rps: f64,
    /// Requests answered in the run.
    pub requests: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU time the host spent per request (user and system, all its threads), when it runs in
    /// this process: what a request costs the server, apart from wrk's share of the machine.
    pub host_cpu: Option<Duration>,
}

const LISTED_SCRIPT: &str = r#"
local next_offset = 0
function setup(thread)
  thread:set("offset", next_offset)
  next_offset = next_offset + 1
end
function init(args)
  requests = {}
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    local method, path, token, body = line:match("^(%S+)\t(%S+)\t(%S*)\t(.*)$")
    requests[#requests + 1] = wrk.format(method, path,
      {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
  end
  position = offset or 0
  step = tonumber(os.getenv("BENCH_THREADS"))
end
function request()
  local r = requests[(position % #requests) + 1]
  position = position + step
  return r
end
"#;

/// Runs wrk for a fixed time per measurement, with its scratch files in one folder.
pub struct Wrk<'a> {
    pub duration: Duration,
    pub scratch: &'a Path,
    /// Whose CPU time is the server's: this process (the local host runs in it), a process
    /// group (real `spin up` and the trigger process it starts), or unknown (a remote server).
    pub server_cpu: ServerCpu,
}

impl Wrk<'_> {
    /// The same GET with these headers, again and again, over `connections` connections.
    pub fn get(&self, url: &str, headers: &[(&str, &str)], connections: u32) -> Result<Load> {
        let mut command = self.command(connections);
        for (name, value) in headers {
            command.args(["-H", &format!("{name}: {value}")]);
        }
        self.run(command.arg(url))
    }

    /// Requests given as lines (`METHOD\tPATH\tTOKEN\tBODY`), sent in turn and cycled
    /// through; each wrk thread takes every other line so that threads never repeat each other.
    pub fn listed(&self, url: &str, requests: &[String], connections: u32) -> Result<Load> {
        let (script, list) = (
            self.scratch.join("listed.lua"),
            self.scratch.join("requests.tsv"),
        );
        std::fs::write(&script, LISTED_SCRIPT)?;
        std::fs::write(&list, requests.join("\n"))?;
        let mut command = self.command(connections);
        command
            .env("BENCH_REQUESTS", &list)
            .env("BENCH_THREADS", threads(connections).to_string());
        self.run(command.arg("-s").arg(&script).arg(url))
    }

    fn command(&self, connections: u32) -> Command {
        let mut command = Command::new("wrk");
        command.args(["--latency", "-t", &threads(connections).to_string()]);
        command.args(["-c", &connections.to_string(), "--timeout", "10s"]);
        command.args(["-d", &format!("{}s", self.duration.as_secs().max(1))]);
        command
    }

    fn run(&self, command: &mut Command) -> Result<Load> {
        let cpu_before = self.server_cpu.spent();
        let mut load = run(command)?;
        if let (Some(before), Some(after)) = (cpu_before, self.server_cpu.spent()) {
            if load.requests > 0.0 {
                load.host_cpu = Some(after.saturating_sub(before).div_f64(load.requests));
            }
        }
        Ok(load)
    }
}

/// Where the server's CPU time is read from.
#[derive(Debug, Clone, Copy)]
pub enum ServerCpu {
    /// The local host, in this process.
    ThisProcess,
    /// Every process of this process group (`spin up` and its trigger), from `/proc`.
    Group(i32),
    /// A remote server: not known.
    Unknown,
}

impl ServerCpu {
    /// User and system CPU time the server has spent so far.
    fn spent(self) -> Option<Duration> {
        match self {
            ServerCpu::ThisProcess => Some(process_cpu()),
            ServerCpu::Group(group) => group_cpu(group),
            ServerCpu::Unknown => None,
        }
    }
}

/// User and system CPU time of the live processes of process group `group`, from
/// `/proc/<pid>/stat` (fields 5: process group, 14 and 15: user and system time in ticks).
fn group_cpu(group: i32) -> Option<Duration> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks_per_second = u64::try_from(ticks_per_second).ok().filter(|t| *t > 0)?;
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) is in parentheses and may hold spaces: split after it.
        let Some(after_name) = stat.rsplit_once(") ").map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // `after_name` starts at field 3 (state): field n is at index n - 3.
        if fields.get(2).and_then(|f| f.parse::<i32>().ok()) != Some(group) {
            continue;
        }
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        ticks += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    Some(Duration::from_secs_f64(
        ticks as f64 / ticks_per_second as f64,
    ))
}

/// User and system CPU time of this process so far, all threads.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given, which is plain data.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// wrk's threads: one per connection, at most two (the machine's cores are shared with the server).
fn threads(connections: u32) -> u32 {
    connections.clamp(1, 2)
}

fn run(command: &mut Command) -> Result<Load> {
    let output = command
        .output()
        .context("running wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse(&text).with_context(|| format!("unreadable wrk report:\n{text}"))
}

fn parse(report: &str) -> Option<Load> {
    let field = |prefix: &str| {
        report
            .lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix).map(str::trim))
    };
    let rps: f64 = field("Requests/sec:")?.parse().ok()?;
    let total: f64 = report
        .lines()
        .find(|l| l.contains(" requests in "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let failed: f64 = field("Non-2xx or 3xx responses:").map_or(Some(0.0), |v| v.parse().ok())?;
    let ok_rps = if total > 0.0 {
        rps * (total - failed) / total
    } else {
        0.0
    };
    Some(Load {
        rps,
        ok_rps,
        requests: total,
        p50: duration(field("50%")?)?,
        p99: duration(field("99%")?)?,
        host_cpu: None,
    })
}

/// wrk's durations: `412.00us`, `1.23ms`, `2.01s`, `1.00m`.
fn duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 1s test @ http://127.0.0.1:3000/v1/keys.verify
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.79ms    2.01ms  28.15ms   80.02%
    Req/Sec     2.78k   268.33     3.21k    75.00%
  Latency Distribution
     50%    5.51ms
     75%    6.60ms
     90%    8.01ms
     99%   12.44ms
  5533 requests in 1.00s, 1.01MB read
  Non-2xx or 3xx responses: 5533
Requests/sec:   5525.79
Transfer/sec:      1.01MB
";

    #[test]
    fn reads_rate_percentiles_and_failures() {
        let load = parse(REPORT).unwrap();
        assert_eq!(load.rps, 5525.79);
        assert_eq!(load.ok_rps, 0.0);
        assert_eq!(load.p50, Duration::from_micros(5510));
        assert_eq!(load.p99, Duration::from_micros(12440));
        let ok = parse(&REPORT.replace("  Non-2xx or 3xx responses: 5533\n", "")).unwrap();
        assert_eq!(ok.ok_rps, 5525.79);
    }

    #[test]
    fn reads_every_unit() {
        assert_eq!(duration("412.00us"), Some(Duration::from_micros(412)));
        assert_eq!(duration("2.00s"), Some(Duration::from_secs(2)));
        assert_eq!(duration("1.00m"), Some(Duration::from_secs(60)));
        assert_eq!(duration("3.0h"), None);
    }
}

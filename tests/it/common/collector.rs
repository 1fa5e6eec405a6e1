//! The collector binary: one run (`Collector`, `Run`) or a running process (`Running`), its
//! environment for a test, and its `--help` texts.

use super::*;
use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The outcome of one collector run.
#[derive(Clone, Debug)]
pub struct Run {
    /// Exit code; None if killed by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The fields of a summary line logged with `--log-format json`.
pub type Summary = serde_json::Map<String, serde_json::Value>;

impl Run {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// The number after ` name=` in the summary line (`pass done: … name=N …`), in
    /// either log format's text.
    #[track_caller]
    pub fn summary_count(&self, name: &str) -> u64 {
        let line = self
            .stderr
            .lines()
            .rfind(|l| l.contains("pass done:"))
            .unwrap_or_else(|| panic!("no summary line: {self}"));
        let after = line
            .split_once(&format!(" {name}="))
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
            .1;
        after
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}= is not a count in {line}"))
    }

    /// The summary of a run logged with `--log-format json`: its last stderr line, which
    /// must be the summary (`pass done: ...`).
    #[track_caller]
    pub fn summary(&self) -> Summary {
        let last = self.stderr.lines().last().unwrap_or_default();
        let line: serde_json::Value = serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("the last line is not a JSON log line ({e}): {self}"));
        assert!(
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("pass done:")),
            "the last line is not the summary: {self}"
        );
        line.as_object().cloned().unwrap_or_default()
    }

    /// Panics (showing both outputs) unless the exit code was 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Run {
        assert!(self.success(), "collector failed: {self}");
        self
    }

    /// Panics (showing both outputs) unless the exit code was `code`.
    #[track_caller]
    pub fn assert_status(&self, code: i32) -> &Run {
        assert_eq!(self.status, Some(code), "unexpected exit status: {self}");
        self
    }

    /// Every non-empty stdout line parsed as JSON (panics on a non-JSON line).
    #[track_caller]
    pub fn stdout_json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}\n{self}"))
            })
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Builder for one run of the asgard-stats binary, with a clean environment.
pub struct Collector {
    cmd: Command,
    description: String,
    timeout: Duration,
}

/// The asgard-stats binary with an empty environment (only PATH and RUST_LOG=info), so the
/// developer's shell variables never leak into a test.
pub fn collector() -> Collector {
    command(env!("CARGO_BIN_EXE_asgard-stats"))
}

/// Same as [`collector`] for any program (used by the harness's own tests).
pub fn command(program: impl AsRef<OsStr>) -> Collector {
    let mut cmd = Command::new(program.as_ref());
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        )
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    Collector {
        cmd,
        description: program.as_ref().to_string_lossy().into_owned(),
        timeout: Duration::from_secs(60),
    }
}

impl Collector {
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.cmd.envs(vars);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(key);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.description.push(' ');
        self.description.push_str(&arg.as_ref().to_string_lossy());
        self.cmd.arg(arg);
        self
    }

    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Kill the child and fail the test if it runs longer than this (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the process without waiting (e.g. to stop a broker while it runs).
    pub fn spawn(mut self) -> Running {
        let mut child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.description));
        let stdout = reader(child.stdout.take());
        let stderr = reader(child.stderr.take());
        Running {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
            description: self.description,
        }
    }

    /// Runs to completion and returns exit code and outputs.
    pub fn run(self) -> Run {
        self.spawn().wait()
    }

    /// Runs to completion; also returns the process's peak resident set size in KiB: the
    /// largest `VmHWM` (the kernel's high-water mark of its own memory) read from
    /// /proc every few milliseconds while it runs.
    ///
    /// Not wait4's ru_maxrss: a child spawned from the test process (vfork, then exec)
    /// inherits the test process's own high-water mark, which holds whole simulated
    /// clusters. VmHWM only grows, so the last reading misses at most the final
    /// milliseconds, when a pass only logs its summary and exits.
    pub fn run_measuring_peak_rss(self) -> (Run, u64) {
        let mut running = self.spawn();
        let status = PathBuf::from(format!("/proc/{}/status", running.pid()));
        let mut peak = 0;
        while let Ok(None) = running.child.try_wait() {
            if let Some(kib) = std::fs::read_to_string(&status)
                .ok()
                .as_deref()
                .and_then(high_water_mark_kib)
            {
                peak = peak.max(kib);
            }
            thread::sleep(Duration::from_millis(5));
        }
        (running.wait(), peak)
    }
}

/// The `VmHWM:  1234 kB` line of a /proc status file, in KiB.
pub(super) fn high_water_mark_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub(super) fn reader(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A collector process started with [`Collector::spawn`]. Killed if dropped while running.
pub struct Running {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
    deadline: Instant,
    timeout: Duration,
    description: String,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown request).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Sends SIGINT (what Ctrl-C sends).
    pub fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
    }

    /// Waits for exit; kills the process and fails the test if the timeout passes first.
    pub fn wait(mut self) -> Run {
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.finish(),
                Ok(None) if Instant::now() >= self.deadline => {
                    let _ = self.child.kill();
                    let run = self.finish();
                    panic!(
                        "{} did not finish within {:?}: killed.\n{run}",
                        self.description, self.timeout
                    );
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {}: {e}", self.description),
            }
        }
    }

    /// Kills the process (SIGKILL) and returns what it printed.
    pub fn kill(mut self) -> Run {
        let _ = self.child.kill();
        self.finish()
    }

    fn finish(&mut self) -> Run {
        let status = self.child.wait().expect("wait for child");
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        Run {
            status: status.code(),
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What `asgard-stats --help`, `collect --help` and `check --help` print: every flag and
/// variable the binary knows.
pub fn help_texts() -> Vec<String> {
    [
        &["--help"][..],
        &["collect", "--help"],
        &["check", "--help"],
    ]
    .into_iter()
    .map(|args| {
        let run = collector().args(args).run();
        run.assert_success();
        run.stdout
    })
    .collect()
}

/// The collector's environment for one test: cluster masters, the test's Redis, a broker, the
/// routing key and a per-test Redis key prefix.
pub fn collector_env(
    cluster_master_urls: &[String],
    redis: &RedisServer,
    broker: &(impl AmqpAddr + ?Sized),
    routing_key: &str,
    key_prefix: &str,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    let mut urls = cluster_master_urls.iter();
    if let Some(first) = urls.next() {
        env.push(("HOLLOWMAN_MESOS_ADDRESS".to_string(), first.clone()));
    }
    for (i, url) in urls.enumerate() {
        env.push((format!("HOLLOWMAN_MESOS_ADDRESS_{i}"), url.clone()));
    }
    let fixed = [
        ("STATS_COLLECTOR_REDIS_URL", redis.url()),
        ("STATS_COLLECTOR_RABBITMQ_HOST", broker.host_port()),
        ("STATS_COLLECTOR_RABBITMQ_USER", Broker::USER.to_string()),
        ("STATS_COLLECTOR_RABBITMQ_PWD", Broker::PASSWORD.to_string()),
        ("STATS_COLLECTOR_RABBITMQ_VHOST", Broker::VHOST.to_string()),
        ("STATS_COLLECTOR_RABBITMQ_RK", routing_key.to_string()),
        ("STATS_COLLECTOR_KEY_PREFIX", key_prefix.to_string()),
    ];
    env.extend(fixed.into_iter().map(|(k, v)| (k.to_string(), v)));
    env
}

//! Ports, unique names, scratch folders, waiting, and `scripts/services`: what every
//! other part of the harness builds on.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Root of the asgard-stats repository (where `scripts/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/services ARGS...` (through bash, so a lost executable bit does not matter) and
/// returns its stdout; panics with its stderr if it fails.
pub(super) fn services(args: &[&str]) -> String {
    try_services(args).unwrap_or_else(|failure| panic!("{failure}"))
}

/// [`services`], returning what went wrong instead of panicking.
pub(super) fn try_services(args: &[&str]) -> Result<String, String> {
    let script = repo_root().join("scripts/services");
    let out = Command::new("bash")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "scripts/services {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test must not poison the helpers for every other test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
}

/// A TCP port that was free a moment ago. A process-wide set makes sure the same port is never
/// handed out twice in one test binary (the kernel may well return a just-released port again).
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if lock(given).insert(port) {
            return port;
        }
    }
    panic!("free_port: no unused port found");
}

/// A name unique across tests and test processes: `prefix-pid-counter-nanos`, only
/// `[a-z0-9._-]` (usable as a queue name, routing key or Redis key part).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let raw = format!("{prefix}-{}-{n}-{nanos}", std::process::id());
    raw.chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '-',
        })
        .collect()
}

/// Waits until `ready` holds, checking every 50 ms; fails the test naming `what` if it
/// still does not after `limit`. Make `limit` the bound only a real bug passes (e.g. the
/// pass deadline): a loaded machine is slow, never that slow.
#[track_caller]
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} in vain for: {what}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis key prefix private to one test, e.g. `asgard-test-1234-0-5678:`.
pub fn unique_key_prefix() -> String {
    format!("{}:", unique_name("asgard-test"))
}

/// A folder of one test's own under the system's temporary folder, removed when it ends.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Scratch {
        let dir = std::env::temp_dir().join(unique_name("asgard-scratch"));
        std::fs::create_dir_all(&dir).expect("create a scratch folder");
        Scratch(dir)
    }

    /// The names in the folder, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read the scratch folder")
            .map(|e| {
                e.expect("a folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

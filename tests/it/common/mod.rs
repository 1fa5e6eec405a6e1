//! Shared helpers for the integration tests (`mod common;` in each `tests/*.rs`).
//!
//! Every test gets its own redis-server, its own queue names and its own Redis key prefix, so
//! tests run in parallel without seeing each other. RabbitMQ is one shared, project-private node
//! (`scripts/services ensure`, port 5673) plus disposable private nodes for fault tests.
//!
//! Nothing in this file depends on the `mesos-sim` API: clusters are passed in as plain master
//! URLs (see `World` in world.rs for the glue).
#![allow(dead_code)]

// `World` (world.rs, the lead's): cluster + Redis + queue + prefix in one value. It is the only
// part of the harness that uses the mesos-sim API.
mod world;
#[allow(unused_imports)] // not every test file uses it
pub use world::*;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Root of the asgard-stats repository (where `scripts/` lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `scripts/services ARGS...` (through bash, so a lost executable bit does not matter) and
/// returns its stdout; panics with its stderr if it fails.
fn services(args: &[&str]) -> String {
    try_services(args).unwrap_or_else(|failure| panic!("{failure}"))
}

/// [`services`], returning what went wrong instead of panicking.
fn try_services(args: &[&str]) -> Result<String, String> {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

// ---------------------------------------------------------------------------------------------
// Redis

/// A redis-server child process private to one test (no persistence). Killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// `--requirepass`, when set; [`RedisServer::url`] carries it.
    password: Option<String>,
    /// With [`RedisServer::durable`]: the directory of its append-only file, which a
    /// restart reads back.
    data_dir: Option<PathBuf>,
    /// More arguments of redis-server (a replica's `--replicaof`).
    extra: Vec<String>,
    /// The dump file of the running server, if it writes one (a replica does).
    dump: Option<PathBuf>,
}

impl RedisServer {
    /// Starts a redis-server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::start_with(None)
    }

    /// A redis-server that wants this password (`--requirepass`).
    pub fn with_password(password: &str) -> RedisServer {
        RedisServer::start_with(Some(password.to_string()))
    }

    /// A redis-server that writes every command to its append-only file before answering
    /// (`--appendfsync always`), so [`RedisServer::start_again`] after a kill comes back
    /// with every write it acknowledged.
    pub fn durable() -> RedisServer {
        let dir = std::env::temp_dir().join(unique_name("asgard-redis"));
        std::fs::create_dir_all(&dir).expect("create the Redis data directory");
        RedisServer::start_in(None, Some(dir), Vec::new())
    }

    fn start_with(password: Option<String>) -> RedisServer {
        RedisServer::start_in(password, None, Vec::new())
    }

    fn start_in(
        password: Option<String>,
        data_dir: Option<PathBuf>,
        extra: Vec<String>,
    ) -> RedisServer {
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                password: password.clone(),
                data_dir: data_dir.clone(),
                extra: extra.clone(),
                dump: None,
            };
            if server.spawn() {
                return server;
            }
            // Lost a race for the port (or a slow start): try another port.
        }
        panic!("redis-server did not come up after 5 attempts");
    }

    /// A replica of `master` (`--replicaof`), with its password.
    pub fn replica_of(master: &RedisServer) -> RedisServer {
        RedisServer::replica_at(master, master.port(), Vec::new())
    }

    /// A replica of `master` reached on `port`, with its password and these arguments.
    fn replica_at(master: &RedisServer, port: u16, mut args: Vec<String>) -> RedisServer {
        args.extend([
            "--replicaof".to_string(),
            "127.0.0.1".to_string(),
            port.to_string(),
        ]);
        if let Some(password) = &master.password {
            args.extend(["--masterauth".to_string(), password.clone()]);
        }
        let replica = RedisServer::start_in(master.password.clone(), None, args);
        wait_until("the replica is in sync", Duration::from_secs(30), || {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut replica.conn())
                .is_ok_and(|info| info.contains("master_link_status:up"))
        });
        replica
    }

    /// Spawns redis-server on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        // A replica writes what its master sends to its dump file, and any server loads
        // that file when it starts: each run gets a file of its own, out of the working
        // folder and removed when it stops.
        let dump = unique_name("asgard-redis") + ".rdb";
        let dir = std::env::temp_dir();
        self.dump = Some(dir.join(&dump));
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no"])
            // A replica's first sync starts at once, not after the default 5 s.
            .args(["--repl-diskless-sync-delay", "0"])
            .args(match &self.data_dir {
                Some(dir) => vec![
                    "--appendonly".to_string(),
                    "yes".to_string(),
                    "--appendfsync".to_string(),
                    "always".to_string(),
                    "--dir".to_string(),
                    dir.to_string_lossy().into_owned(),
                ],
                None => vec![
                    "--appendonly".to_string(),
                    "no".to_string(),
                    "--dir".to_string(),
                    dir.to_string_lossy().into_owned(),
                ],
            })
            .args(["--dbfilename", &dump])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass", p.as_str()]),
            )
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("redis-server not installed: run scripts/services ensure")
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None; // exited: port taken?
                    return false;
                }
            }
            if self.ping().is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        false
    }

    fn ping(&self) -> redis::RedisResult<String> {
        let mut conn =
            redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))?;
        redis::cmd("PING").query(&mut conn)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()))
    }

    /// Kills the server and waits for it (its port is closed when this returns).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dump) = self.dump.take() {
            let _ = std::fs::remove_file(dump);
        }
    }

    /// Starts the server again on the same port after `stop()`: empty, or with its data
    /// for a [`RedisServer::durable`] one.
    pub fn start_again(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.data_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Redis under Sentinel, all on loopback and private to one test: a master, a replica and
/// three sentinels (`redis-server --sentinel` with a generated configuration) watching
/// them as [`SentinelGroup::NAME`], quick to fail over (down after 1 s). Killed on drop.
pub struct SentinelGroup {
    /// The data nodes: the master and the replica at the start, in either role later.
    pub nodes: Vec<RedisServer>,
    sentinels: Vec<Child>,
    pub sentinel_ports: Vec<u16>,
    /// The nodes' password (`requirepass`, `masterauth`), if any.
    password: Option<String>,
    /// The sentinels' own password, if any.
    sentinel_password: Option<String>,
    /// The port the sentinels know each node by: its TLS port with TLS, else its port.
    known_ports: Vec<u16>,
    /// redis-server's TLS arguments (certificate, key, CA; TLS replication), with TLS.
    tls: Option<Vec<String>>,
    /// The sentinels' TLS ports, with TLS.
    sentinel_tls_ports: Vec<u16>,
    /// Where the sentinels keep the configuration they rewrite.
    dir: PathBuf,
}

impl SentinelGroup {
    pub const NAME: &'static str = "asgard-master";

    /// A group without passwords.
    pub fn start() -> SentinelGroup {
        SentinelGroup::with_passwords(None, None)
    }

    /// A group whose nodes want `password` and whose sentinels want `sentinel_password`;
    /// returns once the sentinels know the replica and each other.
    pub fn with_passwords(
        password: Option<&str>,
        sentinel_password: Option<&str>,
    ) -> SentinelGroup {
        SentinelGroup::build(password, sentinel_password, false)
    }

    /// A group whose nodes and sentinels speak TLS to each other and to clients (on ports
    /// of their own, beside the plain ones the test's own connections use), with a
    /// certificate for 127.0.0.1 from a CA of its own.
    pub fn with_tls() -> SentinelGroup {
        SentinelGroup::build(None, None, true)
    }

    fn build(password: Option<&str>, sentinel_password: Option<&str>, tls: bool) -> SentinelGroup {
        let dir = std::env::temp_dir().join(unique_name("asgard-sentinel"));
        std::fs::create_dir_all(&dir).expect("create the sentinels' folder");
        let tls = tls.then(|| {
            let certificates = TestCertificates::new(&["localhost"], &[[127, 0, 0, 1].into()]);
            let mut args = Vec::new();
            for (flag, name, pem) in [
                ("--tls-cert-file", "cert.pem", &certificates.cert_pem),
                ("--tls-key-file", "key.pem", &certificates.key_pem),
                ("--tls-ca-cert-file", "ca.pem", &certificates.ca_pem),
            ] {
                let file = dir.join(name);
                std::fs::write(&file, pem).expect("write a TLS file");
                args.extend([flag.to_string(), file.display().to_string()]);
            }
            args.extend(["--tls-auth-clients", "no", "--tls-replication", "yes"].map(String::from));
            args
        });
        let tls_port = |args: &Vec<String>| {
            let port = free_port();
            let mut args = args.clone();
            args.extend(["--tls-port".to_string(), port.to_string()]);
            (port, args)
        };
        let password = password.map(str::to_string);
        let (master, replica, known_ports) = match &tls {
            None => {
                let master = RedisServer::start_with(password.clone());
                let replica = RedisServer::replica_of(&master);
                let ports = vec![master.port(), replica.port()];
                (master, replica, ports)
            }
            Some(args) => {
                let (master_port, master_args) = tls_port(args);
                let master = RedisServer::start_in(password.clone(), None, master_args);
                let (replica_port, replica_args) = tls_port(args);
                let replica = RedisServer::replica_at(&master, master_port, replica_args);
                (master, replica, vec![master_port, replica_port])
            }
        };
        let mut group = SentinelGroup {
            nodes: vec![master, replica],
            sentinels: Vec::new(),
            sentinel_ports: Vec::new(),
            password,
            sentinel_password: sentinel_password.map(str::to_string),
            known_ports,
            tls,
            sentinel_tls_ports: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            group.spawn_sentinel();
        }
        group.wait_until_ready();
        group
    }

    /// The CA that signed the nodes' and sentinels' certificate, with TLS.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The port the sentinels know the node at `index` by (its TLS port with TLS).
    pub fn port_of(&self, index: usize) -> u16 {
        self.known_ports[index]
    }

    fn spawn_sentinel(&mut self) {
        let port = free_port();
        let master_port = self.known_ports[0];
        let name = SentinelGroup::NAME;
        let mut config = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
             sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 10000\n\
             sentinel parallel-syncs {name} 1\n",
            dir = self.dir.display()
        );
        if let Some(password) = &self.password {
            config.push_str(&format!("sentinel auth-pass {name} {password}\n"));
        }
        if let Some(password) = &self.sentinel_password {
            config.push_str(&format!(
                "requirepass {password}\nsentinel sentinel-pass {password}\n"
            ));
        }
        if let Some(args) = &self.tls {
            // The same settings as the nodes', in the file's form (no leading `--`).
            let tls_port = free_port();
            config.push_str(&format!("tls-port {tls_port}\n"));
            for pair in args.chunks(2) {
                config.push_str(&format!(
                    "{} {}\n",
                    pair[0].trim_start_matches("--"),
                    pair[1]
                ));
            }
            self.sentinel_tls_ports.push(tls_port);
        }
        let file = self.dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(&file, config).expect("write a sentinel's configuration");
        let child = Command::new("redis-server")
            .arg(&file)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server --sentinel");
        self.sentinels.push(child);
        self.sentinel_ports.push(port);
    }

    fn sentinel_answer(&self, port: u16, command: &[&str]) -> redis::RedisResult<redis::Value> {
        let login = self
            .sentinel_password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let mut conn = redis::Client::open(format!("redis://{login}127.0.0.1:{port}"))?
            .get_connection_with_timeout(Duration::from_secs(2))?;
        redis::cmd("SENTINEL").arg(command).query(&mut conn)
    }

    /// The port of the master sentinel `port` names now.
    pub fn named_by(&self, port: u16) -> Option<u16> {
        let answer = self
            .sentinel_answer(port, &["get-master-addr-by-name", SentinelGroup::NAME])
            .ok()?;
        let (_, port): (String, u16) = redis::FromRedisValue::from_redis_value(answer).ok()?;
        Some(port)
    }

    /// Waits (up to 60 s) until every sentinel knows the replica and the two other
    /// sentinels, so that a failover can happen.
    fn wait_until_ready(&self) {
        let ready = || {
            self.sentinel_ports.iter().all(|&port| {
                let count =
                    |what: &str| match self.sentinel_answer(port, &[what, SentinelGroup::NAME]) {
                        Ok(redis::Value::Array(items)) => items.len(),
                        _ => 0,
                    };
                count("replicas") == 1 && count("sentinels") == 2
            })
        };
        wait_until(
            "the sentinels know each other",
            Duration::from_secs(60),
            ready,
        );
    }

    /// The sentinels' URL for the collector: every sentinel, the nodes' password, the
    /// sentinels' own as a query parameter.
    pub fn url(&self) -> String {
        let login = self
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let ports = match self.tls {
            Some(_) => &self.sentinel_tls_ports,
            None => &self.sentinel_ports,
        };
        let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let query = self
            .sentinel_password
            .as_ref()
            .map(|p| format!("?sentinel_password={p}"))
            .unwrap_or_default();
        let scheme = match self.tls {
            Some(_) => "rediss",
            None => "redis",
        };
        format!(
            "{scheme}+sentinel://{login}{}/{}/0{query}",
            hosts.join(","),
            SentinelGroup::NAME
        )
    }

    /// The node the first sentinel names as master.
    pub fn master(&self) -> &RedisServer {
        &self.nodes[self.master_index()]
    }

    /// The index in `nodes` of the master the first sentinel names.
    pub fn master_index(&self) -> usize {
        let port = self
            .named_by(self.sentinel_ports[0])
            .expect("a sentinel names the master");
        self.known_ports
            .iter()
            .position(|&p| p == port)
            .expect("the master is one of the group's nodes")
    }

    /// Waits until the master's writes reached the replica (`WAIT 1`).
    pub fn wait_replicated(&self) {
        let replicas: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(10_000)
            .query(&mut self.master().conn())
            .expect("WAIT");
        assert_eq!(replicas, 1, "the replica acknowledged the writes");
    }

    /// Asks the first sentinel for a failover (`SENTINEL FAILOVER`); returns without
    /// waiting for it.
    pub fn start_failover(&self) {
        self.sentinel_answer(self.sentinel_ports[0], &["failover", SentinelGroup::NAME])
            .expect("SENTINEL FAILOVER");
    }

    /// Waits (up to 60 s) until every sentinel names another node than the one at index
    /// `old` and that node says it is the master; returns its index.
    pub fn wait_for_new_master(&self, old: usize) -> usize {
        let new = 1 - old;
        let port = self.known_ports[new];
        wait_until(
            "the sentinels name the new master",
            Duration::from_secs(60),
            || {
                let named = self
                    .sentinel_ports
                    .iter()
                    .all(|&s| self.named_by(s) == Some(port));
                named && self.role(new).as_deref() == Some("master")
            },
        );
        new
    }

    /// What the node at `index` says it is (`master`, `slave`), if it answers.
    pub fn role(&self, index: usize) -> Option<String> {
        let client = redis::Client::open(self.nodes[index].url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        let role: redis::Value = redis::cmd("ROLE").query(&mut conn).ok()?;
        match role {
            redis::Value::Array(items) => match items.first() {
                Some(redis::Value::BulkString(word)) => {
                    Some(String::from_utf8_lossy(word).into_owned())
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for child in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

/// Something that tells where an AMQP broker listens (guest/guest, vhost `/`).
pub trait AmqpAddr {
    /// `host:port`
    fn host_port(&self) -> String;

    fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.host_port())
    }
}

impl AmqpAddr for str {
    fn host_port(&self) -> String {
        self.to_string()
    }
}

impl AmqpAddr for String {
    fn host_port(&self) -> String {
        self.clone()
    }
}

/// The shared test broker (one per machine, started by `scripts/services ensure`).
#[derive(Clone, Debug)]
pub struct Broker {
    host_port: String,
}

impl Broker {
    pub const USER: &'static str = "guest";
    pub const PASSWORD: &'static str = "guest";
    pub const VHOST: &'static str = "/";

    /// `ASGARD_TEST_AMQP` (host:port) if set, else runs `scripts/services ensure` once per
    /// process and uses the address it prints.
    pub fn shared() -> Broker {
        static SHARED: OnceLock<String> = OnceLock::new();
        let host_port = SHARED.get_or_init(|| match std::env::var("ASGARD_TEST_AMQP") {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                let out = services(&["ensure"]);
                out.lines()
                    .find_map(|l| l.trim().strip_prefix("export ASGARD_TEST_AMQP="))
                    .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
                    .unwrap_or_else(|| panic!("scripts/services ensure printed no address:\n{out}"))
            }
        });
        Broker {
            host_port: host_port.clone(),
        }
    }

    /// A disposable RabbitMQ node of this test's own (for stopping/restarting the broker).
    pub fn private() -> PrivateBroker {
        PrivateBroker::start()
    }

    /// A disposable node that also listens for TLS (on 127.0.0.1) with this certificate.
    pub fn private_tls(certificates: &TestCertificates) -> PrivateBroker {
        PrivateBroker::start_with(Some(certificates))
    }

    pub fn user(&self) -> &'static str {
        Self::USER
    }
    pub fn password(&self) -> &'static str {
        Self::PASSWORD
    }
    pub fn vhost(&self) -> &'static str {
        Self::VHOST
    }
}

impl AmqpAddr for Broker {
    fn host_port(&self) -> String {
        self.host_port.clone()
    }
}

/// A RabbitMQ node private to one test: own node name, ports and data directory. Stopped and
/// its directory removed on drop. `stop()` / `start_again()` keep ports and data (durable
/// queues and persistent messages survive, as with a real broker restart).
pub struct PrivateBroker {
    node: String,
    amqp_port: u16,
    dist_port: u16,
    dir: PathBuf,
    /// The TLS listener's port, for a node started with [`Broker::private_tls`].
    tls_port: Option<u16>,
}

/// A CA and a server certificate it signed, as PEM, made for one test.
#[derive(Clone, Debug)]
pub struct TestCertificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCertificates {
    /// A fresh CA, and a certificate it signed for these DNS names and IP addresses.
    pub fn new(names: &[&str], ips: &[std::net::IpAddr]) -> TestCertificates {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, unique_name("asgard test CA"));
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        TestCertificates {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA to a file of its own (for STATS_COLLECTOR_*_CA_FILE).
    pub fn ca_file(&self) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}-ca.pem", unique_name("asgard-ca")));
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }
}

impl PrivateBroker {
    fn start() -> PrivateBroker {
        PrivateBroker::start_with(None)
    }

    /// A node with an AMQP listener and a TLS one (`listeners.ssl`) presenting this
    /// certificate; clients are not asked for one.
    ///
    /// A port free when chosen may be taken by another test process before the node binds
    /// it (seen as `dist_port_already_used`): a node that does not start is given up and
    /// a new one, with new ports, started in its place, twice at most.
    fn start_with(tls: Option<&TestCertificates>) -> PrivateBroker {
        // Make sure packages and the Erlang cookie exist (cheap when already done).
        let _ = Broker::shared();
        let mut failures = Vec::new();
        for _ in 0..3 {
            let broker = PrivateBroker::new_node(tls);
            let (amqp, dist, dir) = (
                broker.amqp_port.to_string(),
                broker.dist_port.to_string(),
                broker.dir.to_string_lossy().into_owned(),
            );
            match try_services(&["start-node", broker.node.as_str(), &amqp, &dist, &dir]) {
                Ok(_) => {
                    if let Some(port) = broker.tls_port {
                        wait_for_port(port);
                    }
                    return broker;
                }
                // Dropping the node stops what is left of it.
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "no private broker started in 3 attempts:\n{}",
            failures.join("\n")
        );
    }

    /// A node's name, ports and directory (with its TLS configuration), not started.
    fn new_node(tls: Option<&TestCertificates>) -> PrivateBroker {
        let name = unique_name("asgard-priv").replace('.', "-");
        let dir = std::env::temp_dir().join(format!("asgard-rabbit-{name}"));
        let node = format!("{name}@localhost");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create private broker dir");
        let tls_port = tls.map(|certificates| {
            let port = free_port();
            write_tls_config(&dir, port, certificates);
            port
        });
        PrivateBroker {
            node,
            amqp_port: free_port(),
            dist_port: free_port(),
            dir,
            tls_port,
        }
    }

    /// The TLS listener's port.
    ///
    /// # Panics
    /// For a node started without TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
            .expect("a node started with Broker::private_tls")
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn port(&self) -> u16 {
        self.amqp_port
    }

    pub fn user(&self) -> &'static str {
        Broker::USER
    }
    pub fn password(&self) -> &'static str {
        Broker::PASSWORD
    }
    pub fn vhost(&self) -> &'static str {
        Broker::VHOST
    }

    /// Stops the node; returns once its AMQP port refuses connections.
    pub fn stop(&mut self) {
        services(&["stop-node", &self.dir.to_string_lossy()]);
    }

    /// Raises (`on`) or clears a memory alarm: with the high watermark at almost nothing
    /// the node blocks every connection that publishes, announcing "low on memory".
    pub fn set_memory_alarm(&self, on: bool) {
        let watermark = if on { "0.0000001" } else { "0.4" };
        services(&["ctl", &self.node, "set_vm_memory_high_watermark", watermark]);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the node's Erlang VM: a broker that keeps its
    /// connections open and answers nothing, as a stalled host does.
    pub fn freeze(&self, frozen: bool) {
        let group =
            std::fs::read_to_string(self.dir.join("server.pid")).expect("the node's pid file");
        let group = group.trim();
        // The VM of this node only: the beam.smp process of its process group, read from
        // /proc (`pid (comm) state ppid pgrp ...`), so no procps is needed.
        let vms: Vec<String> = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(|entry| {
                let stat = std::fs::read_to_string(entry.ok()?.path().join("stat")).ok()?;
                let (head, rest) = stat.rsplit_once(") ")?;
                let (pid, comm) = head.split_once(" (")?;
                let pgrp = rest.split_whitespace().nth(2)?;
                (comm == "beam.smp" && pgrp == group).then(|| pid.to_string())
            })
            .collect();
        assert!(!vms.is_empty(), "no VM in process group {group}");
        let signal = if frozen { "-STOP" } else { "-CONT" };
        for pid in vms {
            // bash's own kill: no procps either.
            let status = Command::new("bash")
                .args(["-c", &format!("kill {signal} {pid}")])
                .status()
                .expect("bash");
            assert!(status.success(), "kill {signal} {pid}");
        }
    }

    /// (Re)starts the node with the same name, ports and data; returns once it accepts AMQP.
    pub fn start_again(&mut self) {
        let (amqp, dist, dir) = (
            self.amqp_port.to_string(),
            self.dist_port.to_string(),
            self.dir.to_string_lossy().into_owned(),
        );
        let start = ["start-node", self.node.as_str(), &amqp, &dist, &dir];
        // A node's boot can fail on a loaded machine (seen once while a benchmark ran
        // beside the tests); one clean retry tells that from a real failure.
        if let Err(first) = try_services(&start) {
            eprintln!("private broker did not start, retrying once: {first}");
            let _ = try_services(&["stop-node", &dir]);
            services(&start);
        }
    }
}

/// The node's `rabbitmq.conf` (scripts/services points RABBITMQ_CONFIG_FILE at
/// `DIR/rabbitmq`) with a TLS listener on loopback, and its certificate files beside it
/// (start-node hands the directory to user rabbitmq).
fn write_tls_config(dir: &std::path::Path, port: u16, certificates: &TestCertificates) {
    let files = [
        ("ca.pem", &certificates.ca_pem),
        ("cert.pem", &certificates.cert_pem),
        ("key.pem", &certificates.key_pem),
    ];
    for (name, pem) in files {
        std::fs::write(dir.join(name), pem).expect("write a certificate file");
    }
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let config = format!(
        "listeners.ssl.1 = 127.0.0.1:{port}\n\
         ssl_options.cacertfile = {}\n\
         ssl_options.certfile = {}\n\
         ssl_options.keyfile = {}\n\
         ssl_options.verify = verify_none\n\
         ssl_options.fail_if_no_peer_cert = false\n",
        path("ca.pem"),
        path("cert.pem"),
        path("key.pem"),
    );
    std::fs::write(dir.join("rabbitmq.conf"), config).expect("write rabbitmq.conf");
}

/// Waits (up to 30 s) until 127.0.0.1:`port` accepts connections.
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_is_open(port) {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        thread::sleep(Duration::from_millis(100));
    }
}

impl AmqpAddr for PrivateBroker {
    fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.amqp_port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // Always stop (a no-op for a node already stopped). No panics in drop: a test may
        // already be unwinding. The node's process group, read before stopping, is the
        // fallback if stop-node fails: never leak an Erlang VM.
        let pgid = std::fs::read_to_string(self.dir.join("server.pid")).unwrap_or_default();
        let stopped = Command::new("bash")
            .arg(repo_root().join("scripts/services"))
            .arg("stop-node")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped || port_is_open(self.amqp_port) {
            let pgid = pgid.trim();
            if !pgid.is_empty() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pgid}")])
                    .stderr(Stdio::null())
                    .status();
            }
            // Keep the directory (and its logs) for a post-mortem.
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// The tests' own reader of queues: lapin, a maintained AMQP client independent of the
// collector's, driven synchronously by `futures_lite::future::block_on` (lapin runs its I/O on
// async-global-executor / async-io threads, so no runtime has to be entered here).

/// Bound on one attempt to open a connection: a broker that accepts TCP but never answers
/// fails the test instead of hanging it.
const AMQP_CONNECT_ATTEMPT: Duration = Duration::from_secs(10);

/// Runs `future` to completion on this thread.
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::block_on(future)
}

/// `future`, or `None` once `limit` has passed.
fn within<T>(limit: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    block_on(futures_lite::future::or(
        async { Some(future.await) },
        async {
            async_io::Timer::after(limit).await;
            None
        },
    ))
}

/// An open AMQP connection with one channel, closed cleanly when dropped (so the broker
/// has processed everything sent on it before the helper returns).
pub struct AmqpConnection {
    connection: lapin::Connection,
    channel: lapin::Channel,
}

impl AmqpConnection {
    /// The channel, for what the helpers below do not cover.
    pub fn channel(&self) -> &lapin::Channel {
        &self.channel
    }

    /// Runs one of the channel's futures to completion.
    pub fn wait<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        block_on(future)
    }

    /// Closes the connection now, reporting a failure (dropping closes too, quietly).
    pub fn close(self) -> Result<(), lapin::Error> {
        block_on(self.connection.close(200, "done".into()))
    }
}

impl Drop for AmqpConnection {
    fn drop(&mut self) {
        // No panic in drop; a connection the broker already closed has nothing to close.
        let _ = within(
            Duration::from_secs(5),
            self.connection.close(200, "done".into()),
        );
    }
}

/// Opens an AMQP connection (guest/guest, vhost `/`) and a channel on it, retrying for a
/// few seconds.
pub fn amqp_connect(addr: &(impl AmqpAddr + ?Sized)) -> AmqpConnection {
    let url = addr.amqp_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let opened = within(AMQP_CONNECT_ATTEMPT, async {
            let connection =
                lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            Ok::<_, lapin::Error>(AmqpConnection {
                connection,
                channel,
            })
        })
        .unwrap_or_else(|| {
            panic!("AMQP connect to {url}: no answer within {AMQP_CONNECT_ATTEMPT:?}")
        });
        match opened {
            Ok(c) => return c,
            Err(e) if Instant::now() >= deadline => panic!(
                "AMQP connect to {url}: {e} (is the broker up? run: eval \"$(scripts/services ensure)\")"
            ),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Declares a durable, non-exclusive, non-auto-delete queue. The collector publishes to the
/// default exchange, which routes a message to the queue named like its routing key.
pub fn declare_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) {
    let conn = amqp_connect(addr);
    let options = lapin::options::QueueDeclareOptions {
        durable: true,
        exclusive: false,
        auto_delete: false,
        ..Default::default()
    };
    conn.wait(
        conn.channel
            .queue_declare(name.into(), options, Default::default()),
    )
    .unwrap_or_else(|e| panic!("declare queue {name}: {e}"));
}

/// Deletes the queue (no error if it does not exist).
pub fn delete_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) {
    let conn = amqp_connect(addr);
    conn.wait(conn.channel.queue_delete(name.into(), Default::default()))
        .unwrap_or_else(|e| panic!("delete queue {name}: {e}"));
}

/// A passive declare: the queue's message count, or the broker's refusal (404 for a
/// missing queue, which also closes the channel).
fn passive_declare(conn: &AmqpConnection, name: &str) -> Result<u32, lapin::Error> {
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let queue = conn.wait(
        conn.channel
            .queue_declare(name.into(), options, Default::default()),
    )?;
    Ok(queue.message_count())
}

/// Takes every message in the queue and deletes it once empty (`if-empty`, retried on a
/// fresh channel when a message came in between), so no message a publisher had
/// delivered is lost with the queue. Returns the messages taken.
pub fn drain_and_delete_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) -> Vec<Message> {
    let mut out = Vec::new();
    for _ in 0..100 {
        // A refused delete closes the channel: every try has a connection of its own.
        let conn = amqp_connect(addr);
        get_all(&conn, name, &mut out);
        let options = lapin::options::QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        };
        if conn
            .wait(conn.channel.queue_delete(name.into(), options))
            .is_ok()
        {
            return out;
        }
    }
    panic!("queue {name} never found empty");
}

/// Number of messages in the queue, or None if the queue does not exist.
pub fn queue_len(addr: &(impl AmqpAddr + ?Sized), name: &str) -> Option<u32> {
    passive_declare(&amqp_connect(addr), name).ok()
}

/// The properties a test publishes a message with (what the tests set of AMQP's basic
/// properties); the builder methods are those the tests used with the former client.
#[derive(Clone, Debug, Default)]
pub struct AmqpProperties {
    message_id: Option<String>,
    content_type: Option<String>,
    delivery_mode: Option<u8>,
}

impl AmqpProperties {
    pub fn with_message_id(mut self, id: String) -> Self {
        self.message_id = Some(id);
        self
    }

    pub fn with_content_type(mut self, content_type: String) -> Self {
        self.content_type = Some(content_type);
        self
    }

    /// 2 is persistent, 1 transient.
    pub fn with_delivery_mode(mut self, mode: u8) -> Self {
        self.delivery_mode = Some(mode);
        self
    }

    fn to_lapin(&self) -> lapin::BasicProperties {
        let mut properties = lapin::BasicProperties::default();
        if let Some(id) = &self.message_id {
            properties = properties.with_message_id(id.as_str().into());
        }
        if let Some(content_type) = &self.content_type {
            properties = properties.with_content_type(content_type.as_str().into());
        }
        if let Some(mode) = self.delivery_mode {
            properties = properties.with_delivery_mode(mode);
        }
        properties
    }
}

/// Publishes `body` to the default exchange with routing key `routing_key`.
pub fn publish(
    addr: &(impl AmqpAddr + ?Sized),
    routing_key: &str,
    body: &[u8],
    properties: AmqpProperties,
) {
    let conn = amqp_connect(addr);
    conn.wait(conn.channel.basic_publish(
        "".into(),
        routing_key.into(),
        Default::default(),
        body,
        properties.to_lapin(),
    ))
    .unwrap_or_else(|e| panic!("publish to {routing_key}: {e}"));
    // A clean close makes the broker process the publish before the connection goes away.
    conn.close().expect("close AMQP connection");
}

/// One message taken from a queue.
#[derive(Clone, Debug)]
pub struct Message {
    /// The body parsed as JSON (the helpers panic on a non-JSON body).
    pub body: serde_json::Value,
    pub raw: Vec<u8>,
    pub routing_key: String,
    pub message_id: Option<String>,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
}

fn get_all(conn: &AmqpConnection, name: &str, out: &mut Vec<Message>) {
    if let Err(e) = passive_declare(conn, name) {
        panic!("queue {name} does not exist: {e}");
    }
    let no_ack = lapin::options::BasicGetOptions { no_ack: true };
    while let Some(got) = conn
        .wait(conn.channel.basic_get(name.into(), no_ack))
        .unwrap_or_else(|e| panic!("get from {name}: {e}"))
    {
        let d = got.delivery;
        let body = serde_json::from_slice(&d.data).unwrap_or_else(|e| {
            panic!(
                "message in {name} is not JSON ({e}): {}",
                String::from_utf8_lossy(&d.data)
            )
        });
        let text = |s: &Option<lapin::types::ShortString>| s.as_ref().map(|s| s.to_string());
        out.push(Message {
            body,
            raw: d.data.clone(),
            routing_key: d.routing_key.to_string(),
            message_id: text(d.properties.message_id()),
            content_type: text(d.properties.content_type()),
            delivery_mode: *d.properties.delivery_mode(),
        });
    }
}

/// Takes (basic.get, no-ack) every message currently in the queue. Panics if the queue is
/// missing.
pub fn drain_queue(addr: &(impl AmqpAddr + ?Sized), name: &str) -> Vec<Message> {
    let conn = amqp_connect(addr);
    let mut out = Vec::new();
    get_all(&conn, name, &mut out);
    out
}

/// Drains the queue until at least `n` messages were taken or `timeout` passed; returns all
/// messages taken (possibly fewer than `n`, possibly more: assert on the result).
pub fn wait_for_messages(
    addr: &(impl AmqpAddr + ?Sized),
    name: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Message> {
    let deadline = Instant::now() + timeout;
    let conn = amqp_connect(addr);
    let mut out = Vec::new();
    loop {
        get_all(&conn, name, &mut out);
        if out.len() >= n || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    out
}

/// A broker reached at an IPv6 literal: a TCP forwarder from `[::1]` to a broker that
/// listens on 127.0.0.1 (the test nodes do), so the collector's own connection to the
/// broker is made over IPv6. Stops accepting when dropped.
pub struct Ipv6Forwarder {
    port: u16,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Ipv6Forwarder {
    pub fn to(target: &(impl AmqpAddr + ?Sized)) -> Ipv6Forwarder {
        let listener = TcpListener::bind("[::1]:0").expect("bind [::1]:0");
        let port = listener.local_addr().expect("local address").port();
        let target = target.host_port();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&stopped);
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let (Ok(client), Ok(server)) = (client, TcpStream::connect(&target)) {
                    forward(client, server);
                }
            }
        });
        Ipv6Forwarder { port, stopped }
    }

    pub fn host_port(&self) -> String {
        format!("[::1]:{}", self.port)
    }
}

impl Drop for Ipv6Forwarder {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so it sees the flag.
        let _ = TcpStream::connect(("::1", self.port));
    }
}

/// Copies bytes both ways between two sockets until either side closes.
fn forward(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    for (mut from, mut to) in [(a, b2), (b, a2)] {
        thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The collector binary

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

/// A count of a summary (see [`Run::summary`]).
#[track_caller]
pub fn count(summary: &Summary, field: &str) -> u64 {
    summary
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no count {field} in {summary:?}"))
}

/// Checks that every listed agent is accounted for once: listed = answered + failed +
/// abandoned + not started.
#[track_caller]
pub fn assert_agents_add_up(summary: &Summary, run: &Run) {
    let accounted: u64 = [
        "agents_answered",
        "agents_failed",
        "agents_abandoned",
        "agents_not_started",
    ]
    .iter()
    .map(|field| count(summary, field))
    .sum();
    assert_eq!(
        accounted,
        count(summary, "agents_listed"),
        "the counts add up: {run}"
    );
}

/// Checks a pass over millions of bad entries: of its `lines` log lines about them, ten
/// name an entry and one gives the total (`total`), and its peak RSS (`peak_kib`, read
/// while it ran) stayed under 64 MiB.
#[track_caller]
pub fn assert_named_ten_then_counted(run: &Run, lines: usize, total: &str, peak_kib: u64) {
    assert_eq!(lines, 11, "ten entries named, then the total: {run}");
    assert!(run.stderr.contains(total), "{run}");
    assert!(peak_kib > 1024, "the pass was measured while it ran");
    let peak_mib = peak_kib / 1024;
    eprintln!("peak RSS: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
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
fn high_water_mark_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reader(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
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

/// A way to feed a secret: its name, the exit codes of `collect`, `collect --dry-run` and
/// `check` with it, and the settings it changes (an empty value removes the setting).
pub type SecretCase = (&'static str, (i32, i32, i32), Vec<(&'static str, String)>);

/// Runs every case through `collect`, `collect --dry-run` and `check`, in both log
/// formats at the most verbose level, on the collector `base` makes (a setting the case
/// gives as empty is removed): none of `forms` (a secret, its encodings) shows anywhere,
/// and each run exits as its case says.
#[track_caller]
pub fn assert_no_secret_in_any_output(
    base: impl Fn() -> Collector,
    cases: &[SecretCase],
    forms: &[String],
) {
    for (case, codes, overrides) in cases {
        for command in [&["collect"][..], &["collect", "--dry-run"], &["check"]] {
            for format in ["text", "json"] {
                let run = base()
                    .env("RUST_LOG", "trace")
                    .env("STATS_COLLECTOR_LOG_FORMAT", format)
                    .envs(
                        overrides
                            .iter()
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(k, v)| (*k, v.as_str())),
                    )
                    .args(command);
                let run = overrides
                    .iter()
                    .filter(|(_, v)| v.is_empty())
                    .fold(run, |run, (k, _)| run.env_remove(k))
                    .run();
                for form in forms {
                    assert!(
                        !run.stdout.contains(form.as_str()) && !run.stderr.contains(form.as_str()),
                        "{case}, {command:?}, {format}: {form:?} leaked\n{run}"
                    );
                }
                // Each case got as far as it should: the secret was really handled.
                let expected = match command {
                    ["collect"] => codes.0,
                    ["collect", "--dry-run"] => codes.1,
                    _ => codes.2,
                };
                assert_eq!(run.status, Some(expected), "{case}, {command:?}: {run}");
            }
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

/// What a consumer that drops repeated message ids sees of each task's documents.
#[derive(Debug, Default)]
pub struct Tiling {
    /// Documents kept after dropping repeated message ids.
    pub kept: usize,
    /// Messages dropped as repeats of an earlier message id (with an identical body).
    pub repeats: usize,
}

/// Drops repeated message ids as a consumer would (checking that a repeat is identical to
/// the first), then checks that each task's intervals tile time from its baseline reading
/// (`baselines`, by executor id): each document starts (`timestamp - period_secs`) where
/// the previous one ended, with no hole and no overlap, and the last ends at `ends[id]`
/// when given. Panics naming the task otherwise.
pub fn assert_intervals_tile(
    messages: &[Message],
    baselines: &std::collections::BTreeMap<String, f64>,
    ends: Option<&std::collections::BTreeMap<String, f64>>,
) -> Tiling {
    let mut tiling = Tiling::default();
    let mut seen: std::collections::HashMap<String, &Message> = std::collections::HashMap::new();
    let mut by_task: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for m in messages {
        let id = m
            .message_id
            .clone()
            .expect("every document has a message id");
        if let Some(first) = seen.get(&id) {
            assert_eq!(first.raw, m.raw, "a repeat of {id} is identical");
            assert_eq!(first.content_type, m.content_type, "{id}");
            assert_eq!(first.delivery_mode, m.delivery_mode, "{id}");
            tiling.repeats += 1;
            continue;
        }
        seen.insert(id, m);
        tiling.kept += 1;
        let num = |f: &str| {
            m.body[f]
                .as_f64()
                .unwrap_or_else(|| panic!("{f} in {}", m.body))
        };
        let task = m.body["taskname"].as_str().expect("taskname").to_string();
        let end = num("timestamp");
        by_task
            .entry(task)
            .or_default()
            .push((end - num("period_secs"), end));
    }
    for (task, mut intervals) in by_task {
        intervals.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut at = *baselines
            .get(&task)
            .unwrap_or_else(|| panic!("{task} has no baseline"));
        for (start, end) in &intervals {
            assert!(
                (start - at).abs() < 1e-4,
                "{task}: an interval starts at {start} where the previous ended at {at} ({}): {intervals:?}",
                if *start > at { "a hole" } else { "an overlap" }
            );
            at = *end;
        }
        if let Some(end) = ends.and_then(|ends| ends.get(&task)) {
            assert!(
                (at - end).abs() < 1e-4,
                "{task}: reported up to {at}, read up to {end}"
            );
        }
    }
    tiling
}

// ---------------------------------------------------------------------------------------------
// Prometheus Pushgateway

/// A `prometheus-pushgateway` (Debian package; `scripts/services ensure` installs it) private
/// to one test: a free loopback port, a persistence file in a folder of its own. Killed and
/// its folder removed on drop.
pub struct Pushgateway {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// `Basic ...`, for a Pushgateway that wants it.
    authorization: Option<String>,
}

/// A user of a Pushgateway started with [`Pushgateway::with_basic_auth`], and its password.
pub const PUSHGATEWAY_USER: (&str, &str) = ("asgard", "Pu5h-s3cret");
/// The bcrypt hash of [`PUSHGATEWAY_USER`]'s password, as the Pushgateway's web
/// configuration wants it (cost 4, the least, to keep each request cheap), made with
/// `python3 -c "import crypt; print(crypt.crypt('Pu5h-s3cret',
/// crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))"`.
const PUSHGATEWAY_PASSWORD_BCRYPT: &str =
    "$2b$04$1Mp0a0seS66jVnh77Ijl6uoXa4HfOo89BLBKlLJySaWIqOGwzjwlK";

impl Pushgateway {
    /// Starts one and waits until it answers `/-/ready`.
    pub fn start() -> Pushgateway {
        Pushgateway::start_with(None)
    }

    /// One that wants HTTP basic authentication as [`PUSHGATEWAY_USER`] on every request.
    pub fn with_basic_auth() -> Pushgateway {
        Pushgateway::start_with(Some(PUSHGATEWAY_USER))
    }

    fn start_with(user: Option<(&str, &str)>) -> Pushgateway {
        use base64::Engine;
        let dir = std::env::temp_dir().join(unique_name("asgard-pushgateway"));
        std::fs::create_dir_all(&dir).expect("create the Pushgateway's folder");
        let web_config = dir.join("web.yml");
        let authorization = user.map(|(user, password)| {
            let users = format!("basic_auth_users:\n  {user}: {PUSHGATEWAY_PASSWORD_BCRYPT}\n");
            std::fs::write(&web_config, users).expect("write the web configuration");
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Basic {token}")
        });
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("prometheus-pushgateway")
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg(format!(
                    "--persistence.file={}",
                    dir.join("pushgateway.data").display()
                ))
                .args(
                    authorization
                        .iter()
                        .map(|_| format!("--web.config.file={}", web_config.display())),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "prometheus-pushgateway cannot run ({e}): install the Debian package \
                         prometheus-pushgateway (`bash scripts/services ensure` does it as root)"
                    )
                });
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                if http_get(port, "/-/ready", authorization.as_deref()).is_some() {
                    return Pushgateway {
                        child,
                        port,
                        dir,
                        authorization,
                    };
                }
                thread::sleep(Duration::from_millis(50));
            }
            // Lost a race for the port, or a slow start: try another port.
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("prometheus-pushgateway did not come up after 5 attempts");
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it serves on `/metrics`: every group pushed to it, in the text format.
    pub fn metrics(&self) -> String {
        http_get(self.port, "/metrics", self.authorization.as_deref())
            .unwrap_or_else(|| panic!("the Pushgateway on port {} does not answer", self.port))
    }
}

/// The body of a 2xx answer to `GET http://127.0.0.1:PORT/PATH` (with this
/// `Authorization`); None on anything else.
fn http_get(port: u16, path: &str, authorization: Option<&str>) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into();
    let request = agent.get(format!("http://127.0.0.1:{port}{path}"));
    let request = match authorization {
        Some(value) => request.header("Authorization", value),
        None => request,
    };
    let mut response = request.call().ok()?;
    response.body_mut().read_to_string().ok()
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback listener that accepts connections and never answers nor closes them: a
/// server that hangs. Stops accepting when dropped.
pub struct SilentListener {
    port: u16,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let stopped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&stopped);
        thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                held.extend(client.ok());
            }
        });
        SilentListener { port, stopped }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wakes the accepting thread so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

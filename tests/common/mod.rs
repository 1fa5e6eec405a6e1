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

    fn start_with(password: Option<String>) -> RedisServer {
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                password: password.clone(),
            };
            if server.spawn() {
                return server;
            }
            // Lost a race for the port (or a slow start): try another port.
        }
        panic!("redis-server did not come up after 5 attempts");
    }

    /// Spawns redis-server on `self.port`; true once it answers PING.
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass", p.as_str()]),
            )
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
    }

    /// Starts a fresh (empty) server on the same port after `stop()`.
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

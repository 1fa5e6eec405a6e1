//! RabbitMQ: the shared test node (`Broker`), nodes private to one test (`PrivateBroker`),
//! and `AmqpAddr`, what tells where a broker listens.

use super::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

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
pub(super) fn write_tls_config(dir: &std::path::Path, port: u16, certificates: &TestCertificates) {
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
pub(super) fn wait_for_port(port: u16) {
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

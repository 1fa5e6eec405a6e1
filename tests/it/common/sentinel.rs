//! Redis under Sentinel private to one test (`SentinelGroup`): a master, a replica and
//! three sentinels.

use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

//! A redis-server private to one test (`RedisServer`).

use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

    pub(super) fn start_with(password: Option<String>) -> RedisServer {
        RedisServer::start_in(password, None, Vec::new())
    }

    pub(super) fn start_in(
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
    pub(super) fn replica_at(
        master: &RedisServer,
        port: u16,
        mut args: Vec<String>,
    ) -> RedisServer {
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

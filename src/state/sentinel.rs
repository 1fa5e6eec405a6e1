//! Redis Sentinel (docs/state.md, "Sentinel and failovers"): finding the master a pass
//! writes to.
//!
//! Production Redis runs as a master with replicas watched by sentinels; after a failover
//! the master is another node, and only the sentinels know which. Each new pooled
//! connection asks the sentinels in the configured order (`SENTINEL
//! get-master-addr-by-name`), connects to the node the first answering one names and
//! checks with `ROLE` that it is a master, so neither a stale sentinel nor a demoted node
//! is ever written to. The two commands are spoken here over the connections the pool
//! already makes: the redis crate's own Sentinel client would add a dependency (rand) and
//! hides which sentinel answered, which `check` prints. The URL is read by
//! `config/sentinel.rs`.

use super::sentinel_reply::{named_master, says_master};
use crate::config::{RedisLogin, SentinelSettings};
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo, RedisError};
use std::sync::Mutex;
use std::time::Duration;

/// How a failed search for the master starts; its reasons follow.
const NO_MASTER: &str = "no sentinel named a usable master";

/// The crate's form of a login.
fn redis_login(login: &RedisLogin, db: i64) -> RedisConnectionInfo {
    let mut info = RedisConnectionInfo::default().set_db(db);
    if let Some(username) = &login.username {
        info = info.set_username(username);
    }
    if let Some(password) = &login.password {
        info = info.set_password(password.expose());
    }
    info
}

/// Finds the master: where the sentinels are, and how to log in to them and to it.
struct MasterFinder {
    settings: SentinelSettings,
    master_login: RedisConnectionInfo,
    sentinel_login: RedisConnectionInfo,
    /// The PEM CA of `--redis-ca-file`, for TLS.
    root_cert: Option<Vec<u8>>,
}

impl MasterFinder {
    fn new(settings: &SentinelSettings, root_cert: Option<Vec<u8>>) -> MasterFinder {
        MasterFinder {
            master_login: redis_login(&settings.master_login, settings.db),
            sentinel_login: redis_login(&settings.sentinel_login, 0),
            settings: settings.clone(),
            root_cert,
        }
    }

    /// A client for the node at `host:port` with this login.
    fn client(
        &self,
        host: &str,
        port: u16,
        login: &RedisConnectionInfo,
    ) -> redis::RedisResult<redis::Client> {
        let info = self.address(host, port, login)?;
        super::connector::client(info, self.settings.tls, self.root_cert.as_deref())
    }

    /// How to reach the node at `host:port` with this login, TLS as configured.
    fn address(
        &self,
        host: &str,
        port: u16,
        login: &RedisConnectionInfo,
    ) -> redis::RedisResult<ConnectionInfo> {
        let addr = if self.settings.tls {
            ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_string(), port)
        };
        Ok(
            redis::IntoConnectionInfo::into_connection_info(addr)?
                .set_redis_settings(login.clone()),
        )
    }

    /// Asks one sentinel where the master is.
    fn ask(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> redis::RedisResult<Option<(String, u16)>> {
        let client = self.client(host, port, &self.sentinel_login)?;
        let mut conn = super::connector::open(&client, timeout)?;
        let reply: redis::Value = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.settings.master_name)
            .query(&mut conn)?;
        named_master(&reply).map_err(|why| {
            RedisError::from((ErrorKind::UnexpectedReturnType, "unreadable reply", why))
        })
    }

    /// Connects to a node the sentinels named; Ok(None) when it says it is no master.
    fn connect_named(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> redis::RedisResult<Option<redis::Connection>> {
        let client = self.client(host, port, &self.master_login)?;
        let mut conn = super::connector::open(&client, timeout)?;
        match redis::cmd("ROLE").query::<redis::Value>(&mut conn) {
            Ok(role) => Ok(says_master(&role).then_some(conn)),
            // A user whose ACL denies ROLE: the sentinel's word stands, and a replica
            // would still refuse every write (READONLY).
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoPerm) => {
                Ok(Some(conn))
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the sentinels in order; the first that names a node which is a master wins.
    /// What went wrong with those before it goes to `reasons`, and the error lists them
    /// all; without credentials.
    fn connect_master(
        &self,
        timeout: Duration,
        reasons: &mut Vec<String>,
    ) -> redis::RedisResult<(redis::Connection, Located)> {
        for (host, port) in &self.settings.sentinels {
            let sentinel = show_address(host, *port);
            let named = match self.ask(host, *port, timeout) {
                Ok(Some(named)) => named,
                Ok(None) => {
                    reasons.push(format!(
                        "sentinel {sentinel}: knows no master {:?}",
                        self.settings.master_name
                    ));
                    continue;
                }
                Err(e) => {
                    reasons.push(format!(
                        "sentinel {sentinel}: {}",
                        super::store::describe(&e)
                    ));
                    continue;
                }
            };
            let master = show_address(&named.0, named.1);
            match self.connect_named(&named.0, named.1, timeout) {
                Ok(Some(conn)) => return Ok((conn, Located { sentinel, master })),
                Ok(None) => reasons.push(format!(
                    "sentinel {sentinel} names {master}, which is not a master (a failover \
                     is under way)"
                )),
                Err(e) => reasons.push(format!(
                    "sentinel {sentinel} names {master}: {}",
                    super::store::describe(&e)
                )),
            }
        }
        Err(RedisError::from((
            ErrorKind::Client,
            NO_MASTER,
            reasons.join("; "),
        )))
    }
}

fn show_address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The failed search for the master in words, when `text` (an error's text) is one.
pub(super) fn describe_no_master(text: &str) -> Option<String> {
    // The pool puts its own words before the connector's error.
    let reasons = &text[text.find(NO_MASTER)? + NO_MASTER.len()..];
    let reasons = reasons.split_once(": ").map_or("", |(_, r)| r);
    Some(format!("{NO_MASTER}: {reasons}"))
}

/// Which sentinel answered and the master it named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) sentinel: String,
    pub(crate) master: String,
}

/// The sentinels of a pass's pool and the master last found through them.
pub(super) struct Sentinels {
    finder: MasterFinder,
    /// What sentinels did wrong, as logged already.
    said: Mutex<Vec<String>>,
    last: Mutex<Option<Located>>,
}

impl Sentinels {
    pub(super) fn new(settings: &SentinelSettings, root_cert: Option<Vec<u8>>) -> Sentinels {
        Sentinels {
            finder: MasterFinder::new(settings, root_cert),
            said: Mutex::new(Vec::new()),
            last: Mutex::new(None),
        }
    }

    /// A connection to the master; the first one, and any to another master than the
    /// last (a failover), is logged.
    pub(super) fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let mut reasons = Vec::new();
        let found = self.finder.connect_master(timeout, &mut reasons);
        // A sentinel down is worth a line, not one per connection of the pool.
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        for reason in reasons {
            if !said.contains(&reason) {
                log::warn!("Redis Sentinel: {reason}");
                said.push(reason);
            }
        }
        drop(said);
        let (conn, located) = found?;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_ref().map(|l| &l.master) != Some(&located.master) {
            log::info!(
                "Redis master {} (named by sentinel {})",
                located.master,
                located.sentinel
            );
        }
        *last = Some(located);
        Ok(conn)
    }

    /// The master last found, and which sentinel named it.
    pub(super) fn located(&self) -> Option<Located> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_search_is_described_with_its_reasons() {
        let error = RedisError::from((ErrorKind::Client, NO_MASTER, "sentinel a:1: x".into()));
        assert_eq!(
            describe_no_master(&error.to_string()).as_deref(),
            Some("no sentinel named a usable master: sentinel a:1: x")
        );
        let from_pool = format!("timed out waiting for connection: {error}");
        assert_eq!(
            describe_no_master(&from_pool).as_deref(),
            Some("no sentinel named a usable master: sentinel a:1: x")
        );
        assert_eq!(describe_no_master("connection refused"), None);
    }
}

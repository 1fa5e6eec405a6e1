//! Redis Sentinel (design sections 2 and 6): the `redis+sentinel://` and
//! `rediss+sentinel://` URLs, and finding the master a pass writes to.
//!
//! Production Redis runs as a master with replicas watched by sentinels; after a failover
//! the master is another node, and only the sentinels know which. Each new pooled
//! connection asks the sentinels in the configured order (`SENTINEL
//! get-master-addr-by-name`), connects to the node the first answering one names and
//! checks with `ROLE` that it is a master, so neither a stale sentinel nor a demoted node
//! is ever written to. The two commands are spoken here over the connections the pool
//! already makes: the redis crate's own Sentinel client would add a dependency and hides
//! which sentinel answered, which `check` prints.
//!
//! The URL: `redis+sentinel://[[user]:password@]host1:26379,host2:26379/<master-name>[/<db>]`,
//! with `rediss+sentinel://` for TLS to the sentinels and the master. The user info is the
//! master's (as in `redis://`); sentinels that want a login of their own get it from the
//! query: `?sentinel_password=...` and `&sentinel_username=...`, percent-encoded. The
//! query keeps both secrets in the one setting that already has a `_FILE` form, and
//! messages never show a query.

use crate::redact;
use percent_encoding::percent_decode_str;
use redis::{ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo, RedisError};
use std::sync::Mutex;
use std::time::Duration;

/// A sentinel's port when the URL gives none.
const SENTINEL_PORT: u16 = 26379;

/// How a failed search for the master starts; its reasons follow.
const NO_MASTER: &str = "no sentinel named a usable master";

/// Whether `url` asks for Sentinel (its form is checked by [`SentinelUrl::parse`]).
pub(crate) fn is_sentinel_url(url: &str) -> bool {
    url.starts_with("redis+sentinel://") || url.starts_with("rediss+sentinel://")
}

/// A parsed Sentinel URL: where the sentinels are, the master's name, and how to log in to
/// each. Its `Debug` shows no credential.
#[derive(Clone)]
pub(crate) struct SentinelUrl {
    /// `(host, port)`, an IPv6 host without brackets, in the order they are asked.
    sentinels: Vec<(String, u16)>,
    master_name: String,
    tls: bool,
    /// TLS without checking the certificate's name (`#insecure`, as the crate's `rediss://`).
    insecure: bool,
    /// The master's user, password and database; its address is set when it is found.
    master: ConnectionInfo,
    /// The sentinels' user and password, if they want one.
    sentinel_login: RedisConnectionInfo,
}

impl std::fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl SentinelUrl {
    /// Reads a Sentinel URL; the error never holds the URL or a part of its user info or
    /// query.
    pub(crate) fn parse(url: &str) -> Result<SentinelUrl, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("rediss+sentinel://") {
            (true, rest)
        } else {
            return Err("must start with redis+sentinel:// or rediss+sentinel://".into());
        };
        let (rest, insecure) = match rest.strip_suffix("#insecure") {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        // As in redact.rs: everything before the last `@` is user info, so a password
        // holding `/` or `,` cannot be read as a host.
        let (userinfo, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        if rest.contains('#') {
            return Err("the only fragment understood is #insecure".into());
        }
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let sentinels = hosts
            .split(',')
            .map(sentinel_address)
            .collect::<Result<Vec<_>, _>>()?;
        let (master_name, db) = match path.split_once('/') {
            Some((name, db)) => (name, db.trim_end_matches('/')),
            None => (path, ""),
        };
        if master_name.is_empty() {
            return Err("the master's name is missing: .../<master-name>[/<db>]".into());
        }
        let master_name = percent_decode_str(master_name)
            .decode_utf8()
            .map_err(|_| "the master's name is not UTF-8")?
            .into_owned();
        let db: i64 = match db {
            "" => 0,
            db => db
                .parse()
                .ok()
                .filter(|db| *db >= 0)
                .ok_or("the database after the master's name must be a number")?,
        };
        // The crate reads the master's user info (percent-decoding it) from a URL of the
        // same shape; its address is replaced by the one the sentinels name.
        let scheme = if tls { "rediss" } else { "redis" };
        let login = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let fragment = if insecure { "#insecure" } else { "" };
        let master = redis::IntoConnectionInfo::into_connection_info(format!(
            "{scheme}://{login}127.0.0.1:6379/{db}{fragment}"
        ))
        .map_err(|_| "the user and password cannot be read (percent-encode them)")?;
        let mut sentinel_login = RedisConnectionInfo::default();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("the query parameter {key} is not UTF-8"))?;
            sentinel_login = match key {
                "sentinel_password" => sentinel_login.set_password(value),
                "sentinel_username" => sentinel_login.set_username(value),
                _ => {
                    return Err(format!(
                        "unknown query parameter {:?}: only sentinel_username and \
                         sentinel_password are understood",
                        key.chars().take(32).collect::<String>()
                    ))
                }
            };
        }
        Ok(SentinelUrl {
            sentinels,
            master_name,
            tls,
            insecure,
            master,
            sentinel_login,
        })
    }

    /// The connection info of a node at `host:port`, TLS as configured.
    fn address(&self, host: &str, port: u16) -> ConnectionAddr {
        if self.tls {
            ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: self.insecure,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_string(), port)
        }
    }

    /// Asks one sentinel where the master is.
    fn ask(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> redis::RedisResult<Option<(String, u16)>> {
        let info = self
            .master
            .clone()
            .set_addr(self.address(host, port))
            .set_redis_settings(self.sentinel_login.clone());
        let mut conn = super::open(&redis::Client::open(info)?, timeout)?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master_name)
            .query(&mut conn)
    }

    /// Connects to a node the sentinels named; Ok(None) when it says it is no master.
    fn connect_named(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> redis::RedisResult<Option<redis::Connection>> {
        let info = self.master.clone().set_addr(self.address(host, port));
        let mut conn = super::open(&redis::Client::open(info)?, timeout)?;
        match redis::cmd("ROLE").query::<redis::Value>(&mut conn) {
            Ok(redis::Value::Array(role)) => Ok(matches!(
                role.first(),
                Some(redis::Value::BulkString(word)) if word == b"master"
            )
            .then_some(conn)),
            Ok(_) => Ok(None),
            // A user whose ACL denies ROLE: the sentinel's word stands, and a replica
            // would still refuse every write (READONLY).
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoPerm) => {
                Ok(Some(conn))
            }
            Err(e) => Err(e),
        }
    }

    /// Asks the sentinels in order; the first that names a node which is a master wins.
    /// The error lists what each sentinel did, without credentials.
    pub(crate) fn connect_master(
        &self,
        timeout: Duration,
    ) -> redis::RedisResult<(redis::Connection, Located)> {
        let mut reasons = Vec::new();
        for (host, port) in &self.sentinels {
            let sentinel = show_address(host, *port);
            let named = match self.ask(host, *port, timeout) {
                Ok(Some(named)) => named,
                Ok(None) => {
                    reasons.push(format!(
                        "sentinel {sentinel}: knows no master {:?}",
                        self.master_name
                    ));
                    continue;
                }
                Err(e) => {
                    reasons.push(format!("sentinel {sentinel}: {}", super::describe(&e)));
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
                    super::describe(&e)
                )),
            }
        }
        for reason in &reasons {
            log::warn!("Redis Sentinel: {reason}");
        }
        Err(RedisError::from((
            ErrorKind::Client,
            NO_MASTER,
            reasons.join("; "),
        )))
    }
}

/// `host:port` of one sentinel of the URL (port 26379 by default), an IPv6 address in
/// brackets.
fn sentinel_address(entry: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "sentinel {}: expected host[:port], an IPv6 address in brackets",
            redact::url(entry)
        )
    };
    if entry.is_empty() || redact::url(entry) == redact::UNREADABLE {
        return Err(bad());
    }
    let (host, port) = redact::split_host_port(entry);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = match port {
        None => SENTINEL_PORT,
        Some(port) => port.parse().map_err(|_| bad())?,
    };
    Ok((host.to_string(), port))
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
    url: SentinelUrl,
    last: Mutex<Option<Located>>,
}

impl Sentinels {
    pub(super) fn new(url: SentinelUrl) -> Sentinels {
        Sentinels {
            url,
            last: Mutex::new(None),
        }
    }

    /// A connection to the master; the first one, and any to another master than the
    /// last (a failover), is logged.
    pub(super) fn connect(&self, timeout: Duration) -> redis::RedisResult<redis::Connection> {
        let (conn, located) = self.url.connect_master(timeout)?;
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
    fn sentinel_urls_are_read() {
        let url = SentinelUrl::parse(
            "rediss+sentinel://app:p%40ss@s1,[::1]:26380,s3:1/my%20master/3\
             ?sentinel_password=s%2Fp&sentinel_username=watch#insecure",
        )
        .expect("valid");
        assert_eq!(
            url.sentinels,
            [
                ("s1".to_string(), 26379),
                ("::1".to_string(), 26380),
                ("s3".to_string(), 1)
            ]
        );
        assert_eq!(url.master_name, "my master");
        assert!(url.tls && url.insecure);
        let master = url.master.redis_settings();
        assert_eq!(
            (master.username(), master.password(), master.db()),
            (Some("app"), Some("p@ss"), 3)
        );
        assert_eq!(url.sentinel_login.password(), Some("s/p"));
        assert_eq!(url.sentinel_login.username(), Some("watch"));

        let plain = SentinelUrl::parse("redis+sentinel://:pw@10.0.0.1:26379/mymaster").expect("ok");
        assert!(!plain.tls);
        assert_eq!(plain.master.redis_settings().password(), Some("pw"));
        assert_eq!(plain.master.redis_settings().db(), 0);
        assert_eq!(
            plain.sentinel_login.password(),
            None,
            "sentinels get no login"
        );
        let shown = format!("{plain:?}");
        assert!(!shown.contains("pw\""), "{shown}");
    }

    #[test]
    fn bad_sentinel_urls_say_why_without_their_secrets() {
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1:26379/m/x",
            "redis+sentinel://s1:26379/m/-1",
            "redis+sentinel://:s3cret@s1,,s2/m",
            "redis+sentinel://s1:s3cret/m",
            "redis+sentinel://s1/m?sentinel_pass=s3cret",
            "redis+sentinel://s1/m#s3cret",
            "redis://s1/m",
        ] {
            let why = SentinelUrl::parse(bad).expect_err(bad);
            assert!(!why.contains("s3cret"), "{bad}: {why}");
        }
    }

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

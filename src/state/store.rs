//! The store of previous readings and of the pass lock ([`StateStore`]): its pool, one
//! command run on a pooled connection, and a Redis error in words ([`StateError`]).

use super::connector::{client, RedisConnector, Target, UnusableConnection};
use super::pipelining::FailedStore;
use super::sentinel::{self, Located};
use crate::config::RedisSettings;
use r2d2::{Pool, PooledConnection};
use std::sync::{Arc, Mutex};

/// A Redis failure, with the (password-free) URL in its message.
#[derive(Debug, thiserror::Error)]
#[error("Redis {}", self.detail())]
pub(crate) struct StateError {
    url: String,
    message: String,
}

impl StateError {
    /// The URL and what went wrong, without the leading "Redis": for a report whose line
    /// already names Redis (`check`).
    pub(crate) fn detail(&self) -> String {
        format!("{}: {}", self.url, self.message)
    }
}

/// The store of previous readings and of the pass lock. Clones share one pool.
#[derive(Clone)]
pub(crate) struct StateStore {
    pub(super) pool: Pool<RedisConnector>,
    pub(super) settings: RedisSettings,
    pub(super) target: Target,
    /// Stores whose replies, read after they were sent (see [`StateConnection::owed`]),
    /// said they failed; the pass reports them ([`StateStore::settle_stores`]).
    pub(super) failed_stores: Arc<Mutex<Vec<FailedStore>>>,
}

impl StateStore {
    /// Creates the pool; no connection is made until the first command.
    pub(crate) fn new(settings: &RedisSettings) -> Result<StateStore, StateError> {
        let error = |message: String| StateError {
            url: settings.shown_url.clone(),
            message,
        };
        let root_cert =
            match &settings.ca_file {
                Some(path) => Some(std::fs::read(path).map_err(|e| {
                    error(format!("cannot read the CA file {}: {e}", path.display()))
                })?),
                None => None,
            };
        let target = match &settings.sentinel {
            Some(sentinel) => {
                Target::Sentinel(Arc::new(sentinel::Sentinels::new(sentinel, root_cert)))
            }
            None => {
                let url = settings.url.expose();
                let client = client(url, url.starts_with("rediss://"), root_cert.as_deref())
                    .map_err(|e| error(format!("bad URL: {}", e.category())))?;
                Target::Direct(Box::new(client))
            }
        };
        let connector = RedisConnector {
            target: target.clone(),
            timeout: settings.timeout,
        };
        // With Sentinel, a new connection may first wait out each sentinel that hangs.
        let asked = settings.sentinel.as_ref().map_or(0, |s| s.sentinels.len());
        let tries = u32::try_from(asked).unwrap_or(u32::MAX).saturating_add(1);
        let connection_timeout = settings.timeout.saturating_mul(tries);
        // r2d2 builds `min_idle` connections before returning and would block on a dead
        // Redis, so the pool starts empty and fills on demand.
        let pool = Pool::builder()
            .max_size(settings.pool_max)
            .min_idle(Some(settings.pool_min))
            .connection_timeout(connection_timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(connector);
        Ok(StateStore {
            pool,
            settings: settings.clone(),
            target,
            failed_stores: Arc::default(),
        })
    }

    /// With Sentinel, the sentinel that named the master last connected to, and that
    /// master; None without Sentinel or before the first connection.
    pub(crate) fn located(&self) -> Option<Located> {
        match &self.target {
            Target::Sentinel(sentinels) => sentinels.located(),
            Target::Direct(_) => None,
        }
    }

    pub(super) fn error(&self, message: impl std::fmt::Display) -> StateError {
        StateError {
            url: self.settings.shown_url.clone(),
            message: message.to_string(),
        }
    }

    /// A connection from the pool, the stores it held sent and their replies read first.
    /// One that those replies show unusable is dropped and another taken: each such
    /// connection leaves the pool, so this ends.
    pub(super) fn connection(&self) -> Result<PooledConnection<RedisConnector>, StateError> {
        loop {
            let mut conn = self.pooled()?;
            if self.send_held(&mut conn, &[]).is_ok() {
                return Ok(conn);
            }
        }
    }

    pub(super) fn pooled(&self) -> Result<PooledConnection<RedisConnector>, StateError> {
        self.pool
            .get()
            .map_err(|e| self.error(format!("cannot connect: {}", describe_pool_error(&e))))
    }

    /// Sends `commands` on a connection from the pool, in one write with the stores it
    /// held, and reads those stores' replies; the caller reads the replies of
    /// `commands`. When those replies came from a replica (a failover), nothing of the
    /// write was done, and `commands` go again on another connection; when the
    /// connection failed, they may have been done, so the error is the caller's.
    pub(super) fn send(
        &self,
        what: &str,
        commands: &[u8],
    ) -> Result<PooledConnection<RedisConnector>, StateError> {
        loop {
            let mut conn = self.pooled()?;
            match self.send_held(&mut conn, commands) {
                Ok(()) => return Ok(conn),
                Err(UnusableConnection::Replica) => continue,
                Err(UnusableConnection::Failed(e)) => {
                    return Err(self.error(format!("{what}: {}", describe(&e))))
                }
            }
        }
    }

    pub(super) fn run<T>(
        &self,
        what: &str,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let mut conn = self.connection()?;
        command(&mut conn.redis).map_err(|e| {
            conn.note_failure(&e);
            self.error(format!("{what}: {}", describe(&e)))
        })
    }

    /// Answers PING and reports the server version.
    pub(crate) fn ping(&self) -> Result<String, StateError> {
        self.run("PING", |c| redis::cmd("PING").query::<String>(c))?;
        let info: String = self.run("INFO", |c| redis::cmd("INFO").arg("server").query(c))?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_string())
    }
}

/// A Redis error in words, without the URL or credentials the crate might add; told
/// apart by the crate's error kind and the server's error code, never by its words.
pub(super) fn describe(error: &redis::RedisError) -> String {
    let text = error.to_string();
    let refused_login = error.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(error.code(), Some("WRONGPASS" | "NOAUTH"));
    if let Some(search) = sentinel::describe_no_master(&text) {
        search
    } else if refused_login {
        AUTH_FAILED.into()
    } else if is_replica_answer(error) {
        "READONLY: this node is a replica now (a failover?); nothing was written".into()
    } else if text.contains("certificate") {
        // rustls' words (`invalid peer certificate: UnknownIssuer`) say what to fix.
        format!("TLS handshake failed: {text}")
    } else if error.is_timeout() {
        "timed out".into()
    } else if error.is_connection_refusal() {
        "connection refused".into()
    } else if error.is_connection_dropped() || error.is_io_error() {
        "connection lost".into()
    } else {
        text
    }
}

/// A replica's answer to a write (READONLY).
pub(super) fn is_replica_answer(error: &redis::RedisError) -> bool {
    error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
}

const AUTH_FAILED: &str =
    "authentication failed: check the user and password in STATS_COLLECTOR_REDIS_URL";

/// A pool error in words. The one classification by text in this module: r2d2's error
/// is only the text of the last connection error (`r2d2::Error` holds a `String`, the
/// `RedisError` itself is gone), so the usual causes are named from it. Redis says
/// WRONGPASS or NOAUTH, and the redis crate's own words for a refused AUTH name
/// authentication.
fn describe_pool_error(error: &r2d2::Error) -> String {
    let text = error.to_string();
    let lower = text.to_lowercase();
    let refused_login = ["wrongpass", "noauth", "authentication"]
        .iter()
        .any(|word| lower.contains(word));
    // Checked first: the pool retries a refused login until its timeout, then says so.
    if let Some(search) = sentinel::describe_no_master(&text) {
        search
    } else if refused_login {
        AUTH_FAILED.into()
    } else if lower.contains("switch database") {
        // The redis crate's words for a refused SELECT ("refused to switch database"),
        // then Redis's own ("DB index is out of range"): no refused connection.
        let said = text.rsplit(": ").next().unwrap_or_default();
        format!("Redis refused the URL's database ({said}): check the /N of STATS_COLLECTOR_REDIS_URL against the server's `databases`")
    } else if lower.contains("refused") {
        "connection refused".into()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "timed out".into()
    } else {
        text
    }
}

//! Previous readings and the pass lock, kept in Redis (docs/state.md).
//!
//! The readings' layout, one key per agent, and its load and store round trips are in
//! `layout`; nothing ever scans the keyspace. The pass lock ([`PassLock`]) is
//! `SET <prefix>lock NX PX` and is released only by its owner (compare-and-delete). With
//! a Sentinel URL, connections go to the master the sentinels name (`sentinel.rs`).

pub(crate) mod layout;
mod sentinel;

pub(crate) use sentinel::Located;

use crate::config::{RedisSettings, Shard};
use r2d2::{Pool, PooledConnection};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Deletes the lock only if it still holds our token, so a pass never frees another's.
const RELEASE_LOCK: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0"#;

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
    pool: Pool<RedisConnector>,
    settings: RedisSettings,
    target: Target,
    /// Stores whose replies, read after they were sent (see [`StateConnection::owed`]),
    /// said they failed; the pass reports them ([`StateStore::settle_stores`]).
    failed_stores: Arc<Mutex<Vec<FailedStore>>>,
}

/// Whose readings a store writes: named in the report if its replies say it failed.
#[derive(Debug)]
pub(crate) struct StoreOwner {
    /// The agent's address, as the pass's log lines name agents.
    pub(crate) agent: String,
    pub(crate) tasks: usize,
}

/// A store found to have failed when its replies were read.
#[derive(Debug)]
pub(crate) struct FailedStore {
    pub(crate) owner: StoreOwner,
    pub(crate) error: StateError,
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

    fn error(&self, message: impl std::fmt::Display) -> StateError {
        StateError {
            url: self.settings.shown_url.clone(),
            message: message.to_string(),
        }
    }

    /// A connection from the pool, the stores it held sent and their replies read first.
    /// One that those replies show unusable is dropped and another taken: each such
    /// connection leaves the pool, so this ends.
    fn connection(&self) -> Result<PooledConnection<RedisConnector>, StateError> {
        loop {
            let mut conn = self.pooled()?;
            if self.send_held(&mut conn, &[]).is_ok() {
                return Ok(conn);
            }
        }
    }

    fn pooled(&self) -> Result<PooledConnection<RedisConnector>, StateError> {
        self.pool
            .get()
            .map_err(|e| self.error(format!("cannot connect: {}", describe_pool_error(&e))))
    }

    /// Sends `commands` on a connection from the pool, in one write with the stores it
    /// held, and reads those stores' replies; the caller reads the replies of
    /// `commands`. When those replies came from a replica (a failover), nothing of the
    /// write was done, and `commands` go again on another connection; when the
    /// connection failed, they may have been done, so the error is the caller's.
    fn send(
        &self,
        what: &str,
        commands: &[u8],
    ) -> Result<PooledConnection<RedisConnector>, StateError> {
        loop {
            let mut conn = self.pooled()?;
            match self.send_held(&mut conn, commands) {
                Ok(()) => return Ok(conn),
                Err(Unusable::Replica) => continue,
                Err(Unusable::Failed(e)) => {
                    return Err(self.error(format!("{what}: {}", describe(&e))))
                }
            }
        }
    }

    /// Sends the stores `conn` held, followed by `then`, in one write, and reads the
    /// stores' replies, keeping each failure for the pass to report. An error when the
    /// connection is of no further use.
    fn send_held(&self, conn: &mut StateConnection, then: &[u8]) -> Result<(), Unusable> {
        let held = conn.held.take();
        let sent = match &held {
            Some(held) if !then.is_empty() => {
                let mut both = Vec::with_capacity(held.commands.len() + then.len());
                both.extend_from_slice(&held.commands);
                both.extend_from_slice(then);
                conn.redis.send_packed_command(&both)
            }
            Some(held) => conn.redis.send_packed_command(&held.commands),
            None if then.is_empty() => return Ok(()),
            None => conn.redis.send_packed_command(then),
        };
        if let Err(e) = sent {
            // Part of it may be on the wire: the connection is not reused.
            conn.unusable = true;
            if let Some(held) = held {
                self.fail_stores(held.owners, &e);
            }
            return Err(Unusable::Failed(e));
        }
        match held {
            Some(held) => self.read_store_replies(conn, held.owners),
            None => Ok(()),
        }
    }

    /// Reads the replies of each store sent; every reply is read, even after an error
    /// Redis answered, so the next command reads its own; after a lost connection or a
    /// timeout none is waited for again, and the pool drops the connection.
    fn read_store_replies(
        &self,
        conn: &mut StateConnection,
        owners: Vec<StoreOwner>,
    ) -> Result<(), Unusable> {
        let mut owners = owners.into_iter();
        while let Some(owner) = owners.next() {
            let mut failure = None;
            for _ in 0..layout::STORE_REPLIES {
                let error = match conn.redis.recv_response() {
                    Ok(redis::Value::ServerError(e)) => redis::RedisError::from(e),
                    Ok(_) => continue,
                    Err(e) => {
                        conn.unusable = true;
                        self.fail_stores(std::iter::once(owner).chain(owners), &e);
                        return Err(Unusable::Failed(e));
                    }
                };
                conn.note_failure(&error);
                failure.get_or_insert(error);
            }
            if let Some(e) = failure {
                self.fail_stores([owner], &e);
            }
        }
        if conn.unusable {
            Err(Unusable::Replica)
        } else {
            Ok(())
        }
    }

    fn fail_stores(&self, owners: impl IntoIterator<Item = StoreOwner>, e: &redis::RedisError) {
        let mut failed = self
            .failed_stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failed.extend(owners.into_iter().map(|owner| FailedStore {
            owner,
            error: self.error(format!("store: {}", describe(e))),
        }));
    }

    /// Sends the stores every idle connection still holds and reads their replies, and
    /// returns the stores that failed since the last call. The pass calls it once its
    /// workers are done, before its summary.
    pub(crate) fn settle_stores(&self) -> Vec<FailedStore> {
        let mut settled = Vec::new();
        while let Some(mut conn) = self.pool.try_get() {
            let _ = self.send_held(&mut conn, &[]);
            settled.push(conn);
        }
        drop(settled);
        std::mem::take(
            &mut *self
                .failed_stores
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn run<T>(
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

    /// The lock key of a pass (or of one shard's passes).
    pub(crate) fn lock_key(&self, shard: Option<Shard>) -> String {
        match shard {
            None => format!("{}lock", self.settings.key_prefix),
            Some(s) => format!(
                "{}lock:{}-of-{}",
                self.settings.key_prefix, s.index, s.count
            ),
        }
    }

    /// Takes the lock for `ttl` unless another pass holds it; true when taken.
    fn try_lock(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, StateError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let answer: Option<String> = self.run("SET NX", |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query(c)
        })?;
        Ok(answer.is_some())
    }

    /// Releases the lock if (and only if) it still holds `token`; true when released.
    fn unlock(&self, key: &str, token: &str) -> Result<bool, StateError> {
        let deleted: i64 = self.run("unlock", |c| {
            redis::Script::new(RELEASE_LOCK)
                .key(key)
                .arg(token)
                .invoke(c)
        })?;
        Ok(deleted == 1)
    }

    /// Whether any pass holds the lock now.
    pub(crate) fn lock_holder(&self, key: &str) -> Result<Option<String>, StateError> {
        self.run("GET", |c| redis::cmd("GET").arg(key).query(c))
    }
}

/// Why the pass lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("another pass holds the lock {0}; this one exits without collecting")]
    Held(String),
    #[error(transparent)]
    Redis(#[from] StateError),
}

/// The pass lock, taken in Redis before anything else and released by its owner only.
pub(crate) struct PassLock {
    key: String,
    token: String,
    /// A handle on the pass's own Redis pool, to release the lock over its connections.
    state: StateStore,
}

impl PassLock {
    /// Takes the lock for the length of the pass, so a crashed pass's lock expires by its
    /// deadline.
    pub(crate) fn take(
        state: &StateStore,
        shard: Option<Shard>,
        ttl: Duration,
    ) -> Result<PassLock, LockError> {
        let key = state.lock_key(shard);
        let token = lock_token();
        if state.try_lock(&key, &token, ttl)? {
            Ok(PassLock {
                key,
                token,
                state: state.clone(),
            })
        } else {
            Err(LockError::Held(key))
        }
    }

    /// Releases the lock if this pass still holds it, quietly, from anywhere: what a
    /// second signal does before the process exits.
    pub(crate) fn releaser(&self) -> impl Fn() + Send + Sync + 'static {
        let (state, key, token) = (self.state.clone(), self.key.clone(), self.token.clone());
        move || {
            let _ = state.unlock(&key, &token);
        }
    }

    /// Releases the lock if this pass still holds it; logs when it could not.
    pub(crate) fn release(self) {
        match self.state.unlock(&self.key, &self.token) {
            Ok(true) => {}
            Ok(false) => log::warn!(
                "the lock {} expired before the pass ended; it was not released",
                self.key
            ),
            Err(e) => log::warn!("cannot release the lock {}: {e}", self.key),
        }
    }
}

/// A token no other pass has: host, process and start time.
fn lock_token() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}:{}:{nanos}", host.trim(), std::process::id())
}

/// Appends one bulk string, the concatenation of `parts`, in Redis' wire format.
fn push_bulk(out: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// A Redis error in words, without the URL or credentials the crate might add; told
/// apart by the crate's error kind and the server's error code, never by its words.
fn describe(error: &redis::RedisError) -> String {
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
fn is_replica_answer(error: &redis::RedisError) -> bool {
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
    } else if lower.contains("refused") {
        "connection refused".into()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "timed out".into()
    } else {
        text
    }
}

/// A client for `info`; with TLS and a CA (`--redis-ca-file`), one that trusts that CA.
fn client(
    info: impl redis::IntoConnectionInfo,
    tls: bool,
    root_cert: Option<&[u8]>,
) -> redis::RedisResult<redis::Client> {
    match root_cert {
        Some(root_cert) if tls => redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert.to_vec()),
            },
        ),
        _ => redis::Client::open(info),
    }
}

/// A connection with connect, read and write timeouts, which the redis crate's own r2d2
/// support does not set: a hung Redis must fail a pass, not stall it.
fn open(client: &redis::Client, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Where connections go: the one configured Redis, or the master the sentinels name.
#[derive(Clone)]
enum Target {
    Direct(Box<redis::Client>),
    Sentinel(Arc<sentinel::Sentinels>),
}

/// Makes the pool's connections ([`open`]).
struct RedisConnector {
    target: Target,
    timeout: Duration,
}

/// A pooled connection, and what the pool must know of it.
struct StateConnection {
    redis: redis::Connection,
    /// Set on a READONLY answer (a replica: a demoted master after a failover), so the
    /// pool drops the connection and the next one asks the sentinels again.
    unusable: bool,
    /// Stores not sent yet. A store is due once its documents are confirmed, but
    /// nothing waits for it: it goes out in the same write as the next command on the
    /// connection (an agent's load, usually), whose replies follow its own, or at the
    /// end of the pass. That saves each agent a write, a wait and a wake-up of Redis
    /// (docs/state.md); an interval whose store a crash keeps from leaving is sent again
    /// by the next pass from its write-ahead, under the same message id.
    held: Option<HeldStores>,
}

/// Stores held by a connection: their commands, one after the other, and whose
/// readings each writes.
#[derive(Default)]
struct HeldStores {
    commands: Vec<u8>,
    owners: Vec<StoreOwner>,
}

/// Why a connection is of no further use.
enum Unusable {
    /// A replica answered (a failover): nothing it was sent was done.
    Replica,
    /// The connection failed (lost, timed out) with what it was sent possibly done.
    Failed(redis::RedisError),
}

impl StateConnection {
    fn note_failure(&mut self, error: &redis::RedisError) {
        if is_replica_answer(error) {
            self.unusable = true;
        }
    }
}

impl r2d2::ManageConnection for RedisConnector {
    type Connection = StateConnection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<StateConnection, redis::RedisError> {
        let redis = match &self.target {
            Target::Direct(client) => open(client, self.timeout)?,
            Target::Sentinel(sentinels) => sentinels.connect(self.timeout)?,
        };
        Ok(StateConnection {
            redis,
            unusable: false,
            held: None,
        })
    }

    fn is_valid(&self, conn: &mut StateConnection) -> Result<(), redis::RedisError> {
        redis::cmd("PING")
            .query::<String>(&mut conn.redis)
            .map(drop)
    }

    fn has_broken(&self, conn: &mut StateConnection) -> bool {
        conn.unusable || !redis::ConnectionLike::is_open(&conn.redis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_strings_are_length_prefixed_and_binary_safe() {
        let mut out = Vec::new();
        push_bulk(&mut out, &[b"asgard:", "tâche\r\n".as_bytes()]);
        push_bulk(&mut out, &[]);
        assert_eq!(out, "$15\r\nasgard:tâche\r\n\r\n$0\r\n\r\n".as_bytes());
    }
}

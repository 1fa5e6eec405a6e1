//! Previous readings and the pass lock, kept in Redis (docs/state.md).
//!
//! Keys are `<prefix><executor_id>` holding the agent's entry as JSON, each written with
//! a TTL so tasks that ended leave nothing behind. One `MGET` per agent loads, one
//! pipeline of `SET … EX` per agent stores; nothing ever scans the keyspace. The pass lock
//! ([`PassLock`]) is `SET <prefix>lock NX PX` and is released only by its owner
//! (compare-and-delete).

use crate::config::{RedisSettings, Shard};
use r2d2::{Pool, PooledConnection};
use std::time::Duration;

/// Deletes the lock only if it still holds our token, so a pass never frees another's.
const RELEASE_LOCK: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0"#;

/// A Redis failure, with the (password-free) URL in its message.
#[derive(Debug, thiserror::Error)]
#[error("Redis {url}: {message}")]
pub(crate) struct StateError {
    url: String,
    message: String,
}

/// The store of previous readings and of the pass lock. Clones share one pool.
#[derive(Clone)]
pub(crate) struct StateStore {
    pool: Pool<RedisConnector>,
    settings: RedisSettings,
}

impl StateStore {
    /// Creates the pool; no connection is made until the first command.
    pub(crate) fn new(settings: &RedisSettings) -> Result<StateStore, StateError> {
        let error = |message: String| StateError {
            url: settings.shown_url.clone(),
            message,
        };
        let client = redis::Client::open(settings.url.expose())
            .map_err(|e| error(format!("bad URL: {}", e.category())))?;
        let connector = RedisConnector {
            client,
            timeout: settings.timeout,
        };
        // r2d2 builds `min_idle` connections before returning and would block on a dead
        // Redis, so the pool starts empty and fills on demand.
        let pool = Pool::builder()
            .max_size(settings.pool_max)
            .min_idle(Some(settings.pool_min))
            .connection_timeout(settings.timeout)
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build_unchecked(connector);
        Ok(StateStore {
            pool,
            settings: settings.clone(),
        })
    }

    fn error(&self, message: impl std::fmt::Display) -> StateError {
        StateError {
            url: self.settings.shown_url.clone(),
            message: message.to_string(),
        }
    }

    fn connection(&self) -> Result<PooledConnection<RedisConnector>, StateError> {
        self.pool
            .get()
            .map_err(|e| self.error(format!("cannot connect: {}", describe_pool_error(&e))))
    }

    fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        let mut conn = self.connection()?;
        command(&mut conn).map_err(|e| self.error(format!("{what}: {}", describe(&e))))
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

    /// Loads the stored entries of these executors, in order, in one round trip.
    pub(crate) fn load(&self, executor_ids: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        if executor_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Packed by hand like `store`: no String or argument allocation per key.
        let prefix = self.settings.key_prefix.as_bytes();
        let mut command = Vec::with_capacity(16 + executor_ids.len() * 128);
        command.push(b'*');
        command.extend_from_slice((executor_ids.len() + 1).to_string().as_bytes());
        command.extend_from_slice(b"\r\n$4\r\nMGET\r\n");
        for id in executor_ids {
            push_bulk(&mut command, &[prefix, id.as_bytes()]);
        }
        self.run("MGET", |c| {
            let reply = redis::ConnectionLike::req_packed_command(c, &command)?;
            redis::FromRedisValue::from_redis_value(reply).map_err(Into::into)
        })
    }

    /// Stores (executor id, entry JSON) pairs with the TTL, in one pipelined round trip.
    ///
    /// The commands are written straight into one buffer in Redis' wire format: the
    /// crate's pipeline copies every entry twice and allocates per argument, which made
    /// storing the largest part of a pass's CPU.
    pub(crate) fn store<'a>(
        &self,
        readings: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), StateError> {
        let count = readings.len();
        if count == 0 {
            return Ok(());
        }
        let ttl = self.settings.state_ttl.as_secs().to_string();
        let prefix = self.settings.key_prefix.as_bytes();
        let mut commands = Vec::with_capacity(count * 1024);
        for (id, entry) in readings {
            commands.extend_from_slice(b"*5\r\n$3\r\nSET\r\n");
            push_bulk(&mut commands, &[prefix, id.as_bytes()]);
            push_bulk(&mut commands, &[entry.as_bytes()]);
            commands.extend_from_slice(b"$2\r\nEX\r\n");
            push_bulk(&mut commands, &[ttl.as_bytes()]);
        }
        self.run("SET pipeline", |c| {
            let replies = redis::ConnectionLike::req_packed_commands(c, &commands, 0, count)?;
            replies.into_iter().try_for_each(|reply| match reply {
                redis::Value::ServerError(e) => Err(redis::RedisError::from(e)),
                _ => Ok(()),
            })
        })
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

/// A Redis error in words, without the URL or credentials the crate might add.
fn describe(error: &redis::RedisError) -> String {
    if is_auth_failure(&error.to_string()) {
        AUTH_FAILED.into()
    } else if error.is_timeout() {
        "timed out".into()
    } else if error.is_connection_refusal() {
        "connection refused".into()
    } else if error.is_connection_dropped() || error.is_io_error() {
        "connection lost".into()
    } else {
        error.to_string()
    }
}

const AUTH_FAILED: &str =
    "authentication failed: check the user and password in STATS_COLLECTOR_REDIS_URL";

/// Redis refused the login (WRONGPASS) or wants one (NOAUTH); the crate's own words for
/// a refused AUTH name authentication.
fn is_auth_failure(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["wrongpass", "noauth", "authentication"]
        .iter()
        .any(|word| lower.contains(word))
}

/// r2d2 reports the last connection error as text; name the usual causes plainly.
fn describe_pool_error(error: &r2d2::Error) -> String {
    let text = error.to_string();
    let lower = text.to_lowercase();
    // Checked first: the pool retries a refused login until its timeout, then says so.
    if is_auth_failure(&text) {
        AUTH_FAILED.into()
    } else if lower.contains("refused") {
        "connection refused".into()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "timed out".into()
    } else {
        text
    }
}

/// Makes pooled connections with connect, read and write timeouts, which the redis
/// crate's own r2d2 support does not set: a hung Redis must fail a pass, not stall it.
struct RedisConnector {
    client: redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for RedisConnector {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<redis::Connection, redis::RedisError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut redis::Connection) -> Result<(), redis::RedisError> {
        redis::cmd("PING").query::<String>(conn).map(drop)
    }

    fn has_broken(&self, conn: &mut redis::Connection) -> bool {
        !redis::ConnectionLike::is_open(conn)
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

//! The pass lock ([`PassLock`]): `SET <prefix>lock NX PX`, released only by its owner
//! (compare-and-delete).

use super::store::{StateError, StateStore};
use crate::config::Shard;
use std::time::Duration;

/// Deletes the lock only if it still holds our token, so a pass never frees another's.
const RELEASE_LOCK: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0"#;

impl StateStore {
    /// The lock key of a pass (or of one shard's passes).
    pub(crate) fn lock_key(&self, shard: Option<Shard>) -> String {
        self.pass_key("lock", shard)
    }

    /// `<prefix><name>`, or with a shard `<prefix><name>:K-of-N`: a key of the passes of
    /// the whole cluster or of one shard (the lock, where the next pass starts).
    pub(super) fn pass_key(&self, name: &str, shard: Option<Shard>) -> String {
        let prefix = &self.settings.key_prefix;
        match shard {
            None => format!("{prefix}{name}"),
            Some(s) => format!("{prefix}{name}:{}-of-{}", s.index, s.count),
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

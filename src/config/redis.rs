//! The Redis settings: its URL (plain, TLS or Sentinel; a secret, also from a file), the
//! pool's sizes, the key prefix and the state's TTL.

use super::error::{invalid, invalid_value, ConfigError};
use super::redact;
use super::secret::{Secret, SecretSetting};
use super::sentinel::{self, SentinelSettings};
use crate::cli::Settings;
use std::path::PathBuf;
use std::time::Duration;

/// Redis when none is configured.
pub(super) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1/0";

#[derive(Clone, Debug)]
pub(crate) struct RedisSettings {
    pub(crate) url: Secret,
    /// The URL with any password replaced, for messages.
    pub(crate) shown_url: String,
    /// The sentinels to ask for the master, with a `redis+sentinel://` URL.
    pub(crate) sentinel: Option<SentinelSettings>,
    /// PEM CA for `rediss://` and `rediss+sentinel://`; the public roots when None.
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) pool_min: u32,
    pub(crate) pool_max: u32,
    pub(crate) key_prefix: String,
    pub(crate) state_ttl: Duration,
    pub(crate) timeout: Duration,
}

pub(super) fn redis(
    settings: &Settings,
    timeout: Duration,
    workers: usize,
) -> Result<RedisSettings, ConfigError> {
    let url = SecretSetting {
        value_name: "STATS_COLLECTOR_REDIS_URL (--redis-url)",
        file_name: "STATS_COLLECTOR_REDIS_URL_FILE (--redis-url-file)",
        value: &settings.redis_url,
        file: &settings.redis_url_file,
    }
    .read()?;
    let url = url.as_ref().map_or(DEFAULT_REDIS_URL, Secret::expose);
    let url = url.trim().to_string();
    let shown_url = redact::secret_url(&url);
    let sentinel = if sentinel::is_sentinel_url(&url) {
        let parsed = sentinel::parse(&url)
            .map_err(|why| invalid(format!("Redis URL {shown_url}: {why}")))?;
        Some(parsed)
    } else if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(invalid(format!(
            "Redis URL {shown_url} must start with redis://, rediss://, redis+sentinel:// \
             or rediss+sentinel://"
        )));
    } else {
        None
    };
    // One connection per worker unless told otherwise: a worker that waits for a
    // connection holds its agent's readings and its share of the body budget meanwhile.
    let pool_max = settings
        .redis_pool_max
        .unwrap_or_else(|| u32::try_from(workers).unwrap_or(u32::MAX));
    if pool_max == 0 || settings.redis_pool_min > pool_max {
        return Err(invalid(
            "Redis pool sizes must satisfy 0 <= STATS_COLLECTOR_REDIS_POOL_MIN <= \
             STATS_COLLECTOR_REDIS_POOL_MAX, and the maximum must be above 0",
        ));
    }
    if settings.state_ttl == 0 {
        return Err(invalid_value("--state-ttl", "must be above 0"));
    }
    Ok(RedisSettings {
        url: Secret(url),
        shown_url,
        sentinel,
        ca_file: settings.redis_ca_file.clone(),
        pool_min: settings.redis_pool_min,
        pool_max,
        key_prefix: settings.key_prefix.clone(),
        state_ttl: Duration::from_secs(settings.state_ttl),
        timeout,
    })
}

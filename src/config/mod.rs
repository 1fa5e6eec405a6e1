//! The validated configuration the rest of the program reads.
//!
//! Built once from the parsed command line plus the indexed `HOLLOWMAN_MESOS_ADDRESS_<n>`
//! variables that clap cannot express. Every check happens here, so a bad setting is one
//! clear line and exit code 2 before anything is contacted. Secrets are wrapped in
//! [`Secret`], whose `Debug` and `Display` never show the value; each may also be read
//! from a file (its `_FILE` setting), here, so a file that cannot be used is exit 2 too.
//!
//! One file per part of the system a setting describes: `masters` (masters and HTTP),
//! `redis`, `broker` (and its `routing_key`), `metrics` (the metrics file and the Pushgateway), `shard`,
//! `sentinel`; `secret` holds secrets and reads their files; `validated` builds the
//! [`Config`] from them; `error` is the one-line error; `redact` shows addresses.

mod broker;
mod error;
mod masters;
mod metrics;
pub(crate) mod redact;
mod redis;
mod routing_key;
mod secret;
mod sentinel;
mod shard;
mod validated;

pub(crate) use broker::{BrokerAddress, BrokerSettings};
pub(crate) use error::ConfigError;
pub(crate) use masters::HttpSettings;
pub(crate) use metrics::{MetricsDestination, PushgatewaySettings};
pub(crate) use redis::RedisSettings;
pub(crate) use routing_key::{KeyField, RoutingKey};
pub(crate) use secret::Secret;
pub(crate) use sentinel::{RedisLogin, SentinelSettings};
pub(crate) use shard::{fnv1a, Shard};
pub(crate) use validated::{declare_queue, dry_run_interval, Config};

#[cfg(test)]
mod tests;

//! Which share of the cluster's agents a pass collects (`--shard K/N`, or the 0-based
//! `--shard-index K-1` with `--shard-count N` that schedulers hand over, the same shard):
//! shard K of N holds the agents whose id hashes, by 64-bit FNV-1a, to K-1 modulo N. Kept in
//! configuration because the hash is part of the contract every host must agree on,
//! and so that the agent list, the lock and the metrics read it from one place.

use super::error::{invalid, invalid_value, ConfigError};
use crate::cli::Settings;
use std::fmt;

/// Shard `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) count: u32,
}

impl Shard {
    /// Whether the agent of this id falls in this shard.
    pub(crate) fn holds(self, id: &str) -> bool {
        self.holds_hash(fnv1a(id.as_bytes()))
    }

    /// Whether the agent whose id hashes ([`fnv1a`]) to this falls in this shard.
    pub(crate) fn holds_hash(self, hash: u64) -> bool {
        hash % u64::from(self.count) == u64::from(self.index - 1)
    }
}

/// 64-bit FNV-1a, the published shard function.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard, from `--shard K/N` or from `--shard-index I` with `--shard-count N`
/// (0-based, as schedulers number their instances); both forms must then agree.
pub(super) fn shard(settings: &Settings) -> Result<Option<Shard>, ConfigError> {
    const INDEX: &str = "STATS_COLLECTOR_SHARD_INDEX (--shard-index)";
    const COUNT: &str = "STATS_COLLECTOR_SHARD_COUNT (--shard-count)";
    let given = settings.shard.as_deref().map(parse_shard).transpose()?;
    let indexed = match (settings.shard_index, settings.shard_count) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(format!(
                "{INDEX} and {COUNT} go together: set both or neither"
            )))
        }
        (Some(_), Some(0)) => return Err(invalid(format!("{COUNT} must be above 0"))),
        (Some(index), Some(count)) if index >= count => {
            return Err(invalid(format!(
                "{INDEX} is 0-based and must be below {COUNT}: got index {index} of {count} \
                 (0 to {} are the shards)",
                count - 1
            )))
        }
        (Some(index), Some(count)) => Some(Shard {
            index: index + 1,
            count,
        }),
    };
    match (given, indexed) {
        (Some(given), Some(indexed)) if given != indexed => Err(invalid(format!(
            "--shard {given} and {INDEX} {} of {} name different shards \
             (index I of N is --shard (I+1)/N)",
            indexed.index - 1,
            indexed.count
        ))),
        (given, indexed) => Ok(given.or(indexed)),
    }
}

fn parse_shard(text: &str) -> Result<Shard, ConfigError> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if (1..=count).contains(&index) => Ok(Shard { index, count }),
        _ => Err(invalid_value(
            "--shard",
            format!("must be K/N with 1 <= K <= N, got {text:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}

//! Which share of the cluster's agents a pass collects (`--shard K/N`, or the 0-based
//! `--shard-index K-1` with `--shard-count N` that schedulers hand over, the same shard):
//! shard K of N holds the agents whose id hashes, by 64-bit FNV-1a, to K-1 modulo N. Kept in
//! configuration because the hash is part of the contract every host must agree on,
//! and so that the agent list, the lock and the metrics read it from one place.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}

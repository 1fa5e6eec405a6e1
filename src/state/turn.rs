//! Where the next pass starts in its agents' order (docs/pass.md, "Every agent gets its
//! turn"): `<prefix>turn` (`<prefix>turn:K-of-N` with a shard), the position of the first
//! agent a cut pass never started, kept with the state's TTL.

use super::store::{StateError, StateStore};
use crate::config::Shard;

impl StateStore {
    fn turn_key(&self, shard: Option<Shard>) -> String {
        self.pass_key("turn", shard)
    }

    /// The position the next pass starts at, if a pass left one.
    pub(crate) fn next_turn(&self, shard: Option<Shard>) -> Result<Option<u64>, StateError> {
        let key = self.turn_key(shard);
        let value: Option<String> = self.run("GET", |c| redis::cmd("GET").arg(&key).query(c))?;
        Ok(value.and_then(|v| v.parse().ok()))
    }

    /// Records where the next pass starts, for as long as the readings live.
    pub(crate) fn set_next_turn(&self, shard: Option<Shard>, at: u64) -> Result<(), StateError> {
        let key = self.turn_key(shard);
        let ttl = self.settings.state_ttl.as_secs().max(1);
        self.run("SET", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(at)
                .arg("EX")
                .arg(ttl)
                .query(c)
        })
    }
}

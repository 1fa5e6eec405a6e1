//! The compact layout of the readings in Redis (docs/state.md), and the Redis commands
//! that load one agent's readings in one round trip and store them in one write.
//!
//! One key per agent entry of the master's list, `<prefix>agent/<agent id>/<address>`,
//! holds every task of that agent in one versioned binary value, rewritten whole by each
//! pass with `SET … EX <ttl>`. The address is part of the key because real masters may
//! list one agent id at two addresses (an agent that re-registered elsewhere): each entry
//! is fetched, and its state must be its own. Per task it keeps only what the next
//! document needs from a reading as `before` (timestamp, the CPU counters as exact f64
//! bits, the raw entry only with raw metrics), when it was stored, and the readings whose
//! documents are not confirmed yet (the outbox, `outbox.rs`), which keep every number
//! their document is rebuilt from. A separate key per entry,
//! `<prefix>wal/<agent id>/<address>`, holds a pass's new readings between its load and
//! its store (a write-ahead), so a pass killed in between leaves them for the next one.
//!
//! Mesos refuses `/` in agent and executor ids, and addresses hold none, so these keys can
//! never be the previous layouts' keys: the per-task `<prefix><executor id>` of two
//! releases ago, and `<prefix>agent/<agent id>` (and its `wal/`) of the last release,
//! which the first passes of this one still read (`previous layouts`), nor the lock
//! `<prefix>lock…`.
//!
//! The value itself is written and read by `value_codec.rs`.

use super::pipelining::{push_bulk, HeldStores, StoreOwner};
use super::store::{StateError, StateStore};

/// How many replies a store gets: one for the value, one for the write-ahead's delete.
pub(super) const STORE_REPLIES: usize = 2;

/// The stores a connection holds at most before it sends them on its own.
const MAX_HELD_STORES: usize = 8;

/// The marker the first pass of this layout writes: when it ran (Unix seconds). It lives
/// [`MARKER_LIFETIME_TTLS`] state TTLs, renewed by every collecting pass.
const MARKER: &str = "layout/by-address/since";

/// The last release's marker, which it wrote without an expiry: deleted, since nothing
/// of this release reads it.
const PREVIOUS_MARKER: &str = "layout/since";

/// How many state TTLs the marker outlives the last pass that renewed it. It only has
/// to outlive the upgrade window (one TTL after the first pass); once it is gone, so is
/// every key a pass wrote before it, so a later first pass reads the previous layouts
/// for one TTL more, finding nothing or what a downgraded release wrote meanwhile.
const MARKER_LIFETIME_TTLS: u64 = 2;

/// What one agent's load round trip found.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// The agent's value, if it has one.
    pub(crate) agent: Option<Vec<u8>>,
    /// The write-ahead a previous pass left, having never reached its store.
    pub(crate) unfinished: Option<Vec<u8>>,
    /// The previous release's per-task values, in the order asked (empty when not asked).
    pub(crate) legacy: Vec<Option<Vec<u8>>>,
    /// The last release's value and write-ahead under the agent id alone (None when not
    /// asked); they hold the host they were written for, which tells whose they are.
    pub(crate) by_id: (Option<Vec<u8>>, Option<Vec<u8>>),
}

/// One command in Redis' wire format.
fn push_command(out: &mut Vec<u8>, args: &[&[&[u8]]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for parts in args {
        push_bulk(out, parts);
    }
}

/// Which entry of the master's list a state belongs to: an agent id at an address.
#[derive(Clone, Copy)]
pub(crate) struct EntryKey<'a> {
    pub(crate) agent_id: &'a str,
    pub(crate) address: &'a str,
}

/// What a load reads besides the entry's own value.
pub(crate) struct LoadRequest<'a> {
    /// This pass's write-ahead, swapped in for the one a previous pass left.
    pub(crate) write_ahead: Option<&'a [u8]>,
    /// The executor ids whose per-task keys of the previous release are read.
    pub(crate) legacy_ids: &'a [&'a str],
    /// Whether the last release's keys by agent id alone are read (the upgrade window).
    pub(crate) by_id: bool,
}

impl StateStore {
    /// `<prefix><kind><agent id>/<address>`: `/` is in no agent id nor address, so each
    /// (id, address) has its own key.
    fn key(&self, kind: &str, entry: EntryKey) -> Vec<u8> {
        [
            self.settings.key_prefix.as_bytes(),
            kind.as_bytes(),
            entry.agent_id.as_bytes(),
            b"/",
            entry.address.as_bytes(),
        ]
        .concat()
    }

    /// The entry's key, `<prefix>agent/<agent id>/<address>`.
    pub(crate) fn agent_key(&self, entry: EntryKey) -> Vec<u8> {
        self.key("agent/", entry)
    }

    fn wal_key(&self, entry: EntryKey) -> Vec<u8> {
        self.key("wal/", entry)
    }

    /// The last release's keys of an agent id, `<prefix>agent/<id>` and `<prefix>wal/<id>`.
    fn by_id_keys(&self, agent_id: &str) -> [Vec<u8>; 2] {
        let prefix = self.settings.key_prefix.as_bytes();
        [
            [prefix, b"agent/", agent_id.as_bytes()].concat(),
            [prefix, b"wal/", agent_id.as_bytes()].concat(),
        ]
    }

    /// How long what a pass writes lives (`--state-ttl`).
    pub(crate) fn state_ttl(&self) -> std::time::Duration {
        self.settings.state_ttl
    }

    fn ttl_arg(&self) -> String {
        self.settings.state_ttl.as_secs().max(1).to_string()
    }

    /// Loads an entry in one round trip: its value; with a write-ahead, also swaps it in
    /// (with the TTL) and returns the one a previous pass left; the previous release's
    /// per-task values of `legacy_ids`; and in the upgrade window the last release's value
    /// and write-ahead by agent id.
    ///
    /// `GETSET` then `EXPIRE` rather than `SET … GET` so that any Redis version will do.
    pub(crate) fn load_agent(
        &self,
        entry: EntryKey,
        request: &LoadRequest,
    ) -> Result<Loaded, StateError> {
        let LoadRequest {
            write_ahead,
            legacy_ids,
            by_id,
        } = *request;
        let prefix = self.settings.key_prefix.as_bytes();
        let ttl = self.ttl_arg();
        let (agent_key, wal_key) = (self.agent_key(entry), self.wal_key(entry));
        let mut commands =
            Vec::with_capacity(96 + write_ahead.map_or(0, <[u8]>::len) + legacy_ids.len() * 128);
        push_command(&mut commands, &[&[b"GET"], &[&agent_key]]);
        let mut count = 1;
        if let Some(wal) = write_ahead {
            push_command(&mut commands, &[&[b"GETSET"], &[&wal_key], &[wal]]);
            push_command(
                &mut commands,
                &[&[b"EXPIRE"], &[&wal_key], &[ttl.as_bytes()]],
            );
            count += 2;
        }
        // The previous layouts' keys, in one MGET: the per-task ones, then the last
        // release's value and write-ahead of the agent id.
        let by_id_keys = by_id.then(|| self.by_id_keys(entry.agent_id));
        if !legacy_ids.is_empty() || by_id_keys.is_some() {
            let keys: Vec<[&[u8]; 2]> = legacy_ids
                .iter()
                .map(|id| [prefix, id.as_bytes()])
                .collect();
            let mut args: Vec<&[&[u8]]> = vec![&[b"MGET"]];
            args.extend(keys.iter().map(|k| &k[..]));
            let by_id_args: Vec<[&[u8]; 1]> =
                by_id_keys.iter().flatten().map(|k| [&k[..]]).collect();
            args.extend(by_id_args.iter().map(|k| &k[..]));
            push_command(&mut commands, &args);
            count += 1;
        }
        let mut conn = self.send("load", &commands)?;
        let read = |redis: &mut redis::Connection| -> redis::RedisResult<Loaded> {
            let mut replies = (0..count)
                .map(|_| redis.recv_response())
                .collect::<redis::RedisResult<Vec<_>>>()?
                .into_iter();
            let mut next = || replies.next().unwrap_or(redis::Value::Nil);
            let agent = redis::from_redis_value(next())?;
            // A Redis that refuses writes (maxmemory) still lets the pass deliver, as
            // before the write-ahead: its store fails too, so the readings do not advance
            // and the next pass reports those intervals again, at least once.
            let unfinished = match write_ahead.map(|_| (next(), next())) {
                Some((redis::Value::ServerError(e), _)) => {
                    log::debug!("agent {}: write-ahead refused: {e:?}", entry.address);
                    None
                }
                Some((previous, _)) => redis::from_redis_value(previous)?,
                None => None,
            };
            let mut legacy: Vec<Option<Vec<u8>>> = if legacy_ids.is_empty() && by_id_keys.is_none()
            {
                Vec::new()
            } else {
                redis::from_redis_value(next())?
            };
            let by_id = if by_id_keys.is_some() {
                let wal = legacy.pop().flatten();
                (legacy.pop().flatten(), wal)
            } else {
                (None, None)
            };
            Ok(Loaded {
                agent,
                unfinished,
                legacy,
                by_id,
            })
        };
        read(&mut conn.redis).map_err(|e| {
            conn.note_failure(&e);
            self.error(format!("load: {}", super::store::describe(&e)))
        })
    }

    /// Gives a connection an entry's store to hold: its new value with the TTL (or none,
    /// when it has no task left), and its write-ahead deleted, now that the value holds
    /// it all. It leaves with the connection's next command (`StateConnection::held`)
    /// or at the end of the pass, and nothing waits for its [`STORE_REPLIES`] replies: a
    /// failure they tell is reported by [`StateStore::settle_stores`] under `owner`. An
    /// error here is a store that could not even be given to a connection.
    pub(crate) fn store_agent(
        &self,
        entry: EntryKey,
        value: Option<&[u8]>,
        owner: StoreOwner,
    ) -> Result<(), StateError> {
        let ttl = self.ttl_arg();
        let (agent_key, wal_key) = (self.agent_key(entry), self.wal_key(entry));
        let mut commands = Vec::with_capacity(64 + value.map_or(0, <[u8]>::len));
        match value {
            Some(value) => push_command(
                &mut commands,
                &[
                    &[b"SET"],
                    &[&agent_key],
                    &[value],
                    &[b"EX"],
                    &[ttl.as_bytes()],
                ],
            ),
            None => push_command(&mut commands, &[&[b"DEL"], &[&agent_key]]),
        }
        push_command(&mut commands, &[&[b"DEL"], &[&wal_key]]);
        let mut conn = self.pooled()?;
        let held = conn.held.get_or_insert_with(HeldStores::default);
        held.commands.extend_from_slice(&commands);
        held.owners.push(owner);
        if held.owners.len() >= MAX_HELD_STORES {
            // Rare (each load sends what its connection held): no connection keeps many.
            let _ = self.send_held(&mut conn, &[]);
        }
        Ok(())
    }

    /// Gives the values and write-aheads of `entries` another TTL, as a pass that reads no
    /// agent (the broker unreachable) or stops early (the broker blocked) does, so that
    /// an outage longer than the TTL loses nothing: once the broker is back, each task's
    /// next document starts where its last delivered one ended. Returns how many entries
    /// had a value. One round trip per [`KEEP_ALIVE_BATCH`] entries.
    pub(crate) fn keep_alive(&self, entries: &[EntryKey]) -> Result<usize, StateError> {
        let ttl = self.ttl_arg();
        let mut kept = 0;
        for batch in entries.chunks(KEEP_ALIVE_BATCH) {
            let mut pipe = redis::pipe();
            for entry in batch {
                pipe.cmd("EXPIRE").arg(self.agent_key(*entry)).arg(&ttl);
                pipe.cmd("EXPIRE")
                    .arg(self.wal_key(*entry))
                    .arg(&ttl)
                    .ignore();
            }
            let replies: Vec<u8> = self.run("keep alive", |c| pipe.query(c))?;
            kept += replies.iter().filter(|&&r| r == 1).count();
        }
        Ok(kept)
    }

    /// Whether this pass still reads the previous layouts' keys: until the first pass of
    /// this layout is older than the TTL, after which any such key has expired. `mark` (a
    /// collecting pass) records this pass as the first when none is, renews the marker's
    /// lifetime and deletes the last release's marker; all in one round trip.
    pub(crate) fn reads_legacy(&self, now: u64, mark: bool) -> Result<bool, StateError> {
        let prefix = &self.settings.key_prefix;
        let key = format!("{prefix}{MARKER}");
        let ttl = self.settings.state_ttl.as_secs().max(1);
        let lifetime = ttl.saturating_mul(MARKER_LIFETIME_TTLS);
        let mut pipe = redis::pipe();
        if mark {
            pipe.cmd("SET")
                .arg(&key)
                .arg(now)
                .arg("NX")
                .arg("EX")
                .arg(lifetime)
                .ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(lifetime).ignore();
            pipe.cmd("DEL")
                .arg(format!("{prefix}{PREVIOUS_MARKER}"))
                .ignore();
        }
        pipe.cmd("GET").arg(&key);
        let (since,): (Option<String>,) = self.run("layout marker", |c| pipe.query(c))?;
        let since = since.and_then(|s| s.parse::<u64>().ok()).unwrap_or(now);
        Ok(now < since.saturating_add(ttl))
    }
}

/// Entries whose TTL one keep-alive round trip renews.
const KEEP_ALIVE_BATCH: usize = 512;

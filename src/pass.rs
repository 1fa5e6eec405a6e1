//! One collection pass, start to end (design section 1): lock, broker, masters, then the
//! worker pool (`pool`), whose threads each take one agent at a time through fetch → load
//! previous readings → compute → publish → store, and finally the summary.
//!
//! A worker holds only its current agent's readings, so memory stays flat however large
//! the cluster. The main thread never joins a worker that may hang: it supervises the
//! pool up to the pass deadline and then returns, so a hung agent, Redis or broker cannot
//! hold the process.

use crate::broker::{AmqpPublisher, Outgoing, Publisher};
use crate::cli::OutputFormat;
use crate::config::{Config, Shard};
use crate::document::{compute, Outcome};
use crate::mesos::{Agent, MesosClient, Scheme};
use crate::open_files;
use crate::pool::{self, Ended, Limits, Worker};
use crate::printer::Printer;
use crate::reading::{parse_answer, parse_entry, Reading};
use crate::state::StateStore;
use crate::tally::{exit, Summary, Tally};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What kind of pass to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mode {
    /// Publish to the broker and store readings.
    Collect { declare_queue: bool },
    /// Print documents, write nothing.
    DryRun {
        interval: Duration,
        output: OutputFormat,
    },
}

/// A pass that could not run at all; carries its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct PassError {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl PassError {
    fn new(code: i32, message: impl std::fmt::Display) -> PassError {
        PassError {
            code,
            message: message.to_string(),
        }
    }
}

/// Runs one pass and returns its summary (whose exit code tells how it went).
pub(crate) fn run(config: &Config, mode: Mode) -> Result<Summary, PassError> {
    let started = Instant::now();
    let deadline = started + config.deadline;
    let mesos = MesosClient::new(&config.http)
        .map_err(|e| PassError::new(exit::USAGE, format!("{e:#}")))?;
    let state = StateStore::new(&config.redis).map_err(|e| PassError::new(exit::USAGE, e))?;
    let (state, lock, publisher): (Option<StateStore>, Option<PassLock>, Box<dyn Publisher>) =
        match mode {
            Mode::Collect { declare_queue } => {
                let broker = config
                    .require_broker()
                    .map_err(|e| PassError::new(exit::USAGE, e))?;
                // The broker first: when it is down the pass writes nothing, not even the
                // lock, and a pass that finds the lock taken just closes its connection.
                let publisher = AmqpPublisher::connect(broker, declare_queue)
                    .map_err(|e| PassError::new(exit::UNAVAILABLE, e))?;
                let lock = PassLock::take(&state, config.shard, config.deadline)?;
                (Some(state), Some(lock), Box::new(publisher))
            }
            Mode::DryRun { output, .. } => {
                let state = match state.ping() {
                    Ok(_) => Some(state),
                    Err(e) => {
                        log::warn!("{e}; every task is read twice instead");
                        None
                    }
                };
                (state, None, Box::new(Printer::new(output)))
            }
        };
    let outcome = collect(config, mode, mesos, state, publisher, deadline);
    if let Some(lock) = lock {
        lock.release();
    }
    let tally = outcome?;
    let mut summary = tally.summary(started.elapsed());
    summary.dry_run = matches!(mode, Mode::DryRun { .. });
    Ok(summary)
}

/// Lists agents and runs the workers; everything after the lock and broker are ready.
fn collect(
    config: &Config,
    mode: Mode,
    mesos: MesosClient,
    state: Option<StateStore>,
    publisher: Box<dyn Publisher>,
    deadline: Instant,
) -> Result<Arc<Tally>, PassError> {
    let list = mesos
        .list_agents(&config.masters)
        .map_err(|e| PassError::new(exit::UNAVAILABLE, e))?;
    log::info!(leader = list.leader.as_str(); "leading master {}: {} active agents, {} inactive skipped", list.leader, list.agents.len(), list.inactive);
    let agents = match config.shard {
        Some(shard) => in_shard(list.agents, shard),
        None => list.agents,
    };
    let tally = Arc::new(Tally::default());
    tally.agents_listed(agents.len());
    let shared = Arc::new(Shared {
        mesos,
        state,
        publisher,
        scheme: Scheme::of(&list.leader),
        tally: Arc::clone(&tally),
        include_raw_metrics: config.include_raw_metrics,
        store: matches!(mode, Mode::Collect { .. }),
        deadline,
        rereads: Mutex::new(Vec::new()),
    });
    let limits = pool_limits(config);
    let finished = run_workers(&shared, agents, limits, collect_agent);
    if let Mode::DryRun { interval, .. } = mode {
        if finished {
            reread(&shared, limits, interval);
        }
    }
    let shared = Arc::try_unwrap(shared).ok();
    if let Some(shared) = shared {
        if let Err(e) = shared.publisher.finish() {
            log::warn!("closing the publisher: {e:#}");
        }
    }
    Ok(tally)
}

/// Everything a worker needs, shared by all of them.
struct Shared {
    mesos: MesosClient,
    state: Option<StateStore>,
    publisher: Box<dyn Publisher>,
    scheme: Scheme,
    tally: Arc<Tally>,
    include_raw_metrics: bool,
    /// False in a dry run: nothing is written to Redis.
    store: bool,
    deadline: Instant,
    /// Dry run only: agents whose tasks had no usable previous reading.
    rereads: Mutex<Vec<Reread>>,
}

/// A dry run's first reading of an agent's tasks that had nothing to compare with.
struct Reread {
    agent: Agent,
    readings: Vec<Reading>,
    /// When it was read; moved to when to read it again before the second round.
    read_at: Instant,
}

/// Most threads a pass adds in place of stalled fetches at once (see `pool`).
const MAX_STALLED_FETCHES: usize = 1024;
/// A fetch waiting longer than this no longer holds a worker. Healthy agents on a LAN
/// answer well within it; waiting on a socket costs no CPU, so a slow or hung agent
/// may as well wait beside the workers instead of in place of one.
const FETCH_STALL: Duration = Duration::from_millis(100);

/// The pool's size: `--workers`, and as many stalled fetches beside them as the
/// open-files limit leaves room for, up to `MAX_STALLED_FETCHES`.
fn pool_limits(config: &Config) -> Limits {
    let open_files = open_files::raise_to_hard_limit();
    let room =
        open_files::room_for_stalled_fetches(open_files, config.workers, config.redis.pool_max);
    if let (Some(limit), true) = (open_files, room < MAX_STALLED_FETCHES) {
        log::info!("the open-files limit ({limit}) leaves room for {room} stalled fetches beside the workers, not {MAX_STALLED_FETCHES}");
    }
    Limits {
        workers: config.workers,
        max_stalled: room.min(MAX_STALLED_FETCHES),
        stall: FETCH_STALL,
    }
}

/// Runs `work` on every job (one agent each) on the pool until done or the deadline;
/// true when every job was handled. Agents not started or not finished by the deadline
/// are counted as abandoned.
fn run_workers<J: Send + Sync + 'static>(
    shared: &Arc<Shared>,
    agents: Vec<J>,
    limits: Limits,
    work: fn(&Shared, &Worker, &J),
) -> bool {
    let total = agents.len();
    let report = pool::run(shared, agents, limits, shared.deadline, work);
    if report.most_threads > limits.workers {
        log::info!(
            "slow or hung agents: fetches waiting over {FETCH_STALL:?} ran beside the {} workers, {} threads at most",
            limits.workers,
            report.most_threads
        );
    }
    if report.bound_reached {
        log::warn!(
            "the pool reached its bound of {} stalled fetches; further agents waited for a thread",
            limits.max_stalled
        );
    }
    match report.ended {
        Ended::AllDone => true,
        Ended::Abandoned { left, at_deadline } => {
            if at_deadline {
                log::error!(
                    "pass deadline reached: {left} of {total} agents not done are abandoned"
                );
            } else {
                log::error!(
                    "no worker thread is left: {left} of {total} agents not done are abandoned"
                );
            }
            shared.tally.agents_abandoned(left as u64);
            false
        }
    }
}

/// Fetches one agent and turns its answer into readings, logging what it skipped.
fn read_agent(shared: &Shared, worker: &Worker, agent: &Agent) -> Option<Vec<Reading>> {
    let body = match worker.fetching(|| {
        shared
            .mesos
            .fetch_statistics(shared.scheme, agent, shared.deadline)
    }) {
        Ok(body) => body,
        Err(e) => {
            shared.tally.agent_failed(&agent.address, e.kind(), &e);
            return None;
        }
    };
    let answer = match parse_answer(&body) {
        Ok(answer) => answer,
        Err(e) => {
            shared.tally.agent_failed(&agent.address, "bad-answer", &e);
            return None;
        }
    };
    for (position, why) in &answer.skipped {
        log::warn!(agent = agent.address.as_str(), reason = why.to_string().as_str(); "agent {}: entry {position} skipped: {why}", agent.address);
    }
    shared.tally.skipped_entries(answer.skipped.len());
    let mut seen = HashSet::with_capacity(answer.readings.len());
    let repeats: Vec<bool> = answer
        .readings
        .iter()
        .map(|r| !seen.insert(r.executor_id.as_str()))
        .collect();
    let mut readings = Vec::with_capacity(answer.readings.len());
    for (reading, repeat) in answer.readings.into_iter().zip(repeats) {
        if repeat {
            log::warn!(agent = agent.address.as_str(); "agent {}: executor {} listed twice; the repeat is skipped", agent.address, reading.executor_id);
            shared.tally.skipped_entries(1);
            continue;
        }
        if !reading.malformed_fields.is_empty() {
            log::warn!(agent = agent.address.as_str(); "agent {}: executor {}: not a usable number, left out: {}", agent.address, reading.executor_id, reading.malformed_fields.join(", "));
            shared
                .tally
                .malformed_fields(reading.malformed_fields.len());
        }
        readings.push(reading);
    }
    Some(readings)
}

/// Loads the previous readings of these tasks; None for tasks without a usable one.
fn previous_readings(
    shared: &Shared,
    agent: &Agent,
    readings: &[Reading],
) -> Result<Vec<Option<Reading>>, crate::state::StateError> {
    let Some(state) = &shared.state else {
        return Ok(vec![None; readings.len()]);
    };
    let ids: Vec<&str> = readings.iter().map(|r| r.executor_id.as_str()).collect();
    let stored = state.load(&ids)?;
    Ok(stored
        .into_iter()
        .zip(readings)
        .map(|(value, now)| value.and_then(|bytes| stored_reading(shared, agent, now, bytes)))
        .collect())
}

/// Reads a stored entry back; a broken one is reported and then treated as absent (the
/// new reading overwrites it).
fn stored_reading(
    shared: &Shared,
    agent: &Agent,
    now: &Reading,
    bytes: Vec<u8>,
) -> Option<Reading> {
    let parsed = String::from_utf8(bytes)
        .ok()
        .and_then(|text| parse_entry(text.into_boxed_str()).ok())
        .filter(|stored| stored.executor_id == now.executor_id);
    if parsed.is_none() {
        log::warn!(agent = agent.address.as_str(); "agent {}: the stored reading of {} is unreadable; it is replaced", agent.address, now.executor_id);
        shared.tally.bad_state();
    }
    parsed
}

/// The whole path of one agent in a collecting pass or a dry run's first round.
fn collect_agent(shared: &Shared, worker: &Worker, agent: &Agent) {
    let Some(readings) = read_agent(shared, worker, agent) else {
        return;
    };
    let previous = match previous_readings(shared, agent, &readings) {
        Ok(previous) => previous,
        Err(e) => {
            shared.tally.agent_failed(&agent.address, "redis", &e);
            return;
        }
    };
    shared.tally.agent_answered(readings.len());
    let mut to_store: Vec<&Reading> = Vec::new();
    let mut outgoing: Vec<Outgoing> = Vec::new();
    let mut awaiting: Vec<&Reading> = Vec::new();
    let mut unusable: Vec<&Reading> = Vec::new();
    for (now, before) in readings.iter().zip(&previous) {
        let outcome = compute(
            before.as_ref(),
            now,
            &agent.address,
            shared.include_raw_metrics,
        );
        if outcome.stores_at_once() {
            to_store.push(now);
        }
        match outcome {
            Outcome::Publish(doc) => match doc.to_json() {
                Ok(body) => {
                    outgoing.push(Outgoing {
                        message_id: doc.message_id(),
                        body,
                    });
                    awaiting.push(now);
                }
                Err(e) => log::error!(
                    "agent {}: cannot serialize the document of {}: {e}",
                    agent.address,
                    now.executor_id
                ),
            },
            Outcome::FirstSighting => {
                shared.tally.first_sighting();
                unusable.push(now);
            }
            Outcome::Reset => {
                log::info!(agent = agent.address.as_str(); "agent {}: CPU counters of {} went down; new baseline", agent.address, now.executor_id);
                shared.tally.reset();
                unusable.push(now);
            }
            Outcome::NotNewer => {
                shared.tally.not_newer();
                unusable.push(now);
            }
        }
    }
    let attempted = outgoing.len();
    let results = shared.publisher.publish_batch(outgoing);
    let mut delivered = 0;
    for (now, result) in awaiting.iter().zip(results) {
        match result {
            Ok(()) => {
                delivered += 1;
                to_store.push(now);
            }
            Err(e) => shared.tally.delivery_failed(e.kind(), &e),
        }
    }
    shared.tally.published(delivered);
    if delivered < attempted {
        log::warn!(agent = agent.address.as_str(); "agent {}: {} of {} documents not delivered; their readings are kept for the next pass", agent.address, attempted - delivered, attempted);
    }
    if shared.store {
        store(shared, agent, &to_store);
    } else if !unusable.is_empty() {
        remember_for_reread(shared, agent, unusable);
    }
}

fn store(shared: &Shared, agent: &Agent, readings: &[&Reading]) {
    let Some(state) = &shared.state else {
        return;
    };
    let pairs = readings.iter().map(|r| (r.executor_id.as_str(), &*r.entry));
    if let Err(e) = state.store(pairs) {
        log::error!(agent = agent.address.as_str(); "agent {}: {} readings not stored: {e}", agent.address, readings.len());
        shared.tally.unstored(readings.len());
    }
}

fn remember_for_reread(shared: &Shared, agent: &Agent, readings: Vec<&Reading>) {
    let reread = Reread {
        agent: agent.clone(),
        readings: readings.into_iter().cloned().collect(),
        read_at: Instant::now(),
    };
    shared
        .rereads
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(reread);
}

/// Dry run: reads again, `interval` after their first reading, the agents whose tasks
/// had no usable previous reading, and prints documents against that first reading.
fn reread(shared: &Arc<Shared>, limits: Limits, interval: Duration) {
    let mut rereads =
        std::mem::take(&mut *shared.rereads.lock().unwrap_or_else(|p| p.into_inner()));
    if rereads.is_empty() {
        return;
    }
    log::info!("dry run: reading {} agents again {interval:?} after their first reading, for tasks without a previous reading", rereads.len());
    for reread in &mut rereads {
        reread.read_at += interval;
    }
    run_workers(shared, rereads, limits, reread_agent);
}

/// Reads an agent a second time, once its interval is over, and prints its documents.
fn reread_agent(shared: &Shared, worker: &Worker, earlier: &Reread) {
    std::thread::sleep(earlier.read_at.saturating_duration_since(Instant::now()));
    let agent = &earlier.agent;
    let Some(readings) = read_agent(shared, worker, agent) else {
        return;
    };
    let mut outgoing = Vec::new();
    for before in &earlier.readings {
        let Some(now) = readings
            .iter()
            .find(|r| r.executor_id == before.executor_id)
        else {
            continue;
        };
        if let Outcome::Publish(doc) = compute(
            Some(before),
            now,
            &agent.address,
            shared.include_raw_metrics,
        ) {
            if let Ok(body) = doc.to_json() {
                outgoing.push(Outgoing {
                    message_id: doc.message_id(),
                    body,
                });
            }
        }
    }
    let delivered = shared
        .publisher
        .publish_batch(outgoing)
        .iter()
        .filter(|r| r.is_ok())
        .count();
    shared.tally.published(delivered);
}

/// The agents of one shard: those whose id hashes (FNV-1a, stable across hosts and
/// versions) to it.
pub(crate) fn in_shard(agents: Vec<Agent>, shard: Shard) -> Vec<Agent> {
    agents
        .into_iter()
        .filter(|a| fnv1a(a.id.as_bytes()) % u64::from(shard.count) == u64::from(shard.index - 1))
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The pass lock, taken in Redis before anything else and released by its owner only.
struct PassLock {
    key: String,
    token: String,
    /// A handle on the pass's own Redis pool, to release the lock over its connections.
    state: StateStore,
}

impl PassLock {
    /// Takes the lock for the length of the pass, so a crashed pass's lock expires by its
    /// deadline; another pass holding it is exit 75, Redis unreachable exit 69.
    fn take(
        state: &StateStore,
        shard: Option<Shard>,
        ttl: Duration,
    ) -> Result<PassLock, PassError> {
        let key = state.lock_key(shard);
        let token = lock_token();
        match state.try_lock(&key, &token, ttl) {
            Ok(true) => Ok(PassLock {
                key,
                token,
                state: state.clone(),
            }),
            Ok(false) => Err(PassError::new(
                exit::LOCKED,
                format!("another pass holds the lock {key}; this one exits without collecting"),
            )),
            Err(e) => Err(PassError::new(exit::UNAVAILABLE, e)),
        }
    }

    fn release(self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_agents_exactly_once() {
        let agents: Vec<Agent> = (0..1000)
            .map(|i| Agent {
                id: format!("90ba2028-fed0-4f19-a2b1-cb35baf9b2cd-S{i}"),
                address: format!("10.0.{}.{}:5051", i / 250, i % 250),
            })
            .collect();
        let count = 4;
        let mut seen = Vec::new();
        for index in 1..=count {
            let part = in_shard(agents.clone(), Shard { index, count });
            assert!(
                part.len() > 150,
                "shard {index} is too small: {}",
                part.len()
            );
            seen.extend(part);
        }
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        let mut all = agents;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(seen, all);
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}

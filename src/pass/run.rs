//! One pass, start to end: broker, lock, masters, the pool's limits, then the workers and
//! the summary ([`run`]); the agents a pass reads (`collect`) and keeps alive.

use crate::broker::printer::{OutputFormat, Printer};
use crate::broker::{self, AmqpPublisher, Publisher};
use crate::config::Config;
use crate::mesos::{self, Agent, MesosClient, Scheme, Unusable};
use crate::pass::agent::{
    collect_agent, entry_key, report_failed_stores, run_workers, unix_now, Round,
};
use crate::pass::dry_run::{self, Rereads};
use crate::pass::error::PassError;
use crate::pass::open_files;
use crate::pass::shared::{RememberUnusable, Shared};
use crate::pass::stop::{Stop, StopReason};
use crate::pass::tally::{Summary, Tally};
use crate::pass::turns::{in_turn_order, next_turn};
use crate::pass::workers::Limits;
use crate::state::layout::EntryKey;
use crate::state::{PassLock, StateStore};
use std::sync::Arc;
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

/// What `main` set up for the whole process before the pass (signal handlers, the
/// open-files limit, the allocator): the pass itself changes no process-wide setting.
pub(crate) struct Process {
    /// Requested by SIGTERM or SIGINT, or by the pass when the broker halts.
    pub(crate) stop: Arc<Stop>,
    /// The open-files soft limit in force (None: unlimited).
    pub(crate) open_files: Option<u64>,
}

/// Runs one pass and returns its summary (whose exit code tells how it went).
pub(crate) fn run(config: &Config, mode: Mode, process: Process) -> Result<Summary, PassError> {
    let started = Instant::now();
    let deadline = started + config.deadline;
    let mesos = MesosClient::new(&config.http).map_err(PassError::MesosClient)?;
    let state = StateStore::new(&config.redis).map_err(PassError::RedisSettings)?;
    let (state, lock, publisher): (Option<StateStore>, Option<PassLock>, Box<dyn Publisher>) =
        match mode {
            Mode::Collect { declare_queue } => {
                let broker = config
                    .require_broker()
                    .map_err(PassError::NoBrokerConfigured)?;
                // The broker first: when it is down the pass reads no agent and takes no
                // lock (it only renews the stored state's TTL), and a pass that finds the
                // lock taken just closes its connection.
                // An unreadable CA file is a configuration error, not a broker that is down.
                let tls = broker::tls_config(broker).map_err(PassError::BrokerTls)?;
                let publisher = match AmqpPublisher::connect(broker, tls.as_ref(), declare_queue) {
                    Ok(publisher) => publisher,
                    Err(e) => {
                        // No document can go out, so no reading can advance: keep the
                        // stored ones alive, or an outage past the TTL would lose itself.
                        keep_listed_alive(config, &mesos, &state);
                        return Err(PassError::BrokerDown(e));
                    }
                };
                let lock = PassLock::take(&state, config.shard, config.deadline)?;
                process.stop.before_exit(lock.releaser());
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
    let outcome = collect(config, mode, mesos, state, publisher, deadline, process);
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
    process: Process,
) -> Result<Arc<Tally>, PassError> {
    let Process { stop, open_files } = process;
    let tally = Arc::new(Tally::default());
    if let Some(reason) = stop.reason() {
        // Stopped while connecting: no agent is listed, none is started.
        log::warn!("{reason}: the pass ends before listing agents");
        tally.stopped(reason);
        return Ok(tally);
    }
    let list = mesos
        .list_agents(&config.masters)
        .map_err(PassError::NoMaster)?;
    log::info!(leader = list.leader.as_str(); "leading master {}: {} active agents, {} inactive skipped, {} unusable", list.leader, list.agents.len(), list.inactive, list.unusable.len());
    let agents = agents_once_each(config, &list.leader, list.agents);
    let agents = Arc::new(in_turn_order(agents, first_turn(state.as_ref(), config)));
    tally.agents_listed(agents.len());
    report_unusable(config, &list.leader, &list.unusable, &tally);
    let limits = pool_limits(config, open_files);
    let legacy_reads = state.as_ref().is_some_and(|state| {
        let mark = matches!(mode, Mode::Collect { .. });
        state.reads_legacy(unix_now(), mark).unwrap_or_else(|e| {
            log::warn!("{e}; the previous release's readings are read too");
            true
        })
    });
    // The dry run's second reading: the pass owns what it keeps and hands the agent path
    // a way to keep it.
    let rereads = Arc::new(Rereads::default());
    let remember_unusable: Option<RememberUnusable> = match mode {
        Mode::DryRun { .. } => {
            let rereads = Arc::clone(&rereads);
            Some(Box::new(move |agent, readings| {
                rereads.remember(agent, readings)
            }))
        }
        Mode::Collect { .. } => None,
    };
    let shared = Arc::new(Shared {
        mesos,
        state,
        publisher,
        scheme: Scheme::of(&list.leader),
        tally: Arc::clone(&tally),
        include_raw_metrics: config.include_raw_metrics,
        publish_incomplete: config.publish_incomplete,
        routing_key: config.broker.as_ref().map(|b| b.routing_key.clone()),
        store: matches!(mode, Mode::Collect { .. }),
        state_ttl: config.redis.state_ttl,
        legacy_reads,
        deadline,
        stop,
        remember_unusable,
    });
    let ran = run_workers(
        &shared,
        Arc::clone(&agents),
        limits,
        Round::First,
        collect_agent,
    );
    report_failed_stores(&shared);
    if let (Some(state), true, Some(next)) =
        (&shared.state, shared.store, next_turn(&agents, ran.started))
    {
        if let Err(e) = state.set_next_turn(config.shard, next) {
            log::warn!("{e}: the next pass starts its agents where this one did");
        }
    }
    if let (Some(StopReason::BrokerHalted), Some(state), true) =
        (shared.stop.reason(), &shared.state, shared.store)
    {
        // The agents a blocked broker kept this pass from starting store nothing.
        keep_alive(state, &agents);
    }
    if let Mode::DryRun { interval, .. } = mode {
        if ran.all_done {
            dry_run::read_again(&shared, &rereads, limits, interval);
        }
    }
    // Whatever the pool saw: a stop may come after the last agent, or be given by the
    // last agent (a halted broker), and a signal after a halt still names the signal.
    if let Some(reason) = shared.stop.reason() {
        tally.stopped(reason);
    }
    let shared = Arc::try_unwrap(shared).ok();
    if let Some(shared) = shared {
        if let Err(e) = shared.publisher.finish() {
            log::warn!("closing the publisher: {e:#}");
        }
    }
    Ok(tally)
}

/// Where this pass starts in its agents' turn order: where the last pass cut short left
/// off, else at the start; a Redis that cannot tell changes only the order.
fn first_turn(state: Option<&StateStore>, config: &Config) -> Option<u64> {
    let state = state?;
    state.next_turn(config.shard).unwrap_or_else(|e| {
        log::debug!("{e}: the agents start at the first in turn order");
        None
    })
}

/// This shard's agents of the list, each once: a repeated entry (the same id at the same
/// address) is logged once and dropped; the same id at another address is kept.
fn agents_once_each(config: &Config, leader: &str, listed: Vec<Agent>) -> Vec<Agent> {
    let (agents, repeated) = mesos::without_repeats(mesos::of_shard(listed, config.shard));
    if let Some(first) = repeated.first {
        log::warn!(master = leader; "master {leader}: {} entries repeat an agent listed before at the same address (first: {} at {}); each agent is read once", repeated.count, first.id, first.address);
    }
    agents
}

/// A collecting pass that cannot reach the broker: renews the TTL of the stored state of
/// this shard's agents (docs/state.md), so that a broker outage of any length loses no
/// interval. Anything that fails here is a warning; the pass exits 69 all the same.
fn keep_listed_alive(config: &Config, mesos: &MesosClient, state: &StateStore) {
    match mesos.list_agents(&config.masters) {
        Ok(list) => keep_alive(state, &agents_once_each(config, &list.leader, list.agents)),
        Err(e) => {
            log::warn!("the broker is unreachable and {e}: the stored readings are not kept alive")
        }
    }
}

/// Renews the TTL of the stored state of `agents`, logging how many had one.
fn keep_alive(state: &StateStore, agents: &[Agent]) {
    let entries: Vec<EntryKey> = agents.iter().map(entry_key).collect();
    match state.keep_alive(&entries) {
        Ok(kept) => log::info!(
            "no document could be delivered: the stored readings of {kept} of {} agents are kept for another {}s",
            agents.len(),
            state.state_ttl().as_secs()
        ),
        Err(e) => log::warn!("{e}: the stored readings are not kept alive"),
    }
}

/// Logs the first few of the agent list's entries of this pass's shard that name no
/// agent that can be reached, then how many there are in all, and counts them. (An entry
/// without an id belongs to the shard of the empty id, so exactly one shard reports it.)
fn report_unusable(config: &Config, leader: &str, unusable: &Unusable, tally: &Tally) {
    let (mine, named) = unusable.of_shard(config.shard);
    for entry in &named {
        log::warn!(master = leader; "master {leader}: {entry}");
    }
    if mine > named.len() {
        log::warn!(master = leader; "master {leader}: ... and {} more agent list entries skipped ({mine} in all)", mine - named.len());
    }
    tally.agents_unusable(mine);
}

/// Most threads a pass adds in place of stalled fetches at once (see `pool`).
const MAX_STALLED_FETCHES: usize = 1024;
/// A fetch waiting longer than this no longer holds a worker. Healthy agents on a LAN
/// answer well within it; waiting on a socket costs no CPU, so a slow or hung agent
/// may as well wait beside the workers instead of in place of one.
const FETCH_STALL: Duration = Duration::from_millis(100);
/// How long the agents in flight may still take once a stop is requested: enough for a
/// batch's confirms on a healthy broker, short beside cron's and systemd's patience.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The pool's size: `--workers`, and as many stalled fetches beside them as the
/// open-files limit (as `main` left it) leaves room for, up to `MAX_STALLED_FETCHES`.
fn pool_limits(config: &Config, open_files: Option<u64>) -> Limits {
    let room =
        open_files::room_for_stalled_fetches(open_files, config.workers, config.redis.pool_max);
    if let (Some(limit), true) = (open_files, room < MAX_STALLED_FETCHES) {
        log::info!("the open-files limit ({limit}) leaves room for {room} stalled fetches beside the workers, not {MAX_STALLED_FETCHES}");
    }
    Limits {
        workers: config.workers,
        max_stalled: room.min(MAX_STALLED_FETCHES),
        stall: FETCH_STALL,
        grace: STOP_GRACE,
    }
}

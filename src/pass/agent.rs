//! One agent's path through a pass: fetch its statistics, load the previous readings of
//! its tasks, compute their documents, publish them and store the new readings. Every
//! worker thread runs it for one agent at a time, with what all of them share
//! ([`Shared`]); the dry run's second reading reuses its first steps.

use crate::broker::message_id::fit_message_id;
use crate::broker::{Outgoing, Publisher};
use crate::mesos::budget::Reservation;
use crate::mesos::{Agent, MesosClient, Scheme};
use crate::pass::dry_run::Rereads;
use crate::pass::stop::{Stop, StopReason};
use crate::pass::tally::Tally;
use crate::pass::workers::{self, Ended, Limits, Worker};
use crate::state::StateStore;
use crate::stats::document::{compute, Document, Outcome};
use crate::stats::reading::{parse_answer, parse_entry, Reading};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
/// Whether a computed document goes out. One without `cpu_pct` or `mem_pct` is counted
/// as incomplete and held back, unless `--publish-incomplete`; a dry run still prints it,
/// marked, so the operator sees what a pass would hold back.
pub(crate) fn goes_out(shared: &Shared, doc: &mut Document) -> bool {
    if doc.is_complete() || shared.publish_incomplete {
        return true;
    }
    shared.tally.incomplete();
    doc.incomplete = !shared.store;
    doc.incomplete
}

/// Which reading of its agents a run of the workers is. Only the first counts agents in
/// the summary: the dry run's second reading reads again agents that were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    First,
    /// The dry run's second reading: failures are logged, not counted again.
    Again,
}

/// Everything a worker needs, shared by all of them.
pub(crate) struct Shared {
    pub(crate) mesos: MesosClient,
    pub(crate) state: Option<StateStore>,
    pub(crate) publisher: Box<dyn Publisher>,
    pub(crate) scheme: Scheme,
    pub(crate) tally: Arc<Tally>,
    pub(crate) include_raw_metrics: bool,
    pub(crate) publish_incomplete: bool,
    /// False in a dry run: nothing is written to Redis.
    pub(crate) store: bool,
    pub(crate) deadline: Instant,
    /// Once requested, no further agent is started.
    pub(crate) stop: Arc<Stop>,
    /// Dry run only: agents whose tasks had no usable previous reading.
    pub(crate) rereads: Rereads,
}

/// Runs `work` on every job (one agent each) on the pool until done, the deadline, or a
/// stop; true when every job was handled. Agents not started or not finished by the
/// deadline are counted as abandoned; after a stop, those never started as not started
/// and those not finished within the grace as abandoned.
pub(crate) fn run_workers<J: Send + Sync + 'static>(
    shared: &Arc<Shared>,
    agents: Vec<J>,
    limits: Limits,
    round: Round,
    work: fn(&Shared, &Worker, &J),
) -> bool {
    let total = agents.len();
    let report = workers::run(shared, agents, limits, shared.deadline, &shared.stop, work);
    if report.most_threads > limits.workers {
        log::info!(
            "slow or hung agents: fetches waiting over {:?} ran beside the {} workers, {} threads at most",
            limits.stall,
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
            if round == Round::First {
                shared.tally.agents_abandoned(left as u64);
            }
            false
        }
        Ended::Stopped {
            reason,
            not_started,
            left,
        } => {
            log::warn!(
                "{reason}: {not_started} of {total} agents not started; {left} in flight not done within {:?} are abandoned",
                limits.grace
            );
            if round == Round::First {
                shared.tally.agents_not_started(not_started as u64);
                shared.tally.agents_abandoned(left as u64);
            }
            false
        }
    }
}

/// Fetches one agent and turns its answer into readings, logging what it skipped. The
/// readings hold their share of the body budget until the reservation is dropped.
pub(crate) fn read_agent(
    shared: &Shared,
    worker: &Worker,
    agent: &Agent,
    round: Round,
) -> Option<(Vec<Reading>, Reservation)> {
    let failed = |kind: &'static str, why: &dyn std::fmt::Display| match round {
        Round::First => shared.tally.agent_failed(&agent.address, kind, why),
        Round::Again => {
            log::warn!(agent = agent.address.as_str(), reason = kind; "agent {} failed on its second reading: {why}", agent.address)
        }
    };
    let mesos = &shared.mesos;
    let fetched = worker
        .fetching(|| mesos.request_statistics(shared.scheme, agent, shared.deadline))
        .and_then(|answer| {
            // Waiting for the body budget is no stalled fetch: the worker waits in its own
            // place, so a pass short of budget starts no threads and opens no connections.
            let reservation = mesos.reserve(&answer)?;
            worker.fetching(|| mesos.read_statistics(answer, reservation))
        });
    let body = match fetched {
        Ok(body) => body,
        Err(e) => {
            failed(e.kind(), &e);
            return None;
        }
    };
    let answer = match parse_answer(&body) {
        Ok(answer) => answer,
        Err(e) => {
            failed("bad-answer", &e);
            return None;
        }
    };
    let mut held = body.into_reservation();
    held.shrink_to(
        answer
            .readings
            .iter()
            .map(|r| (r.entry.len() + r.executor_id.len()) as u64)
            .sum(),
    );
    for (position, why) in &answer.first_skipped {
        log::warn!(agent = agent.address.as_str(), reason = why.to_string().as_str(); "agent {}: entry {position} skipped: {why}", agent.address);
    }
    let unnamed = answer.skipped - answer.first_skipped.len();
    if unnamed > 0 {
        log::warn!(agent = agent.address.as_str(); "agent {}: ... and {unnamed} more entries skipped ({} in all)", agent.address, answer.skipped);
    }
    // The second reading of a dry run finds what the first one counted.
    let counts = round == Round::First;
    if counts {
        shared.tally.skipped_entries(answer.skipped);
    }
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
            if counts {
                shared.tally.skipped_entries(1);
            }
            continue;
        }
        if !reading.malformed_fields.is_empty() && counts {
            log::warn!(agent = agent.address.as_str(); "agent {}: executor {}: not a usable number, left out: {}", agent.address, reading.executor_id, reading.malformed_fields.join(", "));
            shared
                .tally
                .malformed_fields(reading.malformed_fields.len());
        }
        readings.push(reading);
    }
    Some((readings, held))
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

/// The whole path of one agent in a collecting pass or a dry run's first round. An agent
/// counts as answered once its path is done, so that one abandoned at the deadline
/// mid-path is counted once: listed = answered + failed + abandoned + not started.
pub(crate) fn collect_agent(shared: &Shared, worker: &Worker, agent: &Agent) {
    if shared.publisher.halted().is_some() {
        // Its documents could not be delivered: better not to fetch the agent at all,
        // nor any agent after it.
        shared.stop.request(StopReason::BrokerHalted);
        shared.tally.agents_not_started(1);
        return;
    }
    let Some((readings, _held)) = read_agent(shared, worker, agent, Round::First) else {
        return;
    };
    let previous = match previous_readings(shared, agent, &readings) {
        Ok(previous) => previous,
        Err(e) => {
            shared.tally.agent_failed(&agent.address, "redis", &e);
            return;
        }
    };
    let mut to_store: Vec<&Reading> = Vec::new();
    let mut outgoing: Vec<Outgoing> = Vec::new();
    let mut awaiting: Vec<&Reading> = Vec::new();
    let mut unusable: Vec<&Reading> = Vec::new();
    for (now, before) in readings.iter().zip(&previous) {
        let mut outcome = compute(
            before.as_ref(),
            now,
            &agent.address,
            shared.include_raw_metrics,
        );
        if let Outcome::Publish(doc) = &mut outcome {
            if !goes_out(shared, doc) {
                // Stored at once: the next pass computes from it once limits are back.
                to_store.push(now);
                continue;
            }
        }
        if outcome.stores_at_once() {
            to_store.push(now);
        }
        match outcome {
            Outcome::Publish(doc) => match doc.to_json() {
                Ok(body) => {
                    outgoing.push(Outgoing {
                        message_id: fit_message_id(doc.message_id()),
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
        shared.rereads.remember(agent, unusable);
    }
    shared.tally.agent_answered(readings.len());
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

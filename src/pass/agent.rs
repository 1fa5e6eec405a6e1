//! One agent's path through a pass: fetch its statistics, load the previous readings of
//! its tasks, compute their documents, publish them and store the new readings. Every
//! worker thread runs it for one agent at a time, with what all of them share
//! ([`Shared`]); the dry run's second reading reuses its first steps.

use crate::mesos::budget::Reservation;
use crate::mesos::Agent;
use crate::pass::outbox::{self, AgentOutbox, Previous};
use crate::pass::reason::Reason;
use crate::pass::shared::Shared;
use crate::pass::stop::StopReason;
use crate::pass::workers::{self, Ended, Limits, Worker};
use crate::state::layout::{EntryKey, LoadRequest};
use crate::state::value_codec::{self, AgentState};
use crate::state::{StateError, StoreOwner};
use crate::stats::reading::{parse_answer, parse_entry, Entries, Reading};
use std::collections::HashSet;
use std::sync::Arc;

/// Which reading of its agents a run of the workers is. Only the first counts agents in
/// the summary: the dry run's second reading reads again agents that were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    First,
    /// The dry run's second reading: failures are logged, not counted again.
    Again,
}

/// How a run of the workers went.
pub(crate) struct WorkersRan {
    /// Every job was handled.
    pub(crate) all_done: bool,
    /// Jobs started, in the order given: the rest never were.
    pub(crate) started: usize,
}

/// Runs `work` on every job (one agent each) on the pool until done, the deadline, or a
/// stop. Agents not started or not finished by the deadline are counted as abandoned;
/// after a stop, those never started as not started and those not finished within the
/// grace as abandoned.
pub(crate) fn run_workers<J: Send + Sync + 'static>(
    shared: &Arc<Shared>,
    agents: Arc<Vec<J>>,
    limits: Limits,
    round: Round,
    work: fn(&Shared, &Worker, &J),
) -> WorkersRan {
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
    let all_done = match report.ended {
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
    };
    WorkersRan {
        all_done,
        started: report.started,
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
    let failed = |reason: Reason, why: &dyn std::fmt::Display| match round {
        Round::First => shared.tally.agent_failed(&agent.address, reason, why),
        Round::Again => {
            if shared.tally.may_note_agent() {
                log::warn!(agent = agent.address.as_str(), reason = reason.as_str(); "agent {} failed on its second reading: {why}", agent.address);
            }
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
            failed(Reason::from(&e), &e);
            return None;
        }
    };
    let entries = if shared.include_raw_metrics {
        Entries::Kept
    } else {
        Entries::Dropped
    };
    let answer = match parse_answer(&body, entries) {
        Ok(answer) => answer,
        Err(e) => {
            failed(Reason::BadAnswer, &e);
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
        if !shared.tally.may_note_agent() {
            break;
        }
        log::warn!(agent = agent.address.as_str(), reason = why.to_string().as_str(); "agent {}: entry {position} skipped: {why}", agent.address);
    }
    let unnamed = answer.skipped - answer.first_skipped.len();
    if unnamed > 0 && shared.tally.may_note_agent() {
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
            if shared.tally.may_note_agent() {
                log::warn!(agent = agent.address.as_str(); "agent {}: executor {} listed twice; the repeat is skipped", agent.address, reading.executor_id);
            }
            if counts {
                shared.tally.skipped_entries(1);
            }
            continue;
        }
        if !reading.malformed_fields.is_empty() && counts {
            if shared.tally.may_note_agent() {
                log::warn!(agent = agent.address.as_str(); "agent {}: executor {}: not a usable number, left out: {}", agent.address, reading.executor_id, reading.malformed_fields.join(", "));
            }
            shared
                .tally
                .malformed_fields(reading.malformed_fields.len());
        }
        readings.push(reading);
    }
    Some((readings, held))
}

/// The key of an entry of the master's list in Redis: its agent id at its address.
pub(crate) fn entry_key(agent: &Agent) -> EntryKey<'_> {
    EntryKey {
        agent_id: &agent.id,
        address: &agent.address,
    }
}

/// Loads what Redis holds for this agent in one round trip, writing this pass's readings
/// ahead (a collecting pass only) in the same one.
fn previous_state(
    shared: &Shared,
    agent: &Agent,
    readings: &[Reading],
    now: u64,
) -> Result<Previous, crate::state::StateError> {
    let Some(state) = &shared.state else {
        return Ok(Previous::default());
    };
    let write_ahead = shared
        .store
        .then(|| outbox::write_ahead(&agent.address, readings, now, shared.include_raw_metrics));
    let legacy_ids: Vec<&str> = if shared.legacy_reads {
        readings.iter().map(|r| r.executor_id.as_str()).collect()
    } else {
        Vec::new()
    };
    let request = LoadRequest {
        write_ahead: write_ahead.as_deref(),
        legacy_ids: &legacy_ids,
        by_id: shared.legacy_reads,
    };
    let loaded = state.load_agent(entry_key(agent), &request)?;
    let unreadable = |what: &str| {
        if shared.tally.may_note_agent() {
            log::warn!(agent = agent.address.as_str(); "agent {}: {what} is unreadable; it is replaced", agent.address);
        }
        shared.tally.bad_state();
    };
    let decode = |bytes: Vec<u8>, what: &str| {
        let decoded = value_codec::decode(&bytes);
        if decoded.is_none() {
            unreadable(what);
        }
        decoded
    };
    // The last release kept one value per agent id, written by whichever entry of that
    // id stored last: it is this entry's only if it names this entry's address.
    let this_address =
        |state: Option<AgentState>| state.filter(|state| state.host == agent.address);
    let (by_id_value, by_id_unfinished) = loaded.by_id;
    let state = loaded
        .agent
        .and_then(|bytes| decode(bytes, "its stored state"))
        .or_else(|| this_address(by_id_value.and_then(|b| value_codec::decode(&b))));
    let unfinished = loaded
        .unfinished
        .and_then(|bytes| decode(bytes, "the write-ahead of an unfinished pass"))
        .or_else(|| this_address(by_id_unfinished.and_then(|b| value_codec::decode(&b))));
    Ok(Previous {
        state: state.unwrap_or_default(),
        unfinished,
        legacy: loaded
            .legacy
            .into_iter()
            .zip(readings)
            .map(|(value, now)| value.and_then(|bytes| legacy_reading(now, bytes, &unreadable)))
            .collect(),
    })
}

/// Reads back a reading the previous release stored under `<prefix><executor id>`; a
/// broken one is reported and then treated as absent.
fn legacy_reading(now: &Reading, bytes: Vec<u8>, unreadable: &dyn Fn(&str)) -> Option<Reading> {
    let parsed = String::from_utf8(bytes)
        .ok()
        .and_then(|text| parse_entry(text.into_boxed_str()).ok())
        .filter(|stored| stored.executor_id == now.executor_id);
    if parsed.is_none() {
        unreadable(&format!("the stored reading of {}", now.executor_id));
    }
    parsed
}

/// Seconds since the epoch, as the stored entries keep it.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    let now = unix_now();
    let previous = match previous_state(shared, agent, &readings, now) {
        Ok(previous) => previous,
        Err(e) => {
            shared.tally.agent_failed(&agent.address, Reason::Redis, &e);
            return;
        }
    };
    let mut report = AgentOutbox::new(shared, agent, &readings, &previous, now);
    let outgoing = std::mem::take(&mut report.outgoing);
    let attempted = outgoing.len();
    let results = shared.publisher.publish_batch(outgoing);
    let mut delivered = 0;
    for result in &results {
        match result {
            Ok(()) => delivered += 1,
            Err(e) => shared.tally.delivery_failed(Reason::from(e), e),
        }
    }
    shared.tally.published(delivered);
    if delivered < attempted && shared.tally.may_note_agent() {
        log::warn!(agent = agent.address.as_str(); "agent {}: {} of {} documents not delivered; they are kept to be sent again by the next pass", agent.address, attempted - delivered, attempted);
    }
    if shared.store {
        let value = report.settle(&results, &agent.address, now, shared.include_raw_metrics);
        store(shared, agent, value.as_deref(), readings.len());
    } else if let (Some(remember), false) = (&shared.remember_unusable, report.unusable.is_empty())
    {
        remember(agent, report.unusable.clone());
    }
    shared.tally.agent_answered(readings.len());
}

/// Hands a Redis connection the agent's new value and the delete of its write-ahead, to
/// send with its next command; a failure their replies tell is reported once the
/// workers are done ([`report_failed_stores`]).
fn store(shared: &Shared, agent: &Agent, value: Option<&[u8]>, tasks: usize) {
    let Some(state) = &shared.state else {
        return;
    };
    let owner = StoreOwner {
        agent: agent.address.clone(),
        tasks,
    };
    if let Err(e) = state.store_agent(entry_key(agent), value, owner) {
        unstored(shared, &agent.address, tasks, &e);
    }
}

fn unstored(shared: &Shared, address: &str, tasks: usize, e: &StateError) {
    if shared.tally.may_note_agent() {
        log::error!(agent = address; "agent {address}: {tasks} readings not stored: {e}");
    }
    shared.tally.unstored(tasks);
}

/// Sends the stores connections still hold, reads the replies not read yet and reports
/// the stores that failed: called once the workers are done, before the summary.
pub(crate) fn report_failed_stores(shared: &Shared) {
    let Some(state) = &shared.state else {
        return;
    };
    for failed in state.settle_stores() {
        unstored(
            shared,
            &failed.owner.agent,
            failed.owner.tasks,
            &failed.error,
        );
    }
}

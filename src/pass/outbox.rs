//! The outbox (docs/state.md): what one agent's tasks report this pass, given what
//! Redis held for them, and what Redis holds for them afterwards.
//!
//! A task's stored entry is a base reading and the readings of its documents not yet
//! confirmed (pending). Each pass walks, per task, the chain base → pending… → the reading
//! a killed pass left in its write-ahead → this pass's reading, computing each interval's
//! document with the one pure `compute`: a pending document comes out identical (same
//! body, same message id), so it is re-sent first, then the new interval's document,
//! which starts where the last pending one ended. Once the broker has answered, the base
//! advances over the confirmed prefix of the chain; the rest stays pending. A consumer
//! that drops repeated message ids thus sees each interval once; one that does not, at
//! least once, and never a hole.
//!
//! Bounds: a task carries at most [`MAX_PENDING`] pending readings (one more when a
//! killed pass's write-ahead adds its own). Past that, this pass's reading is left out
//! (counted as `outbox_full`): the task stays at the end of its last pending interval, and
//! its next delivered document covers the longer interval, never leaving a hole. An entry
//! is written again (its stored-at renewed) only when its base advanced or it took a new
//! reading, so one whose documents keep failing expires with the TTL like any other.

use crate::broker::{Batch, DeliveryError};
use crate::mesos::Agent;
use crate::pass::shared::{goes_out, push_document, Shared};
use crate::state::value_codec::{AgentState, AgentValueEncoder, StoredTask};
use crate::stats::document::{compute, Outcome};
use crate::stats::reading::Reading;
use std::collections::HashMap;
use std::ops::Range;

/// Most pending readings a task carries: ten one-minute passes, the default TTL.
pub(crate) const MAX_PENDING: usize = 10;

/// What Redis held for one agent.
#[derive(Default)]
pub(crate) struct Previous {
    /// The agent's entries in this layout.
    pub(crate) state: AgentState,
    /// The write-ahead of a pass that never reached its store.
    pub(crate) unfinished: Option<AgentState>,
    /// The previous release's reading of each of this pass's readings, in their order
    /// (empty once those have expired).
    pub(crate) legacy: Vec<Option<Reading>>,
}

/// One task's chain this pass.
struct Chain<'a> {
    base: Option<&'a Reading>,
    stored_at: u64,
    /// The readings after the base, in order, each with its document in the batch if it
    /// has one; all become pending from the first whose document is not confirmed. (A
    /// range of the report's `steps`: one vector for the agent, not one per task.)
    steps: Range<usize>,
    /// Whether the chain took this pass's reading.
    took_new: bool,
}

struct Step<'a> {
    reading: &'a Reading,
    document: Option<usize>,
}

/// Where a reading of a chain comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Stored as pending, or left in a write-ahead: its document is sent again.
    Replayed,
    /// This pass's reading of the agent.
    New,
}

/// One agent's tasks this pass: their chains and the documents to publish, in order.
pub(crate) struct AgentOutbox<'a> {
    chains: Vec<Chain<'a>>,
    steps: Vec<Step<'a>>,
    pub(crate) outgoing: Batch,
    /// This pass's readings that gave no document (for the dry run's second reading).
    pub(crate) unusable: Vec<&'a Reading>,
}

impl<'a> AgentOutbox<'a> {
    /// Walks every task's chain: the tasks of this pass's answer, then the stored ones it
    /// no longer lists (their pending documents still go out) until their entry is older
    /// than the TTL.
    pub(crate) fn new(
        shared: &Shared,
        agent: &'a Agent,
        readings: &'a [Reading],
        previous: &'a Previous,
        now: u64,
    ) -> AgentOutbox<'a> {
        let mut report = AgentOutbox {
            chains: Vec::with_capacity(readings.len()),
            steps: Vec::with_capacity(readings.len()),
            outgoing: Batch::with_capacity(readings.len()),
            unusable: Vec::new(),
        };
        let mut stored = StoredTasks::new(&previous.state.tasks);
        let unfinished: HashMap<&str, &Reading> = previous
            .unfinished
            .iter()
            .flat_map(|wal| &wal.tasks)
            .map(|t| (t.base.executor_id.as_str(), &t.base))
            .collect();
        let stored_host = host_or(&previous.state.host, &agent.address);
        let unfinished_host = previous
            .unfinished
            .as_ref()
            .map_or(agent.address.as_str(), |wal| {
                host_or(&wal.host, &agent.address)
            });
        let replay = |task: Option<&'a StoredTask>, id: &str| {
            let pending = task.into_iter().flat_map(|t| &t.pending);
            pending
                .map(move |r| (r, stored_host, Source::Replayed))
                .chain(
                    unfinished
                        .get(id)
                        .map(|r| (*r, unfinished_host, Source::Replayed)),
                )
        };
        for (position, now_reading) in readings.iter().enumerate() {
            let id = now_reading.executor_id.as_str();
            let task = stored.take(position, id);
            let legacy = previous.legacy.get(position).and_then(Option::as_ref);
            let base = task.map(|t| &t.base).or(legacy);
            let stored_at = task.map_or(now, |t| t.stored_at);
            let chain =
                replay(task, id).chain([(now_reading, agent.address.as_str(), Source::New)]);
            report.walk(shared, base, stored_at, chain);
        }
        let ttl = shared.state_ttl.as_secs();
        for task in stored.left() {
            let id = task.base.executor_id.as_str();
            if now.saturating_sub(task.stored_at) < ttl {
                report.walk(
                    shared,
                    Some(&task.base),
                    task.stored_at,
                    replay(Some(task), id),
                );
            }
        }
        report
    }

    fn walk(
        &mut self,
        shared: &Shared,
        base: Option<&'a Reading>,
        stored_at: u64,
        chain: impl Iterator<Item = (&'a Reading, &'a str, Source)>,
    ) {
        let first = self.steps.len();
        let mut took_new = false;
        let mut before = base;
        for (reading, host, source) in chain {
            let new = source == Source::New;
            if new && self.steps.len() - first >= MAX_PENDING {
                shared.tally.outbox_full();
                continue;
            }
            let document = match compute(before, reading, host, shared.include_raw_metrics) {
                Outcome::Publish(mut doc) => {
                    if !goes_out(shared, &mut doc) {
                        // Stored without a document: the next one computes from it.
                        None
                    } else {
                        push_document(shared, &mut self.outgoing, &doc);
                        if !new {
                            shared.tally.resent();
                        }
                        Some(self.outgoing.len() - 1)
                    }
                }
                Outcome::FirstSighting => {
                    if new {
                        shared.tally.first_sighting();
                        self.unusable.push(reading);
                    }
                    None
                }
                Outcome::Reset => {
                    if new {
                        shared.tally.reset(host, &reading.executor_id);
                        self.unusable.push(reading);
                    }
                    None
                }
                Outcome::NotNewer => {
                    // A replayed reading the base already reached is done with.
                    if new {
                        shared.tally.not_newer();
                        self.unusable.push(reading);
                    }
                    continue;
                }
            };
            self.steps.push(Step { reading, document });
            took_new |= new;
            before = Some(reading);
        }
        self.chains.push(Chain {
            base,
            stored_at,
            steps: first..self.steps.len(),
            took_new,
        });
    }

    /// The agent's new value once the broker answered for `outgoing` (`results` in its
    /// order); None when no task is left.
    pub(crate) fn settle(
        self,
        results: &[Result<(), DeliveryError>],
        host: &str,
        now: u64,
        raw: bool,
    ) -> Option<Vec<u8>> {
        let mut encoder = AgentValueEncoder::new(host, self.chains.len(), raw);
        let mut any = false;
        for chain in &self.chains {
            let steps = &self.steps[chain.steps.clone()];
            let confirmed = steps
                .iter()
                .take_while(|step| {
                    step.document
                        .is_none_or(|i| results.get(i).is_some_and(Result::is_ok))
                })
                .count();
            let base = steps[..confirmed]
                .last()
                .map(|step| step.reading)
                .or(chain.base);
            let Some(base) = base else {
                continue;
            };
            let renewed = confirmed > 0 || chain.took_new;
            let stored_at = if renewed { now } else { chain.stored_at };
            let pending: Vec<&Reading> = steps[confirmed..].iter().map(|s| s.reading).collect();
            encoder.task(base, false, stored_at, &pending);
            any = true;
        }
        any.then(|| encoder.finish())
    }
}

/// An agent's stored tasks, each found by the executor id of one of this pass's readings
/// at most once. An agent lists its executors in the same order pass after pass, so the
/// task stored at a reading's position is looked at first, and the ids are hashed only
/// when that misses.
struct StoredTasks<'a> {
    tasks: &'a [StoredTask],
    taken: Vec<bool>,
    by_id: Option<HashMap<&'a str, usize>>,
}

impl<'a> StoredTasks<'a> {
    fn new(tasks: &'a [StoredTask]) -> StoredTasks<'a> {
        StoredTasks {
            tasks,
            taken: vec![false; tasks.len()],
            by_id: None,
        }
    }

    /// The task stored for `id`, the executor id of the reading at `position`, unless
    /// already taken.
    fn take(&mut self, position: usize, id: &str) -> Option<&'a StoredTask> {
        let tasks = self.tasks;
        let index = match tasks.get(position) {
            Some(task) if task.base.executor_id == id => position,
            _ => *self
                .by_id
                .get_or_insert_with(|| {
                    tasks
                        .iter()
                        .enumerate()
                        .map(|(i, t)| (t.base.executor_id.as_str(), i))
                        .collect()
                })
                .get(id)?,
        };
        let taken = self.taken.get_mut(index)?;
        if std::mem::replace(taken, true) {
            return None;
        }
        tasks.get(index)
    }

    /// The tasks no reading took, in their stored order.
    fn left(&self) -> impl Iterator<Item = &'a StoredTask> + '_ {
        self.tasks
            .iter()
            .zip(&self.taken)
            .filter(|(_, taken)| !**taken)
            .map(|(task, _)| task)
    }
}

/// A stored host, or the agent's own when none was stored.
fn host_or<'a>(stored: &'a str, agent: &'a str) -> &'a str {
    if stored.is_empty() {
        agent
    } else {
        stored
    }
}

/// This pass's readings as a write-ahead: whole, as a document's `now` needs them.
pub(crate) fn write_ahead(host: &str, readings: &[Reading], now: u64, raw: bool) -> Vec<u8> {
    let mut encoder = AgentValueEncoder::new(host, readings.len(), raw);
    for reading in readings {
        encoder.task(reading, true, now, &[]);
    }
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::reading::Sample;

    fn task(id: &str) -> StoredTask {
        StoredTask {
            base: Reading {
                executor_id: id.to_string(),
                entry: Box::default(),
                sample: Sample::default(),
                malformed_fields: Vec::new(),
            },
            stored_at: 0,
            pending: Vec::new(),
        }
    }

    fn ids<'a>(tasks: impl Iterator<Item = &'a StoredTask>) -> Vec<&'a str> {
        tasks.map(|t| t.base.executor_id.as_str()).collect()
    }

    #[test]
    fn stored_tasks_are_found_in_any_order_once_each_and_the_rest_left() {
        let tasks: Vec<StoredTask> = ["a", "b", "c", "d"].into_iter().map(task).collect();
        let mut stored = StoredTasks::new(&tasks);
        // Same place, moved, new, and asked again.
        let found: Vec<Option<&str>> = [(0, "a"), (1, "c"), (2, "x"), (3, "a"), (4, "b")]
            .into_iter()
            .map(|(position, id)| {
                stored
                    .take(position, id)
                    .map(|t| t.base.executor_id.as_str())
            })
            .collect();
        assert_eq!(found, [Some("a"), Some("c"), None, None, Some("b")]);
        assert_eq!(ids(stored.left()), ["d"]);
        let mut in_order = StoredTasks::new(&tasks);
        for (position, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert!(in_order.take(position, id).is_some());
        }
        assert!(in_order.by_id.is_none(), "the same order needs no hashing");
        assert_eq!(ids(in_order.left()), Vec::<&str>::new());
    }
}

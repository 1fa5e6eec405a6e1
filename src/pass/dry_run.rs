//! The dry run's second reading (docs/pass.md, "Dry run"): tasks with no usable previous
//! reading (Redis unreachable, or without state) are read a second time from their agent
//! a short interval later, so a dry run always shows documents.
//!
//! Kept apart from `pass` because a collecting pass never reads an agent twice: it stores
//! the first reading and reports from the next pass on.

use crate::broker::Batch;
use crate::mesos::Agent;
use crate::pass::agent::{read_agent, run_workers, Round};
use crate::pass::shared::{goes_out, push_document, Shared};
use crate::pass::workers::{Limits, Worker};
use crate::stats::document::{compute, Outcome};
use crate::stats::reading::Reading;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The agents whose tasks had nothing to compare with in the first round.
#[derive(Default)]
pub(crate) struct Rereads(Mutex<Vec<Reread>>);

/// A dry run's first reading of an agent's tasks that had nothing to compare with.
struct Reread {
    agent: Agent,
    readings: Vec<Reading>,
    /// When it was read; moved to when to read it again before the second round.
    read_at: Instant,
}

impl Rereads {
    /// Keeps these first readings of an agent's tasks for the second round.
    pub(crate) fn remember(&self, agent: &Agent, readings: Vec<&Reading>) {
        let reread = Reread {
            agent: agent.clone(),
            readings: readings.into_iter().cloned().collect(),
            read_at: Instant::now(),
        };
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(reread);
    }

    fn take(&self) -> Vec<Reread> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Reads again, `interval` after their first reading, the agents whose tasks had no
/// usable previous reading, and prints documents against that first reading.
pub(crate) fn read_again(
    shared: &Arc<Shared>,
    rereads: &Rereads,
    limits: Limits,
    interval: Duration,
) {
    let mut rereads = rereads.take();
    if rereads.is_empty() {
        return;
    }
    log::info!("dry run: reading {} agents again {interval:?} after their first reading, for tasks without a previous reading", rereads.len());
    for reread in &mut rereads {
        reread.read_at += interval;
    }
    run_workers(
        shared,
        Arc::new(rereads),
        limits,
        Round::Again,
        reread_agent,
    );
}

/// Reads an agent a second time, once its interval is over, and prints its documents.
fn reread_agent(shared: &Shared, worker: &Worker, earlier: &Reread) {
    std::thread::sleep(earlier.read_at.saturating_duration_since(Instant::now()));
    let agent = &earlier.agent;
    let Some((readings, _held)) = read_agent(shared, worker, agent, Round::Again) else {
        return;
    };
    let mut batch = Batch::default();
    for before in &earlier.readings {
        let Some(now) = readings
            .iter()
            .find(|r| r.executor_id == before.executor_id)
        else {
            continue;
        };
        if let Outcome::Publish(mut doc) = compute(
            Some(before),
            now,
            &agent.address,
            shared.include_raw_metrics,
        ) {
            if !goes_out(shared, &mut doc) {
                continue;
            }
            push_document(shared, &mut batch, &doc);
        }
    }
    let delivered = shared
        .publisher
        .publish_batch(batch)
        .iter()
        .filter(|r| r.is_ok())
        .count();
    shared.tally.published(delivered);
}

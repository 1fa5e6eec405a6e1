//! The worker pool of a pass. `workers` threads each take one job (an agent) at a time.
//! A thread whose fetch has waited longer than the stall threshold stops counting
//! against that number and the pool adds a thread in its place, so agents that hang or
//! crawl never hold up the healthy ones, however many of them there are (docs/pass.md:
//! "one agent never delays or fails another"). A thread that finds the
//! pool over strength after a job retires, so the pool shrinks back once the stalled
//! fetches end. It stays bounded: at most `max_stalled` threads are added at once.
//!
//! Healthy agents answer well within the threshold, so a pass over a healthy cluster
//! runs on exactly `workers` threads; waiting on a stalled socket costs no CPU, so the
//! extra threads cost little more than their stacks.
//!
//! The caller's thread supervises: it starts and tops up the threads, marks stalled
//! fetches, and stops waiting at the deadline, never joining a thread that may hang.
//! Once a stop is requested (`stop.rs`: a signal, or any reason a part of the pass
//! gives), it hands out no further job and waits a short grace for the jobs in flight.
//! Every atomic here is touched a few times per job, so all of them use `SeqCst`, which
//! keeps the reasoning simple at no measurable cost.

use crate::pass::stop::{Stop, StopReason};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How often the supervisor looks for stalled fetches (and for a stop) when no job ends
/// meanwhile: a quarter of the pass's stall threshold (100 ms), so a stalled fetch gets
/// a thread in its place within 125 ms. Each tick is a thread woken (400 in a 4 s pass at
/// the 10 ms this used to be).
const TICK: Duration = Duration::from_millis(25);

/// What a slot (one thread that may run at once) is doing.
const FREE: u64 = 0;
const IDLE: u64 = 1;
/// Fetching for longer than the threshold; a thread has been added in its place.
const STALLED: u64 = 2;
/// Values from here on: fetching since `value - FETCHING` µs after the pool started.
const FETCHING: u64 = 3;

/// How large the pool is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Threads that are not waiting on a stalled fetch.
    pub(crate) workers: usize,
    /// Most threads added in place of stalled fetches at once: bounds the threads and
    /// sockets of a pass when a large part of the cluster hangs.
    pub(crate) max_stalled: usize,
    /// How long a fetch waits before it counts as stalled.
    pub(crate) stall: Duration,
    /// How long the jobs in flight may still take once a stop is requested (never past
    /// the deadline).
    pub(crate) grace: Duration,
}

/// How a pool run went.
#[derive(Debug)]
pub(crate) struct PoolReport {
    pub(crate) ended: Ended,
    /// Most threads that ran at once: above `workers` when fetches stalled.
    pub(crate) most_threads: usize,
    /// A stalled fetch went without a thread in its place: `max_stalled` were running.
    pub(crate) bound_reached: bool,
    /// Jobs some thread took (finished or not): the others were never started.
    pub(crate) started: usize,
}

/// How a pool run ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    AllDone,
    /// `left` jobs were never started or never finished: the deadline came, or no thread
    /// could be started.
    Abandoned {
        left: usize,
        at_deadline: bool,
    },
    /// A stop was requested: `not_started` jobs were never handed out, and `left` of
    /// those in flight had not finished when the grace ended.
    Stopped {
        reason: StopReason,
        not_started: usize,
        left: usize,
    },
}

/// A pool thread as its job sees it: lets the job mark the fetch it waits on.
pub(crate) struct Worker<'a> {
    pool: &'a Pool,
    slot: usize,
}

impl Worker<'_> {
    /// Runs `fetch`, marked so the supervisor can tell when it stalls.
    pub(crate) fn fetching<T>(&self, fetch: impl FnOnce() -> T) -> T {
        let state = &self.pool.slots[self.slot];
        state.store(FETCHING + self.pool.micros(), SeqCst);
        let result = fetch();
        if state.swap(IDLE, SeqCst) == STALLED {
            self.pool.stalled.fetch_sub(1, SeqCst);
        }
        result
    }
}

/// Runs `work` on every job until all are done, the deadline passes, or `stop` is
/// requested and the jobs in flight are done or their grace is over.
pub(crate) fn run<C, J>(
    context: &Arc<C>,
    jobs: Arc<Vec<J>>,
    limits: Limits,
    deadline: Instant,
    stop: &Stop,
    work: fn(&C, &Worker, &J),
) -> PoolReport
where
    C: Send + Sync + 'static,
    J: Send + Sync + 'static,
{
    let pool = Arc::new(Pool {
        limits,
        deadline,
        started: Instant::now(),
        slots: (0..limits.workers + limits.max_stalled)
            .map(|_| AtomicU64::new(FREE))
            .collect(),
        slots_used: AtomicUsize::new(0),
        alive: AtomicUsize::new(0),
        most_alive: AtomicUsize::new(0),
        stalled: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    });
    let crew = Crew {
        context: Arc::clone(context),
        jobs,
        pool: Arc::clone(&pool),
        work,
        spawn_failed: Cell::new(false),
        bound_reached: Cell::new(false),
    };
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut handles = Vec::new();
    let ended = supervise(&crew, stop, &done_tx, &done_rx, &mut handles);
    if matches!(ended, Ended::AllDone | Ended::Stopped { left: 0, .. }) {
        // Every job handed out is done and no other will be, so every thread is past its
        // last one and returning: joining them drops their share of `context`, which the
        // caller may then unwrap.
        for handle in handles {
            let _ = handle.join();
        }
    }
    let total = crew.jobs.len();
    let started = match ended {
        Ended::Stopped { not_started, .. } => total - not_started,
        Ended::AllDone => total,
        Ended::Abandoned { .. } => pool.next.load(SeqCst).min(total),
    };
    PoolReport {
        ended,
        most_threads: pool.most_alive.load(SeqCst),
        bound_reached: crew.bound_reached.get(),
        started,
    }
}

/// Keeps the pool at strength until every job is done, the deadline passes, a stop's
/// grace ends, or no thread is left to do the rest.
fn supervise<C, J>(
    crew: &Crew<C, J>,
    stop: &Stop,
    done_tx: &mpsc::Sender<()>,
    done_rx: &mpsc::Receiver<()>,
    handles: &mut Vec<std::thread::JoinHandle<()>>,
) -> Ended
where
    C: Send + Sync + 'static,
    J: Send + Sync + 'static,
{
    let pool = &crew.pool;
    let mut tally = Progress {
        total: crew.jobs.len(),
        handed_out: crew.jobs.len(),
        finished: 0,
        stopped: None,
    };
    let mut end = pool.deadline;
    loop {
        tally.finished = pool.finished.load(SeqCst);
        if tally.finished >= tally.handed_out {
            break;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return tally.ended(true);
        }
        if let (None, Some(reason)) = (tally.stopped, stop.reason()) {
            // Jobs are handed out by index: past the end, no thread takes another one.
            tally.handed_out = pool.next.swap(tally.total, SeqCst).min(tally.total);
            tally.stopped = Some(reason);
            end = end.min(Instant::now() + pool.limits.grace);
            continue;
        }
        pool.mark_stalled();
        crew.top_up(done_tx, handles);
        if pool.alive.load(SeqCst) == 0 {
            // No thread is left to finish a job (none could start, or one panicked):
            // whatever they finished before leaving is already counted.
            tally.finished = pool.finished.load(SeqCst);
            return tally.ended(false);
        }
        // Never disconnected: this thread holds a sender to start threads with. Woken by
        // the tick, or by the job that finishes the run.
        let _ = done_rx.recv_timeout(left.min(TICK));
    }
    tally.ended(false)
}

/// The supervisor's count of the jobs.
struct Progress {
    total: usize,
    /// Jobs that may run: all of them, until a stop is requested.
    handed_out: usize,
    finished: usize,
    stopped: Option<StopReason>,
}

impl Progress {
    /// How the run ended; `at_deadline` when the supervisor stopped waiting at the
    /// deadline or the end of a stop's grace.
    fn ended(&self, at_deadline: bool) -> Ended {
        let left = self.handed_out.saturating_sub(self.finished);
        match self.stopped {
            Some(reason) => Ended::Stopped {
                reason,
                not_started: self.total - self.handed_out,
                left,
            },
            None if left == 0 => Ended::AllDone,
            None => Ended::Abandoned { left, at_deadline },
        }
    }
}

/// The counters the threads and the supervisor share.
struct Pool {
    limits: Limits,
    deadline: Instant,
    started: Instant,
    slots: Box<[AtomicU64]>,
    /// Slots past this one were never used: the supervisor's scans stop here.
    slots_used: AtomicUsize,
    /// Threads started and not yet retired or ended.
    alive: AtomicUsize,
    most_alive: AtomicUsize,
    /// Slots marked STALLED (briefly one more while the supervisor marks one).
    stalled: AtomicUsize,
    /// The next job to take.
    next: AtomicUsize,
    /// Jobs finished. Only the last one wakes the supervisor (its tick sees the others):
    /// a wake per job was a thread switch per agent for nothing.
    finished: AtomicUsize,
}

impl Pool {
    fn micros(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX - FETCHING)
    }

    /// Threads that are not waiting on a stalled fetch.
    fn busy(&self) -> usize {
        self.alive
            .load(SeqCst)
            .saturating_sub(self.stalled.load(SeqCst))
    }

    fn mark_stalled(&self) {
        let stall = u64::try_from(self.limits.stall.as_micros()).unwrap_or(u64::MAX);
        let now = self.micros();
        let used = self.slots_used.load(SeqCst);
        for slot in &self.slots[..used] {
            let state = slot.load(SeqCst);
            if state >= FETCHING && now.saturating_sub(state - FETCHING) >= stall {
                // Counted first, so the thread's decrement when its fetch ends can never
                // come before this increment.
                self.stalled.fetch_add(1, SeqCst);
                if slot
                    .compare_exchange(state, STALLED, SeqCst, SeqCst)
                    .is_err()
                {
                    self.stalled.fetch_sub(1, SeqCst);
                }
            }
        }
    }

    /// A thread that is not needed any more leaves the count; true if this one should.
    fn retire(&self) -> bool {
        self.alive
            .fetch_update(SeqCst, SeqCst, |alive| {
                let busy = alive.saturating_sub(self.stalled.load(SeqCst));
                (busy > self.limits.workers).then(|| alive - 1)
            })
            .is_ok()
    }

    /// Takes a free slot for a new thread.
    fn claim_slot(&self) -> Option<usize> {
        let slot = self
            .slots
            .iter()
            .position(|slot| slot.compare_exchange(FREE, IDLE, SeqCst, SeqCst).is_ok())?;
        self.slots_used.fetch_max(slot + 1, SeqCst);
        Some(slot)
    }
}

/// What every thread of one run holds.
struct Crew<C, J> {
    context: Arc<C>,
    jobs: Arc<Vec<J>>,
    pool: Arc<Pool>,
    work: fn(&C, &Worker, &J),
    /// Set once a thread could not be started (this and the next are the supervisor's
    /// alone, hence Cells).
    spawn_failed: Cell<bool>,
    /// Set once a thread was wanted and every slot was taken.
    bound_reached: Cell<bool>,
}

impl<C, J> Crew<C, J>
where
    C: Send + Sync + 'static,
    J: Send + Sync + 'static,
{
    /// Starts threads until `workers` are busy, or every job not taken has a thread.
    fn top_up(&self, done_tx: &mpsc::Sender<()>, handles: &mut Vec<std::thread::JoinHandle<()>>) {
        let pool = &self.pool;
        loop {
            let untaken = self.jobs.len().saturating_sub(pool.next.load(SeqCst));
            let busy = pool.busy();
            if busy >= pool.limits.workers || busy >= untaken {
                return;
            }
            let Some(slot) = pool.claim_slot() else {
                self.bound_reached.set(true);
                return;
            };
            // A thread that ended keeps its stack until its handle is joined or dropped;
            // with threads retiring and starting through a long pass, that adds up.
            handles.retain(|handle| !handle.is_finished());
            let alive = pool.alive.fetch_add(1, SeqCst) + 1;
            pool.most_alive.fetch_max(alive, SeqCst);
            match self.spawn(slot, done_tx.clone()) {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    pool.alive.fetch_sub(1, SeqCst);
                    pool.slots[slot].store(FREE, SeqCst);
                    // Tried again at every tick: said once, not a hundred times a second.
                    if !self.spawn_failed.replace(true) {
                        log::error!("cannot start a worker thread ({e}); the pass goes on with the {} it has", alive - 1);
                    }
                    return;
                }
            }
        }
    }

    fn spawn(
        &self,
        slot: usize,
        done_tx: mpsc::Sender<()>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let (context, jobs, pool, work) = (
            Arc::clone(&self.context),
            Arc::clone(&self.jobs),
            Arc::clone(&self.pool),
            self.work,
        );
        std::thread::Builder::new()
            .name(format!("worker-{slot}"))
            .spawn(move || {
                let mut leaving = Leaving {
                    pool: &pool,
                    slot,
                    counted: true,
                };
                loop {
                    if pool.retire() {
                        leaving.counted = false;
                        break;
                    }
                    let index = pool.next.fetch_add(1, SeqCst);
                    if index >= jobs.len() || Instant::now() >= pool.deadline {
                        break;
                    }
                    work(&context, &Worker { pool: &pool, slot }, &jobs[index]);
                    if pool.finished.fetch_add(1, SeqCst) + 1 == jobs.len() {
                        // The supervisor may have stopped waiting at the deadline.
                        let _ = done_tx.send(());
                    }
                }
            })
    }
}

/// Frees a thread's slot and count when it ends, however it ends.
struct Leaving<'a> {
    pool: &'a Pool,
    slot: usize,
    /// False once `retire` has taken the thread out of the count.
    counted: bool,
}

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.pool.alive.fetch_sub(1, SeqCst);
        }
        // STALLED only when a job panicked inside `fetching`.
        if self.pool.slots[self.slot].swap(FREE, SeqCst) == STALLED {
            self.pool.stalled.fetch_sub(1, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests;

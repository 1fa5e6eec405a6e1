//! Unit tests of `workers.rs`: the pool, stalled fetches replaced, the deadline and a
//! stop's grace.

use super::*;
use std::sync::Mutex;

/// Jobs are how long their fetch takes; the context records what ran.
#[derive(Default)]
struct Record {
    done: Mutex<Vec<usize>>,
    fetching: AtomicUsize,
    most_fetching: AtomicUsize,
    working: AtomicUsize,
    most_working: AtomicUsize,
}

fn limits(workers: usize, max_stalled: usize) -> Limits {
    Limits {
        workers,
        max_stalled,
        stall: Duration::from_millis(50),
        grace: Duration::from_secs(5),
    }
}

fn job(record: &Record, worker: &Worker, &(id, fetch): &(usize, Duration)) {
    worker.fetching(|| {
        let now = record.fetching.fetch_add(1, SeqCst) + 1;
        record.most_fetching.fetch_max(now, SeqCst);
        std::thread::sleep(fetch);
        record.fetching.fetch_sub(1, SeqCst);
    });
    let now = record.working.fetch_add(1, SeqCst) + 1;
    record.most_working.fetch_max(now, SeqCst);
    std::thread::sleep(Duration::from_millis(1));
    record.working.fetch_sub(1, SeqCst);
    record.done.lock().expect("no job panics").push(id);
}

fn jobs(fetches: impl IntoIterator<Item = Duration>) -> Vec<(usize, Duration)> {
    fetches.into_iter().enumerate().collect()
}

fn run_jobs(
    fetches: Vec<(usize, Duration)>,
    limits: Limits,
    deadline: Duration,
) -> (Arc<Record>, PoolReport, Duration) {
    run_jobs_stopped_after(fetches, limits, deadline, None)
}

/// Runs the jobs; a SIGTERM stop is requested `stop_after` the start, if given.
fn run_jobs_stopped_after(
    fetches: Vec<(usize, Duration)>,
    limits: Limits,
    deadline: Duration,
    stop_after: Option<Duration>,
) -> (Arc<Record>, PoolReport, Duration) {
    let record = Arc::new(Record::default());
    let stop = Arc::new(Stop::default());
    if let Some(after) = stop_after {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            std::thread::sleep(after);
            stop.request(SIGTERM);
        });
    }
    let started = Instant::now();
    let report = run(
        &record,
        Arc::new(fetches),
        limits,
        started + deadline,
        &stop,
        job,
    );
    (record, report, started.elapsed())
}

const SIGTERM: StopReason = StopReason::Signal(15);

#[test]
fn every_job_runs_once_on_at_most_the_workers() {
    let fetches = jobs((0..200).map(|i| Duration::from_micros(i % 7 * 100)));
    // Nothing may count as stalled here, however loaded the machine.
    let never_stalls = Limits {
        stall: Duration::from_secs(60),
        ..limits(4, 100)
    };
    let (record, report, _) = run_jobs(fetches, never_stalls, Duration::from_secs(30));
    assert_eq!(report.ended, Ended::AllDone);
    assert_eq!(report.most_threads, 4);
    assert!(!report.bound_reached);
    let mut done = record.done.lock().expect("no job panics").clone();
    done.sort_unstable();
    assert_eq!(done, (0..200).collect::<Vec<_>>());
    assert!(record.most_working.load(SeqCst) <= 4);
}

#[test]
fn stalled_fetches_do_not_hold_the_pool() {
    // Two workers and 12 fetches of 1.5 s among quick ones: a fixed pool would need
    // six rounds (9 s); this one runs them side by side, which the count of fetches
    // at once shows, whatever the machine's load. (1.5 s, so that all 12 are still
    // waiting when the last one starts, even on a loaded machine.)
    let fetches = jobs((0..48).map(|i| Duration::from_millis(if i % 4 == 0 { 1500 } else { 1 })));
    let (record, report, _) = run_jobs(fetches, limits(2, 100), Duration::from_secs(30));
    assert_eq!(report.ended, Ended::AllDone);
    // Each slow fetch had a thread of its own (the quick jobs may all be done by then).
    assert!(report.most_threads >= 12, "{report:?}");
    assert!(!report.bound_reached);
    assert_eq!(record.done.lock().expect("no job panics").len(), 48);
    assert!(
        record.most_fetching.load(SeqCst) >= 12,
        "the slow fetches ran side by side"
    );
}

#[test]
fn the_threads_added_for_stalled_fetches_are_bounded() {
    let fetches = jobs((0..20).map(|_| Duration::from_millis(600)));
    let (record, report, _) = run_jobs(fetches, limits(2, 3), Duration::from_secs(30));
    assert_eq!(report.ended, Ended::AllDone);
    assert_eq!(report.most_threads, 5);
    assert_eq!(record.most_fetching.load(SeqCst), 5, "2 workers + 3 added");
    assert!(report.bound_reached);
}

#[test]
fn the_deadline_abandons_what_is_left() {
    let fetches = jobs((0..10).map(|_| Duration::from_secs(30)));
    let (record, report, took) = run_jobs(fetches, limits(2, 3), Duration::from_millis(400));
    assert_eq!(
        report.ended,
        Ended::Abandoned {
            left: 10,
            at_deadline: true
        }
    );
    assert!(record.done.lock().expect("no job panics").is_empty());
    assert_eq!(report.most_threads, 5, "2 workers + 3 added");
    assert!(report.bound_reached);
    // Returned at the deadline, not when the jobs end (30 s), with room for a loaded
    // machine.
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn a_stop_hands_out_no_further_job_and_lets_those_in_flight_finish() {
    // Two workers, no stalls: at most two jobs of 300 ms are in flight at the stop.
    let never_stalls = Limits {
        stall: Duration::from_secs(60),
        ..limits(2, 10)
    };
    let fetches = jobs((0..20).map(|_| Duration::from_millis(300)));
    let (record, report, _) = run_jobs_stopped_after(
        fetches,
        never_stalls,
        Duration::from_secs(30),
        Some(Duration::from_millis(450)),
    );
    let Ended::Stopped {
        reason,
        not_started,
        left,
    } = report.ended
    else {
        panic!("not stopped: {report:?}");
    };
    assert_eq!(reason, SIGTERM);
    assert_eq!(left, 0, "the jobs in flight finished within the grace");
    let done = record.done.lock().expect("no job panics").len();
    assert!(done >= 2, "the jobs before the stop ran: {done}");
    assert!(not_started >= 1, "{report:?}");
    assert_eq!(done + not_started, 20, "every job ran or was never started");
}

#[test]
fn the_grace_of_a_stop_is_bounded() {
    let fetches = jobs((0..4).map(|_| Duration::from_secs(30)));
    let short_grace = Limits {
        grace: Duration::from_millis(200),
        ..limits(2, 0)
    };
    let (record, report, took) = run_jobs_stopped_after(
        fetches,
        short_grace,
        Duration::from_secs(30),
        Some(Duration::from_millis(100)),
    );
    assert_eq!(
        report.ended,
        Ended::Stopped {
            reason: SIGTERM,
            not_started: 2,
            left: 2
        }
    );
    assert!(record.done.lock().expect("no job panics").is_empty());
    // Ended at the grace, not when the jobs in flight end (30 s).
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn no_jobs_start_no_threads() {
    let (record, report, _) = run_jobs(Vec::new(), limits(4, 4), Duration::from_secs(1));
    assert_eq!(report.ended, Ended::AllDone);
    assert_eq!(report.most_threads, 0);
    assert_eq!(record.most_working.load(SeqCst), 0);
}

//! The simulated workload: which tasks churn or lack CFS, their rates and sizes, and their
//! counters at a given instant.
//!
//! Everything is a pure function of the task index and the sample time, so tests can
//! predict values exactly and serving a request needs no per-task state. Counters are
//! `base + rate * (now - start)` with `now` the very f64 written as `timestamp`, so a
//! collector diffing two samples recovers the rate up to float error.

use crate::ids::mix;
use crate::{MesosVersion, TaskRates};

const MIB: u64 = 1024 * 1024;
/// CFS enforces quotas in 100 ms periods, so a busy container counts ten a second.
const CFS_PERIODS_PER_SEC: f64 = 10.0;

/// Cluster-wide settings that decide what every agent serves.
pub(crate) struct Workload {
    pub tasks_per_agent: usize,
    pub no_cfs_every: usize,
    pub churn_every: usize,
    pub no_statistics_every: usize,
    pub no_timestamp_every: usize,
    pub version: MesosVersion,
    pub framework_id: String,
    /// Marathon groups in front of every app id (see `ClusterSpec::group_prefix`).
    pub group_prefix: String,
    /// Cluster start, in float seconds since the UNIX epoch.
    pub start: f64,
}

/// A task's counters at one instant.
pub(crate) struct Sample {
    pub user: f64,
    pub system: f64,
    pub cfs: Option<CfsSample>,
}

/// The CFS bandwidth counters, present only for tasks with a CPU quota.
pub(crate) struct CfsSample {
    pub throttled_secs: f64,
    pub periods: u64,
    pub throttled_periods: u64,
}

/// True for every Nth index (index % N == N-1); never when N is 0.
fn every(n: usize, index: usize) -> bool {
    n != 0 && index % n == n - 1
}

impl Workload {
    pub fn has_cfs(&self, task: usize) -> bool {
        !every(self.no_cfs_every, task)
    }

    pub fn churns(&self, task: usize) -> bool {
        every(self.churn_every, task)
    }

    /// Whether the task is served with `statistics`.
    pub fn has_statistics(&self, task: usize) -> bool {
        !every(self.no_statistics_every, task)
    }

    /// Whether the task is served with a `statistics.timestamp`.
    pub fn has_timestamp(&self, task: usize) -> bool {
        !every(self.no_timestamp_every, task)
    }

    /// Whether a collector can read the task's entry at all.
    pub fn readable(&self, task: usize) -> bool {
        self.has_statistics(task) && self.has_timestamp(task)
    }

    /// Which limits the task's statistics carry: (hard, soft). Mesos 1.11 sends the soft
    /// ones always and the hard ones only with CFS on; older versions only hard ones.
    pub fn limits(&self, task: usize) -> (bool, bool) {
        match self.version {
            MesosVersion::V1_11 => (self.has_cfs(task), true),
            _ => (true, false),
        }
    }

    pub fn rates(&self, task: usize) -> TaskRates {
        let user = 0.05 * (1 + task % 10) as f64;
        let mem_limit_bytes = 128 * MIB * (1 + task % 4) as u64;
        // Between 20% and 79% of the limit, page aligned like a real RSS.
        let mem_rss_bytes = (mem_limit_bytes / 100 * (20 + (task as u64 * 13) % 60)) & !4095;
        TaskRates {
            user,
            system: user / 4.0,
            throttled: self.has_cfs(task).then_some(user / 10.0),
            cpus_limit: 0.1 + 0.25 * (1 + task % 4) as f64,
            mem_rss_bytes,
            mem_limit_bytes,
        }
    }

    /// The counters of `task` at `now` (float seconds since the UNIX epoch).
    pub fn sample(&self, task: usize, now: f64) -> Sample {
        let rates = self.rates(task);
        // A clock stepped back before the start must not make counters shrink below base.
        let elapsed = (now - self.start).max(0.0);
        // A few hundred seconds of history so values look like a long-running task.
        let base_user = 100.0 + (mix(task as u64) % 40_000) as f64 / 100.0;
        let cfs = rates.throttled.map(|throttled| {
            let periods =
                10_000 + (mix(!(task as u64)) % 50_000) + (elapsed * CFS_PERIODS_PER_SEC) as u64;
            CfsSample {
                throttled_secs: base_user / 10.0 + throttled * elapsed,
                periods,
                throttled_periods: periods / 33,
            }
        });
        Sample {
            user: base_user + rates.user * elapsed,
            system: base_user / 4.0 + rates.system * elapsed,
            cfs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        Workload {
            tasks_per_agent: 10,
            no_cfs_every: 3,
            churn_every: 4,
            no_statistics_every: 0,
            no_timestamp_every: 0,
            version: MesosVersion::V1_11,
            framework_id: String::from("fw"),
            group_prefix: String::new(),
            start: 1_764_075_000.0,
        }
    }

    #[test]
    fn every_nth_task_counts_from_one() {
        let w = workload();
        let no_cfs: Vec<usize> = (0..10).filter(|&t| !w.has_cfs(t)).collect();
        let churning: Vec<usize> = (0..10).filter(|&t| w.churns(t)).collect();
        assert_eq!(no_cfs, [2, 5, 8]);
        assert_eq!(churning, [3, 7]);
        assert_eq!(w.limits(2), (false, true), "1.11 without CFS: soft only");
        assert_eq!(w.limits(0), (true, true));
    }

    #[test]
    fn counters_grow_at_the_rates() {
        let w = workload();
        let (t1, t2) = (w.start + 10.0, w.start + 12.5);
        let (a, b) = (w.sample(0, t1), w.sample(0, t2));
        let rates = w.rates(0);
        assert!(((b.user - a.user) / (t2 - t1) - rates.user).abs() < 1e-9);
        assert!(((b.system - a.system) / (t2 - t1) - rates.system).abs() < 1e-9);
        assert!(w.sample(2, t1).cfs.is_none());
    }

    #[test]
    fn rss_stays_below_the_limit() {
        let w = workload();
        for task in 0..100 {
            let r = w.rates(task);
            assert!(r.mem_rss_bytes > 0 && r.mem_rss_bytes < r.mem_limit_bytes);
        }
    }
}

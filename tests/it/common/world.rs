//! A whole test setup in one value: a simulated Mesos cluster, a redis-server of its own,
//! the shared broker with a queue of its own, and a Redis key prefix of its own.

use super::*;
use mesos_sim::{Cluster, ClusterSpec, TaskInfo};
use std::thread;
use std::time::Duration;

/// A cluster of `agents` agents with `tasks` tasks each, its agents bound on loopback
/// addresses from 127.`first_ip` (take them from [`loopback_range`]), otherwise the
/// simulator's defaults.
pub fn spec(agents: usize, tasks: usize, first_ip: [u8; 3]) -> ClusterSpec {
    ClusterSpec {
        agents,
        tasks_per_agent: tasks,
        first_ip,
        ..ClusterSpec::default()
    }
}

/// [`spec`] on a fresh loopback range of its own.
pub fn fresh_spec(agents: usize, tasks: usize) -> ClusterSpec {
    spec(agents, tasks, loopback_range(agents))
}

/// The first address (`[a, b, 1]`: 127.a.b.1) of a fresh loopback range with room for
/// `addresses` agents, used by no other cluster of this test process nor of another test
/// process running now (`mesos_sim::fresh_first_ip`). Tests never pick addresses by hand.
pub fn loopback_range(addresses: usize) -> [u8; 3] {
    mesos_sim::fresh_first_ip(addresses)
}

/// How far the simulator's clock must be past the newest stored reading before the next
/// pass: the simulator samples its counters at the moment it answers, so this is the
/// least interval the next pass's documents cover (over a second, so that CFS periods,
/// ten a second, advance too).
pub const NEXT_PASS_GAP: Duration = Duration::from_millis(1100);

/// 64-bit FNV-1a, the published function shards are computed with; written out here
/// again so the tests check the collector against the documented function.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The numbers of a published document agree with the rates the simulator grows the
/// task's counters at.
pub fn assert_matches_rates(doc: &serde_json::Value, task: &TaskInfo) {
    let r = task.rates;
    let num = |field: &str| {
        doc[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} in {doc}"))
    };
    let close = |field: &str, want: f64, tolerance: f64| {
        let got = num(field);
        assert!(
            (got - want).abs() <= tolerance,
            "{field} = {got}, expected {want} ± {tolerance}: {doc}"
        );
    };
    // Percentages come from unrounded deltas, so they match the rates closely.
    close("cpu_usr_host_pct", r.user * 100.0, 1e-3);
    close("cpu_sys_host_pct", r.system * 100.0, 1e-3);
    close("cpu_host_pct", (r.user + r.system) * 100.0, 1e-3);
    let limit = ((r.cpus_limit - 0.1) * 1e5).round() / 1e5;
    assert_eq!(
        num("cpu_limit_raw"),
        (r.cpus_limit * 1e5).round() / 1e5,
        "{doc}"
    );
    assert_eq!(num("cpu_limit"), limit, "{doc}");
    close("cpu_usr_pct", r.user * 100.0 / (r.cpus_limit - 0.1), 1e-2);
    close(
        "cpu_pct",
        (r.user + r.system) * 100.0 / (r.cpus_limit - 0.1),
        1e-2,
    );
    let period = num("period_secs");
    assert!(period > 0.5 && period < 30.0, "period {period}");
    close("cpu_usr_secs", r.user * period, 1e-4);
    close("cpu_sys_secs", r.system * period, 1e-4);
    match r.throttled {
        Some(thr) => close("cpu_thr_pct", thr * 100.0, 1e-3),
        None => assert!(
            doc.get("cpu_thr_pct").is_none() && doc.get("cpu_thr_secs").is_none(),
            "{doc}"
        ),
    }
    assert_eq!(doc["mem_bytes"].as_u64(), Some(r.mem_rss_bytes), "{doc}");
    close(
        "mem_pct",
        r.mem_rss_bytes as f64 / r.mem_limit_bytes as f64 * 100.0,
        1e-5,
    );
    assert_eq!(doc["appname"], task.app_id.as_str());
    assert!(doc.get("stats").is_none(), "raw metrics are off by default");
}

pub struct World {
    pub cluster: Cluster,
    pub redis: RedisServer,
    /// `host:port` of the broker.
    pub broker: String,
    /// The routing key, and the name of the queue bound to it.
    pub queue: String,
    pub prefix: String,
}

impl World {
    /// Starts everything and declares the queue.
    pub fn start(spec: ClusterSpec) -> World {
        let world = World::without_queue(spec);
        declare_queue(&world.broker, &world.queue);
        world
    }

    /// Starts everything, but no queue receives the routing key.
    pub fn without_queue(spec: ClusterSpec) -> World {
        World::on_broker(spec, &Broker::shared())
    }

    /// Starts the cluster and Redis for this broker; declares no queue.
    pub fn on_broker(spec: ClusterSpec, broker: &(impl AmqpAddr + ?Sized)) -> World {
        World {
            cluster: Cluster::start(spec).expect("the simulated cluster starts"),
            redis: RedisServer::start(),
            broker: broker.host_port(),
            queue: unique_name("asgard-test"),
            prefix: unique_key_prefix(),
        }
    }

    /// The collector with this world's environment.
    pub fn collector(&self) -> Collector {
        self.configure(collector())
    }

    /// The collector with this world's environment, started with this open-files limit
    /// (soft, hard) as cron might start it.
    pub fn collector_with_open_files(&self, soft: u64, hard: u64) -> Collector {
        self.configure(command("prlimit").args([
            format!("--nofile={soft}:{hard}"),
            String::from("--"),
            String::from(env!("CARGO_BIN_EXE_asgard-stats")),
        ]))
    }

    fn configure(&self, collector: Collector) -> Collector {
        collector.envs(collector_env(
            &self.cluster.master_urls(),
            &self.redis,
            &self.broker,
            &self.queue,
            &self.prefix,
        ))
    }

    /// One collecting pass.
    pub fn collect(&self) -> Run {
        self.collector().arg("collect").run()
    }

    /// The next pass: waits until the simulator's samples have advanced past every stored
    /// reading ([`World::wait_for_new_samples`]), then runs one collecting pass.
    pub fn next_pass(&self) -> Run {
        self.wait_for_new_samples();
        self.collect()
    }

    /// Waits until the simulator's clock (the wall clock, which its samples carry) is
    /// [`NEXT_PASS_GAP`] past the newest stored reading, so that a pass run now sees every
    /// task's counters advanced. Without stored readings it waits the gap from now.
    /// Values that are not readings (a test may plant some) are ignored.
    pub fn wait_for_new_samples(&self) {
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64())
        };
        // The newest sample any stored or pending reading holds: the next pass must see
        // a newer one.
        // (A value a test broke on purpose holds no sample.)
        let newest = self
            .stored_values()
            .iter()
            .filter_map(|(_, value)| decode_agent_value(value))
            .flat_map(|(_, tasks)| tasks)
            .flat_map(|task| std::iter::once(task.base).chain(task.pending))
            .map(|reading| reading.timestamp)
            .fold(None, |newest: Option<f64>, t| {
                Some(newest.map_or(t, |n| n.max(t)))
            });
        let ready_at = newest.unwrap_or_else(now) + NEXT_PASS_GAP.as_secs_f64();
        let left = ready_at - now();
        if left > 0.0 {
            thread::sleep(Duration::from_secs_f64(left));
        }
    }

    /// Waits (up to `limit`) until a running pass has stored a reading newer than
    /// `baseline`'s (from [`World::stored_timestamps`]): its documents were confirmed.
    #[track_caller]
    pub fn wait_for_a_reading_newer_than(
        &self,
        baseline: &std::collections::BTreeMap<String, f64>,
        limit: Duration,
    ) {
        wait_until("a reading advanced", limit, || {
            self.stored_timestamps()
                .iter()
                .any(|(k, t)| baseline.get(k).is_some_and(|before| t > before))
        });
    }

    /// Takes every message now in the queue.
    pub fn messages(&self) -> Vec<Message> {
        drain_queue(&self.broker, &self.queue)
    }

    /// The keys of the readings under this world's prefix: one per agent, and the
    /// write-ahead of a pass in progress (the lock and the layout marker excluded). Tests
    /// may scan; the collector never does.
    pub fn stored_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut self.redis.conn())
            .expect("KEYS");
        keys.retain(|k| {
            let name = &k[self.prefix.len()..];
            !name.starts_with("lock") && !name.starts_with("layout/")
        });
        keys.sort();
        keys
    }

    /// Every key of the readings with its value.
    pub fn stored_values(&self) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.redis.conn();
        self.stored_keys()
            .into_iter()
            .map(|k| {
                let v: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut conn).expect("GET");
                (k, v)
            })
            .collect()
    }

    /// Every stored task of every agent, by executor id.
    pub fn stored_tasks(&self) -> std::collections::BTreeMap<String, StoredTask> {
        self.stored_values()
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{}agent/", self.prefix)))
            .flat_map(|(k, v)| {
                decode_agent_value(&v)
                    .unwrap_or_else(|| panic!("{k} decodes"))
                    .1
            })
            .map(|task| (task.executor_id.clone(), task))
            .collect()
    }

    /// The timestamp of every stored task's reading (the `before` of its next document).
    pub fn stored_timestamps(&self) -> std::collections::BTreeMap<String, f64> {
        self.stored_tasks()
            .into_iter()
            .map(|(id, task)| (id, task.base.timestamp))
            .collect()
    }

    /// Waits (up to 30 s: a loaded machine starts a process slowly) until a running pass
    /// has taken the lock `key`.
    pub fn wait_for_lock(&self, key: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.redis_exists(key) {
            assert!(
                std::time::Instant::now() < deadline,
                "no pass took the lock {key}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The served agents' addresses (a document's `host`), in the cluster's order.
    pub fn agent_addresses(&self) -> Vec<String> {
        self.cluster
            .agents()
            .into_iter()
            .map(|a| a.address)
            .collect()
    }

    /// Every task of the cluster by executor id; the cluster must not churn.
    pub fn tasks_by_id(&self) -> std::collections::BTreeMap<String, mesos_sim::TaskInfo> {
        self.cluster
            .tasks()
            .into_iter()
            .map(|t| (t.executor_id.clone().expect("a cluster without churn"), t))
            .collect()
    }

    /// Whether a key exists in this world's Redis.
    pub fn redis_exists(&self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query::<bool>(&mut self.redis.conn())
            .expect("EXISTS")
    }
}

/// One task as the collector stores it in its agent's value.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTask {
    pub executor_id: String,
    pub stored_at: u64,
    pub base: StoredReading,
    pub pending: Vec<StoredReading>,
}

/// One stored reading: the numbers present, and the raw entry with raw metrics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredReading {
    pub timestamp: f64,
    pub cpus_user_time_secs: Option<f64>,
    pub cpus_system_time_secs: Option<f64>,
    pub cpus_throttled_time_secs: Option<f64>,
    pub cpus_limit: Option<f64>,
    pub mem_rss_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    pub raw: Option<String>,
}

/// Decodes an agent's value as docs/internals.md documents it (written out here again so
/// the tests check the collector against the documented layout): `"as" 1 host task*`,
/// a task `executor_id stored_at reading pending_count reading*`, a reading `flags
/// timestamp(f64 LE) fields`; integers LEB128, strings length-prefixed UTF-8.
pub fn decode_agent_value(bytes: &[u8]) -> Option<(String, Vec<StoredTask>)> {
    let mut cursor = ValueCursor { bytes, at: 0 };
    if cursor.take(3)? != b"as\x01" {
        return None;
    }
    let host = cursor.string()?;
    let mut tasks = Vec::new();
    while cursor.at < bytes.len() {
        let executor_id = cursor.string()?;
        let stored_at = cursor.varint()?;
        let base = cursor.reading()?;
        let count = cursor.take(1)?[0];
        let pending = (0..count)
            .map(|_| cursor.reading())
            .collect::<Option<Vec<_>>>()?;
        tasks.push(StoredTask {
            executor_id,
            stored_at,
            base,
            pending,
        });
    }
    Some((host, tasks))
}

struct ValueCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl ValueCursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let slice = self.bytes.get(self.at..self.at + n)?;
        self.at += n;
        Some(slice)
    }
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn string(&mut self) -> Option<String> {
        let len = self.varint()? as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn float(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn reading(&mut self) -> Option<StoredReading> {
        let flags = self.take(1)?[0];
        let mut r = StoredReading {
            timestamp: self.float()?,
            ..StoredReading::default()
        };
        for (bit, field) in [
            (1, &mut r.cpus_user_time_secs),
            (2, &mut r.cpus_system_time_secs),
            (4, &mut r.cpus_throttled_time_secs),
            (8, &mut r.cpus_limit),
        ] {
            if flags & bit != 0 {
                *field = Some(self.float()?);
            }
        }
        for (bit, field) in [(16, &mut r.mem_rss_bytes), (32, &mut r.mem_limit_bytes)] {
            if flags & bit != 0 {
                *field = Some(self.varint()?);
            }
        }
        if flags & 64 != 0 {
            r.raw = Some(self.string()?);
        }
        Some(r)
    }
}

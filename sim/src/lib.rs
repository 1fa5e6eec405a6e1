//! `mesos-sim`: a simulated Apache Mesos cluster (masters and agents) served over real
//! HTTP/1.1 on loopback, for asgard-stats' integration tests, README demo and benchmark.
//!
//! This file owns the public vocabulary (what a cluster looks like, which faults exist,
//! what tests can learn about tasks); the running cluster lives in `cluster.rs`. The
//! simulator uses std threads and std::net only, so tests need no async runtime.
//!
//! ```no_run
//! let cluster = mesos_sim::Cluster::start(mesos_sim::ClusterSpec::default())?;
//! println!("leader at {}", cluster.leader_url());
//! # Ok::<(), std::io::Error>(())
//! ```

mod body;
mod cluster;
mod http;
mod ids;
mod loopback;
mod server;
mod services;
mod tls;
mod workload;

use std::time::Duration;

pub use cluster::Cluster;
pub use loopback::fresh_first_ip;

/// The shape of a simulated cluster; see [`Cluster::start`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    /// Number of agents that are listed active and served.
    pub agents: usize,
    /// Tasks (executors) per agent.
    pub tasks_per_agent: usize,
    /// Extra masters that answer `307` pointing at the leader.
    pub standby_masters: usize,
    /// Extra agents listed with `"active": false` and not served.
    pub inactive_agents: usize,
    /// Every Nth task of an agent (task index % N == N-1) has no CFS fields
    /// (`cpus_throttled_time_secs`, `cpus_nr_periods`, `cpus_nr_throttled`); 0 = none.
    pub no_cfs_every: usize,
    /// Every Nth task of an agent (task index % N == N-1) gets a new executor id on every
    /// statistics request its agent serves; 0 = none.
    pub churn_every: usize,
    /// Agents bind 127.a.b.c counting up from 127.`first_ip` (skipping .0 and .255 in the
    /// last octet); masters bind 127.0.0.1. [`fresh_first_ip`] gives a range no other
    /// cluster uses.
    pub first_ip: [u8; 3],
    /// When set, every master and agent requires HTTP basic auth with this
    /// (principal, secret), answering 401 otherwise.
    pub credentials: Option<(String, String)>,
    /// When set, masters and agents speak https with this identity.
    pub tls: Option<TlsIdentity>,
    /// Which Mesos release masters and agents answer like.
    pub version: MesosVersion,
    /// Agents bind `::1` (each on its own port) and are listed by the IPv6 literal
    /// hostname `::1`; `first_ip` is then unused. Masters stay on 127.0.0.1.
    pub ipv6: bool,
    /// Every Nth task of an agent (task index % N == N-1) is served without `statistics`,
    /// as old agents served some Docker-containerizer executors; 0 = none.
    pub no_statistics_every: usize,
    /// Every Nth task of an agent is served with `statistics` but no `timestamp`; 0 = none.
    pub no_timestamp_every: usize,
    /// Extra agents listed active, after the served ones, that nothing serves: their port
    /// is held closed, so connections are refused at once. For lists of tens of thousands
    /// of agents without a listener each.
    pub unserved_agents: usize,
    /// Marathon groups put in front of every app id, `/`-separated: `"a/b"` makes app
    /// ids `/a/b/prod/web` and executor ids `a_b_prod_web.<uuid>`. Deep or non-ASCII
    /// groups give executor ids as long, or as far from ASCII, as a test needs. Any
    /// UTF-8 except `"`, `\` and control characters (bodies are written unescaped).
    pub group_prefix: String,
    /// Agents the leader lists more than once, as real masters do (a Mesos 0.23 master
    /// listing an agent that re-registered at another address, the Python collector's
    /// own test data): see [`Repeat`].
    pub repeats: Vec<Repeat>,
}

/// An agent the master's list names again (indexes are the served agents' positions).
#[derive(Clone, Debug, PartialEq)]
pub enum Repeat {
    /// Agent `agent`'s entry listed a second time, after the others: same id, same
    /// address.
    SameAddress { agent: usize },
    /// Agent `agent` listed under the id of agent `as_agent`: one id at two addresses.
    /// With `same_tasks`, it also serves `as_agent`'s executor ids (and counters).
    SameId {
        agent: usize,
        as_agent: usize,
        same_tasks: bool,
    },
}

/// The Mesos release whose answers masters and agents imitate (from Mesos' source and
/// answers captured on real clusters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MesosVersion {
    /// Mesos 1.0: agents listed without `port` (it is only in `pid`), without `active`
    /// unless inactive, and no `recovered_slaves`.
    V1_0,
    /// Mesos 1.4: agents listed with `port`, `pid` and `active`; small entries.
    #[default]
    V1_4,
    /// Mesos 1.9: agent entries of real size (~1.7 KB: resources, used, offered,
    /// reserved and unreserved resources, their `_full` forms, attributes, version,
    /// capabilities).
    V1_9,
    /// Mesos 1.11: as 1.9, and statistics carry `cpus_soft_limit` and
    /// `mem_soft_limit_bytes`; tasks without CFS (see `no_cfs_every`) send neither
    /// `cpus_limit` nor `mem_limit_bytes`, only the soft limits.
    V1_11,
}

impl MesosVersion {
    /// Every version the simulator knows, oldest first.
    pub const ALL: [MesosVersion; 4] = [
        MesosVersion::V1_0,
        MesosVersion::V1_4,
        MesosVersion::V1_9,
        MesosVersion::V1_11,
    ];

    /// `"1.0"`, `"1.4"`, `"1.9"` or `"1.11"`.
    pub fn name(self) -> &'static str {
        match self {
            MesosVersion::V1_0 => "1.0",
            MesosVersion::V1_4 => "1.4",
            MesosVersion::V1_9 => "1.9",
            MesosVersion::V1_11 => "1.11",
        }
    }
}

impl std::str::FromStr for MesosVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        MesosVersion::ALL
            .into_iter()
            .find(|v| v.name() == text)
            .ok_or_else(|| format!("unknown Mesos version {text:?}: one of 1.0, 1.4, 1.9, 1.11"))
    }
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            agents: 3,
            tasks_per_agent: 5,
            standby_masters: 0,
            inactive_agents: 0,
            no_cfs_every: 0,
            churn_every: 0,
            first_ip: [1, 0, 1],
            credentials: None,
            tls: None,
            version: MesosVersion::V1_4,
            ipv6: false,
            no_statistics_every: 0,
            no_timestamp_every: 0,
            unserved_agents: 0,
            group_prefix: String::new(),
            repeats: Vec::new(),
        }
    }
}

/// A PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Clone, Debug, PartialEq)]
pub struct TlsIdentity {
    pub cert_chain_pem: String,
    pub key_pem: String,
}

/// How an agent misbehaves; see [`Cluster::set_agent_fault`].
#[derive(Clone, Debug, PartialEq)]
pub enum AgentFault {
    /// Answers normally.
    Healthy,
    /// The listener is closed, so connections are refused; it is bound again on the same
    /// address when the fault is lifted.
    Refuse,
    /// Accepts and reads the request, then never answers, keeping the socket open until
    /// the cluster is dropped.
    Hang,
    /// Waits this long after reading the request, then answers normally; other
    /// connections to the agent are still served meanwhile.
    Slow(Duration),
    /// Answers this status with a short text body.
    Status(u16),
    /// Sends the headers with the full Content-Length, then half the body, then closes.
    Truncated,
    /// Answers 200 with exactly this body.
    Body(String),
    /// Answers 200 with a valid JSON array padded with whitespace to at least this many
    /// bytes.
    Oversized(usize),
    /// Answers `307` with this `Location` (a standby pointing anywhere).
    Redirect(String),
    /// Answers 200 with its normal answer padded with whitespace to `bytes` (a valid JSON
    /// array of that size, announced in Content-Length), sent in steps spread over `over`.
    /// Its writes wait up to a minute for a client that reads late.
    SlowBody { bytes: usize, over: Duration },
    /// Answers normally, its body chunked (`Transfer-Encoding: chunked`, chunks of at most
    /// this many bytes) and followed by a trailer, as a proxy in front of an agent may.
    Chunked(usize),
    /// Answers normally without `Content-Length`: the body ends when the connection does.
    UntilClose,
    /// Answers with exactly these bytes, whatever they are (a broken or hostile agent):
    /// `bytes`, one byte per write when `one_byte_at_a_time`, then `endless` again and
    /// again until the client hangs up or the cluster stops (nothing when empty).
    Raw {
        bytes: Vec<u8>,
        one_byte_at_a_time: bool,
        endless: Vec<u8>,
    },
}

/// How a master misbehaves; see [`Cluster::set_master_fault`]. Same meanings as the
/// [`AgentFault`] variants of the same names.
#[derive(Clone, Debug, PartialEq)]
pub enum MasterFault {
    Healthy,
    Refuse,
    Hang,
    Status(u16),
    Redirect(String),
    Truncated,
    Body(String),
}

/// An active agent as the leader lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentInfo {
    /// `"<cluster-uuid>-S<index>"`.
    pub id: String,
    /// `"127.1.0.1:45123"`.
    pub address: String,
    /// Position among the active agents (the `agent` argument of the fault setters).
    pub index: usize,
}

/// How fast a task's counters grow, per second of wall-clock time, and its fixed sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TaskRates {
    /// `cpus_user_time_secs` per second.
    pub user: f64,
    /// `cpus_system_time_secs` per second.
    pub system: f64,
    /// `cpus_throttled_time_secs` per second; None when the task has no CFS fields.
    pub throttled: Option<f64>,
    /// The executor's CPU limit, served as `cpus_limit` or `cpus_soft_limit` or both
    /// (see [`MesosVersion::V1_11`]).
    pub cpus_limit: f64,
    pub mem_rss_bytes: u64,
    /// Served as `mem_limit_bytes` or `mem_soft_limit_bytes` or both.
    pub mem_limit_bytes: u64,
}

/// One task of an active agent, as the simulator serves it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// Index of the agent (as in [`AgentInfo::index`]).
    pub agent: usize,
    /// Index of the task on its agent (what `no_cfs_every` and `churn_every` count).
    pub index: usize,
    /// The Marathon app id, e.g. `"/prod/web"`.
    pub app_id: String,
    /// None for churning tasks, whose id changes on every request.
    pub executor_id: Option<String>,
    /// False when the task is served without `statistics` or without `timestamp`, so a
    /// collector can only skip it.
    pub readable: bool,
    pub rates: TaskRates,
}

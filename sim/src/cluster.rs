//! The running cluster: starts the agents and masters a [`ClusterSpec`] describes, lets
//! tests inject faults and inspect what was served, and stops everything on drop.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::body::{self, ListedAgent};
use crate::http;
use crate::ids;
use crate::server::{Endpoint, Shared};
use crate::services::{now_secs, AgentService, MasterService, SLAVES_PATH, STATISTICS_PATH};
use crate::tls;
use crate::workload::Workload;
use crate::{AgentFault, AgentInfo, ClusterSpec, MasterFault, Repeat, TaskInfo, TaskRates};

/// The port listed for inactive agents, which nothing serves: Mesos' default agent port.
const INACTIVE_AGENT_PORT: u16 = 5051;
/// The longest a drop waits for threads stuck on unresponsive clients.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running simulated cluster; dropping it stops every listener and thread.
pub struct Cluster {
    scheme: &'static str,
    /// Standbys first, then the leader.
    masters: Vec<Arc<Endpoint>>,
    agents: Vec<(AgentInfo, Arc<Endpoint>)>,
    workload: Arc<Workload>,
    shared: Arc<Shared>,
    /// Stable executor id -> (agent, task), built on first use by `task_rates`.
    executors: OnceLock<HashMap<String, (usize, usize)>>,
    /// Per served agent, whose executor ids it serves (its own index unless a
    /// [`Repeat::SameId`] with `same_tasks` says otherwise).
    tasks_of: Vec<usize>,
    /// Holds the port of the unserved agents, so nothing else listens on it; it is bound
    /// on 127.0.0.1 only, so the unserved agents' addresses refuse connections.
    _unserved_port: Option<TcpListener>,
}

impl Cluster {
    /// Binds and starts every master and agent; they all accept connections once this
    /// returns.
    ///
    /// Fails when the agent addresses run past 127.255.255.254, a socket cannot be bound,
    /// a thread cannot be started, or the TLS identity is unusable.
    pub fn start(spec: ClusterSpec) -> io::Result<Cluster> {
        let listed = spec.agents + spec.inactive_agents + spec.unserved_agents;
        let ips: Vec<IpAddr> = if spec.ipv6 {
            vec![IpAddr::V6(Ipv6Addr::LOCALHOST); listed]
        } else {
            let ips = agent_ips(spec.first_ip, listed)?;
            ips.into_iter().map(IpAddr::V4).collect()
        };
        let tls = spec.tls.as_ref().map(tls::server_config).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let auth_token = spec
            .credentials
            .as_ref()
            .map(|(p, s)| http::basic_token(p, s));
        if let Some(c) = spec
            .group_prefix
            .chars()
            .find(|&c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("group_prefix holds {c:?}, which bodies cannot carry unescaped"),
            ));
        }
        let cluster_id = ids::cluster_uuid();
        let workload = Workload {
            tasks_per_agent: spec.tasks_per_agent,
            no_cfs_every: spec.no_cfs_every,
            churn_every: spec.churn_every,
            no_statistics_every: spec.no_statistics_every,
            no_timestamp_every: spec.no_timestamp_every,
            version: spec.version,
            framework_id: format!("{cluster_id}-0000"),
            group_prefix: spec.group_prefix.clone(),
            start: now_secs(),
        };
        let unserved_port = (spec.unserved_agents > 0)
            .then(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .transpose()?;
        // Built up in place so that, on failure, dropping it stops what already started.
        let mut cluster = Cluster {
            scheme,
            masters: Vec::new(),
            agents: Vec::new(),
            workload: Arc::new(workload),
            shared: Arc::new(Shared::new(tls, auth_token)),
            executors: OnceLock::new(),
            tasks_of: (0..spec.agents).collect(),
            _unserved_port: None,
        };
        let mut ids_of: Vec<usize> = (0..listed).collect();
        for repeat in &spec.repeats {
            if let Repeat::SameId {
                agent,
                as_agent,
                same_tasks,
            } = *repeat
            {
                let (Some(id), Some(tasks)) =
                    (ids_of.get_mut(agent), cluster.tasks_of.get_mut(agent))
                else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("repeat of agent {agent}, which is not served"),
                    ));
                };
                *id = as_agent;
                if same_tasks {
                    *tasks = as_agent;
                }
            }
        }
        let (active, rest) = ips.split_at(spec.agents);
        let (unserved, inactive) = rest.split_at(spec.unserved_agents);
        cluster.start_agents(&cluster_id, active, &ids_of)?;
        let unserved: Vec<SocketAddr> = match &unserved_port {
            Some(holder) => {
                let port = holder.local_addr()?.port();
                unserved
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect()
            }
            None => Vec::new(),
        };
        cluster._unserved_port = unserved_port;
        let listing = cluster.listing(&cluster_id, &unserved, inactive, &ids_of, &spec);
        cluster.start_masters(listing, spec.standby_masters)?;
        Ok(cluster)
    }

    fn start_agents(
        &mut self,
        cluster_id: &str,
        ips: &[IpAddr],
        ids_of: &[usize],
    ) -> io::Result<()> {
        for (index, ip) in ips.iter().enumerate() {
            let listener = TcpListener::bind((*ip, 0))?;
            let service = AgentService {
                index: self.tasks_of.get(index).copied().unwrap_or(index),
                workload: Arc::clone(&self.workload),
                generation: AtomicU64::new(0),
            };
            let name = format!("sim-agent-{index}");
            let endpoint = Endpoint::start(
                listener,
                Box::new(service),
                STATISTICS_PATH,
                &self.shared,
                name,
            )?;
            let info = AgentInfo {
                id: agent_id(cluster_id, ids_of.get(index).copied().unwrap_or(index)),
                address: endpoint.addr().to_string(),
                index,
            };
            self.agents.push((info, endpoint));
        }
        Ok(())
    }

    /// The leader's `/master/slaves` body: the served agents, the unserved ones, the
    /// inactive ones, then the served agents listed again at the same address.
    fn listing(
        &self,
        cluster_id: &str,
        unserved: &[SocketAddr],
        inactive_ips: &[IpAddr],
        ids_of: &[usize],
        spec: &ClusterSpec,
    ) -> String {
        let served = self
            .agents
            .iter()
            .map(|(_, endpoint)| (endpoint.addr(), true));
        let unserved = unserved.iter().map(|addr| (*addr, true));
        let inactive = inactive_ips
            .iter()
            .map(|ip| (SocketAddr::new(*ip, INACTIVE_AGENT_PORT), false));
        let mut listed: Vec<ListedAgent> = served
            .chain(unserved)
            .chain(inactive)
            .enumerate()
            .map(|(i, (addr, active))| ListedAgent {
                id: agent_id(cluster_id, ids_of.get(i).copied().unwrap_or(i)),
                addr,
                active,
                // Agents registered one after another during the hour before.
                registered_time: self.workload.start - 3600.0 + i as f64 * 0.25,
            })
            .collect();
        for repeat in &spec.repeats {
            if let Repeat::SameAddress { agent } = *repeat {
                if let Some(again) = listed.get(agent).cloned() {
                    listed.push(again);
                }
            }
        }
        body::master_slaves(&listed, spec.version)
    }

    fn start_masters(&mut self, listing: String, standbys: usize) -> io::Result<()> {
        // Bound first so the standbys know where to redirect; served last so the masters
        // list reads standbys first, then the leader.
        let leader = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let location = format!("//{}{SLAVES_PATH}", leader.local_addr()?);
        for i in 0..standbys {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let service = MasterService::Standby {
                location: location.clone(),
            };
            let name = format!("sim-standby-{i}");
            let endpoint =
                Endpoint::start(listener, Box::new(service), SLAVES_PATH, &self.shared, name)?;
            self.masters.push(endpoint);
        }
        let service = MasterService::Leader { listing };
        let name = String::from("sim-leader");
        let endpoint = Endpoint::start(leader, Box::new(service), SLAVES_PATH, &self.shared, name)?;
        self.masters.push(endpoint);
        Ok(())
    }

    fn url(&self, endpoint: &Endpoint) -> String {
        format!("{}://{}", self.scheme, endpoint.addr())
    }

    /// The leading master, `"http://127.0.0.1:PORT"` (`https` with TLS).
    pub fn leader_url(&self) -> String {
        // `start` always serves the leader last, so the list is never empty.
        self.master_urls().pop().unwrap_or_default()
    }

    /// The standby masters, in order.
    pub fn standby_urls(&self) -> Vec<String> {
        let mut urls = self.master_urls();
        urls.pop();
        urls
    }

    /// Every master: the standbys first, then the leader.
    pub fn master_urls(&self) -> Vec<String> {
        self.masters.iter().map(|m| self.url(m)).collect()
    }

    /// The active agents, in order.
    pub fn agents(&self) -> Vec<AgentInfo> {
        self.agents.iter().map(|(info, _)| info.clone()).collect()
    }

    /// Makes agent `agent` (an index into [`Cluster::agents`]) misbehave from its next
    /// connection on. Switching to or from `Refuse` returns once the socket is closed or
    /// bound again.
    ///
    /// # Panics
    /// When `agent` is out of range.
    pub fn set_agent_fault(&self, agent: usize, fault: AgentFault) {
        self.agents[agent].1.set_fault(fault);
    }

    /// Makes master `master` (an index into [`Cluster::master_urls`]) misbehave, like
    /// [`Cluster::set_agent_fault`].
    ///
    /// # Panics
    /// When `master` is out of range.
    pub fn set_master_fault(&self, master: usize, fault: MasterFault) {
        let fault = match fault {
            MasterFault::Healthy => AgentFault::Healthy,
            MasterFault::Refuse => AgentFault::Refuse,
            MasterFault::Hang => AgentFault::Hang,
            MasterFault::Status(status) => AgentFault::Status(status),
            MasterFault::Redirect(location) => AgentFault::Redirect(location),
            MasterFault::Truncated => AgentFault::Truncated,
            MasterFault::Body(body) => AgentFault::Body(body),
        };
        self.masters[master].set_fault(fault);
    }

    /// The rates of a live task by its executor id; None for unknown ids and for churning
    /// tasks, whose ids never repeat.
    pub fn task_rates(&self, executor_id: &str) -> Option<TaskRates> {
        let (_, task) = *self.executors().get(executor_id)?;
        Some(self.workload.rates(task))
    }

    fn executors(&self) -> &HashMap<String, (usize, usize)> {
        self.executors.get_or_init(|| {
            self.tasks()
                .into_iter()
                .filter_map(|t| Some((t.executor_id?, (t.agent, t.index))))
                .collect()
        })
    }

    /// Every task of every active agent, agent by agent.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let per_agent = self.workload.tasks_per_agent;
        let mut tasks = Vec::with_capacity(self.agents.len() * per_agent);
        for agent in 0..self.agents.len() {
            for index in 0..per_agent {
                tasks.push(self.task(agent, index));
            }
        }
        tasks
    }

    fn task(&self, agent: usize, index: usize) -> TaskInfo {
        let executor_id = (!self.workload.churns(index)).then(|| {
            let mut id = String::new();
            let serves = self.tasks_of.get(agent).copied().unwrap_or(agent);
            ids::push_executor_id(&mut id, &self.workload.group_prefix, serves, index, 0);
            id
        });
        TaskInfo {
            agent,
            index,
            app_id: ids::app_id(&self.workload.group_prefix, index),
            executor_id,
            readable: self.workload.readable(index),
            rates: self.workload.rates(index),
        }
    }

    /// How many `/monitor/statistics` requests agent `agent` answered (with any status;
    /// hung requests are not answered).
    ///
    /// # Panics
    /// When `agent` is out of range.
    pub fn requests_served(&self, agent: usize) -> u64 {
        self.agents[agent].1.served()
    }

    /// How many `/master/slaves` requests master `master` answered.
    ///
    /// # Panics
    /// When `master` is out of range.
    pub fn master_requests_served(&self, master: usize) -> u64 {
        self.masters[master].served()
    }

    /// The `Authorization` header of the last request agent `agent` read, if it had one.
    ///
    /// # Panics
    /// When `agent` is out of range.
    pub fn last_auth_header(&self, agent: usize) -> Option<String> {
        self.agents[agent].1.last_auth()
    }

    /// The `Authorization` header of the last request master `master` read.
    ///
    /// # Panics
    /// When `master` is out of range.
    pub fn last_master_auth_header(&self, master: usize) -> Option<String> {
        self.masters[master].last_auth()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let agents = self.agents.iter().map(|(_, endpoint)| endpoint);
        for endpoint in self.masters.iter().chain(agents) {
            endpoint.stop();
        }
        self.shared.stop();
        self.shared.wait_idle(SHUTDOWN_GRACE);
    }
}

fn agent_id(cluster_id: &str, index: usize) -> String {
    format!("{cluster_id}-S{index}")
}

/// `count` loopback addresses counting up from 127.`first`, skipping .0 and .255 in the
/// last octet (network and broadcast look-alikes some tools refuse).
fn agent_ips(first: [u8; 3], count: usize) -> io::Result<Vec<Ipv4Addr>> {
    let mut next = u32::from_be_bytes([0, first[0], first[1], first[2]]);
    let mut ips = Vec::with_capacity(count);
    while ips.len() < count {
        if next > 0x00FF_FFFF {
            let message = format!(
                "{count} agents do not fit after 127.{}.{}.{}",
                first[0], first[1], first[2]
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let [_, a, b, c] = next.to_be_bytes();
        if c != 0 && c != 255 {
            ips.push(Ipv4Addr::new(127, a, b, c));
        }
        next += 1;
    }
    Ok(ips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_ips_skip_zero_and_broadcast_octets() {
        let ips = agent_ips([1, 0, 253], 4).expect("fits");
        let expected = ["127.1.0.253", "127.1.0.254", "127.1.1.1", "127.1.1.2"];
        let got: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
        assert_eq!(got, expected);
        assert_eq!(
            agent_ips([1, 0, 0], 1).expect("fits")[0],
            Ipv4Addr::new(127, 1, 0, 1)
        );
    }

    #[test]
    fn agent_ips_stop_at_the_end_of_loopback() {
        assert_eq!(agent_ips([255, 255, 253], 2).expect("fits").len(), 2);
        assert!(agent_ips([255, 255, 253], 3).is_err());
    }
}

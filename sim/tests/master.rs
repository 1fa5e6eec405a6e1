//! The masters over the wire: the leader's agent listing, standby redirects, master
//! faults and basic auth on masters.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test crate: its helpers, like its tests, fail by panicking with a message"
)]

mod support;

use std::net::TcpStream;

use mesos_sim::{Cluster, ClusterSpec, MasterFault, MesosVersion};
use support::{get, get_with, host_port};

fn start(spec: ClusterSpec) -> Cluster {
    Cluster::start(spec).expect("start the cluster")
}

#[test]
fn leader_lists_active_then_inactive_agents() {
    let cluster = start(ClusterSpec {
        agents: 2,
        inactive_agents: 1,
        ..ClusterSpec::default()
    });
    let reply = get(host_port(&cluster.leader_url()), "/master/slaves");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    let listing = reply.json();
    assert_eq!(listing["recovered_slaves"], serde_json::json!([]));
    let slaves = listing["slaves"].as_array().expect("slaves array");
    assert_eq!(slaves.len(), 3);
    for (slave, agent) in slaves.iter().zip(cluster.agents()) {
        let (host, port) = agent.address.split_once(':').expect("host:port");
        assert_eq!(slave["id"], agent.id.as_str());
        assert_eq!(slave["hostname"], host);
        assert_eq!(slave["port"].to_string(), port);
        assert_eq!(slave["pid"], format!("slave(1)@{}", agent.address).as_str());
        assert_eq!(slave["active"], true);
        assert!(slave["registered_time"].is_f64());
        assert_eq!(slave["attributes"], serde_json::json!({}));
    }
    assert_eq!(slaves[2]["active"], false);
    assert!(slaves[2]["id"].as_str().expect("id").ends_with("-S2"));
    assert_eq!(cluster.master_requests_served(0), 1);
}

#[test]
fn agents_get_consecutive_addresses_and_ids() {
    // The last address of a fresh range of two blocks: the next agents cross into the second.
    let [a, b, _] = mesos_sim::fresh_first_ip(255);
    let cluster = start(ClusterSpec {
        first_ip: [a, b, 254],
        ..ClusterSpec::default()
    });
    let agents = cluster.agents();
    let hosts: Vec<&str> = agents
        .iter()
        .map(|a| a.address.split(':').next().unwrap_or_default())
        .collect();
    let second = usize::from(a) * 256 + usize::from(b) + 1;
    let next = |n| format!("127.{}.{}.{n}", second / 256, second % 256);
    assert_eq!(hosts, [format!("127.{a}.{b}.254"), next(1), next(2)]);
    let cluster_id = agents[0].id.strip_suffix("-S0").expect("-S0 suffix");
    assert_eq!(cluster_id.len(), 36);
    assert_eq!(agents[2].id, format!("{cluster_id}-S2"));
    assert_eq!(agents[2].index, 2);
}

#[test]
fn standbys_redirect_protocol_relative_to_the_leader() {
    let cluster = start(ClusterSpec {
        standby_masters: 2,
        ..ClusterSpec::default()
    });
    let standbys = cluster.standby_urls();
    assert_eq!(standbys.len(), 2);
    let mut all = standbys.clone();
    all.push(cluster.leader_url());
    assert_eq!(cluster.master_urls(), all);
    assert!(cluster.leader_url().starts_with("http://127.0.0.1:"));
    for standby in &standbys {
        let reply = get(host_port(standby), "/master/slaves");
        assert_eq!(reply.status, 307);
        let expected = format!("//{}/master/slaves", host_port(&cluster.leader_url()));
        assert_eq!(reply.header("Location"), Some(expected.as_str()));
        assert_eq!(reply.header("Content-Length"), Some("0"));
        assert!(reply.body.is_empty());
    }
}

#[test]
fn masters_answer_404_elsewhere() {
    let cluster = start(ClusterSpec::default());
    let reply = get(host_port(&cluster.leader_url()), "/master/state");
    assert_eq!(reply.status, 404);
    assert_eq!(cluster.master_requests_served(0), 0);
}

#[test]
fn master_faults_apply_and_lift() {
    let cluster = start(ClusterSpec {
        standby_masters: 1,
        first_ip: mesos_sim::fresh_first_ip(ClusterSpec::default().agents),
        ..ClusterSpec::default()
    });
    let leader = host_port(&cluster.leader_url()).to_owned();
    cluster.set_master_fault(1, MasterFault::Status(503));
    assert_eq!(get(&leader, "/master/slaves").status, 503);
    cluster.set_master_fault(1, MasterFault::Refuse);
    assert!(TcpStream::connect(&leader).is_err());
    cluster.set_master_fault(1, MasterFault::Healthy);
    assert_eq!(get(&leader, "/master/slaves").status, 200);
    let standby = host_port(&cluster.standby_urls()[0]).to_owned();
    cluster.set_master_fault(0, MasterFault::Hang);
    let mut stream = support::send_request(&standby, "/master/slaves", &[]);
    support::assert_no_answer(&mut stream);
}

#[test]
fn masters_require_basic_auth_when_configured() {
    let cluster = start(ClusterSpec {
        credentials: Some((String::from("asgard"), String::from("s3cret"))),
        ..ClusterSpec::default()
    });
    let leader = host_port(&cluster.leader_url()).to_owned();
    let denied = get(&leader, "/master/slaves");
    assert_eq!(denied.status, 401);
    assert_eq!(
        denied.header("WWW-Authenticate"),
        Some("Basic realm=\"mesos\"")
    );
    assert_eq!(cluster.last_master_auth_header(0), None);
    // base64("asgard:s3cret")
    let header = "Authorization: Basic YXNnYXJkOnMzY3JldA==";
    assert_eq!(get_with(&leader, "/master/slaves", &[header]).status, 200);
    assert_eq!(
        cluster.last_master_auth_header(0).as_deref(),
        Some("Basic YXNnYXJkOnMzY3JldA==")
    );
}

#[test]
fn mesos_1_0_lists_ipv6_agents_by_pid_and_unserved_agents_refuse() {
    let cluster = start(ClusterSpec {
        agents: 2,
        unserved_agents: 2,
        inactive_agents: 1,
        ipv6: true,
        version: MesosVersion::V1_0,
        ..ClusterSpec::default()
    });
    let agents = cluster.agents();
    assert!(agents.iter().all(|a| a.address.starts_with("[::1]:")));
    assert_ne!(agents[0].address, agents[1].address);
    let reply = get(host_port(&cluster.leader_url()), "/master/slaves");
    let listing = reply.json();
    assert!(listing.get("recovered_slaves").is_none());
    let slaves = listing["slaves"].as_array().expect("slaves array");
    assert_eq!(slaves.len(), 5, "served, unserved, then inactive");
    for slave in &slaves[..4] {
        assert_eq!(slave["hostname"], "::1");
        assert!(slave.get("port").is_none() && slave.get("active").is_none());
    }
    assert_eq!(slaves[4]["active"], false);
    for (slave, agent) in slaves.iter().zip(&agents) {
        assert_eq!(slave["pid"], format!("slave(1)@{}", agent.address).as_str());
        assert_eq!(get(&agent.address, "/monitor/statistics").status, 200);
    }
    for slave in &slaves[2..4] {
        let pid = slave["pid"].as_str().expect("pid");
        let address = pid.trim_start_matches("slave(1)@");
        assert!(TcpStream::connect(address).is_err(), "{address} refuses");
    }
}

//! Agent faults over the wire, and that dropping a cluster is prompt whatever its
//! agents are doing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test crate: its helpers, like its tests, fail by panicking with a message"
)]

mod support;

use std::io::ErrorKind;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use mesos_sim::{AgentFault, Cluster, ClusterSpec};
use support::{exchange, get, parse, send_request, statistics};

const STATISTICS: &str = "/monitor/statistics";

/// Each test gets its own addresses so a closed port can't be taken by another test.
fn start() -> Cluster {
    Cluster::start(ClusterSpec {
        first_ip: mesos_sim::fresh_first_ip(ClusterSpec::default().agents),
        ..ClusterSpec::default()
    })
    .expect("start the cluster")
}

#[test]
fn refuse_closes_the_port_until_lifted() {
    let cluster = start();
    let address = cluster.agents()[0].address.clone();
    cluster.set_agent_fault(0, AgentFault::Refuse);
    let err = TcpStream::connect(&address).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    assert_eq!(statistics(&cluster.agents()[1].address).len(), 5);
    cluster.set_agent_fault(0, AgentFault::Healthy);
    assert_eq!(cluster.agents()[0].address, address);
    assert_eq!(statistics(&address).len(), 5);
}

#[test]
fn hang_reads_but_never_answers_and_keeps_accepting() {
    let cluster = start();
    let address = cluster.agents()[0].address.clone();
    cluster.set_agent_fault(0, AgentFault::Hang);
    let mut first = send_request(&address, STATISTICS, &["Authorization: Basic one"]);
    support::assert_no_answer(&mut first);
    assert_eq!(cluster.last_auth_header(0).as_deref(), Some("Basic one"));
    // The first connection still hangs; the second must be accepted and read anyway.
    let mut second = send_request(&address, STATISTICS, &["Authorization: Basic two"]);
    support::assert_no_answer(&mut second);
    assert_eq!(cluster.last_auth_header(0).as_deref(), Some("Basic two"));
    assert_eq!(cluster.requests_served(0), 0);
    cluster.set_agent_fault(0, AgentFault::Healthy);
    assert_eq!(statistics(&address).len(), 5);
    support::assert_no_answer(&mut first);
}

#[test]
fn slow_delays_answers_without_blocking_other_requests() {
    let cluster = start();
    // Long enough that a loaded machine's scheduling is small beside it.
    let delay = Duration::from_secs(3);
    cluster.set_agent_fault(0, AgentFault::Slow(delay));
    let address = cluster.agents()[0].address.clone();
    let started = Instant::now();
    let requests: Vec<_> = (0..3)
        .map(|_| {
            let address = address.clone();
            thread::spawn(move || statistics(&address).len())
        })
        .collect();
    assert_eq!(statistics(&cluster.agents()[1].address).len(), 5);
    assert!(
        requests.iter().all(|r| !r.is_finished()),
        "another agent was held up"
    );
    for request in requests {
        assert_eq!(request.join().expect("request thread"), 5);
    }
    // Answered side by side: one after another would take three delays.
    let elapsed = started.elapsed();
    assert!(elapsed >= delay && elapsed < delay * 5 / 2, "{elapsed:?}");
    assert_eq!(cluster.requests_served(0), 3);
}

#[test]
fn status_answers_that_status() {
    let cluster = start();
    cluster.set_agent_fault(1, AgentFault::Status(503));
    let reply = get(&cluster.agents()[1].address, STATISTICS);
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body.trim(), "Service Unavailable");
    assert_eq!(cluster.requests_served(1), 1);
}

#[test]
fn truncated_sends_half_the_announced_body() {
    let cluster = start();
    cluster.set_agent_fault(0, AgentFault::Truncated);
    let raw = exchange(&cluster.agents()[0].address, STATISTICS, &[]);
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert!(length > 100);
    assert_eq!(body.len(), length / 2);
    assert!(serde_json::from_str::<serde_json::Value>(body).is_err());
}

#[test]
fn body_answers_exactly_that_body() {
    let cluster = start();
    for body in ["<html>oops</html>", "{\"error\":\"x\"}", ""] {
        cluster.set_agent_fault(2, AgentFault::Body(body.to_owned()));
        let reply = get(&cluster.agents()[2].address, STATISTICS);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, body);
    }
}

#[test]
fn oversized_pads_a_valid_array() {
    let cluster = start();
    cluster.set_agent_fault(0, AgentFault::Oversized(1 << 20));
    let reply = get(&cluster.agents()[0].address, STATISTICS);
    assert_eq!(reply.status, 200);
    assert!(reply.body.len() >= 1 << 20);
    assert_eq!(reply.json().as_array().map(Vec::len), Some(5));
}

#[test]
fn drop_is_prompt_whatever_the_agents_do() {
    let cluster = start();
    cluster.set_agent_fault(0, AgentFault::Hang);
    cluster.set_agent_fault(1, AgentFault::Slow(Duration::from_secs(60)));
    cluster.set_agent_fault(2, AgentFault::Refuse);
    let agents = cluster.agents();
    let _hung = send_request(&agents[0].address, STATISTICS, &[]);
    let _slow = send_request(&agents[1].address, STATISTICS, &[]);
    // Let the listener threads pick both connections up.
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    drop(cluster);
    // Waiting on the hung or slow agent would take a minute.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    for agent in &agents {
        assert!(TcpStream::connect(&agent.address).is_err());
    }
}

#[test]
fn malformed_requests_get_400() {
    let cluster = start();
    let raw = {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(&cluster.agents()[0].address).expect("connect");
        stream.write_all(b"hello there\r\n\r\n").expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        raw
    };
    assert_eq!(parse(&raw).status, 400);
}

//! Agents that answer with broken or hostile HTTP (docs/mesos.md): each fails only
//! itself, by a bound of the client rather than the request's end, with its reason, and
//! a head sent a byte at a time is still read.

use crate::common::*;
use mesos_sim::AgentFault;

/// An agent's answer of one task, as Mesos frames it.
fn statistics() -> String {
    r#"[{"executor_id":"web_app.1","framework_id":"f-0000","source":"web_app.1","statistics":{"timestamp":1000.5,"cpus_limit":1.1,"cpus_user_time_secs":10.5,"cpus_system_time_secs":1.5,"mem_rss_bytes":512,"mem_limit_bytes":1024}}]"#.to_string()
}

fn raw(bytes: impl Into<Vec<u8>>) -> AgentFault {
    AgentFault::Raw {
        bytes: bytes.into(),
        one_byte_at_a_time: false,
        endless: Vec::new(),
    }
}

#[test]
fn hostile_answers_fail_only_their_agent_by_a_bound_with_a_reason() {
    let ok = "HTTP/1.1 200 OK\r\n";
    let chunked = format!("{ok}Transfer-Encoding: chunked\r\n\r\n");
    let faults: Vec<(AgentFault, &str)> = vec![
        (
            raw(format!("{ok}X-Pad: {}\r\n\r\n[]", "a".repeat(70_000))),
            "an answer's head longer than 65536 bytes",
        ),
        (
            AgentFault::Raw {
                bytes: format!("{chunked}2\r\n[]\r\n0\r\n").into_bytes(),
                one_byte_at_a_time: false,
                endless: b"X-Trailer: again\r\n".to_vec(),
            },
            "framing (chunk lines, trailers) passed",
        ),
        (
            raw(format!("{ok}Content-Length: +2\r\n\r\n[]")),
            "an unusable Content-Length",
        ),
        (
            raw(format!(
                "{ok}Content-Length: 2\r\nContent-Length: 3\r\n\r\n[]"
            )),
            "an unusable Content-Length",
        ),
        (
            raw(format!("{chunked}10000000000000000\r\n[]\r\n0\r\n\r\n")),
            "a bad chunk size",
        ),
    ];
    let world = World::start(fresh_spec(faults.len() + 2, 1));
    let agents = world.cluster.agents();
    for (i, (fault, _)) in faults.iter().enumerate() {
        world.cluster.set_agent_fault(i, fault.clone());
    }
    let body = statistics();
    let dribbled = format!(
        "{ok}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let last = faults.len() + 1;
    world.cluster.set_agent_fault(
        last,
        AgentFault::Raw {
            bytes: dribbled.into_bytes(),
            one_byte_at_a_time: true,
            endless: Vec::new(),
        },
    );
    // A request timeout far above what the bounds take: a refusal comes from a bound.
    let started = std::time::Instant::now();
    let run = world
        .collector()
        .env("STATS_REQUEST_TIMEOUT", "60")
        .args(["--deadline", "120", "collect"])
        .run();
    run.assert_status(3);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{run}"
    );
    for (i, (_, why)) in faults.iter().enumerate() {
        let line = format!("agent {} failed: ", agents[i].address);
        let found = run
            .stderr
            .lines()
            .find(|l| l.contains(&line))
            .unwrap_or_else(|| panic!("no failure of agent {i}: {run}"));
        assert!(found.contains(why), "agent {i}: {found}");
    }
    assert!(
        run.stderr.contains(&format!(
            "agents listed={} answered=2 failed={}",
            faults.len() + 2,
            faults.len()
        )),
        "{run}"
    );
    assert!(run.stderr.contains("bad-answer=5"), "{run}");
    assert!(
        !run.stderr
            .contains(&format!("agent {} failed", agents[last].address)),
        "a head sent a byte at a time is read: {run}"
    );
}

//! Masters in high availability, authentication, TLS, misbehaving agents and the pass
//! deadline (docs/mesos.md), against simulated masters and agents on loopback.
//! Each test binds agents on loopback addresses of its own (`loopback_range`).

use crate::common::*;
use base64::Engine;
use mesos_sim::{AgentFault, ClusterSpec, MasterFault, TlsIdentity};
use std::time::{Duration, Instant};

/// A loopback URL nothing listens on.
fn closed_master() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// The collector with these masters as HOLLOWMAN_MESOS_ADDRESS, _0, _1, ...
fn with_masters(world: &World, masters: &[String]) -> Collector {
    collector().envs(collector_env(
        masters,
        &world.redis,
        &world.broker,
        &world.queue,
        &world.prefix,
    ))
}

#[test]
fn masters_are_tried_in_order_and_standbys_followed_to_the_leader() {
    let world = World::start(ClusterSpec {
        standby_masters: 1,
        ..fresh_spec(4, 2)
    });
    let closed = closed_master();
    let masters = [
        closed.clone(),
        world.cluster.standby_urls()[0].clone(),
        world.cluster.leader_url(),
    ];
    // _0 and _1 follow the unsuffixed variable; _3 after the gap at _2 is never read.
    let run = with_masters(&world, &masters)
        .env("HOLLOWMAN_MESOS_ADDRESS_3", "http://127.0.0.1:1")
        .arg("collect")
        .run();
    run.assert_success();
    assert!(
        run.stderr
            .contains(&format!("{closed} failed: connection refused")),
        "{run}"
    );
    assert!(
        run.stderr
            .contains(&format!("leading master {}", world.cluster.leader_url())),
        "{run}"
    );
    assert_eq!(
        world.cluster.master_requests_served(0),
        1,
        "the standby was asked once"
    );
    assert!(run.stderr.contains("answered=4"), "{run}");
}

#[test]
fn a_master_without_leader_or_answer_moves_on_to_the_next() {
    let world = World::start(ClusterSpec {
        standby_masters: 2,
        ..fresh_spec(4, 2)
    });
    world.cluster.set_master_fault(0, MasterFault::Status(503));
    world.cluster.set_master_fault(1, MasterFault::Hang);
    let run = world
        .collector()
        .env("STATS_REQUEST_TIMEOUT", "1")
        .arg("collect")
        .run();
    run.assert_success();
    let standbys = world.cluster.standby_urls();
    assert!(
        run.stderr.contains(&format!(
            "{} failed: no leading master (HTTP 503)",
            standbys[0]
        )),
        "{run}"
    );
    assert!(
        run.stderr
            .contains(&format!("{} failed: timed out", standbys[1])),
        "{run}"
    );
    let hung = format!("{} failed", standbys[1]);
    assert_eq!(
        run.stderr.matches(&hung).count(),
        1,
        "the hung master cost one timeout, not a retry: {run}"
    );
}

#[test]
fn all_masters_down_exits_69_naming_each() {
    let world = World::start(ClusterSpec {
        standby_masters: 1,
        ..fresh_spec(4, 2)
    });
    world.cluster.set_master_fault(0, MasterFault::Status(500));
    world.cluster.set_master_fault(1, MasterFault::Refuse);
    let closed = closed_master();
    let mut masters = world.cluster.master_urls();
    masters.push(closed.clone());
    let run = with_masters(&world, &masters).arg("collect").run();
    run.assert_status(69);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("no Mesos master answered"))
        .unwrap_or_else(|| panic!("no summary line: {run}"));
    assert!(
        line.contains(&format!("{}: HTTP 500", masters[0])),
        "{line}"
    );
    assert!(
        line.contains(&format!("{}: connection refused", masters[1])),
        "{line}"
    );
    assert!(
        line.contains(&format!("{closed}: connection refused")),
        "{line}"
    );
    assert!(world.messages().is_empty());
}

#[test]
fn credentials_reach_the_leader_after_a_redirect_and_every_agent() {
    let (principal, secret) = ("asgard", "s3cr3t-value");
    let world = World::start(ClusterSpec {
        standby_masters: 1,
        credentials: Some((principal.into(), secret.into())),
        ..fresh_spec(4, 2)
    });
    let run = world
        .collector()
        .env("RUST_LOG", "debug")
        .env("STATS_COLLECTOR_MESOS_PRINCIPAL", principal)
        .env("STATS_COLLECTOR_MESOS_SECRET", secret)
        .arg("collect")
        .run();
    run.assert_success();
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"));
    let expected = format!("Basic {token}");
    assert_eq!(
        world.cluster.last_master_auth_header(1).as_deref(),
        Some(expected.as_str()),
        "the leader, after the 307"
    );
    for agent in 0..4 {
        assert_eq!(
            world.cluster.last_auth_header(agent).as_deref(),
            Some(expected.as_str())
        );
    }
    assert!(
        !run.stderr.contains(secret),
        "the secret leaked into the log: {run}"
    );

    let wrong = world
        .collector()
        .env("STATS_COLLECTOR_MESOS_PRINCIPAL", principal)
        .env("STATS_COLLECTOR_MESOS_SECRET", "wrong-secret")
        .arg("collect")
        .run();
    wrong.assert_status(69);
    assert!(
        wrong.stderr.contains("authentication failed (HTTP 401)"),
        "{wrong}"
    );
    assert!(!wrong.stderr.contains("wrong-secret"), "{wrong}");
}

#[test]
fn https_masters_and_agents_with_a_custom_ca() {
    let agents = 3;
    let first_ip = loopback_range(usize::from(agents));
    let (ca_pem, identity) = certificates(first_ip, agents);
    let ca_file = std::env::temp_dir().join(format!("{}-ca.pem", unique_name("asgard-ca")));
    std::fs::write(&ca_file, ca_pem).expect("write the CA file");
    let world = World::start(ClusterSpec {
        agents: usize::from(agents),
        tasks_per_agent: 2,
        standby_masters: 1,
        first_ip,
        tls: Some(identity),
        ..ClusterSpec::default()
    });
    assert!(world.cluster.leader_url().starts_with("https://"));
    // Over TLS too an answer may come chunked or end with its connection: it is read as
    // it grows, its share of the body budget with it.
    world.cluster.set_agent_fault(0, AgentFault::Chunked(97));
    world.cluster.set_agent_fault(1, AgentFault::UntilClose);
    let run = world
        .collector()
        .env("STATS_COLLECTOR_MESOS_CA_FILE", &ca_file)
        .arg("collect")
        .run();
    run.assert_success();
    assert!(run.stderr.contains("answered=3 failed=0"), "{run}");

    // Without the CA the certificates are not trusted, and the pass says so.
    let untrusted = world.collector().arg("collect").run();
    untrusted.assert_status(69);
    let _ = std::fs::remove_file(ca_file);
}

/// A CA, and a server certificate it signed for 127.0.0.1 and every agent address.
fn certificates(first_ip: [u8; 3], agents: u8) -> (String, TlsIdentity) {
    let mut ips = vec![std::net::IpAddr::from([127, 0, 0, 1])];
    ips.extend(
        (0..agents)
            .map(|i| std::net::IpAddr::from([127, first_ip[0], first_ip[1], first_ip[2] + i])),
    );
    let made = TestCertificates::new(&["localhost"], &ips);
    let identity = TlsIdentity {
        cert_chain_pem: made.cert_pem,
        key_pem: made.key_pem,
    };
    (made.ca_pem, identity)
}

#[test]
fn each_misbehaving_agent_fails_only_itself_with_its_reason() {
    let faults = [
        (AgentFault::Refuse, "connection refused", "refused"),
        (AgentFault::Hang, "timed out", "timeout"),
        (
            AgentFault::Slow(Duration::from_secs(5)),
            "timed out",
            "timeout",
        ),
        (AgentFault::Status(500), "HTTP 500", "http-status"),
        (AgentFault::Status(404), "HTTP 404", "http-status"),
        (AgentFault::Truncated, "answer cut short", "truncated"),
        (
            AgentFault::Oversized(4096),
            "answer larger than 2048 bytes",
            "too-large",
        ),
        (
            AgentFault::Body("<html>oops</html>".into()),
            "the answer is not JSON",
            "bad-answer",
        ),
    ];
    let world = World::start(ClusterSpec {
        agents: faults.len() + 2,
        tasks_per_agent: 2,
        first_ip: loopback_range(faults.len() + 2),
        ..ClusterSpec::default()
    });
    let agents = world.cluster.agents();
    let run_with_faults = || {
        for (i, (fault, _, _)) in faults.iter().enumerate() {
            world.cluster.set_agent_fault(i, fault.clone());
        }
        world
            .collector()
            .env("STATS_REQUEST_TIMEOUT", "1")
            .env("STATS_COLLECTOR_MAX_BODY_BYTES", "2048")
            .arg("collect")
            .run()
    };
    run_with_faults().assert_status(3);
    world.wait_for_new_samples();
    let run = run_with_faults();
    run.assert_status(3);
    for (i, (_, reason, _)) in faults.iter().enumerate() {
        let line = format!("agent {} failed: {reason}", agents[i].address);
        assert!(run.stderr.contains(&line), "missing {line:?}: {run}");
    }
    assert!(
        run.stderr.contains(
            "failed=8 bad-answer=1 http-status=2 refused=1 timeout=2 too-large=1 truncated=1"
        ),
        "{run}"
    );
    let messages = world.messages();
    assert_eq!(messages.len(), 4, "the two healthy agents' tasks");
    let healthy = [
        &agents[faults.len()].address,
        &agents[faults.len() + 1].address,
    ];
    assert!(messages
        .iter()
        .all(|m| healthy.contains(&&m.body["host"].as_str().unwrap_or("").to_string())));
}

/// More agents hang than there are workers (100 against the default 32): hung fetches
/// must not hold the pool, or the pass would take four request timeouts (20 s). The
/// bound, between one and four, leaves a loaded machine seven seconds for the rest.
#[test]
fn a_quarter_of_agents_hanging_costs_one_request_timeout() {
    let world = hanging_world(400, |agent| agent % 4 == 0);
    let started = Instant::now();
    let run = world
        .collector()
        .env("STATS_REQUEST_TIMEOUT", "5")
        .arg("collect")
        .run();
    let took = started.elapsed();
    run.assert_status(3);
    assert!(
        took < Duration::from_secs(12),
        "the pass took {took:?}: hung fetches held the pool"
    );
    assert!(
        run.stderr.contains("answered=300 failed=100 timeout=100"),
        "{run}"
    );
    assert!(run.stderr.contains("ran beside the 32 workers"), "{run}");
    assert_eq!(
        world.messages().len(),
        600,
        "every healthy agent's documents are delivered"
    );
}

/// A world of `agents` agents with two tasks each, whose readings a first pass has
/// stored, and whose agents chosen by `hangs` then hang.
fn hanging_world(agents: usize, hangs: fn(usize) -> bool) -> World {
    let world = World::start(ClusterSpec {
        agents,
        tasks_per_agent: 2,
        first_ip: loopback_range(agents),
        ..ClusterSpec::default()
    });
    world.collect().assert_success();
    for agent in (0..agents).filter(|&agent| hangs(agent)) {
        world.cluster.set_agent_fault(agent, AgentFault::Hang);
    }
    world
}

/// cron often starts jobs with a soft limit of 1024 open files, and every hung fetch holds
/// a socket. The pass raises its soft limit to the hard one; under a low hard limit it
/// adds threads for stalled fetches only as far as the limit leaves room, so healthy
/// agents and Redis never fail for want of a socket.
#[test]
fn hung_agents_never_take_the_sockets_of_healthy_ones() {
    // 190 hang, 60 answer, spread over the list.
    let world = hanging_world(250, |agent| agent % 25 >= 6);
    let run = world
        .collector_with_open_files(200, 200)
        .env("STATS_REQUEST_TIMEOUT", "2")
        .arg("collect")
        .run();
    run.assert_status(3);
    // 200 - 64 reserved - 32 workers - 32 Redis connections (one per worker).
    assert!(
        run.stderr.contains("leaves room for 72 stalled fetches"),
        "{run}"
    );
    assert!(run.stderr.contains("reached its bound of 72"), "{run}");
    assert!(
        run.stderr.contains("answered=60 failed=190 timeout=190"),
        "healthy agents failed too: {run}"
    );
    assert_eq!(world.messages().len(), 120);

    // A soft limit of 200 under a hard limit of 4096 is raised: every hung agent gets a
    // thread of its own (104 at most would fit under 200).
    let run = world
        .collector_with_open_files(200, 4096)
        .env("STATS_REQUEST_TIMEOUT", "2")
        .arg("collect")
        .run();
    run.assert_status(3);
    assert!(!run.stderr.contains("leaves room for"), "{run}");
    let threads: usize = run
        .stderr
        .split_once(" threads at most")
        .and_then(|(before, _)| before.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no thread count in the log: {run}"));
    assert!(
        threads >= 190,
        "{threads} threads: the soft limit was not raised"
    );
    assert!(
        run.stderr.contains("answered=60 failed=190 timeout=190"),
        "{run}"
    );
    assert_eq!(world.messages().len(), 120);
}

#[test]
fn inactive_agents_are_skipped() {
    let world = World::start(ClusterSpec {
        inactive_agents: 2,
        ..fresh_spec(4, 2)
    });
    let run = world.collect();
    run.assert_success();
    assert!(
        run.stderr.contains("4 active agents, 2 inactive skipped"),
        "{run}"
    );
    assert!(run.stderr.contains("agents listed=4 answered=4"), "{run}");
}

#[test]
fn the_deadline_ends_the_pass_whatever_hangs() {
    let world = World::start(ClusterSpec {
        agents: 6,
        tasks_per_agent: 2,
        first_ip: loopback_range(6),
        ..ClusterSpec::default()
    });
    for agent in 0..6 {
        world.cluster.set_agent_fault(agent, AgentFault::Hang);
    }
    let started = Instant::now();
    let run = world
        .collector()
        .args([
            "--deadline",
            "1.5",
            "--request-timeout",
            "60",
            "--workers",
            "2",
            "collect",
        ])
        .run();
    let took = started.elapsed();
    // Waiting for the hung fetches would take a request timeout (60 s): half of it is a
    // bound no loaded machine reaches, and only a pass that ignores its deadline passes.
    assert!(
        took < Duration::from_secs(30),
        "the pass took {took:?} with a 1.5 s deadline"
    );
    run.assert_status(69);
    assert!(run.stderr.contains("pass deadline reached"), "{run}");
    assert!(
        run.stderr.contains("abandoned=6") || run.stderr.contains("abandoned=4"),
        "{run}"
    );
    assert!(world.stored_keys().is_empty());
}

#[test]
fn masters_and_agents_given_by_name_are_resolved() {
    let world = World::start(fresh_spec(4, 2));
    let by_name = world.cluster.leader_url().replace("127.0.0.1", "localhost");
    let run = with_masters(&world, std::slice::from_ref(&by_name))
        .arg("collect")
        .run();
    run.assert_success();
    assert!(
        run.stderr.contains(&format!("leading master {by_name}")),
        "{run}"
    );
}

#[test]
fn answers_chunked_or_ended_by_the_connection_are_read_like_any_other() {
    let world = World::start(fresh_spec(3, 4));
    world.cluster.set_agent_fault(0, AgentFault::Chunked(97));
    world.cluster.set_agent_fault(1, AgentFault::UntilClose);
    world.collect().assert_success();
    world.wait_for_new_samples();
    let run = world.collect();
    run.assert_success();
    assert!(
        run.stderr.contains("agents listed=3 answered=3 failed=0"),
        "{run}"
    );
    let tasks = world.tasks_by_id();
    let agents = world.agent_addresses();
    let messages = world.messages();
    assert_eq!(messages.len(), 12, "one document per task: {run}");
    for message in &messages {
        let task = &tasks[message.body["taskname"].as_str().expect("taskname")];
        assert_eq!(message.body["host"], agents[task.agent].as_str());
        assert_matches_rates(&message.body, task);
    }
}

//! The collection pass end to end: the real binary against a simulated Mesos cluster on
//! loopback, a redis-server of its own and a real RabbitMQ queue.

use crate::common::*;
use mesos_sim::{AgentFault, ClusterSpec, TaskInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[test]
fn the_second_pass_publishes_one_correct_document_per_task() {
    let world = World::start(ClusterSpec {
        agents: 4,
        tasks_per_agent: 6,
        standby_masters: 1,
        no_cfs_every: 3,
        inactive_agents: 1,
        ..ClusterSpec::default()
    });
    let first = world.collect();
    first.assert_success();
    assert!(first.stderr.contains("first_sightings=24"), "{first}");
    assert!(
        world.messages().is_empty(),
        "the first pass only stores readings"
    );
    assert_eq!(world.stored_tasks().len(), 24, "one reading per task");

    world.next_pass().assert_success();
    let messages = world.messages();
    assert_eq!(messages.len(), 24, "one document per task");

    let tasks: BTreeMap<String, TaskInfo> = world.tasks_by_id();
    let agents = world.agent_addresses();
    let mut seen = BTreeSet::new();
    for message in &messages {
        let doc = &message.body;
        let taskname = doc["taskname"].as_str().expect("taskname");
        assert!(
            seen.insert(taskname.to_string()),
            "{taskname} published twice"
        );
        let task = &tasks[taskname];
        assert_eq!(doc["host"], agents[task.agent].as_str());
        assert_matches_rates(doc, task);
        assert_eq!(message.content_type.as_deref(), Some("application/json"));
        assert_eq!(message.delivery_mode, Some(2), "persistent");
        let timestamp = doc["timestamp"].as_f64().expect("timestamp");
        assert_eq!(message.message_id, Some(format!("{taskname}@{timestamp}")));
    }
    assert_eq!(seen.len(), tasks.len());
}

#[test]
fn a_cluster_of_hundreds_of_agents_gets_every_document() {
    let world = World::start(ClusterSpec {
        agents: 300,
        tasks_per_agent: 5,
        no_cfs_every: 4,
        first_ip: loopback_range(300),
        ..ClusterSpec::default()
    });
    world.collect().assert_success();
    let run = world.next_pass();
    run.assert_success();
    assert!(
        run.stderr
            .contains("agents listed=300 answered=300 failed=0"),
        "{run}"
    );
    let messages = world.messages();
    assert_eq!(messages.len(), 1500);
    let tasks: BTreeMap<String, TaskInfo> = world.tasks_by_id();
    let names: BTreeSet<&str> = messages
        .iter()
        .filter_map(|m| m.body["taskname"].as_str())
        .collect();
    assert_eq!(names.len(), 1500, "one document per task");
    for message in &messages {
        let task = &tasks[message.body["taskname"].as_str().expect("taskname")];
        assert_matches_rates(&message.body, task);
    }
}

#[test]
fn a_dead_agent_fails_only_itself() {
    let world = World::start(ClusterSpec {
        agents: 4,
        tasks_per_agent: 3,
        first_ip: loopback_range(4),
        ..ClusterSpec::default()
    });
    let dead = world.cluster.agents()[2].address.clone();
    world.cluster.set_agent_fault(2, AgentFault::Refuse);
    world.collect().assert_status(3);
    let second = world.next_pass();
    second.assert_status(3);
    assert!(
        second
            .stderr
            .contains(&format!("agent {dead} failed: connection refused")),
        "{second}"
    );
    assert!(
        second.stderr.contains("answered=3 failed=1 refused=1"),
        "{second}"
    );
    let messages = world.messages();
    assert_eq!(messages.len(), 9, "every healthy agent's documents arrive");
    assert!(messages.iter().all(|m| m.body["host"] != dead.as_str()));
}

#[test]
fn a_dry_run_prints_documents_and_writes_nothing() {
    let world = World::start(ClusterSpec {
        agents: 2,
        tasks_per_agent: 4,
        first_ip: loopback_range(2),
        ..ClusterSpec::default()
    });
    // No state yet: every task is read twice, the documents still come out.
    let run = world
        .collector()
        .args(["collect", "--dry-run", "--dry-run-interval", "0.3"])
        .run();
    run.assert_success();
    let docs = run.stdout_json_lines();
    assert_eq!(docs.len(), 8, "{run}");
    assert!(docs
        .iter()
        .all(|d| d["period_secs"].as_f64().is_some_and(|p| p >= 0.3)));
    assert!(
        world.stored_keys().is_empty(),
        "a dry run writes nothing to Redis"
    );
    assert!(world.messages().is_empty(), "a dry run publishes nothing");

    // With state from a real pass, the stored readings are used and left unchanged.
    world.collect().assert_success();
    let before = world.stored_values();
    world.wait_for_new_samples();
    let run = world.collector().args(["collect", "--dry-run"]).run();
    run.assert_success();
    assert_eq!(run.stdout_json_lines().len(), 8, "{run}");
    assert_eq!(world.stored_values(), before);
    assert!(world.messages().is_empty());
}

#[test]
fn configuration_errors_exit_2_with_one_clear_line() {
    let run = collector().args(["collect"]).run();
    run.assert_status(2);
    assert!(run.stderr.contains("no Mesos master configured"), "{run}");

    let run = collector()
        .env("HOLLOWMAN_MESOS_ADDRESS", "http://127.0.0.1:1")
        .arg("collect")
        .run();
    run.assert_status(2);
    assert!(run.stderr.contains("no broker configured"), "{run}");

    let run = collector().args(["collect", "--no-such-flag"]).run();
    run.assert_status(2);
}

#[test]
fn help_lists_settings_without_their_secret_values() {
    let run = collector()
        .env("STATS_COLLECTOR_RABBITMQ_PWD", "pw-topsecret")
        .env("STATS_COLLECTOR_MESOS_SECRET", "mesos-topsecret")
        .env(
            "STATS_COLLECTOR_REDIS_URL",
            "redis://:redis-topsecret@127.0.0.1/0",
        )
        .args(["collect", "--help"])
        .run();
    run.assert_success();
    for variable in [
        "STATS_COLLECTOR_MESOS_MASTER_IP",
        "STATS_COLLECTOR_REDIS_URL",
        "STATS_COLLECTOR_REDIS_POOL_MIN",
        "STATS_COLLECTOR_REDIS_POOL_MAX",
        "STATS_COLLECTOR_RABBITMQ_HOST",
        "STATS_COLLECTOR_RABBITMQ_USER",
        "STATS_COLLECTOR_RABBITMQ_PWD",
        "STATS_COLLECTOR_RABBITMQ_VHOST",
        "STATS_COLLECTOR_RABBITMQ_RK",
        "STATS_COLLECTOR_INCLUDE_RAW_METRICS",
        "STATS_CONNECT_TIMEOUT",
        "STATS_REQUEST_TIMEOUT",
        "STATS_COLLECTOR_MESOS_PRINCIPAL",
        "STATS_COLLECTOR_MESOS_SECRET",
        "HOLLOWMAN_MESOS_ADDRESS",
    ] {
        assert!(
            run.stdout.contains(variable),
            "{variable} missing from --help"
        );
    }
    assert!(
        !run.stdout.contains("topsecret"),
        "a secret leaked into --help: {run}"
    );
}

/// Every agent gets its turn (docs/pass.md): passes cut short by their deadline, over slow
/// agents and one worker with no room for threads beside it, each start where the last
/// one stopped, so every agent is read within a few passes, not only the first of the
/// list every time.
#[test]
fn passes_cut_short_give_every_agent_its_turn() {
    const AGENTS: usize = 12;
    let world = World::start(fresh_spec(AGENTS, 1));
    for agent in 0..AGENTS {
        world
            .cluster
            .set_agent_fault(agent, AgentFault::Slow(Duration::from_millis(400)));
    }
    let mut passes = 0;
    while (0..AGENTS).any(|agent| world.cluster.requests_served(agent) == 0) {
        passes += 1;
        let served: Vec<u64> = (0..AGENTS)
            .map(|a| world.cluster.requests_served(a))
            .collect();
        // About four agents a pass: three passes when all goes well, ten on a machine
        // so loaded that only one agent fits a pass.
        assert!(passes <= AGENTS - 2, "agents never read: {served:?}");
        // The open-files limit leaves no room for threads beside the worker.
        let run = world
            .collector_with_open_files(66, 66)
            .args(["--workers", "1", "--deadline", "2", "collect"])
            .run();
        assert!(matches!(run.status, Some(0) | Some(3)), "{run}");
    }
    eprintln!("every agent read within {passes} passes");
}

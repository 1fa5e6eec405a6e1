//! SIGTERM and SIGINT during a pass (docs/pass.md; cron's timeout, systemd, Ctrl-C): the
//! pass starts no further agent, lets those in flight settle, stores what was confirmed,
//! releases its lock, logs its summary last and exits 143 or 130; a second signal ends it
//! at once, releasing the lock on its way out.
//! Real redis-server, the shared RabbitMQ node, agents slowed by mesos-sim. Clusters here
//! bind agents on loopback ranges from `loopback_range`.

use crate::common::*;
use mesos_sim::AgentFault;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Agents that answer at once, at the head of the master's list.
const QUICK: usize = 4;
/// How long the other agents take to answer: well within the pass's grace (5 s).
const SLOW: Duration = Duration::from_secs(2);

/// A world of `agents` agents with two tasks each, whose readings a first pass stored;
/// all but the first `QUICK` then answer slowly.
fn slow_world(agents: usize) -> World {
    let world = World::start(fresh_spec(agents, 2));
    world.collect().assert_success();
    assert!(
        world.messages().is_empty(),
        "a first pass publishes nothing"
    );
    for agent in QUICK..agents {
        world.cluster.set_agent_fault(agent, AgentFault::Slow(SLOW));
    }
    world
}

/// Starts a pass on two workers with JSON log lines, and waits until it holds its lock
/// and has been at work a little: some agents are done, some in flight, most not started
/// (a stalled fetch makes room for two more every 100 ms).
fn pass_under_way(world: &World) -> Running {
    let running = world
        .collector()
        .env("STATS_COLLECTOR_METRICS_FILE", metrics_file(world))
        .env("STATS_COLLECTOR_WORKERS", "2")
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
        .arg("collect")
        .spawn();
    world.wait_for_lock(&lock_key(world));
    std::thread::sleep(Duration::from_millis(400));
    running
}

/// Where a pass of this world writes its metrics.
fn metrics_file(world: &World) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{}prom", world.prefix.replace(':', ".")))
}

fn lock_key(world: &World) -> String {
    format!("{}lock", world.prefix)
}

/// Checks what every stopped pass must show: its counts add up, agents were left out,
/// none was abandoned (the slow ones finish within the grace), and its lock is gone.
#[track_caller]
fn assert_stopped(world: &World, run: &Run, agents: u64, signal: &str) -> u64 {
    let summary = run.summary();
    let listed = count(&summary, "agents_listed");
    let answered = count(&summary, "agents_answered");
    let not_started = count(&summary, "agents_not_started");
    assert_eq!(listed, agents, "{run}");
    assert_agents_add_up(&summary, run);
    assert!(not_started >= 1, "the signal came mid-pass: {run}");
    assert!(answered >= QUICK as u64, "{run}");
    assert_eq!(
        count(&summary, "agents_abandoned"),
        0,
        "the agents in flight finish within the grace: {run}"
    );
    assert_eq!(
        summary.get("stopped_by").and_then(Value::as_str),
        Some(signal),
        "{run}"
    );
    assert!(
        !world.redis_exists(&lock_key(world)),
        "the lock is released: {run}"
    );
    answered
}

/// Documents by task: (start, end) of the interval each reports.
fn intervals(messages: &[Message]) -> BTreeMap<String, (f64, f64)> {
    messages
        .iter()
        .map(|m| {
            let field = |name: &str| m.body[name].as_f64().expect("a number");
            let task = m.body["taskname"].as_str().expect("a taskname");
            let end = field("timestamp");
            (task.to_string(), (end - field("period_secs"), end))
        })
        .collect()
}

#[test]
fn sigterm_mid_pass_stores_what_was_delivered_and_releases_the_lock() {
    let agents = 60;
    let world = slow_world(agents);
    let running = pass_under_way(&world);
    running.terminate();
    let run = running.wait();
    run.assert_status(143);
    let _ = std::fs::remove_file(metrics_file(&world));
    let answered = assert_stopped(&world, &run, agents as u64, "SIGTERM");
    let stopped = world.messages();
    assert_eq!(stopped.len() as u64, 2 * answered, "{run}");
    assert_eq!(
        count(&run.summary(), "published"),
        stopped.len() as u64,
        "{run}"
    );

    // The next pass runs (no lock left behind), covers every task, and reports each
    // task's interval once: where the stopped pass delivered a document, the next one
    // starts where it ended, because its reading was stored.
    for agent in QUICK..agents {
        world.cluster.set_agent_fault(agent, AgentFault::Healthy);
    }
    world.collect().assert_success();
    let before = intervals(&stopped);
    let after = intervals(&world.messages());
    assert_eq!(after.len(), 2 * agents, "every task is reported");
    for (task, (_, end)) in &before {
        let (start, _) = after[task];
        assert!(
            (start - end).abs() < 0.01,
            "{task}: reported up to {end} by the stopped pass, then again from {start}"
        );
    }
}

#[test]
fn sigint_mid_pass_exits_130_and_the_next_pass_runs() {
    let agents = 60;
    let world = slow_world(agents);
    let running = pass_under_way(&world);
    running.interrupt();
    let run = running.wait();
    run.assert_status(130);
    assert_stopped(&world, &run, agents as u64, "SIGINT");
    // A stopped pass leaves its metrics too: its exit code and the agents it left out.
    let path = metrics_file(&world);
    let metrics = std::fs::read_to_string(&path).expect("a metrics file");
    let _ = std::fs::remove_file(&path);
    assert!(
        metrics.lines().any(|l| l == "asgard_stats_exit_code 130"),
        "{metrics}"
    );
    let not_started = count(&run.summary(), "agents_not_started");
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("asgard_stats_agents{{state=\"not_started\"}} {not_started}")),
        "{metrics}"
    );
    world.collect().assert_status(0);
}

#[test]
fn a_second_signal_ends_the_pass_at_once() {
    let agents = 20;
    let world = slow_world(agents);
    for agent in 0..agents {
        world.cluster.set_agent_fault(agent, AgentFault::Hang);
    }
    let running = pass_under_way(&world);
    // The same signal twice: two different ones, read together on a loaded machine, could
    // be taken in either order, and the exit code is the second one's.
    running.terminate();
    std::thread::sleep(Duration::from_millis(300));
    running.terminate();
    let run = running.wait();
    run.assert_status(143);
    // A pass that ignored the second signal would end after the first one's grace (the
    // hung agents hold it) with its summary.
    assert!(
        !run.stderr.contains("pass done:"),
        "no summary after a second signal: {run}"
    );
    // It released its lock on the way out: the next pass runs at once.
    assert!(
        !world.redis_exists(&lock_key(&world)),
        "the lock is released: {run}"
    );
    world.cluster.set_agent_fault(0, AgentFault::Healthy);
    let next = world
        .collector()
        .env("STATS_REQUEST_TIMEOUT", "1")
        .arg("collect")
        .run();
    assert_ne!(next.status, Some(75), "{next}");
}

#[test]
fn a_dry_run_stopped_in_its_second_reading_counts_each_agent_once() {
    let agents = 6;
    let world = World::start(fresh_spec(agents, 2));
    // No stored readings: every task is read twice, the second time a second after the
    // first, one agent at a time.
    let running = world
        .collector()
        .env("STATS_COLLECTOR_WORKERS", "1")
        .env("STATS_COLLECTOR_DRY_RUN_INTERVAL", "1")
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
        .args(["collect", "--dry-run"])
        .spawn();
    std::thread::sleep(Duration::from_millis(700));
    running.interrupt();
    let run = running.wait();
    run.assert_status(130);
    let summary = run.summary();
    assert_eq!(count(&summary, "agents_listed"), agents as u64, "{run}");
    assert_agents_add_up(&summary, &run);
}

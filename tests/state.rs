//! The readings' layout and the outbox (docs/state.md), against a real Redis and real
//! RabbitMQ nodes: the previous release's readings read by the first pass of this one, the
//! memory a task costs, and every interval exactly once (after dropping repeated message
//! ids) through a frozen broker, a killed broker, a memory alarm, a dead queue, a killed
//! Redis and SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test crate: its helpers, like its tests, fail by panicking with a message"
)]

mod common;

use common::*;
use mesos_sim::AgentFault;
use std::collections::BTreeMap;
use std::time::Duration;

/// An agent's entry as Mesos sends it, at time `t`.
fn entry(id: &str, t: f64) -> String {
    format!(
        r#"{{"executor_id":"{id}","executor_name":"","framework_id":"f-0000","source":"{id}","statistics":{{"timestamp":{t:.2},"cpus_limit":1.1,"cpus_user_time_secs":{u:.2},"cpus_system_time_secs":{s:.2},"mem_rss_bytes":512,"mem_limit_bytes":1024}}}}"#,
        u = t / 10.0,
        s = t / 100.0
    )
}

const IDS: [&str; 2] = ["web_app.1", "web_db.2"];

/// The answer of an agent running the two tasks of [`IDS`] at time `t`.
fn answer(t: f64) -> String {
    format!("[{}]", IDS.map(|id| entry(id, t)).join(","))
}

/// Writes the two tasks' readings at time `t` as the previous release stored them: the
/// agent's entry byte for byte under `<prefix><executor id>`, with the TTL.
fn store_as_previous_release(world: &World, t: f64) {
    let mut conn = world.redis.conn();
    for id in IDS {
        let _: () = redis::cmd("SET")
            .arg(format!("{}{id}", world.prefix))
            .arg(entry(id, t))
            .arg("EX")
            .arg(600)
            .query(&mut conn)
            .expect("SET");
    }
}

#[test]
fn the_first_pass_reads_the_readings_of_the_previous_release() {
    let world = World::start(spec(1, 2, [31, 1, 1]));
    store_as_previous_release(&world, 1000.0);
    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(answer(1060.0)));
    let run = world.collect();
    run.assert_success();
    assert!(
        run.stderr.contains("published=2 ") && run.stderr.contains("first_sightings=0 "),
        "{run}"
    );
    let messages = world.messages();
    assert_eq!(messages.len(), 2, "no minute lost: {run}");
    for m in &messages {
        let doc = &m.body;
        assert_eq!(doc["period_secs"], 60.0, "{doc}");
        assert_eq!(doc["cpu_usr_secs"], 6.0, "{doc}");
        assert_eq!(doc["cpu_sys_secs"], 0.6, "{doc}");
        assert_eq!(doc["mem_pct"], 50.0, "{doc}");
    }
    assert_eq!(
        world.stored_timestamps(),
        IDS.iter().map(|id| (id.to_string(), 1060.0)).collect(),
        "stored in the new layout"
    );

    // Later passes read the new layout, not the old keys (which expire by themselves).
    store_as_previous_release(&world, 1000.0);
    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(answer(1120.0)));
    world.collect().assert_success();
    let periods: Vec<f64> = world
        .messages()
        .iter()
        .map(|m| m.body["period_secs"].as_f64().expect("period"))
        .collect();
    assert_eq!(periods, [60.0, 60.0]);
}

#[test]
fn old_keys_are_not_read_once_they_must_have_expired() {
    let world = World::start(spec(1, 2, [31, 2, 1]));
    store_as_previous_release(&world, 1000.0);
    // The first pass of this layout ran more than a TTL ago.
    let _: () = redis::cmd("SET")
        .arg(format!("{}layout/since", world.prefix))
        .arg(1)
        .query(&mut world.redis.conn())
        .expect("SET");
    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(answer(1060.0)));
    let run = world.collect();
    run.assert_success();
    assert!(run.stderr.contains("first_sightings=2 "), "{run}");
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut world.redis.conn())
        .expect("INFO");
    assert!(!stats.contains("cmdstat_mget:"), "{stats}");
}

#[test]
fn a_healthy_cluster_keeps_a_small_value_per_agent_and_nothing_pending() {
    let world = World::start(spec(20, 50, [31, 3, 1]));
    world.collect().assert_success();
    std::thread::sleep(Duration::from_millis(300));
    let mut conn = world.redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .expect("RESETSTAT");
    let run = world.collect();
    run.assert_success();
    assert!(
        run.stderr
            .contains("published=1000 resent=0 outbox_full=0 "),
        "{run}"
    );
    // A constant number of commands per agent: one load (GET, GETSET, EXPIRE and, while
    // the previous release's keys may live, their MGET) and one store (SET, DEL); the pass
    // itself adds the lock (SET, and GET and DEL in its release script) and the layout
    // marker (SET NX, GET).
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .expect("INFO");
    let calls = |command: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    for (command, per_pass) in [
        ("get", 22),
        ("getset", 20),
        ("expire", 20),
        ("mget", 20),
        ("set", 22),
        ("del", 21),
    ] {
        assert_eq!(calls(command), per_pass, "{command}: {stats}");
    }
    let keys = world.stored_keys();
    assert_eq!(
        keys.len(),
        20,
        "one key per agent, no write-ahead left: {keys:?}"
    );
    let tasks = world.stored_tasks();
    assert_eq!(tasks.len(), 1000);
    assert!(tasks.values().all(|t| t.pending.is_empty()));
    let bytes: u64 = keys
        .iter()
        .map(|k| {
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(k)
                .query::<u64>(&mut conn)
                .expect("MEMORY USAGE")
        })
        .sum();
    let per_task = bytes / 1000;
    eprintln!("Redis memory per task: {per_task} bytes");
    assert!(per_task <= 250, "{per_task} bytes per task");
}

/// A cluster of `agents` agents of two tasks on this broker, with its queue, its first
/// pass done and its agents slowed so a pass lasts a while; returns it with the baseline.
fn faulty_world(
    broker: &(impl AmqpAddr + ?Sized),
    agents: usize,
    first_ip: [u8; 3],
    redis: Option<RedisServer>,
) -> (World, BTreeMap<String, f64>) {
    let mut world = World::on_broker(spec(agents, 2, first_ip), broker);
    if let Some(redis) = redis {
        world.redis = redis;
    }
    declare_queue(&world.broker, &world.queue);
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    assert_eq!(baseline.len(), agents * 2);
    slow(&world, agents, Some(Duration::from_millis(300)));
    (world, baseline)
}

fn slow(world: &World, agents: usize, each: Option<Duration>) {
    for agent in 0..agents {
        let fault = each.map_or(AgentFault::Healthy, AgentFault::Slow);
        world.cluster.set_agent_fault(agent, fault);
    }
}

/// One pass with one worker (so agents come one at a time) and short bounds.
fn spawn_slow_pass(world: &World) -> Running {
    world
        .collector()
        .args([
            "--workers",
            "1",
            "--confirm-timeout",
            "2",
            "--blocked-timeout",
            "2",
        ])
        .args(["--deadline", "40", "collect"])
        .spawn()
}

/// Waits until some documents of the running pass reached the queue.
fn wait_for_first_documents(world: &World) {
    let started = std::time::Instant::now();
    while queue_len(&world.broker, &world.queue).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no document came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After a faulty pass: two healthy passes, then every task's intervals tile from the
/// baseline to its last reading once repeated message ids are dropped, and nothing is
/// left pending. Returns how many repeats were dropped.
fn assert_exactly_once(world: &World, agents: usize, baseline: &BTreeMap<String, f64>) -> usize {
    slow(world, agents, None);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        let run = world.collect();
        run.assert_success();
    }
    let messages = world.messages();
    let stored = world.stored_tasks();
    assert!(
        stored.values().all(|t| t.pending.is_empty()),
        "nothing left pending: {stored:?}"
    );
    let ends = world.stored_timestamps();
    let tiling = assert_intervals_tile(&messages, baseline, Some(&ends));
    eprintln!("{tiling:?}");
    assert!(
        world.stored_keys().iter().all(|k| !k.contains("wal/")),
        "no write-ahead left"
    );
    tiling.repeats
}

#[test]
fn a_frozen_broker_leaves_no_overlap_and_no_hole() {
    let broker = Broker::private();
    let (world, baseline) = faulty_world(&broker, 20, [31, 4, 1], None);
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    broker.freeze(true);
    std::thread::sleep(Duration::from_secs(4));
    broker.freeze(false);
    let run = running.wait();
    assert!(matches!(run.status, Some(0) | Some(3) | Some(69)), "{run}");
    assert_exactly_once(&world, 20, &baseline);
}

#[test]
fn a_broker_killed_mid_pass_leaves_no_overlap_and_no_hole() {
    let mut broker = Broker::private();
    let (world, baseline) = faulty_world(&broker, 20, [31, 5, 1], None);
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    broker.stop();
    let run = running.wait();
    assert!(run.stderr.contains("not delivered"), "{run}");
    broker.start_again();
    assert_exactly_once(&world, 20, &baseline);
}

#[test]
fn a_memory_alarm_leaves_no_overlap_and_no_hole() {
    let broker = Broker::private();
    let (world, baseline) = faulty_world(&broker, 30, [31, 6, 1], None);
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    broker.set_memory_alarm(true);
    let run = running.wait();
    assert!(run.stderr.contains("low on memory"), "{run}");
    broker.set_memory_alarm(false);
    assert_exactly_once(&world, 30, &baseline);
}

#[test]
fn a_dead_queue_leaves_no_overlap_and_no_hole() {
    let broker = Broker::private();
    let (world, baseline) = faulty_world(&broker, 20, [31, 7, 1], None);
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    // What reached the queue so far is the consumer's: take it as the queue goes.
    let mut messages = drain_and_delete_queue(&world.broker, &world.queue);
    let run = running.wait();
    assert!(run.stderr.contains("(unroutable)"), "{run}");
    declare_queue(&world.broker, &world.queue);
    slow(&world, 20, None);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        world.collect().assert_success();
    }
    messages.extend(world.messages());
    let ends = world.stored_timestamps();
    let tiling = assert_intervals_tile(&messages, &baseline, Some(&ends));
    assert!(world.stored_tasks().values().all(|t| t.pending.is_empty()));
    assert!(tiling.kept > 0);
}

#[test]
fn redis_killed_mid_pass_leaves_no_overlap_and_no_hole() {
    let broker = Broker::private();
    let durable = Some(RedisServer::durable());
    let (mut world, baseline) = faulty_world(&broker, 20, [31, 8, 1], durable);
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    // Catch an agent between its load (write-ahead written) and its store: its documents
    // wait for confirms while the broker is frozen, are confirmed once it thaws, and
    // then cannot be stored, Redis being dead.
    broker.freeze(true);
    std::thread::sleep(Duration::from_millis(800));
    world.redis.stop();
    broker.freeze(false);
    let run = running.wait();
    assert!(run.stderr.contains("readings not stored"), "{run}");
    world.redis.start_again();
    // The lock of the pass that lost Redis expires by its deadline; no need to wait here.
    let _: () = redis::cmd("DEL")
        .arg(format!("{}lock", world.prefix))
        .query(&mut world.redis.conn())
        .expect("DEL");
    let repeats = assert_exactly_once(&world, 20, &baseline);
    assert!(
        repeats > 0,
        "the documents delivered but not stored came again from the write-ahead"
    );
}

#[test]
fn sigterm_mid_pass_leaves_no_overlap_and_no_hole() {
    let broker = Broker::shared();
    let (world, baseline) = faulty_world(&broker, 20, [31, 9, 1], None);
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    running.terminate();
    let run = running.wait();
    assert_eq!(run.status, Some(143), "{run}");
    assert_exactly_once(&world, 20, &baseline);
}

#[test]
fn past_ten_pending_documents_a_task_waits_and_then_covers_the_longer_interval() {
    let world = World::without_queue(spec(1, 1, [31, 10, 1]));
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    for pass in 1..=11 {
        std::thread::sleep(Duration::from_millis(200));
        let run = world.collect();
        run.assert_status(69);
        let full = if pass == 11 { 1 } else { 0 };
        assert!(
            run.stderr
                .contains(&format!("resent={} outbox_full={full} ", pass - 1)),
            "{run}"
        );
    }
    let task = world.stored_tasks().into_values().next().expect("the task");
    assert_eq!(task.pending.len(), 10, "bounded");
    assert_eq!(
        task.base.timestamp, baseline[&task.executor_id],
        "not advanced"
    );

    // The queue is back: the pass sends the ten pending documents (the task's new reading
    // still waits, decided before the broker answers), the next one the longer interval.
    declare_queue(&world.broker, &world.queue);
    for expected in [
        "published=10 resent=10 outbox_full=1 ",
        "published=1 resent=0 outbox_full=0 ",
    ] {
        std::thread::sleep(Duration::from_millis(200));
        let run = world.collect();
        run.assert_success();
        assert!(run.stderr.contains(expected), "{run}");
    }
    let messages = world.messages();
    let ends = world.stored_timestamps();
    let tiling = assert_intervals_tile(&messages, &baseline, Some(&ends));
    assert_eq!(
        tiling.kept, 11,
        "ten pending, then one over the longer interval"
    );
    let last = messages.last().expect("a document");
    assert!(
        last.body["period_secs"].as_f64() > Some(0.3),
        "{:?}",
        last.body
    );
}

//! Nothing lost at the broker's edges (issue 12): executor ids longer than an AMQP short
//! string, returns of such messages, settings the protocol cannot carry, and a broker
//! that blocks publishing under a memory alarm; against real RabbitMQ nodes and Redis.

use crate::common::*;
use mesos_sim::{AgentFault, ClusterSpec};

use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Marathon groups deep enough, and far enough from ASCII, that every executor id is
/// over 255 bytes, with a multi-byte character where a naive cut at 255 bytes falls.
fn deep_groups() -> String {
    format!("{}/tiefe-gruppe-ü/ñ-équipe", "ab".repeat(100))
}

fn long_ids(agents: usize, tasks: usize) -> ClusterSpec {
    ClusterSpec {
        group_prefix: deep_groups(),
        ..fresh_spec(agents, tasks)
    }
}

/// 128-bit FNV-1a, as the collector digests an over-long message id; written out again
/// so the test checks the collector against the documented function.
fn fnv1a_128(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d, |hash, &b| {
            (hash ^ u128::from(b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
        })
}

#[test]
fn executor_ids_over_255_bytes_get_distinct_valid_message_ids_that_name_them() {
    let world = World::start(long_ids(2, 3));
    world.collect().assert_success();
    world.next_pass().assert_success();
    let messages = world.messages();
    assert_eq!(messages.len(), 6);
    let mut seen = HashSet::new();
    for m in &messages {
        let full = format!(
            "{}@{}",
            m.body["taskname"].as_str().expect("taskname"),
            m.body["timestamp"].as_f64().expect("timestamp")
        );
        assert!(full.len() > 255, "the test needs long ids: {full}");
        let id = m.message_id.as_deref().expect("a message id");
        assert!(id.len() <= 255, "{} bytes: {id}", id.len());
        let (start, digest) = id.rsplit_once('~').expect("prefix~digest");
        assert!(full.starts_with(start), "{id} names {full}");
        assert!(start.len() > 200, "as much of the id as fits is kept: {id}");
        assert_eq!(digest, format!("{:032x}", fnv1a_128(full.as_bytes())));
        assert!(seen.insert(id.to_string()), "repeated message id {id}");
    }
}

#[test]
fn returned_documents_with_long_ids_all_fail_and_keep_their_readings() {
    let world = World::without_queue(long_ids(3, 2));
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    assert_eq!(baseline.len(), 6);
    world.wait_for_new_samples();
    let run = world
        .collector()
        .args(["--log-format", "json", "collect"])
        .run();
    run.assert_status(69);
    let counts = run.summary();
    assert_eq!(count(&counts, "published"), 0, "{run}");
    assert_eq!(count(&counts, "deliveries_failed"), 6, "{run}");
    assert!(run.stderr.contains("(unroutable)"), "{run}");
    assert!(
        !run.stderr.contains("does not wait for"),
        "every return matched a document: {run}"
    );
    assert_eq!(world.stored_timestamps(), baseline, "no reading advanced");
}

#[test]
fn a_routing_key_or_vhost_amqp_cannot_carry_stops_the_pass_before_any_write() {
    let world = World::start(fresh_spec(2, 2));
    let cases = [
        ("STATS_COLLECTOR_RABBITMQ_RK", "é".repeat(130), "260 bytes"),
        (
            "STATS_COLLECTOR_RABBITMQ_VHOST",
            "v".repeat(256),
            "256 bytes",
        ),
    ];
    for (variable, value, why) in cases {
        let run = world.collector().env(variable, &value).arg("collect").run();
        run.assert_status(2);
        assert!(run.stderr.contains(variable), "{run}");
        assert!(run.stderr.contains(why), "{run}");
        assert!(world.stored_keys().is_empty(), "Redis was written: {run}");
        assert!(!world.redis_exists(&format!("{}lock", world.prefix)));
    }
    assert!(world.messages().is_empty());
}

/// A cluster of `agents` slow agents on this private broker, with a queue and a first
/// pass done (every task has a reading). Agents start about ten a second (one more each
/// time a fetch stalls), so a pass over 80 of them takes some eight seconds, over 200 twenty.
fn slow_world(broker: &PrivateBroker, agents: usize) -> World {
    let world = World::on_broker(fresh_spec(agents, 2), broker);
    declare_queue(&world.broker, &world.queue);
    world.collect().assert_success();
    for agent in 0..agents {
        let slow = AgentFault::Slow(Duration::from_millis(300));
        world.cluster.set_agent_fault(agent, slow);
    }
    world
}

#[test]
fn a_broker_blocked_for_a_while_delays_the_pass_and_loses_nothing() {
    let broker = Broker::private();
    let world = slow_world(&broker, 80);
    let baseline = world.stored_timestamps();
    // The alarm is on before the pass, so its first publish is blocked however slow
    // rabbitmqctl is on a loaded machine; it is cleared well after the first publish, well
    // within the blocked timeout, and longer than the confirm timeout: the confirms'
    // wait starts when the broker unblocks.
    broker.set_memory_alarm(true);
    let running = world
        .collector()
        .args(["--workers", "1", "--confirm-timeout", "1"])
        .args(["--blocked-timeout", "40", "--deadline", "60"])
        .args(["--log-format", "json", "collect"])
        .spawn();
    // Its first agent answers 0.3 s after the lock is taken, then it publishes, blocked.
    world.wait_for_lock(&format!("{}lock", world.prefix));
    std::thread::sleep(Duration::from_millis(1500));
    broker.set_memory_alarm(false);
    let run = running.wait();
    run.assert_success();
    assert!(
        run.stderr.contains("blocks publishing (low on memory)"),
        "{run}"
    );
    assert!(run.stderr.contains("accepts publishing again"), "{run}");
    let counts = run.summary();
    assert_eq!(count(&counts, "published"), 160, "{run}");
    let now = world.stored_timestamps();
    assert!(
        baseline.iter().all(|(k, t)| now[k] > *t),
        "every reading advanced"
    );
}

#[test]
fn a_broker_blocked_past_the_bound_ends_the_pass_early_and_loses_nothing() {
    let broker = Broker::private();
    let agents = 200;
    let world = slow_world(&broker, agents);
    let baseline = world.stored_timestamps();
    let started = Instant::now();
    let running = world
        .collector()
        .args([
            "--workers",
            "1",
            "--deadline",
            "120",
            "--blocked-timeout",
            "1",
        ])
        .args(["--log-format", "json", "collect"])
        .timeout(Duration::from_secs(180))
        .spawn();
    // Mid-pass: once documents were confirmed (a reading stored after its confirm), so
    // the pass is partial (exit 3). The alarm itself takes rabbitmqctl's start more.
    world.wait_for_a_reading_newer_than(&baseline, Duration::from_secs(120));
    broker.set_memory_alarm(true);
    let run = running.wait();
    let took = started.elapsed();
    run.assert_status(3);
    // A pass that waited on the blocked broker would end at its deadline (120 s); the
    // bound leaves a loaded machine three quarters of it.
    assert!(
        took < Duration::from_secs(90),
        "ended early, not at the deadline: {took:?} {run}"
    );
    assert!(
        run.stderr.contains("low on memory"),
        "the alarm is named: {run}"
    );
    assert!(
        !run.stderr.contains("cannot send"),
        "nothing waited on a write: {run}"
    );
    let counts = run.summary();
    assert_eq!(count(&counts, "agents_listed"), agents as u64, "{run}");
    assert_agents_add_up(&counts, &run);
    assert!(count(&counts, "agents_not_started") > 0, "{run}");
    assert!(count(&counts, "deliveries_failed") > 0, "{run}");
    assert!(run.stderr.contains("(blocked)"), "{run}");
    // Only delivered documents advanced their readings.
    let now = world.stored_timestamps();
    let advanced = baseline.iter().filter(|(k, t)| now[*k] != **t).count() as u64;
    assert_eq!(advanced, count(&counts, "published"), "{run}");
    assert!(advanced < baseline.len() as u64, "{run}");
    broker.set_memory_alarm(false);
}

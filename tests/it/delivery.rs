//! Nothing lost (docs/state.md, docs/publishing.md): publisher confirms and returns, a
//! broker or Redis failing before or during a pass, the pass lock, and the hygiene of
//! stored state, against a real Redis and real RabbitMQ nodes.

use crate::common::*;
use mesos_sim::{AgentFault, ClusterSpec, TaskInfo};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Slows every agent so a pass lasts long enough to break something in the middle.
fn slow_agents(world: &World, agents: usize, each: Duration) {
    set_agents(world, agents, AgentFault::Slow(each));
}

/// Gives the first `agents` agents this fault (Healthy to heal them).
fn set_agents(world: &World, agents: usize, fault: AgentFault) {
    for agent in 0..agents {
        world.cluster.set_agent_fault(agent, fault.clone());
    }
}

#[test]
fn unroutable_documents_keep_their_readings_until_a_queue_is_bound() {
    let world = World::without_queue(fresh_spec(3, 2));
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    let run = world.next_pass();
    run.assert_status(69);
    assert!(
        run.stderr.contains(&format!("6 documents not delivered (unroutable): unroutable: no queue is bound to routing key {:?}", world.queue)),
        "{run}"
    );
    assert_eq!(world.stored_timestamps(), baseline, "no reading advanced");

    let pending: usize = world.stored_tasks().values().map(|t| t.pending.len()).sum();
    assert_eq!(pending, 6, "each failed document is kept to be sent again");

    declare_queue(&world.broker, &world.queue);
    let run = world.next_pass();
    run.assert_success();
    assert!(run.stderr.contains("published=12 resent=6 "), "{run}");
    let messages = world.messages();
    assert_eq!(
        messages.len(),
        12,
        "the failed documents first, then the new ones"
    );
    let tiling = assert_intervals_tile(&messages, &baseline, None);
    assert_eq!(tiling.kept, 12);
    assert!(world.stored_tasks().values().all(|t| t.pending.is_empty()));
}

#[test]
fn a_broker_that_is_down_or_refuses_login_stops_the_pass_before_any_write() {
    let world = World::start(fresh_spec(2, 2));
    let cases = [
        (
            "STATS_COLLECTOR_RABBITMQ_HOST",
            format!("127.0.0.1:{}", free_port()),
            "cannot connect",
        ),
        (
            "STATS_COLLECTOR_RABBITMQ_PWD",
            "wrong-password".to_string(),
            "login refused",
        ),
        (
            "STATS_COLLECTOR_RABBITMQ_VHOST",
            "no-such-vhost".to_string(),
            "virtual host refused",
        ),
    ];
    for (variable, value, reason) in cases {
        let run = world.collector().env(variable, &value).arg("collect").run();
        run.assert_status(69);
        assert!(run.stderr.contains(reason), "{variable}={value}: {run}");
        assert!(!run.stderr.contains("wrong-password"), "{run}");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query(&mut world.redis.conn())
            .expect("KEYS");
        assert!(keys.is_empty(), "Redis was written: {keys:?}");
    }
}

#[test]
fn redis_down_at_the_start_publishes_nothing() {
    let mut world = World::start(fresh_spec(2, 2));
    world.redis.stop();
    let run = world.collect();
    run.assert_status(69);
    assert!(run.stderr.contains("connection refused"), "{run}");
    assert!(
        run.stderr.contains(&format!("Redis {}", world.redis.url())),
        "{run}"
    );
    assert!(world.messages().is_empty());
}

#[test]
fn redis_lost_in_the_middle_of_a_pass_ends_it_with_a_clear_line() {
    let mut world = World::start(fresh_spec(8, 2));
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    slow_agents(&world, 8, Duration::from_millis(400));
    let running = world
        .collector()
        .args(["--workers", "1", "collect"])
        .spawn();
    // Once one agent's documents were delivered (its reading stored after the confirm),
    // the pass is partial whatever happens next: exit 3, never 69.
    world.wait_for_a_reading_newer_than(&baseline, Duration::from_secs(50));
    world.redis.stop();
    let run = running.wait();
    run.assert_status(3);
    assert!(run.stderr.contains("failed: Redis"), "{run}");
    assert!(
        run.stderr.contains("redis="),
        "the summary counts Redis failures: {run}"
    );
}

#[test]
fn only_one_of_two_passes_started_at_once_runs() {
    let world = World::start(fresh_spec(4, 2));
    slow_agents(&world, 4, Duration::from_millis(1500));
    let first = world
        .collector()
        .args(["--workers", "1", "collect"])
        .spawn();
    let lock = format!("{}lock", world.prefix);
    world.wait_for_lock(&lock);
    let second = world.collect();
    second.assert_status(75);
    // At once: not by waiting for the lock, which the first pass still holds (its
    // agents take six seconds).
    assert!(
        world.redis_exists(&lock),
        "the second pass ended while the first still ran"
    );
    assert!(
        second.stderr.contains("another pass holds the lock"),
        "{second}"
    );
    first.wait().assert_success();
    assert!(!world.redis_exists(&lock), "released by its owner");
}

#[test]
fn a_crashed_pass_lock_expires_by_its_deadline() {
    let world = World::start(fresh_spec(2, 2));
    slow_agents(&world, 2, Duration::from_secs(10));
    let crashing = world
        .collector()
        .args(["--deadline", "2", "collect"])
        .spawn();
    let lock = format!("{}lock", world.prefix);
    world.wait_for_lock(&lock);
    std::process::Command::new("kill")
        .args(["-9", &crashing.pid().to_string()])
        .status()
        .expect("kill");
    drop(crashing);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&lock)
        .query(&mut world.redis.conn())
        .expect("PTTL");
    assert!(
        ttl > 0 && ttl <= 2000,
        "the lock lives for the deadline: {ttl} ms"
    );
    world.collect().assert_status(75);
    // Its lifetime (PTTL above) is what the deadline bounds; this only waits for Redis to
    // drop it, with room for a loaded machine.
    wait_until("the lock expired", Duration::from_secs(30), || {
        !world.redis_exists(&lock)
    });
    set_agents(&world, 2, AgentFault::Healthy);
    world.collect().assert_success();
}

#[test]
fn a_pass_never_releases_a_lock_it_does_not_own() {
    let world = World::start(fresh_spec(3, 2));
    slow_agents(&world, 3, Duration::from_millis(500));
    let running = world
        .collector()
        .args(["--workers", "1", "collect"])
        .spawn();
    let lock = format!("{}lock", world.prefix);
    world.wait_for_lock(&lock);
    // As if our lock had expired and another pass had taken it.
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("another-pass")
        .query(&mut world.redis.conn())
        .expect("SET");
    let run = running.wait();
    run.assert_success();
    assert!(
        run.stderr
            .contains("expired before the pass ended; it was not released"),
        "{run}"
    );
    let holder: Option<String> = redis::cmd("GET")
        .arg(&lock)
        .query(&mut world.redis.conn())
        .expect("GET");
    assert_eq!(holder.as_deref(), Some("another-pass"));
}

#[test]
fn stored_readings_expire_carry_the_prefix_and_are_never_scanned() {
    let world = World::start(ClusterSpec {
        churn_every: 2,
        ..fresh_spec(2, 4)
    });
    let pass = || {
        world
            .collector()
            .args(["--state-ttl", "10", "collect"])
            .run()
            .assert_success();
    };
    pass();
    // 4 steady + 4 churned tasks (a churned task has a new id at every reading).
    let first: Vec<String> = world.stored_tasks().into_keys().collect();
    assert_eq!(first.len(), 8);
    let mut conn = world.redis.conn();
    // The test's own KEYS above is not the collector's.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .expect("RESETSTAT");
    std::thread::sleep(Duration::from_secs(6));
    pass();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .expect("INFO");
    for scan in ["cmdstat_keys:", "cmdstat_scan:"] {
        assert!(
            !stats.contains(scan),
            "the collector scanned the keyspace: {stats}"
        );
    }
    assert!(
        stats.contains("cmdstat_get:") && stats.contains("cmdstat_set:"),
        "{stats}"
    );
    // Pass 1's churned tasks keep their entries until they are older than the TTL.
    let second = world.stored_tasks();
    assert_eq!(second.len(), 12);
    assert!(first.iter().all(|id| second.contains_key(id)));
    let keys = world.stored_keys();
    assert_eq!(
        keys.len(),
        2,
        "one key per agent, no write-ahead left: {keys:?}"
    );
    let size: usize = redis::cmd("DBSIZE").query(&mut conn).expect("DBSIZE");
    assert_eq!(
        size,
        keys.len() + 1,
        "every key carries the prefix (and the layout marker)"
    );
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut conn).expect("TTL");
        assert!((1..=10).contains(&ttl), "{key} has TTL {ttl}");
    }
    // Stored times are whole seconds, and a pass on a loaded machine may take a few: six
    // more put pass 1's entries 12 s or more back, past the TTL, and pass 2's 6 to 9 s
    // back, within it.
    std::thread::sleep(Duration::from_secs(6));
    pass();
    let third = world.stored_tasks();
    let steady: Vec<&String> = first.iter().filter(|id| third.contains_key(*id)).collect();
    assert_eq!(
        steady.len(),
        4,
        "pass 1's churned tasks are gone: {third:?}"
    );
    assert_eq!(third.len(), 12, "pass 2's churned ones are not yet");
    wait_until(
        "agents no pass saw expire whole",
        Duration::from_secs(30),
        || world.stored_keys().is_empty(),
    );
}

#[test]
fn a_broker_lost_mid_pass_loses_no_cpu_second() {
    let mut broker = Broker::private();
    let world = World::on_broker(fresh_spec(10, 2), &broker);
    declare_queue(&world.broker, &world.queue);
    world.collect().assert_success();
    let baseline = world.stored_timestamps();

    // Pass 2 loses the broker after its first agent's documents were confirmed (so it
    // is partial, exit 3) and long before its last agent (ten seconds of slow agents).
    slow_agents(&world, 10, Duration::from_secs(1));
    let running = world
        .collector()
        .args(["--workers", "1", "--deadline", "30", "collect"])
        .spawn();
    world.wait_for_a_reading_newer_than(&baseline, Duration::from_secs(30));
    broker.stop();
    let broken = running.wait();
    broken.assert_status(3);
    assert!(broken.stderr.contains("not delivered"), "{broken}");

    broker.start_again();
    set_agents(&world, 10, AgentFault::Healthy);
    world.collect().assert_success();
    let docs: Vec<Value> = world.messages().into_iter().map(|m| m.body).collect();
    let tasks: BTreeMap<String, TaskInfo> = world.tasks_by_id();
    for (id, task) in &tasks {
        let mine: Vec<&Value> = docs
            .iter()
            .filter(|d| d["taskname"] == id.as_str())
            .collect();
        let (covered, usr_secs) = chain_back_to(&mine, baseline[id]);
        // Every CPU second between the first reading and the last document is reported.
        let expected = task.rates.user * covered;
        assert!(
            (usr_secs - expected).abs() < 1e-3,
            "{id}: reported {usr_secs}, grew {expected}"
        );
    }
}

/// Walks a task's documents back from the newest, each ending where the next began, to
/// the baseline reading: fails on a gap. Returns the time covered and the CPU seconds
/// reported along the chain (a document whose interval a later one covers again, from a
/// lost confirm, is not on the chain).
fn chain_back_to(docs: &[&Value], baseline: f64) -> (f64, f64) {
    let num = |d: &Value, f: &str| d[f].as_f64().unwrap_or_else(|| panic!("{f} in {d}"));
    let newest = docs
        .iter()
        .max_by(|a, b| num(a, "timestamp").total_cmp(&num(b, "timestamp")))
        .expect("at least one document per task");
    let end = num(newest, "timestamp");
    let (mut start, mut usr) = (
        end - num(newest, "period_secs"),
        num(newest, "cpu_usr_secs"),
    );
    while (start - baseline).abs() > 1e-4 {
        let previous = docs
            .iter()
            .find(|d| (num(d, "timestamp") - start).abs() < 1e-4)
            .unwrap_or_else(|| panic!("a gap before {start} (baseline {baseline}): {docs:?}"));
        start = num(previous, "timestamp") - num(previous, "period_secs");
        usr += num(previous, "cpu_usr_secs");
    }
    (end - baseline, usr)
}

#[test]
fn redis_failing_after_a_confirm_reports_that_interval_again_never_a_gap() {
    let world = World::start(fresh_spec(4, 2));
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    slow_agents(&world, 4, Duration::from_millis(400));
    let running = world
        .collector()
        .args(["--workers", "1", "collect"])
        .spawn();
    let lock = format!("{}lock", world.prefix);
    world.wait_for_lock(&lock);
    // Redis now refuses every write but still answers reads: the pass loads its previous
    // readings and publishes, but cannot store the new ones.
    let mut conn = world.redis.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query(&mut conn)
        .expect("CONFIG");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query(&mut conn)
        .expect("CONFIG");
    let run = running.wait();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .query(&mut conn)
        .expect("CONFIG");
    run.assert_status(3);
    assert!(run.stderr.contains("readings not stored"), "{run}");
    assert!(run.stderr.contains("unstored=8"), "{run}");
    assert_eq!(world.stored_timestamps(), baseline, "no reading advanced");
    let second: Vec<Value> = world.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(second.len(), 8, "delivered before the store failed");

    // The next pass covers the same interval again, inside a longer one: an overlap a
    // consumer can see (different message ids), never a gap.
    set_agents(&world, 4, AgentFault::Healthy);
    world.collect().assert_success();
    let third: Vec<Value> = world.messages().into_iter().map(|m| m.body).collect();
    assert_eq!(third.len(), 8);
    for doc in &third {
        let key = doc["taskname"].as_str().expect("taskname");
        let start =
            doc["timestamp"].as_f64().expect("ts") - doc["period_secs"].as_f64().expect("period");
        assert!(
            (start - baseline[key]).abs() < 1e-4,
            "starts at the old baseline: {doc}"
        );
        let earlier = second
            .iter()
            .find(|d| d["taskname"] == doc["taskname"])
            .expect("reported before");
        assert!(
            earlier["timestamp"].as_f64() < doc["timestamp"].as_f64(),
            "a different message id"
        );
    }
}

//! The readings' layout and the outbox (docs/state.md), against a real Redis and real
//! RabbitMQ nodes: the previous release's readings read by the first pass of this one, the
//! memory a task costs, and every interval exactly once (after dropping repeated message
//! ids) through a frozen broker, a killed broker, a memory alarm, a dead queue, a killed
//! Redis and SIGTERM.

use crate::common::*;
use mesos_sim::{AgentFault, Repeat};
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
        .arg(format!("{}layout/by-address/since", world.prefix))
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
    // the previous releases' keys may live, their MGET) and one store (SET, DEL); the pass
    // itself adds the lock (SET, and GET and DEL in its release script), the layout
    // marker (SET NX EX, EXPIRE, GET, and DEL of the last release's marker) and where its
    // agents start (GET of the turn; a pass that starts every agent writes none).
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
        ("get", 23),
        ("getset", 20),
        ("expire", 21),
        ("mget", 20),
        ("set", 22),
        ("del", 22),
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

// ---------------------------------------------------------------------------------------------
// One agent id listed twice (real masters do), and the keys' lifetimes.

/// Every key under the world's prefix, with its time to live in seconds: each must have
/// one, and none longer than `longest`.
fn assert_every_key_expires(world: &World, longest: i64) -> Vec<(String, i64)> {
    let mut conn = world.redis.conn();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", world.prefix))
        .query(&mut conn)
        .expect("KEYS");
    keys.sort();
    let ttls: Vec<(String, i64)> = keys
        .into_iter()
        .map(|k| {
            let ttl: i64 = redis::cmd("TTL").arg(&k).query(&mut conn).expect("TTL");
            (k, ttl)
        })
        .collect();
    for (key, ttl) in &ttls {
        assert!(*ttl > 0 && *ttl <= longest, "{key}: TTL {ttl}: {ttls:?}");
    }
    ttls
}

/// The stored values by key, each decoded into its host and its tasks' executor ids.
fn stored_entries(world: &World) -> BTreeMap<String, (String, Vec<String>)> {
    world
        .stored_values()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{}agent/", world.prefix)))
        .map(|(k, v)| {
            let (host, tasks) = decode_agent_value(&v).unwrap_or_else(|| panic!("{k} decodes"));
            let mut ids: Vec<String> = tasks.into_iter().map(|t| t.executor_id).collect();
            ids.sort();
            (k, (host, ids))
        })
        .collect()
}

/// The key of an entry's state: its agent id at its address (docs/state.md).
fn entry_key(world: &World, id: &str, address: &str) -> String {
    format!("{}agent/{id}/{address}", world.prefix)
}

#[test]
fn an_agent_id_at_two_addresses_is_two_states_and_at_one_address_one_agent() {
    let mut spec = fresh_spec(3, 3);
    spec.repeats = vec![
        Repeat::SameId {
            agent: 1,
            as_agent: 0,
            same_tasks: false,
        },
        Repeat::SameAddress { agent: 2 },
    ];
    let world = World::start(spec);
    let agents = world.cluster.agents();
    assert_eq!(
        agents[0].id, agents[1].id,
        "the simulator lists one id twice"
    );
    let tasks = world.tasks_by_id();
    for pass in 0..3 {
        let run = if pass == 0 {
            world.collect()
        } else {
            world.next_pass()
        };
        run.assert_success();
        assert_eq!(run.summary_count("listed"), 3, "{run}");
        assert_eq!(run.summary_count("answered"), 3, "{run}");
        assert_eq!(
            run.stderr.matches("repeat an agent listed before").count(),
            1,
            "the repeat is logged once per pass: {run}"
        );
        let published = run.summary_count("published");
        assert_eq!(published, if pass == 0 { 0 } else { 9 }, "{run}");
        let messages = world.messages();
        assert_eq!(messages.len() as u64, published, "{run}");
        let mut seen = std::collections::HashSet::new();
        for m in &messages {
            let doc = &m.body;
            let name = doc["taskname"].as_str().expect("taskname");
            let task = &tasks[name];
            assert!(seen.insert(name.to_string()), "{name} twice in a pass");
            assert_eq!(doc["host"], agents[task.agent].address.as_str(), "{doc}");
            assert_matches_rates(doc, task);
        }
        // Each entry's own key, holding its own host and tasks; nothing else.
        let expected: BTreeMap<String, (String, Vec<String>)> = agents
            .iter()
            .map(|a| {
                let mut ids: Vec<String> = tasks
                    .values()
                    .filter(|t| t.agent == a.index)
                    .map(|t| t.executor_id.clone().expect("no churn"))
                    .collect();
                ids.sort();
                (
                    entry_key(&world, &a.id, &a.address),
                    (a.address.clone(), ids),
                )
            })
            .collect();
        assert_eq!(stored_entries(&world), expected);
        assert_every_key_expires(&world, 1200);
    }
}

#[test]
fn an_agent_id_at_two_addresses_with_the_same_executor_ids_gets_documents_for_each() {
    let mut spec = fresh_spec(2, 3);
    spec.repeats = vec![Repeat::SameId {
        agent: 1,
        as_agent: 0,
        same_tasks: true,
    }];
    let world = World::start(spec);
    let agents = world.cluster.agents();
    world.collect().assert_success();
    // Per (host, task), where its last document ended (its first reading at first).
    let mut ends: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (key, value) in world.stored_values() {
        let (host, stored) = decode_agent_value(&value).expect("decodes");
        assert!(key.ends_with(&format!("/{host}")), "{key} holds {host}");
        for task in stored {
            ends.insert((host.clone(), task.executor_id), task.base.timestamp);
        }
    }
    assert_eq!(ends.len(), 6, "three tasks at each address: {ends:?}");
    let mut message_ids = std::collections::HashSet::new();
    for _ in 0..2 {
        let run = world.next_pass();
        run.assert_success();
        assert_eq!(run.summary_count("published"), 6, "{run}");
        let messages = world.messages();
        assert_eq!(messages.len(), 6, "{run}");
        for m in &messages {
            // A consumer that drops repeated message ids keeps every one of them.
            let id = m.message_id.clone().expect("a message id");
            assert!(message_ids.insert(id.clone()), "{id} repeated");
            let doc = &m.body;
            let host = doc["host"].as_str().expect("host").to_string();
            let name = doc["taskname"].as_str().expect("taskname").to_string();
            let task = world
                .cluster
                .tasks()
                .into_iter()
                .find(|t| t.executor_id.as_deref() == Some(name.as_str()))
                .expect("a served task");
            assert_matches_rates(doc, &task);
            let end = doc["timestamp"].as_f64().expect("timestamp");
            let start = end - doc["period_secs"].as_f64().expect("period");
            let at = ends
                .insert((host.clone(), name.clone()), end)
                .unwrap_or_else(|| panic!("{host} {name} was never read"));
            assert!(
                (start - at).abs() < 1e-4,
                "{host} {name}: starts at {start}, the last ended at {at}"
            );
        }
        let hosts: std::collections::BTreeSet<&str> = messages
            .iter()
            .filter_map(|m| m.body["host"].as_str())
            .collect();
        let addresses: std::collections::BTreeSet<&str> =
            agents.iter().map(|a| a.address.as_str()).collect();
        assert_eq!(hosts, addresses);
    }
}

#[test]
fn a_pass_killed_between_load_and_store_over_an_id_listed_twice_loses_nothing() {
    let broker = Broker::private();
    let mut spec = fresh_spec(4, 2);
    spec.repeats = vec![
        Repeat::SameId {
            agent: 1,
            as_agent: 0,
            same_tasks: false,
        },
        Repeat::SameId {
            agent: 3,
            as_agent: 2,
            same_tasks: false,
        },
    ];
    let world = World::on_broker(spec, &broker);
    declare_queue(&world.broker, &world.queue);
    world.collect().assert_success();
    let baseline = world.stored_timestamps();
    assert_eq!(baseline.len(), 8);
    slow(&world, 4, Some(Duration::from_millis(300)));
    let running = spawn_slow_pass(&world);
    wait_for_first_documents(&world);
    // An agent between its load (its write-ahead written) and its store: its documents
    // wait for confirms from a frozen broker when the pass is killed.
    broker.freeze(true);
    wait_until("a write-ahead", Duration::from_secs(20), || {
        world.stored_keys().iter().any(|k| k.contains("wal/"))
    });
    let run = running.kill();
    broker.freeze(false);
    // What a killed pass leaves expires too: values, write-aheads, the lock, the marker.
    let ttls = assert_every_key_expires(&world, 1200);
    assert!(
        ttls.iter().any(|(k, _)| k.ends_with("lock")),
        "the killed pass's lock: {ttls:?}\n{run}"
    );
    assert!(ttls.iter().any(|(k, _)| k.contains("layout/")), "{ttls:?}");
    let _: () = redis::cmd("DEL")
        .arg(format!("{}lock", world.prefix))
        .query(&mut world.redis.conn())
        .expect("DEL");
    assert_exactly_once(&world, 4, &baseline);
}

#[test]
fn a_broker_outage_longer_than_the_state_ttl_loses_no_interval() {
    let world = World::start(fresh_spec(3, 2));
    let pass = || world.collector().args(["--state-ttl", "6", "collect"]);
    pass().run().assert_success();
    world.wait_for_new_samples();
    let run = pass().run();
    run.assert_success();
    assert_eq!(run.summary_count("published"), 6, "{run}");
    let delivered = world.stored_timestamps();
    drop(world.messages());
    // Four passes over more than the TTL with the broker unreachable: its port refuses
    // connections, as a stopped broker's does.
    let dead = format!("127.0.0.1:{}", free_port());
    let outage = std::time::Instant::now();
    for _ in 0..4 {
        let run = pass().env("STATS_COLLECTOR_RABBITMQ_HOST", &dead).run();
        run.assert_status(69);
        assert!(
            run.stderr.contains("of 3 agents are kept for another 6s"),
            "{run}"
        );
        std::thread::sleep(Duration::from_millis(2200));
    }
    assert!(outage.elapsed() > Duration::from_secs(8));
    let run = pass().run();
    run.assert_success();
    assert_eq!(run.summary_count("first_sightings"), 0, "{run}");
    assert_eq!(run.summary_count("published"), 6, "{run}");
    let messages = world.messages();
    let ends = world.stored_timestamps();
    let tiling = assert_intervals_tile(&messages, &delivered, Some(&ends));
    assert_eq!(tiling.kept, 6, "one longer document per task");
    for m in &messages {
        assert!(m.body["period_secs"].as_f64() > Some(8.0), "{}", m.body);
    }
}

#[test]
fn a_broker_blocked_longer_than_the_state_ttl_loses_no_interval() {
    let broker = Broker::private();
    let world = World::on_broker(fresh_spec(3, 2), &broker);
    declare_queue(&world.broker, &world.queue);
    let pass = || {
        world
            .collector()
            .args([
                "--state-ttl",
                "6",
                "--workers",
                "1",
                "--blocked-timeout",
                "1",
            ])
            .arg("collect")
            .run()
    };
    pass().assert_success();
    world.wait_for_new_samples();
    pass().assert_success();
    let delivered = world.stored_timestamps();
    drop(world.messages());
    // Passes over more than the TTL against a broker that blocks publishers: each halts
    // at its first agent, and the agents it never started keep their state.
    broker.set_memory_alarm(true);
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(9) {
        let run = pass();
        assert_ne!(run.status, Some(0), "{run}");
        assert!(run.stderr.contains("kept for another 6s"), "{run}");
        std::thread::sleep(Duration::from_millis(1000));
    }
    broker.set_memory_alarm(false);
    let run = pass();
    run.assert_success();
    assert_eq!(run.summary_count("first_sightings"), 0, "{run}");
    let messages = world.messages();
    let ends = world.stored_timestamps();
    let tiling = assert_intervals_tile(&messages, &delivered, Some(&ends));
    assert!(tiling.kept >= 6, "{tiling:?}");
}

/// A value of the last release's layout (`<prefix>agent/<agent id>`, or its write-ahead):
/// the version tag, the host, then per task its executor id, when it was stored and its
/// reading at `t` (the counters of [`entry`]; the limits and memory too when `whole`, as a
/// write-ahead keeps them) with nothing pending.
fn last_release_value(host: &str, t: f64, whole: bool) -> Vec<u8> {
    let mut out = b"as\x01".to_vec();
    let push_str = |out: &mut Vec<u8>, s: &str| {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    };
    push_str(&mut out, host);
    for id in IDS {
        push_str(&mut out, id);
        out.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x06]); // stored at 1610612736
                                                                // The user and system counters; the CPU limit, RSS and memory limit when whole.
        out.push(if whole { 1 | 2 | 8 | 16 | 32 } else { 1 | 2 });
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(t / 10.0).to_le_bytes());
        out.extend_from_slice(&(t / 100.0).to_le_bytes());
        if whole {
            out.extend_from_slice(&1.1f64.to_le_bytes());
            out.extend_from_slice(&[0x80, 0x04, 0x80, 0x08]); // 512 and 1024
        }
        out.push(0);
    }
    out
}

#[test]
fn the_first_pass_reads_the_last_release_layout_by_agent_id_for_its_own_address() {
    let mut spec = fresh_spec(2, 2);
    spec.repeats = vec![Repeat::SameId {
        agent: 1,
        as_agent: 0,
        same_tasks: false,
    }];
    let world = World::start(spec);
    let agents = world.cluster.agents();
    let mut conn = world.redis.conn();
    // The last release kept one value per id: here written by the entry at agent 0's
    // address, with the write-ahead of a pass killed at 1030.
    for (kind, t, whole) in [("agent/", 1000.0, false), ("wal/", 1030.0, true)] {
        let _: () = redis::cmd("SET")
            .arg(format!("{}{kind}{}", world.prefix, agents[0].id))
            .arg(last_release_value(&agents[0].address, t, whole))
            .arg("EX")
            .arg(600)
            .query(&mut conn)
            .expect("SET");
    }
    for agent in 0..2 {
        world
            .cluster
            .set_agent_fault(agent, AgentFault::Body(answer(1060.0)));
    }
    let run = world.collect();
    run.assert_success();
    assert_eq!(run.summary_count("first_sightings"), 2, "agent 1's: {run}");
    assert_eq!(run.summary_count("published"), 4, "{run}");
    let mut periods: Vec<(String, f64, f64)> = world
        .messages()
        .iter()
        .map(|m| {
            let num = |f: &str| m.body[f].as_f64().expect(f);
            let host = m.body["host"].as_str().expect("host").to_string();
            (host, num("timestamp"), num("period_secs"))
        })
        .collect();
    periods.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    let at_0 = |t: f64, p: f64| (agents[0].address.clone(), t, p);
    assert_eq!(
        periods,
        [
            at_0(1030.0, 30.0),
            at_0(1030.0, 30.0),
            at_0(1060.0, 30.0),
            at_0(1060.0, 30.0)
        ],
        "the write-ahead's interval, then this pass's, at agent 0 only"
    );
    // Each entry's own key; the last release's is left to expire.
    let stored = stored_entries(&world);
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert!(stored.contains_key(&format!("{}agent/{}", world.prefix, agents[0].id)));
    for agent in &agents {
        let key = entry_key(&world, &agent.id, &agent.address);
        assert_eq!(stored[&key].0, agent.address);
    }
}

//! Sharding (`--shard K/N`, `STATS_COLLECTOR_SHARD`; docs/scale.md): N collectors split the
//! agents by FNV-1a 64 of the agent id (shard K takes the ids whose hash mod N is K-1), so
//! together they publish every task's document exactly once, and each shard has a pass lock
//! of its own (`<prefix>lock:K-of-N`), so shards never wait for each other.

use crate::common::*;
use mesos_sim::{AgentFault, AgentInfo};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const SHARDS: u64 = 3;

/// The shard (1-based) an agent belongs to.
fn shard_of(agent: &AgentInfo) -> u64 {
    fnv1a(agent.id.as_bytes()) % SHARDS + 1
}

/// The agent addresses of each shard, as the documented hash assigns them.
fn expected_shards(world: &World) -> BTreeMap<u64, BTreeSet<String>> {
    let mut shards: BTreeMap<u64, BTreeSet<String>> =
        (1..=SHARDS).map(|k| (k, BTreeSet::new())).collect();
    for agent in world.cluster.agents() {
        shards
            .entry(shard_of(&agent))
            .or_default()
            .insert(agent.address);
    }
    shards
}

/// One collecting pass of shard `k` of [`SHARDS`].
fn collect_shard(world: &World, k: u64) -> Run {
    world
        .collector()
        .args(["--shard", &format!("{k}/{SHARDS}"), "collect"])
        .run()
}

#[test]
fn shards_together_publish_every_task_once_from_disjoint_agents() {
    let world = World::start(fresh_spec(12, 3));
    let expected = expected_shards(&world);
    let all_agents: BTreeSet<String> = world
        .cluster
        .agents()
        .into_iter()
        .map(|a| a.address)
        .collect();
    let all_tasks: BTreeSet<String> = world
        .cluster
        .tasks()
        .into_iter()
        .map(|t| t.executor_id.expect("no churning tasks in this cluster"))
        .collect();
    assert_eq!(all_tasks.len(), 36);

    // First round: every shard stores its own tasks and publishes nothing.
    for k in 1..=SHARDS {
        let run = collect_shard(&world, k);
        run.assert_success();
        assert_eq!(
            run.summary_count("listed"),
            expected[&k].len() as u64,
            "shard {k} lists only its agents: {run}"
        );
        assert_eq!(run.summary_count("published"), 0, "{run}");
    }
    assert!(
        world.messages().is_empty(),
        "a first pass publishes nothing"
    );
    let stored: BTreeSet<String> = world.stored_tasks().into_keys().collect();
    assert_eq!(stored, all_tasks, "the three shards stored every task once");

    world.wait_for_new_samples();

    // Second round: each shard publishes the tasks of its own agents.
    let mut published: BTreeMap<String, u64> = BTreeMap::new();
    let mut agents_seen: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for k in 1..=SHARDS {
        let run = collect_shard(&world, k);
        run.assert_success();
        let messages = world.messages();
        assert_eq!(
            run.summary_count("published"),
            messages.len() as u64,
            "{run}"
        );
        let hosts: BTreeSet<String> = messages
            .iter()
            .map(|m| m.body["host"].as_str().expect("host").to_string())
            .collect();
        assert_eq!(
            hosts, expected[&k],
            "shard {k} handles exactly the agents whose id hashes to it"
        );
        for m in &messages {
            let task = m.body["taskname"].as_str().expect("taskname").to_string();
            *published.entry(task).or_default() += 1;
        }
        agents_seen.insert(k, hosts);
    }
    let twice: Vec<_> = published.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "tasks published more than once: {twice:?}"
    );
    assert_eq!(published.len(), 36, "one document per task in all");
    assert_eq!(
        published.keys().cloned().collect::<BTreeSet<_>>(),
        all_tasks
    );
    let mut union = BTreeSet::new();
    for (k, hosts) in &agents_seen {
        for (other, other_hosts) in &agents_seen {
            if k < other {
                assert!(
                    hosts.is_disjoint(other_hosts),
                    "shards {k} and {other} share agents: {:?}",
                    hosts.intersection(other_hosts).collect::<Vec<_>>()
                );
            }
        }
        union.extend(hosts.iter().cloned());
    }
    assert_eq!(union, all_agents, "together the shards cover every agent");
}

#[test]
fn each_shard_has_its_own_lock() {
    let world = World::start(fresh_spec(12, 3));
    let expected = expected_shards(&world);
    // The biggest shard has at least 4 of the 12 agents: slowed down, one worker makes its
    // pass last at least 2 s.
    let (&busy, busy_agents) = expected
        .iter()
        .max_by_key(|(_, agents)| agents.len())
        .expect("three shards");
    let other = busy % SHARDS + 1;
    for agent in world.cluster.agents() {
        if busy_agents.contains(&agent.address) {
            world
                .cluster
                .set_agent_fault(agent.index, AgentFault::Slow(Duration::from_millis(500)));
        }
    }
    let busy_lock = format!("{}lock:{busy}-of-{SHARDS}", world.prefix);
    let running = world
        .collector()
        .args(["--shard", &format!("{busy}/{SHARDS}"), "--workers", "1"])
        .arg("collect")
        .spawn();
    world.wait_for_lock(&busy_lock);
    assert!(
        !world.redis_exists(&format!("{}lock", world.prefix)),
        "a shard does not take the unsharded lock"
    );

    let beside = collect_shard(&world, other);
    beside.assert_success();
    assert_eq!(
        beside.summary_count("listed"),
        expected[&other].len() as u64,
        "{beside}"
    );

    let same = collect_shard(&world, busy);
    same.assert_status(75);
    assert!(
        same.stderr
            .contains(&format!("another pass holds the lock {busy_lock}")),
        "{same}"
    );

    assert!(
        world.redis_exists(&busy_lock),
        "shard {busy} still runs: this test did not overlap the passes"
    );
    running.wait().assert_success();
    assert!(
        !world.redis_exists(&busy_lock),
        "released by its owner at the end"
    );

    // A pass without --shard holding the unsharded lock does not stop a shard either.
    let _: () = redis::cmd("SET")
        .arg(format!("{}lock", world.prefix))
        .arg("an-unsharded-pass")
        .query(&mut world.redis.conn())
        .expect("SET");
    collect_shard(&world, other).assert_success();
}

#[test]
fn a_bad_shard_is_a_usage_error() {
    let world = World::start(fresh_spec(12, 3));
    for bad in ["0/3", "4/3", "1/0", "3", "x/3", "1/3/3", "-1/3", ""] {
        let run = world
            .collector()
            .args([format!("--shard={bad}"), "collect".into()])
            .run();
        run.assert_status(2);
        assert!(run.stderr.contains("--shard"), "{bad:?}: {run}");
    }
    let run = world
        .collector()
        .env("STATS_COLLECTOR_SHARD", "5/4")
        .arg("collect")
        .run();
    run.assert_status(2);
    assert!(run.stderr.contains("--shard"), "{run}");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut world.redis.conn())
        .expect("KEYS");
    assert!(keys.is_empty(), "a usage error writes nothing: {keys:?}");
    assert!(world.messages().is_empty());
    // The same cluster with a good value works, so the failures above were the value's.
    collect_shard(&world, 1).assert_success();
}

/// A pass of the 0-based shard `index` of [`SHARDS`], given as a scheduler gives it: in
/// the environment (`STATS_COLLECTOR_SHARD_INDEX`, `STATS_COLLECTOR_SHARD_COUNT`).
fn collect_indexed(world: &World, index: u64) -> Run {
    world
        .collector()
        .env("STATS_COLLECTOR_SHARD_INDEX", index.to_string())
        .env("STATS_COLLECTOR_SHARD_COUNT", SHARDS.to_string())
        .arg("collect")
        .run()
}

#[test]
fn a_shard_index_of_a_count_is_the_agents_and_lock_of_the_shard_one_above() {
    let world = World::start(fresh_spec(12, 3));
    let expected = expected_shards(&world);
    for index in 0..SHARDS {
        let run = collect_indexed(&world, index);
        run.assert_success();
        assert_eq!(
            run.summary_count("listed"),
            expected[&(index + 1)].len() as u64,
            "index {index}: {run}"
        );
    }
    world.wait_for_new_samples();
    for index in 0..SHARDS {
        collect_indexed(&world, index).assert_success();
        let hosts: BTreeSet<String> = world
            .messages()
            .iter()
            .map(|m| m.body["host"].as_str().expect("host").to_string())
            .collect();
        assert_eq!(
            hosts,
            expected[&(index + 1)],
            "index {index} handles exactly the agents of --shard {}/{SHARDS}",
            index + 1
        );
    }

    // The same lock: index 1 of 3 waits for a pass holding shard 2/3's lock, whichever way
    // it is given; the other shards do not.
    let lock = format!("{}lock:2-of-{SHARDS}", world.prefix);
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("another-host:1:2")
        .query(&mut world.redis.conn())
        .expect("SET the lock");
    let held = collect_indexed(&world, 1);
    held.assert_status(75);
    assert!(
        held.stderr
            .contains(&format!("another pass holds the lock {lock}")),
        "{held}"
    );
    let flags = world
        .collector()
        .args(["--shard-index", "1", "--shard-count", "3", "collect"])
        .run();
    flags.assert_status(75);
    collect_indexed(&world, 0).assert_success();
}

#[test]
fn a_bad_shard_index_or_count_is_a_usage_error() {
    let world = World::start(fresh_spec(3, 1));
    for (args, line) in [
        (
            &["--shard-index", "1"][..],
            "STATS_COLLECTOR_SHARD_INDEX (--shard-index) and STATS_COLLECTOR_SHARD_COUNT \
             (--shard-count) go together: set both or neither",
        ),
        (
            &["--shard-count", "3"],
            "STATS_COLLECTOR_SHARD_INDEX (--shard-index) and STATS_COLLECTOR_SHARD_COUNT \
             (--shard-count) go together: set both or neither",
        ),
        (
            &["--shard-index", "3", "--shard-count", "3"],
            "STATS_COLLECTOR_SHARD_INDEX (--shard-index) is 0-based and must be below \
             STATS_COLLECTOR_SHARD_COUNT (--shard-count): got index 3 of 3 (0 to 2 are the shards)",
        ),
        (
            &["--shard-index", "0", "--shard-count", "0"],
            "STATS_COLLECTOR_SHARD_COUNT (--shard-count) must be above 0",
        ),
        (
            &["--shard", "1/3", "--shard-index", "1", "--shard-count", "3"],
            "--shard 1/3 and STATS_COLLECTOR_SHARD_INDEX (--shard-index) 1 of 3 name \
             different shards (index I of N is --shard (I+1)/N)",
        ),
        (
            &["--shard-index", "x", "--shard-count", "3"],
            "invalid value \"x\" for --shard-index",
        ),
    ] {
        let run = world.collector().args(args).arg("collect").run();
        run.assert_status(2);
        assert!(run.stderr.contains(line), "{args:?}: {run}");
    }
    // From the environment, as a scheduler sets it, the same.
    let run = world
        .collector()
        .env("STATS_COLLECTOR_SHARD_INDEX", "7")
        .env("STATS_COLLECTOR_SHARD_COUNT", "4")
        .arg("collect")
        .run();
    run.assert_status(2);
    assert!(run.stderr.contains("got index 7 of 4"), "{run}");
    // Both forms agreeing is fine.
    world
        .collector()
        .args(["--shard", "2/3", "--shard-index", "1", "--shard-count", "3"])
        .arg("collect")
        .run()
        .assert_success();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}lock*", world.prefix))
        .query(&mut world.redis.conn())
        .expect("KEYS");
    assert!(keys.is_empty(), "the lock is released: {keys:?}");
}

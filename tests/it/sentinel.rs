//! Redis Sentinel (docs/configuration.md, docs/state.md), against real processes on
//! loopback: a master, a replica and three sentinels per test (`SentinelGroup`). Passes find the
//! master through the sentinels; a failover between passes moves the next pass to the new
//! master with no change of configuration; a failover during a pass fails that pass like
//! any Redis failure and the next one covers the interval (no task has a hole in its
//! coverage; overlaps only where the new master lost a write); a node turned replica
//! mid-pass answers READONLY, a failed write whose readings are kept; two passes
//! overlapping after the lock was lost still add up; no password of the nodes or the
//! sentinels reaches any output. Clusters here bind agents on 127.41.x.y (`first_ip` [41, ...]).

use crate::common::*;
use mesos_sim::AgentFault;
use std::collections::BTreeMap;
use std::time::Duration;

/// A world whose collector reaches Redis through this group's sentinels.
fn through(world: &World, group: &SentinelGroup) -> Collector {
    world
        .collector()
        .env("STATS_COLLECTOR_REDIS_URL", group.url())
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
}

/// The stored reading's timestamp of every task on `node`, by executor id (the reading
/// the next document starts from, not a pending one).
fn stored_on(node: &RedisServer, prefix: &str) -> BTreeMap<String, f64> {
    let mut conn = node.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}agent/*"))
        .query(&mut conn)
        .expect("KEYS");
    keys.into_iter()
        .flat_map(|k| {
            let value: Vec<u8> = redis::cmd("GET").arg(&k).query(&mut conn).expect("GET");
            decode_agent_value(&value)
                .unwrap_or_else(|| panic!("{k} decodes"))
                .1
        })
        .map(|task| (task.executor_id, task.base.timestamp))
        .collect()
}

/// One document's interval: `(start, end)` = `(timestamp - period_secs, timestamp)`.
fn interval(doc: &serde_json::Value) -> (f64, f64) {
    let end = doc["timestamp"].as_f64().expect("timestamp");
    (end - doc["period_secs"].as_f64().expect("period_secs"), end)
}

/// Same instant, within the 5 decimals documents carry.
fn same(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-4
}

/// Checks the coverage of every task from its first reading (`origin`) on: every document
/// starts at the origin or where an earlier document ended (a reading that was stored),
/// so there is no hole, and the documents of one chain from the origin to the last end add
/// up to the CPU the task used over that span. Returns, by task, how many documents
/// overlapped what was already covered.
#[track_caller]
fn assert_covered(
    docs: &[serde_json::Value],
    origin: &BTreeMap<String, f64>,
    world: &World,
) -> BTreeMap<String, usize> {
    let tasks = world.tasks_by_id();
    let mut by_task: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for doc in docs {
        let task = doc["taskname"].as_str().expect("taskname").to_string();
        by_task.entry(task).or_default().push(doc);
    }
    let mut overlaps = BTreeMap::new();
    for (task, mut docs) in by_task {
        docs.sort_by(|a, b| interval(a).1.total_cmp(&interval(b).1));
        let origin = origin[&task];
        let mut covered = origin;
        let mut overlapping = 0;
        // Chains from the origin: the user CPU seconds of the documents leading to each
        // end, along documents that start where an earlier one ended.
        let mut chains: Vec<(f64, f64)> = vec![(origin, 0.0)];
        for doc in &docs {
            let (start, end) = interval(doc);
            let Some(&(_, before)) = chains.iter().find(|(at, _)| same(*at, start)) else {
                panic!(
                    "{task}: a document starts at {start}, where no earlier one ended \
                     ({chains:?}): a hole"
                );
            };
            if start < covered - 1e-4 {
                overlapping += 1;
            }
            let usr = doc["cpu_usr_secs"].as_f64().expect("cpu_usr_secs");
            chains.push((end, before + usr));
            covered = covered.max(end);
            assert_matches_rates(doc, &tasks[&task]);
        }
        let (_, chain_user_secs) = chains
            .iter()
            .find(|(at, _)| same(*at, covered))
            .copied()
            .unwrap_or_default();
        let used = tasks[&task].rates.user * (covered - origin);
        assert!(
            (chain_user_secs - used).abs() < 1e-3,
            "{task}: the chain's CPU adds up: {chain_user_secs} vs {used}"
        );
        overlaps.insert(task, overlapping);
    }
    overlaps
}

/// Every document in the queue, parsed, as the consumer keeps them.
fn documents(world: &World) -> Vec<serde_json::Value> {
    delivered(world.messages())
}

/// What a consumer that drops repeated message ids keeps: the first document of each id
/// (a pass sends again, under the same id, what a store lost after its confirm).
fn delivered(messages: impl IntoIterator<Item = Message>) -> Vec<serde_json::Value> {
    let mut seen = std::collections::HashSet::new();
    messages
        .into_iter()
        .filter(|m| seen.insert(m.message_id.clone().expect("every document has an id")))
        .map(|m| m.body)
        .collect()
}

/// A first pass, which stores every task's first reading on the master (where its
/// coverage starts: returned), and 0.6 s later a second, which publishes.
fn first_two_passes(world: &World, group: &SentinelGroup) -> BTreeMap<String, f64> {
    through(world, group).arg("collect").run().assert_success();
    let origin = stored_on(&group.nodes[group.master_index()], &world.prefix);
    assert_eq!(
        origin.len(),
        world.tasks_by_id().len(),
        "every reading stored"
    );
    std::thread::sleep(Duration::from_millis(600));
    through(world, group).arg("collect").run().assert_success();
    origin
}

/// Agent i of the first `agents` answers after i × `step` (Duration::ZERO: all at once):
/// a pass that stores readings all along, for a failover to meet.
fn answer_one_after_another(world: &World, agents: usize, step: Duration) {
    for agent in 0..agents {
        let fault = match step * agent as u32 {
            Duration::ZERO => AgentFault::Healthy,
            delay => AgentFault::Slow(delay),
        };
        world.cluster.set_agent_fault(agent, fault);
    }
}

/// Whether the node at `index` holds the lock `key`.
fn lock_held(group: &SentinelGroup, index: usize, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<bool>(&mut group.nodes[index].conn())
        .unwrap_or(false)
}

/// A pass 0.6 s after the last that publishes a document per task and logs that it uses
/// the master on `master_port`.
fn pass_through(world: &World, group: &SentinelGroup, master_port: u16) {
    std::thread::sleep(Duration::from_millis(600));
    let run = through(world, group).arg("collect").run();
    run.assert_success();
    let tasks = world.tasks_by_id().len() as u64;
    assert_eq!(count(&run.summary(), "published"), tasks, "{run}");
    let used = format!("Redis master 127.0.0.1:{master_port} (named by sentinel");
    assert!(run.stderr.contains(&used), "{run}");
}

#[test]
fn passes_find_the_master_through_the_sentinels_in_order() {
    let group = SentinelGroup::start();
    let world = World::start(spec(3, 2, [41, 0, 1]));
    let master = group.port_of(group.master_index());
    let first = group.sentinel_ports[0];

    let check = through(&world, &group).arg("check").run();
    check.assert_success();
    assert!(
        check.stdout.contains(&format!(
            "sentinel 127.0.0.1:{first} names master 127.0.0.1:{master}; PONG"
        )),
        "{check}"
    );
    // A dead sentinel and one that never answers first: the next one in the list
    // answers, and the line before the verdict says which.
    let dead = free_port();
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung = hung.local_addr().expect("address").port();
    let with_dead = group.url().replace(
        "sentinel://",
        &format!("sentinel://127.0.0.1:{dead},127.0.0.1:{hung},"),
    );
    let check = through(&world, &group)
        .env("STATS_COLLECTOR_REDIS_URL", &with_dead)
        .arg("check")
        .run();
    check.assert_success();
    assert!(
        check.stdout.contains(&format!(
            "sentinel 127.0.0.1:{first} names master 127.0.0.1:{master}"
        )),
        "{check}"
    );
    for (sentinel, why) in [(dead, "connection refused"), (hung, "timed out")] {
        let said = format!("Redis Sentinel: sentinel 127.0.0.1:{sentinel}: {why}");
        assert!(check.stderr.contains(&said), "{check}");
    }

    let origin = first_two_passes(&world, &group);
    pass_through(&world, &group, master);
    let overlaps = assert_covered(&documents(&world), &origin, &world);
    assert!(overlaps.values().all(|&n| n == 0), "{overlaps:?}");
    group.wait_replicated();
    assert_eq!(
        stored_on(&group.nodes[1], &world.prefix).len(),
        6,
        "replicated"
    );
}

#[test]
fn passes_speak_tls_to_the_sentinels_and_the_master() {
    let group = SentinelGroup::with_tls();
    let world = World::start(spec(3, 2, [41, 7, 1]));
    let master = group.port_of(group.master_index());
    let over_tls = || through(&world, &group).env("STATS_COLLECTOR_REDIS_CA_FILE", group.ca_file());
    let check = over_tls().arg("check").run();
    check.assert_success();
    assert!(
        check.stdout.contains("redis   ok    rediss+sentinel://")
            && check
                .stdout
                .contains(&format!("names master 127.0.0.1:{master}; PONG")),
        "{check}"
    );
    over_tls().arg("collect").run().assert_success();
    let origin = stored_on(&group.nodes[group.master_index()], &world.prefix);
    std::thread::sleep(Duration::from_millis(600));
    let run = over_tls().arg("collect").run();
    run.assert_success();
    assert_eq!(count(&run.summary(), "published"), 6, "{run}");
    assert_covered(&documents(&world), &origin, &world);
    // Without the CA, the sentinels' certificate is refused, and the line says so.
    let refused = through(&world, &group).arg("check").run();
    refused.assert_status(69);
    assert!(
        refused.stdout.contains("no sentinel named a usable master")
            && refused.stdout.contains("UnknownIssuer"),
        "{refused}"
    );
}

#[test]
fn after_a_failover_the_next_pass_uses_the_new_master_unchanged() {
    let group = SentinelGroup::start();
    let world = World::start(spec(3, 2, [41, 1, 1]));
    let origin = first_two_passes(&world, &group);

    group.wait_replicated();
    let old = group.master_index();
    group.start_failover();
    let new = group.wait_for_new_master(old);
    pass_through(&world, &group, group.port_of(new));
    let overlaps = assert_covered(&documents(&world), &origin, &world);
    assert!(
        overlaps.values().all(|&n| n == 0),
        "nothing was lost, so nothing overlaps: {overlaps:?}"
    );
    let latest = stored_on(&group.nodes[new], &world.prefix);
    assert!(
        latest.iter().all(|(task, &t)| t > origin[task]),
        "the new master holds the new readings"
    );
}

/// A pass over 10 agents answering one after another meets a failover once it has stored
/// some readings: the master killed (agent i answers after i × 0.5 s), or demoted by
/// `SENTINEL FAILOVER` (agent i after i × 2 s, so that the pass outlasts the ~10 s the
/// sentinels take to turn the old master into a replica).
fn failover_during_a_pass(kill: bool, first_ip: [u8; 3]) {
    let mut group = SentinelGroup::start();
    let world = World::start(spec(10, 2, first_ip));
    let origin = first_two_passes(&world, &group);
    let before = stored_on(&group.nodes[0], &world.prefix);
    let step = Duration::from_millis(if kill { 500 } else { 2000 });
    answer_one_after_another(&world, 10, step);
    let old = group.master_index();
    std::thread::sleep(Duration::from_millis(600));
    let started = std::time::Instant::now();
    let pass = through(&world, &group)
        .args(["--deadline", "40", "--request-timeout", "30"])
        .arg("collect")
        .spawn();
    // Once the pass stored some readings, the failover.
    wait_until("the pass stored readings", Duration::from_secs(30), || {
        stored_on(&group.nodes[old], &world.prefix) != before
    });
    let demoted = if kill {
        group.nodes[old].stop();
        started.elapsed()
    } else {
        // The old master takes writes until the sentinels demote it: those are lost.
        group.start_failover();
        wait_until(
            "the old master is a replica",
            Duration::from_secs(60),
            || group.role(old).as_deref() == Some("slave"),
        );
        started.elapsed()
    };
    let run = pass.wait();
    let summary = run.summary();
    eprintln!(
        "the pass met by the failover (the old master gone after {demoted:?}): {}",
        summary["message"]
    );
    // An agent that answered after the old master was gone met the failure: its
    // readings could not be loaded or stored (connection lost, READONLY), and the pass
    // is partial as for any Redis failure. The agents before it were delivered, so not 69.
    // A pass that ended before the demotion wrote to the old master throughout: exit 0,
    // and the next pass finds what was lost.
    let duration = summary["duration_secs"].as_f64().expect("duration");
    if duration > demoted.as_secs_f64() + step.as_secs_f64() {
        run.assert_status(3);
        assert!(
            count(&summary, "agents_failed") + count(&summary, "unstored") > 0,
            "{run}"
        );
    } else {
        assert!(matches!(run.status, Some(0 | 3)), "{run}");
    }
    assert_eq!(count(&summary, "agents_abandoned"), 0, "{run}");
    assert!(duration < 40.0, "within the deadline: {run}");
    assert_agents_add_up(&summary, &run);
    assert!(count(&summary, "published") > 0, "{run}");

    let new = group.wait_for_new_master(old);
    answer_one_after_another(&world, 10, Duration::ZERO);
    // A release the failover lost (sent to the old master) leaves the lock on the new
    // one until it expires, at the deadline: passes meanwhile exit 75.
    let lock = format!("{}lock", world.prefix);
    wait_until("the lock is free", Duration::from_secs(60), || {
        !lock_held(&group, new, &lock)
    });
    let held = stored_on(&group.nodes[new], &world.prefix);
    let sent = world.messages();
    let published_end: BTreeMap<String, f64> = sent.iter().fold(BTreeMap::new(), |mut m, d| {
        let d = &d.body;
        let task = d["taskname"].as_str().expect("taskname").to_string();
        let end = interval(d).1;
        let e = m.entry(task).or_insert(end);
        *e = e.max(end);
        m
    });
    // The readings the failing pass stored last are a moment old: a period the rates
    // can be checked over.
    std::thread::sleep(Duration::from_secs(1));
    let next = through(&world, &group).arg("collect").run();
    next.assert_success();
    // One document per task, and again those whose store the failover lost after their
    // confirm (held by a connection that died, or refused by the demoted master).
    let resent = count(&next.summary(), "resent");
    assert_eq!(
        count(&next.summary(), "published"),
        20 + resent,
        "{held:?}\n{run}\n{next}"
    );
    assert!(resent <= count(&summary, "unstored"), "{run}\n{next}");
    let all = delivered(sent.into_iter().chain(world.messages()));
    let overlaps = assert_covered(&all, &origin, &world);
    // An overlap only where the new master's reading is older than what was published:
    // a write replication lost, or a store the failover failed after its confirm.
    for (task, n) in &overlaps {
        let lost = held[task] < published_end[task] - 1e-4;
        assert!(
            *n <= usize::from(lost),
            "{task}: {n} overlaps, lost write: {lost}"
        );
    }
    eprintln!(
        "overlapping documents: {}",
        overlaps.values().sum::<usize>()
    );
}

#[test]
fn a_master_killed_during_a_pass_fails_it_and_the_next_pass_covers_the_interval() {
    failover_during_a_pass(true, [41, 2, 1]);
}

#[test]
fn a_sentinel_failover_during_a_pass_fails_it_and_the_next_pass_covers_the_interval() {
    failover_during_a_pass(false, [41, 3, 1]);
}

#[test]
fn two_passes_overlapping_after_the_lock_was_lost_still_add_up() {
    let group = SentinelGroup::start();
    let world = World::start(spec(6, 2, [41, 4, 1]));
    through(&world, &group)
        .arg("collect")
        .run()
        .assert_success();
    let origin = stored_on(&group.nodes[0], &world.prefix);
    // The first pass lasts 6 s (agent i answers after i × 1.2 s), the failover less.
    answer_one_after_another(&world, 6, Duration::from_millis(1200));
    let old = group.master_index();
    let lock = format!("{}lock", world.prefix);
    std::thread::sleep(Duration::from_millis(600));
    let first = through(&world, &group)
        .args(["--request-timeout", "30"])
        .arg("collect")
        .spawn();
    wait_until(
        "the first pass took the lock",
        Duration::from_secs(10),
        || lock_held(&group, old, &lock),
    );
    group.wait_replicated();
    group.start_failover();
    let new = group.wait_for_new_master(old);
    // The lock was replicated here; had the failover lost it, the new master would hold
    // none. That write lost is what this test is about, so it is removed by hand.
    let _: i64 = redis::cmd("DEL")
        .arg(&lock)
        .query(&mut group.nodes[new].conn())
        .expect("DEL");
    let second = through(&world, &group)
        .args(["--request-timeout", "30"])
        .arg("collect")
        .run();
    let first = first.wait();
    assert_ne!(second.status, Some(75), "the lock was lost: {second}");
    for run in [&first, &second] {
        assert!(matches!(run.status, Some(0 | 3)), "{run}");
        assert_agents_add_up(&run.summary(), run);
    }
    // The two passes did overlap: the second started before the first ended.
    let time = |line: Option<&str>| {
        let line: serde_json::Value = serde_json::from_str(line.unwrap_or_default()).expect("JSON");
        line["time"].as_str().expect("time").to_string()
    };
    let first_ended = time(first.stderr.lines().last());
    let second_started = time(second.stderr.lines().next());
    assert!(second_started < first_ended, "{first}\n{second}");

    answer_one_after_another(&world, 6, Duration::ZERO);
    pass_through(&world, &group, group.port_of(new));
    let overlapped = documents(&world);
    let overlaps = assert_covered(&overlapped, &origin, &world);
    eprintln!(
        "overlapping documents: {}",
        overlaps.values().sum::<usize>()
    );
    // One overlap of two passes, once: the pass after them tiles again.
    let settled = stored_on(&group.nodes[new], &world.prefix);
    pass_through(&world, &group, group.port_of(new));
    let after = documents(&world);
    for doc in &after {
        let task = doc["taskname"].as_str().expect("taskname");
        assert!(same(interval(doc).0, settled[task]), "{doc}");
    }
    let all: Vec<serde_json::Value> = overlapped.into_iter().chain(after).collect();
    assert_covered(&all, &origin, &world);
}

#[test]
fn a_master_turned_replica_during_a_pass_fails_its_writes_and_keeps_the_readings() {
    // Without sentinels, to meet READONLY itself: the pass's connections stay open while
    // their node turns into a replica, so only its answers tell.
    let world = World::start(spec(6, 2, [41, 6, 1]));
    let replica = RedisServer::replica_of(&world.redis);
    world.collect().assert_success();
    let origin = stored_on(&world.redis, &world.prefix);
    std::thread::sleep(Duration::from_millis(600));
    world.collect().assert_success();
    let before = stored_on(&world.redis, &world.prefix);
    answer_one_after_another(&world, 6, Duration::from_millis(1500));
    std::thread::sleep(Duration::from_millis(600));
    let pass = world
        .collector()
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
        .args(["--request-timeout", "30", "collect"])
        .spawn();
    wait_until("the pass stored readings", Duration::from_secs(30), || {
        stored_on(&world.redis, &world.prefix) != before
    });
    // The replica becomes the master and the master its replica, as a failover does.
    for (node, args) in [
        (&replica, vec!["NO".to_string(), "ONE".to_string()]),
        (
            &world.redis,
            vec!["127.0.0.1".to_string(), replica.port().to_string()],
        ),
    ] {
        let _: String = redis::cmd("REPLICAOF")
            .arg(args)
            .query(&mut node.conn())
            .expect("REPLICAOF");
    }
    let run = pass.wait();
    let summary = run.summary();
    run.assert_status(3);
    assert!(count(&summary, "unstored") > 0, "{run}");
    assert!(run.stderr.contains("READONLY"), "{run}");
    assert_agents_add_up(&summary, &run);

    // Each reading either advanced before the turn or stayed as the pass before left it.
    let held = stored_on(&replica, &world.prefix);
    let kept = held.iter().filter(|(task, t)| before[*task] == **t).count();
    assert!(
        kept as u64 >= count(&summary, "unstored"),
        "{held:?}\n{run}"
    );
    // The release met READONLY too; the lock is left to expire. Removed here, to go on.
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}lock", world.prefix))
        .query(&mut replica.conn())
        .expect("DEL");
    answer_one_after_another(&world, 6, Duration::ZERO);
    std::thread::sleep(Duration::from_secs(1));
    let next = world
        .collector()
        .env("STATS_COLLECTOR_REDIS_URL", replica.url())
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
        .arg("collect")
        .run();
    next.assert_success();
    let docs = documents(&world);
    let overlaps = assert_covered(&docs, &origin, &world);
    // The documents whose readings were not stored are reported again: sent again under
    // the same id when their write-ahead was written before the turn (the consumer drops
    // the repeat), else inside a longer interval, an overlap for exactly those tasks.
    let overlapping = overlaps.values().sum::<usize>();
    assert_eq!(
        overlapping as u64 + count(&next.summary(), "resent"),
        count(&summary, "unstored"),
        "{overlaps:?}\n{next}"
    );
}

#[test]
fn no_sentinel_or_master_password_reaches_any_output() {
    const MASTER_SECRET: &str = "Mq7sEcReT";
    const SENTINEL_SECRET: &str = "Sn4sEcReT";
    let group = SentinelGroup::with_passwords(Some(MASTER_SECRET), Some(SENTINEL_SECRET));
    let world = World::start(spec(2, 2, [41, 5, 1]));
    let good = group.url();
    let hosts: Vec<String> = group
        .sentinel_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let hosts = hosts.join(",");
    let name = SentinelGroup::NAME;
    let url = |text: String| vec![("STATS_COLLECTOR_REDIS_URL", text)];
    let cases: Vec<SecretCase> = vec![
        ("every secret valid", (0, 0, 0), url(good.clone())),
        (
            "a wrong master password",
            (69, 0, 69),
            url(good.replace(MASTER_SECRET, &format!("{MASTER_SECRET}x"))),
        ),
        (
            "a wrong sentinel password",
            (69, 0, 69),
            url(good.replace(SENTINEL_SECRET, &format!("{SENTINEL_SECRET}x"))),
        ),
        (
            "no sentinel password",
            (69, 0, 69),
            url(good.replace(&format!("?sentinel_password={SENTINEL_SECRET}"), "")),
        ),
        (
            "no master name",
            (2, 2, 2),
            url(format!(
                "redis+sentinel://:{MASTER_SECRET}@{hosts}?sentinel_password={SENTINEL_SECRET}"
            )),
        ),
        (
            "an unknown query parameter",
            (2, 2, 2),
            url(format!(
                "redis+sentinel://:{MASTER_SECRET}@{hosts}/{name}?password={SENTINEL_SECRET}"
            )),
        ),
        (
            "a secret where a sentinel's port goes",
            (2, 2, 2),
            url(format!(
                "redis+sentinel://{hosts},127.0.0.1:{SENTINEL_SECRET}/{name}"
            )),
        ),
    ];
    // What each sentinel said; without a secret, as the runs below check.
    let first = group.sentinel_ports[0];
    let reasons = [
        (
            &cases[1].2[0].1,
            format!("sentinel 127.0.0.1:{first} names 127.0.0.1:"),
        ),
        (
            &cases[2].2[0].1,
            format!("sentinel 127.0.0.1:{first}: authentication failed"),
        ),
    ];
    for (url, reason) in reasons {
        let check = world
            .collector()
            .env("STATS_COLLECTOR_REDIS_URL", url)
            .arg("check")
            .run();
        assert!(
            check.stdout.contains("no sentinel named a usable master: ")
                && check.stdout.contains(&reason),
            "{check}"
        );
    }
    let forms = [MASTER_SECRET.to_string(), SENTINEL_SECRET.to_string()];
    assert_no_secret_in_any_output(|| world.collector(), &cases, &forms);
}

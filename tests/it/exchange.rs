//! Past one queue (docs/publishing.md): documents published to a named exchange under a
//! routing key per document, against real RabbitMQ nodes: a topic exchange routing by app,
//! a consistent-hash exchange spreading tasks over four queues, an exchange that routes
//! nowhere (the documents come back and the next pass sends them again), a missing one
//! (the pass stops before any write) and one the collector declares; `check`'s line about
//! the exchange; keys over 255 bytes fitted; a blocked broker behind an exchange.

use crate::common::*;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::ExchangeKind;
use mesos_sim::ClusterSpec;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Declares a durable exchange of this kind (as an operator or a consumer would).
fn declare_exchange(broker: &str, name: &str, kind: ExchangeKind) {
    let conn = amqp_connect(broker);
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    conn.wait(
        conn.channel()
            .exchange_declare(name.into(), kind, durable, Default::default()),
    )
    .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

/// Declares a durable queue and binds it to the exchange with this key.
fn bind_queue(broker: &str, queue: &str, exchange: &str, key: &str) {
    let conn = amqp_connect(broker);
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    conn.wait(
        conn.channel()
            .queue_declare(queue.into(), durable, Default::default()),
    )
    .unwrap_or_else(|e| panic!("declare queue {queue}: {e}"));
    conn.wait(conn.channel().queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        Default::default(),
    ))
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with {key}: {e}"));
}

/// Deletes the exchange (no error if it does not exist).
fn delete_exchange(broker: &str, name: &str) {
    let conn = amqp_connect(broker);
    conn.wait(
        conn.channel()
            .exchange_delete(name.into(), Default::default()),
    )
    .unwrap_or_else(|e| panic!("delete exchange {name}: {e}"));
}

/// The collector of this world publishing to `exchange` under `key`.
fn to_exchange(world: &World, exchange: &str, key: &str) -> Collector {
    world
        .collector()
        .env("STATS_COLLECTOR_RABBITMQ_EXCHANGE", exchange)
        .env("STATS_COLLECTOR_RABBITMQ_RK", key)
}

/// What the key template does to a field's value (docs/publishing.md): `/` becomes `.`
/// (a leading one dropped) and `.` becomes `_`. Written out again here so the tests
/// check the collector against the documented rule.
fn key_value(value: &str) -> String {
    let value = value.strip_prefix('/').unwrap_or(value);
    value
        .chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '_',
            c => c,
        })
        .collect()
}

fn message_ids(messages: &[Message]) -> BTreeSet<String> {
    messages
        .iter()
        .map(|m| m.message_id.clone().expect("a message id"))
        .collect()
}

#[test]
fn a_topic_exchange_routes_each_document_under_its_apps_key() {
    // Groups with a dot: the key's words are the app id's segments, a dot inside one
    // becoming `_`.
    let spec = ClusterSpec {
        group_prefix: "eu.west".into(),
        ..fresh_spec(4, 10)
    };
    let world = World::without_queue(spec);
    let exchange = unique_name("asgard-topic");
    let key = "asgard.stats.{appname}";
    // The first pass declares the exchange (it publishes nothing: first sightings).
    let first = to_exchange(&world, &exchange, key)
        .args(["--declare-exchange", "--exchange-type", "topic", "collect"])
        .run();
    first.assert_success();
    let (all, prod) = (unique_name("asgard-all"), unique_name("asgard-prod"));
    bind_queue(&world.broker, &all, &exchange, "asgard.stats.#");
    bind_queue(
        &world.broker,
        &prod,
        &exchange,
        "asgard.stats.eu_west.prod.#",
    );
    world.wait_for_new_samples();
    // Without --declare-exchange the exchange is only looked up: it exists.
    let run = to_exchange(&world, &exchange, key).arg("collect").run();
    run.assert_success();
    assert!(run.stderr.contains("published=40 "), "{run}");

    let everything = drain_and_delete_queue(&world.broker, &all);
    let prod_only = drain_and_delete_queue(&world.broker, &prod);
    assert_eq!(everything.len(), 40);
    for m in &everything {
        let app = m.body["appname"].as_str().expect("appname");
        assert!(app.starts_with("/eu.west/"), "{app}");
        assert_eq!(m.routing_key, format!("asgard.stats.{}", key_value(app)));
        assert_eq!(
            m.message_id.as_deref().map(|id| id.contains('@')),
            Some(true)
        );
    }
    let prods: BTreeSet<String> = everything
        .iter()
        .filter(|m| {
            m.body["appname"]
                .as_str()
                .unwrap()
                .starts_with("/eu.west/prod/")
        })
        .map(|m| m.message_id.clone().unwrap())
        .collect();
    assert!(!prods.is_empty() && prods.len() < 40, "{}", prods.len());
    assert_eq!(message_ids(&prod_only), prods, "a binding takes one group");
    delete_exchange(&world.broker, &exchange);
}

#[test]
fn a_consistent_hash_exchange_spreads_the_demo_cluster_over_four_queues() {
    // The demo's cluster (scripts/demo): 300 agents x 20 tasks.
    let world = World::without_queue(fresh_spec(300, 20));
    let exchange = unique_name("asgard-hash");
    declare_exchange(
        &world.broker,
        &exchange,
        ExchangeKind::Custom("x-consistent-hash".into()),
    );
    let queues: Vec<String> = (0..4)
        .map(|i| unique_name(&format!("asgard-hash-{i}")))
        .collect();
    for queue in &queues {
        // For this exchange the binding key is the queue's weight: equal shares.
        bind_queue(&world.broker, queue, &exchange, "1");
    }
    let pass = || {
        let run = to_exchange(&world, &exchange, "{taskname}")
            .arg("collect")
            .run();
        run.assert_success();
        run
    };
    pass();
    world.wait_for_new_samples();
    let run = pass();
    assert!(run.stderr.contains("published=6000 "), "{run}");
    let taken: Vec<Vec<Message>> = queues
        .iter()
        .map(|q| drain_queue(&world.broker, q))
        .collect();
    let total: usize = taken.iter().map(Vec::len).sum();
    assert_eq!(total, 6000, "every document in exactly one queue");
    let ids: BTreeSet<String> = taken.iter().flat_map(|q| message_ids(q)).collect();
    assert_eq!(ids.len(), 6000, "no document in two queues");
    let mut queue_of_task = BTreeMap::new();
    for (index, messages) in taken.iter().enumerate() {
        let share = messages.len() as f64 / total as f64;
        assert!(
            (0.15..=0.35).contains(&share),
            "queue {index} took {:.1} % of the documents",
            share * 100.0
        );
        for m in messages {
            let task = m.body["taskname"].as_str().unwrap().to_string();
            assert_eq!(m.routing_key, key_value(&task));
            queue_of_task.insert(task, index);
        }
    }
    // The key is a pure function of the document: the next pass sends each task's
    // document to the same queue.
    world.wait_for_new_samples();
    pass();
    for (index, queue) in queues.iter().enumerate() {
        let messages = drain_and_delete_queue(&world.broker, queue);
        assert!(!messages.is_empty());
        for m in messages {
            let task = m.body["taskname"].as_str().unwrap();
            assert_eq!(queue_of_task[task], index, "{task} moved queues");
        }
    }
    delete_exchange(&world.broker, &exchange);
}

#[test]
fn an_exchange_that_routes_nowhere_gets_the_documents_again_by_the_next_pass() {
    let world = World::without_queue(fresh_spec(3, 2));
    let exchange = unique_name("asgard-nowhere");
    declare_exchange(&world.broker, &exchange, ExchangeKind::Topic);
    let key = "asgard.stats.{appname}";
    let pass = || to_exchange(&world, &exchange, key).arg("collect").run();
    pass().assert_success();
    let baseline = world.stored_timestamps();
    world.wait_for_new_samples();
    // Mandatory publishing: no queue is bound, so every document comes back.
    let run = pass();
    run.assert_status(69);
    assert!(
        run.stderr
            .contains("6 documents not delivered (unroutable)"),
        "{run}"
    );
    assert!(run.stderr.contains("routing key \"asgard.stats."), "{run}");
    assert_eq!(world.stored_timestamps(), baseline, "no reading advanced");
    let pending: usize = world.stored_tasks().values().map(|t| t.pending.len()).sum();
    assert_eq!(pending, 6, "each document is kept to be sent again");

    let queue = unique_name("asgard-bound");
    bind_queue(&world.broker, &queue, &exchange, "#");
    world.wait_for_new_samples();
    let run = pass();
    run.assert_success();
    assert!(run.stderr.contains("published=12 resent=6 "), "{run}");
    let messages = drain_and_delete_queue(&world.broker, &queue);
    assert_eq!(messages.len(), 12);
    // Sent again under their message ids and keys: the intervals tile, no hole.
    let tiling = assert_intervals_tile(&messages, &baseline, None);
    assert_eq!(tiling.kept, 12);
    for m in &messages {
        let app = m.body["appname"].as_str().unwrap();
        assert_eq!(m.routing_key, format!("asgard.stats.{}", key_value(app)));
    }
    delete_exchange(&world.broker, &exchange);
}

#[test]
fn a_missing_exchange_stops_the_pass_before_any_write_and_check_says_so() {
    let world = World::without_queue(fresh_spec(2, 2));
    let exchange = unique_name("asgard-missing");
    let key = "asgard.stats.{appname}";
    let run = to_exchange(&world, &exchange, key).arg("collect").run();
    run.assert_status(69);
    assert!(
        run.stderr.contains(&format!("exchange {exchange:?}")),
        "{run}"
    );
    assert!(run.stderr.contains("404"), "{run}");
    assert!(world.stored_keys().is_empty(), "Redis was written: {run}");
    assert!(!world.redis_exists(&format!("{}lock", world.prefix)));

    let check = to_exchange(&world, &exchange, key).arg("check").run();
    check.assert_status(69);
    assert!(
        check.stdout.lines().any(|l| l.starts_with("exchange")
            && l.contains("FAIL")
            && l.contains(&format!("{exchange:?} cannot be used"))),
        "{check}"
    );
    assert!(
        check.stdout.contains("the exchange cannot be used"),
        "{check}"
    );
    // Asked to declare it, check says a pass would, and the pass does.
    let declaring = || {
        to_exchange(&world, &exchange, key)
            .env("STATS_COLLECTOR_RABBITMQ_DECLARE_EXCHANGE", "1")
            .env(
                "STATS_COLLECTOR_RABBITMQ_EXCHANGE_TYPE",
                "x-consistent-hash",
            )
    };
    let check = declaring().arg("check").run();
    check.assert_success();
    assert!(
        check
            .stdout
            .contains("a pass declares it (x-consistent-hash, durable)"),
        "{check}"
    );
    declaring().arg("collect").run().assert_success();
    let check = to_exchange(&world, &exchange, key).arg("check").run();
    check.assert_success();
    let line = check
        .stdout
        .lines()
        .find(|l| l.starts_with("exchange"))
        .unwrap_or_else(|| panic!("{check}"));
    assert!(line.contains(&format!("{exchange:?} exists")), "{line}");
    assert!(line.contains("e.g. \"asgard.stats.group.app\""), "{line}");
    // An exchange of another type is not redeclared over: the broker refuses (406).
    let run = declaring()
        .env("STATS_COLLECTOR_RABBITMQ_EXCHANGE_TYPE", "topic")
        .arg("collect")
        .run();
    run.assert_status(69);
    assert!(run.stderr.contains("406"), "{run}");
    delete_exchange(&world.broker, &exchange);
}

/// Settings, arguments, and what the error says.
type Case = (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    &'static str,
);

#[test]
fn routing_keys_that_cannot_work_are_configuration_errors() {
    let world = World::without_queue(fresh_spec(1, 1));
    let cases: [Case; 4] = [
        (
            &[("STATS_COLLECTOR_RABBITMQ_RK", "asgard.{app}")],
            &[],
            "unknown field {app}",
        ),
        (
            &[("STATS_COLLECTOR_RABBITMQ_RK", "asgard.{appname")],
            &[],
            "left open",
        ),
        (
            &[("STATS_COLLECTOR_RABBITMQ_EXCHANGE", "stats")],
            &["--declare-queue"],
            "--declare-queue",
        ),
        (
            &[("STATS_COLLECTOR_RABBITMQ_RK", "{taskname}")],
            &["--declare-queue"],
            "without fields",
        ),
    ];
    for (env, args, says) in cases {
        let run = world
            .collector()
            .envs(env.iter().copied())
            .arg("collect")
            .args(args.iter().copied())
            .run();
        run.assert_status(2);
        assert!(run.stderr.contains(says), "{env:?} {args:?}: {run}");
        assert!(world.stored_keys().is_empty());
    }
}

#[test]
fn a_key_over_255_bytes_is_fitted_the_same_way_every_pass() {
    // App ids of 300 bytes: `{appname}` keys that AMQP cannot carry as they are.
    let spec = ClusterSpec {
        group_prefix: "g".repeat(150) + "/" + &"h".repeat(150),
        ..fresh_spec(2, 3)
    };
    let world = World::without_queue(spec);
    let exchange = unique_name("asgard-long");
    declare_exchange(&world.broker, &exchange, ExchangeKind::Topic);
    let queue = unique_name("asgard-long");
    bind_queue(&world.broker, &queue, &exchange, "#");
    let pass = || {
        to_exchange(&world, &exchange, "asgard.stats.{appname}.{taskname}")
            .args(["--log-format", "json", "collect"])
            .run()
            .assert_success()
            .summary()
    };
    pass();
    world.wait_for_new_samples();
    pass();
    let first = drain_queue(&world.broker, &queue);
    world.wait_for_new_samples();
    pass();
    let second = drain_and_delete_queue(&world.broker, &queue);
    assert_eq!((first.len(), second.len()), (6, 6));
    let keys = |messages: &[Message]| -> BTreeMap<String, String> {
        messages
            .iter()
            .map(|m| {
                let task = m.body["taskname"].as_str().unwrap().to_string();
                (task, m.routing_key.clone())
            })
            .collect()
    };
    let (before, after) = (keys(&first), keys(&second));
    assert_eq!(before, after, "the same task, the same key");
    let distinct: BTreeSet<&String> = before.values().collect();
    assert_eq!(distinct.len(), 6, "distinct tasks, distinct keys");
    for (task, key) in &before {
        assert!(key.len() <= 255, "{key}");
        assert!(key.starts_with("asgard.stats.gggg"), "{key}");
        let (_, digest) = key.rsplit_once('~').expect("fitted with a digest");
        assert_eq!(digest.len(), 32, "{task}: {key}");
        assert!(digest.chars().all(|c| c.is_ascii_hexdigit()), "{key}");
    }
    delete_exchange(&world.broker, &exchange);
}

#[test]
fn a_broker_blocked_behind_an_exchange_delays_the_pass_and_loses_nothing() {
    let broker = Broker::private();
    let world = World::on_broker(fresh_spec(40, 2), &broker);
    let exchange = unique_name("asgard-blocked");
    let queues: Vec<String> = (0..2).map(|i| format!("{exchange}-{i}")).collect();
    declare_exchange(
        &world.broker,
        &exchange,
        ExchangeKind::Custom("x-consistent-hash".into()),
    );
    for queue in &queues {
        bind_queue(&world.broker, queue, &exchange, "1");
    }
    to_exchange(&world, &exchange, "{taskname}")
        .arg("collect")
        .run()
        .assert_success();
    let baseline = world.stored_timestamps();
    for agent in 0..40 {
        let slow = mesos_sim::AgentFault::Slow(Duration::from_millis(300));
        world.cluster.set_agent_fault(agent, slow);
    }
    world.wait_for_new_samples();
    // As in broker_limits.rs: the alarm is on before the pass and cleared within the
    // blocked timeout, past the confirm timeout.
    broker.set_memory_alarm(true);
    let running = to_exchange(&world, &exchange, "{taskname}")
        .args(["--workers", "1", "--confirm-timeout", "1"])
        .args(["--blocked-timeout", "40", "--deadline", "60"])
        .args(["--log-format", "json", "collect"])
        .spawn();
    world.wait_for_lock(&format!("{}lock", world.prefix));
    std::thread::sleep(Duration::from_millis(1500));
    broker.set_memory_alarm(false);
    let run = running.wait();
    run.assert_success();
    assert!(
        run.stderr.contains("blocks publishing (low on memory)"),
        "{run}"
    );
    assert_eq!(count(&run.summary(), "published"), 80, "{run}");
    let messages: Vec<Message> = queues
        .iter()
        .flat_map(|q| drain_queue(&world.broker, q))
        .collect();
    assert_eq!(message_ids(&messages).len(), 80, "each document once");
    let tiling = assert_intervals_tile(&messages, &baseline, None);
    assert_eq!(tiling.kept, 80);
}

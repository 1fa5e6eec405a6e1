//! Smoke tests of the test harness itself (tests/it/common): if these fail, every other
//! integration test's verdict is meaningless.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

#[test]
fn redis_server_answers_ping_and_is_gone_after_drop() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.url(), format!("redis://127.0.0.1:{}/0", a.port()));

    let pong: String = redis::cmd("PING").query(&mut a.conn()).unwrap();
    assert_eq!(pong, "PONG");
    // Each server is its own: a key written to one is absent from the other.
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut a.conn())
        .unwrap();
    let in_a: Option<String> = redis::cmd("GET").arg("k").query(&mut a.conn()).unwrap();
    let in_b: Option<String> = redis::cmd("GET").arg("k").query(&mut b.conn()).unwrap();
    assert_eq!(in_a.as_deref(), Some("v"));
    assert_eq!(in_b, None);

    let port = a.port();
    drop(a);
    assert!(
        !port_is_open(port),
        "redis-server still listening after drop"
    );
    assert!(port_is_open(b.port()));
}

#[test]
fn redis_server_stop_and_start_again() {
    let mut r = RedisServer::start();
    r.stop();
    assert!(!port_is_open(r.port()));
    r.start_again();
    let pong: String = redis::cmd("PING").query(&mut r.conn()).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn free_ports_and_unique_names_do_not_repeat() {
    let ports: HashSet<u16> = (0..200).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 200);

    let names: HashSet<String> = (0..200).map(|_| unique_name("Q:x y")).collect();
    assert_eq!(names.len(), 200);
    for n in &names {
        assert!(n.starts_with("q-x-y-"), "{n}");
        assert!(
            n.chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_')),
            "{n}"
        );
    }
    assert!(unique_key_prefix().ends_with(':'));
}

#[test]
fn shared_broker_queue_roundtrip() {
    let broker = Broker::shared();
    let queue = unique_name("asgard-harness");
    declare_queue(&broker, &queue);
    assert_eq!(queue_len(&broker, &queue), Some(0));

    let props = AmqpProperties::default()
        .with_message_id("msg-1".to_string())
        .with_content_type("application/json".to_string())
        .with_delivery_mode(2);
    let body = json!({"task": "t1", "cpu": 0.5});
    publish(&broker, &queue, body.to_string().as_bytes(), props);

    let got = drain_queue(&broker, &queue);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, body);
    assert_eq!(got[0].message_id.as_deref(), Some("msg-1"));
    assert_eq!(got[0].content_type.as_deref(), Some("application/json"));
    assert_eq!(got[0].delivery_mode, Some(2));
    assert_eq!(got[0].routing_key, queue);
    // Draining takes the messages out.
    assert!(drain_queue(&broker, &queue).is_empty());

    // wait_for_messages returns as soon as n arrived, and what it has at the timeout.
    for i in 0..2 {
        publish(
            &broker,
            &queue,
            json!({ "i": i }).to_string().as_bytes(),
            AmqpProperties::default(),
        );
    }
    let got = wait_for_messages(&broker, &queue, 2, Duration::from_secs(10));
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].message_id, None);
    let started = Instant::now();
    let got = wait_for_messages(&broker, &queue, 1, Duration::from_millis(300));
    assert!(got.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));

    delete_queue(&broker, &queue);
    assert_eq!(queue_len(&broker, &queue), None);
}

#[test]
fn private_broker_stops_and_starts_again() {
    let mut broker = Broker::private();
    let port = broker.port();
    assert_ne!(broker.host_port(), Broker::shared().host_port());
    let queue = unique_name("asgard-harness-private");
    declare_queue(&broker, &queue);
    let persistent = AmqpProperties::default().with_delivery_mode(2);
    publish(&broker, &queue, b"{\"kept\":true}", persistent);
    // The queue lives on the private node only.
    assert_eq!(queue_len(&Broker::shared(), &queue), None);

    broker.stop();
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(
        refused.is_err(),
        "private broker still accepts connections after stop()"
    );

    broker.start_again();
    assert_eq!(broker.port(), port);
    // Same data directory: the durable queue and its persistent message survived the restart.
    let got = drain_queue(&broker, &queue);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].body, json!({"kept": true}));

    drop(broker);
    assert!(
        !port_is_open(port),
        "private broker still listening after drop"
    );
}

#[test]
fn command_builder_has_a_clean_environment() {
    // The test runner's environment (HOME, CARGO_*, ...) must not reach the child: only
    // PATH, RUST_LOG and what the test sets.
    let run = command("env").env("ASGARD_X", "1").run();
    run.assert_success();
    let mut vars: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| l.split('=').next().unwrap())
        .collect();
    vars.sort();
    assert_eq!(vars, ["ASGARD_X", "PATH", "RUST_LOG"], "{run}");
    assert!(run.stdout.contains("RUST_LOG=info\n"));

    let run = command("sh")
        .args(["-c", "echo out; echo err >&2; exit 3"])
        .run();
    assert_eq!(run.status, Some(3));
    assert_eq!(run.stdout, "out\n");
    assert_eq!(run.stderr, "err\n");
}

#[test]
fn command_builder_timeout_kills_and_fails() {
    let started = Instant::now();
    let result = std::panic::catch_unwind(|| {
        command("sleep")
            .arg("30")
            .timeout(Duration::from_millis(300))
            .run()
    });
    let err = result.expect_err("a run over its timeout must fail the test");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("did not finish within"), "{msg}");
    // Killed at its timeout, not left to sleep its 30 s.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn collector_env_names_every_variable() {
    let redis = RedisServer::start();
    let masters = [
        "http://127.0.0.1:1/",
        "http://127.0.0.1:2/",
        "http://127.0.0.1:3/",
    ]
    .map(String::from);
    let env = collector_env(&masters, &redis, "127.0.0.1:5999", "rk", "pfx:");
    let get = |k: &str| {
        env.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("HOLLOWMAN_MESOS_ADDRESS"), Some("http://127.0.0.1:1/"));
    assert_eq!(
        get("HOLLOWMAN_MESOS_ADDRESS_0"),
        Some("http://127.0.0.1:2/")
    );
    assert_eq!(
        get("HOLLOWMAN_MESOS_ADDRESS_1"),
        Some("http://127.0.0.1:3/")
    );
    assert_eq!(get("HOLLOWMAN_MESOS_ADDRESS_2"), None);
    assert_eq!(get("STATS_COLLECTOR_REDIS_URL"), Some(redis.url().as_str()));
    assert_eq!(get("STATS_COLLECTOR_RABBITMQ_HOST"), Some("127.0.0.1:5999"));
    assert_eq!(get("STATS_COLLECTOR_RABBITMQ_USER"), Some("guest"));
    assert_eq!(get("STATS_COLLECTOR_RABBITMQ_PWD"), Some("guest"));
    assert_eq!(get("STATS_COLLECTOR_RABBITMQ_VHOST"), Some("/"));
    assert_eq!(get("STATS_COLLECTOR_RABBITMQ_RK"), Some("rk"));
    assert_eq!(get("STATS_COLLECTOR_KEY_PREFIX"), Some("pfx:"));
    assert_eq!(env.len(), 10);
}

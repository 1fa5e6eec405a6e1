//! The agents over the wire: the statistics format, counters growing at the published
//! rates, CFS-less and churning tasks, request counting and basic auth.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test crate: its helpers, like its tests, fail by panicking with a message"
)]

mod support;

use std::collections::HashSet;
use std::thread;
use std::time::Duration;

use mesos_sim::{Cluster, ClusterSpec};
use serde_json::Value;
use support::{get, get_with, statistics};

fn start(spec: ClusterSpec) -> Cluster {
    Cluster::start(spec).expect("start the cluster")
}

fn is_uuid(s: &str) -> bool {
    let lengths: Vec<usize> = s.split('-').map(str::len).collect();
    lengths == [8, 4, 4, 4, 12]
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The uuid inside any of the Marathon task id forms the simulator serves.
fn uuid_of(executor_id: &str) -> &str {
    let (_, rest) = executor_id.split_once('.').expect("app.uuid");
    rest.strip_prefix("instance-")
        .and_then(|r| r.strip_suffix("._app.1"))
        .unwrap_or(rest)
}

fn id(entry: &Value) -> String {
    entry["executor_id"]
        .as_str()
        .expect("executor_id")
        .to_owned()
}

#[test]
fn statistics_has_one_mesos_entry_per_executor() {
    let cluster = start(ClusterSpec {
        tasks_per_agent: 8,
        ..ClusterSpec::default()
    });
    let agent = &cluster.agents()[1];
    let reply = get(&agent.address, "/monitor/statistics");
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(reply.header("Connection"), Some("close"));
    let entries = statistics(&agent.address);
    assert_eq!(entries.len(), 8);
    let framework = agent.id.strip_suffix("-S1").expect("agent id").to_owned() + "-0000";
    for entry in &entries {
        let executor_id = id(entry);
        assert!(is_uuid(uuid_of(&executor_id)), "{executor_id}");
        assert_eq!(entry["source"], executor_id.as_str());
        assert_eq!(entry["framework_id"], framework.as_str());
        let name = entry["executor_name"].as_str().expect("name");
        assert!(name.starts_with(&format!(
            "Command Executor (Task: {executor_id}) (Command: sh -c '"
        )));
        let stats = &entry["statistics"];
        for field in [
            "timestamp",
            "cpus_limit",
            "cpus_user_time_secs",
            "cpus_system_time_secs",
            "cpus_throttled_time_secs",
        ] {
            assert!(stats[field].is_f64(), "{field} in {stats}");
        }
        for field in [
            "cpus_nr_periods",
            "cpus_nr_throttled",
            "mem_limit_bytes",
            "mem_rss_bytes",
        ] {
            assert!(stats[field].is_u64(), "{field} in {stats}");
        }
        let rates = cluster.task_rates(&executor_id).expect("a live task");
        assert_eq!(stats["cpus_limit"].as_f64(), Some(rates.cpus_limit));
        assert_eq!(stats["mem_rss_bytes"].as_u64(), Some(rates.mem_rss_bytes));
        assert_eq!(
            stats["mem_limit_bytes"].as_u64(),
            Some(rates.mem_limit_bytes)
        );
    }
    let ids: Vec<String> = entries.iter().map(id).collect();
    assert!(
        ids[3].contains(".instance-") && ids[3].ends_with("._app.1"),
        "{}",
        ids[3]
    );
    assert_eq!(
        ids[6].split('.').next().map(|app| app.matches('_').count()),
        Some(2)
    );
}

#[test]
fn tasks_describe_what_agents_serve() {
    let cluster = start(ClusterSpec {
        churn_every: 2,
        ..ClusterSpec::default()
    });
    let tasks = cluster.tasks();
    assert_eq!(tasks.len(), 15);
    let served: HashSet<String> = cluster
        .agents()
        .iter()
        .flat_map(|a| statistics(&a.address))
        .map(|e| id(&e))
        .collect();
    for task in &tasks {
        match &task.executor_id {
            Some(executor_id) => {
                assert!(served.contains(executor_id), "{executor_id}");
                let app = task.app_id.trim_start_matches('/').replace('/', "_");
                assert!(executor_id.starts_with(&format!("{app}.")), "{executor_id}");
            }
            None => assert_eq!(task.index % 2, 1),
        }
    }
}

#[test]
fn removed_and_unknown_paths_are_404() {
    let cluster = start(ClusterSpec::default());
    let address = &cluster.agents()[0].address;
    assert_eq!(get(address, "/monitor/statistics.json").status, 404);
    assert_eq!(get(address, "/state").status, 404);
    assert_eq!(cluster.requests_served(0), 0);
    assert_eq!(get(address, "/monitor/statistics?jsonp=").status, 200);
    assert_eq!(cluster.requests_served(0), 1);
}

#[test]
fn counters_grow_at_the_published_rates() {
    let cluster = start(ClusterSpec {
        tasks_per_agent: 12,
        no_cfs_every: 4,
        ..ClusterSpec::default()
    });
    let address = &cluster.agents()[2].address;
    let first = statistics(address);
    thread::sleep(Duration::from_millis(100));
    let second = statistics(address);
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(id(a), id(b));
        let rates = cluster.task_rates(&id(a)).expect("a live task");
        let (sa, sb) = (&a["statistics"], &b["statistics"]);
        let value = |s: &Value, field: &str| s[field].as_f64().expect(field);
        let dt = value(sb, "timestamp") - value(sa, "timestamp");
        assert!(dt > 0.05, "{dt}");
        let rate = |field: &str| (value(sb, field) - value(sa, field)) / dt;
        assert!((rate("cpus_user_time_secs") - rates.user).abs() < 1e-6);
        assert!((rate("cpus_system_time_secs") - rates.system).abs() < 1e-6);
        match rates.throttled {
            Some(throttled) => assert!((rate("cpus_throttled_time_secs") - throttled).abs() < 1e-6),
            None => assert!(sa.get("cpus_throttled_time_secs").is_none()),
        }
    }
}

#[test]
fn no_cfs_tasks_lack_the_cfs_fields() {
    let cluster = start(ClusterSpec {
        tasks_per_agent: 9,
        no_cfs_every: 3,
        ..ClusterSpec::default()
    });
    let entries = statistics(&cluster.agents()[0].address);
    for (index, entry) in entries.iter().enumerate() {
        let stats = entry["statistics"].as_object().expect("statistics object");
        let expect_cfs = index % 3 != 2;
        for field in [
            "cpus_throttled_time_secs",
            "cpus_nr_periods",
            "cpus_nr_throttled",
        ] {
            assert_eq!(
                stats.contains_key(field),
                expect_cfs,
                "task {index} {field}"
            );
        }
        let rates = cluster.task_rates(&id(entry)).expect("a live task");
        assert_eq!(rates.throttled.is_some(), expect_cfs);
    }
}

#[test]
fn churning_tasks_get_a_new_id_per_request() {
    let cluster = start(ClusterSpec {
        tasks_per_agent: 6,
        churn_every: 3,
        ..ClusterSpec::default()
    });
    let address = &cluster.agents()[0].address;
    let first: Vec<String> = statistics(address).iter().map(id).collect();
    let second: Vec<String> = statistics(address).iter().map(id).collect();
    for index in 0..6 {
        let churns = index % 3 == 2;
        assert_eq!(first[index] != second[index], churns, "task {index}");
        assert_eq!(cluster.task_rates(&first[index]).is_some(), !churns);
        assert_eq!(
            first[index].split('.').next(),
            second[index].split('.').next()
        );
    }
    assert_eq!(cluster.requests_served(0), 2);
    assert_eq!(
        cluster.task_rates("nope.00000000-0000-4000-8000-000000000000"),
        None
    );
}

#[test]
fn agents_require_basic_auth_when_configured() {
    let cluster = start(ClusterSpec {
        credentials: Some((String::from("asgard"), String::from("s3cret"))),
        ..ClusterSpec::default()
    });
    let address = &cluster.agents()[1].address;
    assert_eq!(get(address, "/monitor/statistics").status, 401);
    assert_eq!(cluster.last_auth_header(1), None);
    let wrong = "Authorization: Basic YXNnYXJkOndyb25n"; // asgard:wrong
    assert_eq!(
        get_with(address, "/monitor/statistics", &[wrong]).status,
        401
    );
    let right = "Authorization: Basic YXNnYXJkOnMzY3JldA=="; // asgard:s3cret
    let reply = get_with(address, "/monitor/statistics", &[right]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json().as_array().map(Vec::len), Some(5));
    assert_eq!(
        cluster.last_auth_header(1).as_deref(),
        Some("Basic YXNnYXJkOnMzY3JldA==")
    );
    assert_eq!(cluster.requests_served(1), 3);
}

#[test]
fn clusters_can_share_addresses_in_one_process() {
    let clusters: Vec<Cluster> = (0..3).map(|_| start(ClusterSpec::default())).collect();
    let ids: HashSet<String> = clusters.iter().map(|c| c.agents()[0].id.clone()).collect();
    assert_eq!(ids.len(), 3);
    for cluster in &clusters {
        assert_eq!(statistics(&cluster.agents()[0].address).len(), 5);
    }
}

#[test]
fn non_get_requests_are_rejected() {
    let cluster = start(ClusterSpec::default());
    let address = &cluster.agents()[0].address;
    let raw = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .write_all(b"POST /monitor/statistics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        raw
    };
    assert_eq!(support::parse(&raw).status, 405);
}

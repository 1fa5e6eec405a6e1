//! Bad input never breaks a pass (docs/mesos.md, docs/document.md, docs/state.md):
//! broken answers and entries are logged with the agent's address and counted, broken
//! state is replaced, and numbers keep every digit through Redis into the published
//! documents.

use crate::common::*;
use mesos_sim::AgentFault;
use serde_json::Value;
use std::time::Duration;

const REFERENCE: &str = include_str!("../data/reference-cases.json");

#[test]
fn broken_answers_fail_only_their_agent_and_are_named() {
    let answers = [
        ("not JSON at all", "the answer is not JSON"),
        (
            r#"{"executor_id": "x", "statistics": {}}"#,
            "the answer is JSON but not an array of executors",
        ),
        ("[1, 2", "the answer is not JSON"),
    ];
    let world = World::start(fresh_spec(answers.len() + 1, 2));
    let agents = world.cluster.agents();
    for (i, (body, _)) in answers.iter().enumerate() {
        world
            .cluster
            .set_agent_fault(i, AgentFault::Body(body.to_string()));
    }
    let run = world.collect();
    run.assert_status(3);
    for (i, (_, reason)) in answers.iter().enumerate() {
        let line = format!("agent {} failed: {reason}", agents[i].address);
        assert!(run.stderr.contains(&line), "missing {line:?}: {run}");
    }
    assert!(
        run.stderr.contains("answered=1 failed=3 bad-answer=3"),
        "{run}"
    );
    assert_eq!(
        world.stored_tasks().len(),
        2,
        "the healthy agent's tasks are stored"
    );
}

/// An answer of 2,000,000 entries `0` (4 MB, under --max-body-bytes): before, each entry
/// was a heap allocation and a warning line (two million lines, over 100 MB resident).
#[test]
fn millions_of_bad_entries_in_an_answer_are_counted_not_kept_nor_logged_one_by_one() {
    const ENTRIES: usize = 2_000_000;
    let world = World::start(fresh_spec(2, 2));
    let address = world.cluster.agents()[0].address.clone();
    let body = format!("[0{}]", ",0".repeat(ENTRIES - 1));
    world.cluster.set_agent_fault(0, AgentFault::Body(body));
    let (run, peak_kib) = world
        .collector()
        .args(["--log-format", "json", "collect"])
        .timeout(Duration::from_secs(120))
        .run_measuring_peak_rss();
    run.assert_success();
    let summary = run.summary();
    assert_eq!(count(&summary, "skipped_entries"), ENTRIES as u64, "{run}");
    assert_eq!(count(&summary, "agents_answered"), 2, "{run}");
    let skipped_lines = run
        .stderr
        .lines()
        .filter(|l| l.contains(&address) && l.contains("skipped"))
        .count();
    let total = format!(
        "... and {} more entries skipped ({ENTRIES} in all)",
        ENTRIES - 10
    );
    assert_named_ten_then_counted(&run, skipped_lines, &total, peak_kib);
}

#[test]
fn bad_entries_are_skipped_and_counted_and_the_rest_still_count() {
    let world = World::start(fresh_spec(2, 2));
    let address = world.cluster.agents()[0].address.clone();
    let body = |ts: f64, user: f64| {
        format!(
            r#"[1, "text", null, {{"statistics": {{"timestamp": {ts}}}}},
                {{"executor_id": "no_stats.1"}},
                {{"executor_id": "no_time.1", "statistics": {{"cpus_user_time_secs": 1}}}},
                {{"executor_id": "strings.1", "statistics": {{"timestamp": {ts}, "cpus_user_time_secs": "{user}", "cpus_limit": "2"}}}},
                {{"executor_id": "huge.1", "statistics": {{"timestamp": {ts}, "cpus_user_time_secs": 1e308, "mem_rss_bytes": 1e300, "mem_limit_bytes": 18446744073709551615}}}},
                {{"executor_id": "negative.1", "statistics": {{"timestamp": {ts}, "cpus_user_time_secs": {neg}, "cpus_limit": -1, "mem_rss_bytes": -5}}}},
                {{"executor_id": "good_app.1", "statistics": {{"timestamp": {ts}, "cpus_user_time_secs": {user}, "cpus_system_time_secs": 1, "cpus_limit": 1.1, "mem_rss_bytes": 512, "mem_limit_bytes": 1024}}}}]"#,
            neg = user - 100.0,
        )
    };
    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(body(1000.0, 10.0)));
    let first = world.collect();
    first.assert_success();
    assert!(
        first.stderr.contains(&format!(
            "agent {address}: entry 0 skipped: entry is not an object"
        )),
        "{first}"
    );
    assert!(
        first.stderr.contains(&format!(
            "agent {address}: entry 4 skipped: entry has no statistics object"
        )),
        "{first}"
    );
    assert!(
        first.stderr.contains(&format!(
            "agent {address}: entry 5 skipped: entry has no numeric timestamp"
        )),
        "{first}"
    );
    assert!(first.stderr.contains("skipped_entries=6"), "{first}");
    assert!(
        first.stderr.contains("malformed_fields=4"),
        "2 strings, 1e300 bytes, negative bytes: {first}"
    );

    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(body(1010.0, 15.0)));
    // Entries whose bad fields leave no cpu_pct or mem_pct are held back by default.
    let second = world
        .collector()
        .env("STATS_COLLECTOR_PUBLISH_INCOMPLETE", "1")
        .arg("collect")
        .run();
    second.assert_success();
    let docs: Vec<Value> = world.messages().into_iter().map(|m| m.body).collect();
    let by_task = |task: &str| docs.iter().find(|d| d["taskname"] == task).cloned();
    let good = by_task("good_app.1").expect("the good entry is published");
    assert_eq!(good["cpu_usr_secs"], 5.0);
    assert_eq!(good["cpu_pct"], 50.0);
    assert_eq!(good["mem_pct"], 50.0);
    let strings = by_task("strings.1").expect("an entry with bad fields is still published");
    assert!(
        strings.get("cpu_usr_secs").is_none() && strings.get("cpu_limit").is_none(),
        "{strings}"
    );
    let negative = by_task("negative.1").expect("negative counters still diff");
    assert_eq!(negative["cpu_usr_secs"], 5.0);
    assert!(
        negative.get("cpu_limit").is_none() && negative.get("mem_bytes").is_none(),
        "{negative}"
    );
    assert!(by_task("huge.1").is_some());
    for doc in &docs {
        for (field, value) in doc.as_object().expect("object") {
            assert!(!value.is_null(), "{field} is null in {doc}");
        }
    }
    // The healthy second agent's 2 tasks and the 4 readable entries of the broken one.
    assert_eq!(docs.len(), 6, "{docs:?}");
}

#[test]
fn an_empty_answer_and_an_oversized_one() {
    let world = World::start(fresh_spec(2, 2));
    let agents = world.cluster.agents();
    world
        .cluster
        .set_agent_fault(0, AgentFault::Body("[]".into()));
    world
        .cluster
        .set_agent_fault(1, AgentFault::Oversized(64 * 1024));
    let run = world
        .collector()
        .env("STATS_COLLECTOR_MAX_BODY_BYTES", "4096")
        .arg("collect")
        .run();
    run.assert_status(3);
    assert!(
        run.stderr.contains(&format!(
            "agent {} failed: answer larger than 4096 bytes",
            agents[1].address
        )),
        "{run}"
    );
    assert!(
        run.stderr.contains("answered=1 failed=1 too-large=1"),
        "{run}"
    );
    assert!(run.stderr.contains("tasks seen=0"), "{run}");
}

#[test]
fn a_broken_stored_reading_is_replaced() {
    let world = World::start(fresh_spec(1, 2));
    world.collect().assert_success();
    let keys = world.stored_keys();
    assert_eq!(keys.len(), 1, "one key for the agent: {keys:?}");
    let _: () = redis::cmd("SET")
        .arg(&keys[0])
        .arg("{not json")
        .query(&mut world.redis.conn())
        .expect("SET");
    let run = world.next_pass();
    run.assert_success();
    assert!(
        run.stderr
            .contains("its stored state is unreadable; it is replaced"),
        "{run}"
    );
    assert!(run.stderr.contains("bad_state=1"), "{run}");
    assert!(
        world.messages().is_empty(),
        "no previous reading, no document"
    );
    let stored = world.stored_tasks();
    assert_eq!(stored.len(), 2, "overwritten with the new readings");
}

#[test]
fn numbers_keep_their_precision_through_redis_into_the_document() {
    let reference: Value = serde_json::from_str(REFERENCE).expect("reference cases");
    let case = &reference["documents"][0];
    assert_eq!(case["name"], "cfs_on_with_raw_metrics");
    // Entries as an agent would send them, with a field past 2^53 and a float with many digits.
    let with_extra = |entry: &Value| {
        let mut entry = entry.clone();
        entry["statistics"]["mem_total_bytes"] = serde_json::json!(18446744073709551615u64);
        entry["statistics"]["cpus_system_time_secs"] = serde_json::json!(2178.139999999);
        entry
    };
    let (before, now) = (with_extra(&case["before"]), with_extra(&case["now"]));
    let before_text = format!("[{before}]");
    let world = World::start(fresh_spec(1, 2));
    let collect_with_raw_metrics = || {
        world
            .collector()
            .env("STATS_COLLECTOR_INCLUDE_RAW_METRICS", "1")
            .arg("collect")
            .run()
            .assert_success();
    };
    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(before_text.clone()));
    collect_with_raw_metrics();
    let stored = world.stored_tasks();
    assert_eq!(stored.len(), 1);
    let raw = stored.values().next().and_then(|t| t.base.raw.clone());
    assert_eq!(
        format!("[{}]", raw.expect("raw metrics keep the entry")),
        before_text,
        "stored byte for byte"
    );

    world
        .cluster
        .set_agent_fault(0, AgentFault::Body(format!("[{now}]")));
    collect_with_raw_metrics();
    let messages = world.messages();
    assert_eq!(messages.len(), 1);
    let text = String::from_utf8(messages[0].raw.clone()).expect("UTF-8");
    assert!(
        text.contains(&format!(r#""before":{}"#, before["statistics"])),
        "{text}"
    );
    assert!(
        text.contains(&format!(r#""now":{}"#, now["statistics"])),
        "{text}"
    );
    assert!(
        text.contains("18446744073709551615") && text.contains("2178.139999999"),
        "{text}"
    );
    let doc = &messages[0].body;
    assert_eq!(doc["timestamp"].to_string(), "1541084157.12885");
    for (field, want) in case["expected"].as_object().expect("expected") {
        if let (Some(got), Some(want)) = (doc[field].as_f64(), want.as_f64()) {
            assert!(
                (got - want).abs() <= 2e-5,
                "{field}: {got} vs the Python collector's {want}"
            );
        }
    }
    assert_eq!(doc["appname"], "/infra/stress");
    assert_eq!(doc["host"], world.cluster.agents()[0].address.as_str());
}

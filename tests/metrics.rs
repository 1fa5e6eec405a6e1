//! The metrics file (`--metrics-file`) and the alert rules of `contrib/prometheus`: every
//! kind of pass (0, 3, 69 for each thing that can be down, 75) leaves a current file that
//! `promtool check metrics` accepts and whose numbers are those of the pass's own summary
//! line; the last success survives failed passes; shards label their samples; `check`
//! says whether the file can be written; the rules pass `promtool check rules` and their
//! own `promtool test rules`. promtool comes from the Debian package `prometheus`, which
//! `scripts/services ensure` installs: these tests fail without it, they never skip.
//! Clusters here bind agents on 127.14.x.y (`first_ip` [14, ...]).

mod common;

use common::*;
use mesos_sim::AgentFault;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where each count of the summary line (`--log-format json`) is in the metrics file: the
/// metric, and the label picking its sample (None: the sum of all its samples, by
/// reason). A count the summary gains needs a metric and a line here.
const SUMMARY_IN_METRICS: &[(&str, &str, Option<&str>)] = &[
    ("agents_listed", "asgard_stats_agents_listed", None),
    (
        "agents_answered",
        "asgard_stats_agents",
        Some("state=\"answered\""),
    ),
    ("agents_failed", "asgard_stats_agents_failed", None),
    (
        "agents_abandoned",
        "asgard_stats_agents",
        Some("state=\"abandoned\""),
    ),
    (
        "agents_not_started",
        "asgard_stats_agents",
        Some("state=\"not_started\""),
    ),
    (
        "agents_unusable",
        "asgard_stats_agents",
        Some("state=\"unusable\""),
    ),
    (
        "incomplete",
        "asgard_stats_documents",
        Some("outcome=\"incomplete\""),
    ),
    ("tasks_seen", "asgard_stats_tasks_seen", None),
    (
        "published",
        "asgard_stats_documents",
        Some("outcome=\"published\""),
    ),
    (
        "first_sightings",
        "asgard_stats_documents",
        Some("outcome=\"first_sightings\""),
    ),
    (
        "resets",
        "asgard_stats_documents",
        Some("outcome=\"resets\""),
    ),
    (
        "not_newer",
        "asgard_stats_documents",
        Some("outcome=\"not_newer\""),
    ),
    ("skipped_entries", "asgard_stats_skipped_entries", None),
    ("malformed_fields", "asgard_stats_malformed_fields", None),
    ("bad_state", "asgard_stats_bad_state", None),
    ("deliveries_failed", "asgard_stats_deliveries_failed", None),
    ("unstored", "asgard_stats_readings_unstored", None),
    ("duration_secs", "asgard_stats_pass_duration_seconds", None),
    ("exit_code", "asgard_stats_exit_code", None),
];

/// Fields of every JSON log line, not counts of the summary.
const LOG_FIELDS: &[&str] = &["time", "level", "message", "target"];
/// Summary fields that are words, not counts: the signal that stopped a pass shows in the
/// metrics as its exit code (130, 143).
const WORD_FIELDS: &[&str] = &["stopped_by"];

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

/// Runs promtool with these arguments and stdin; panics when it is not installed.
fn promtool(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool cannot run ({e}): install the Debian package prometheus \
                 (`bash scripts/services ensure` does it as root)"
            )
        });
    std::io::Write::write_all(child.stdin.as_mut().expect("piped stdin"), stdin.as_bytes())
        .expect("write promtool's stdin");
    child.wait_with_output().expect("promtool ends")
}

fn assert_promtool(args: &[&str], stdin: &str) {
    let out = promtool(args, stdin);
    assert!(
        out.status.success(),
        "promtool {args:?} refused:\n{}{}\n--- input:\n{stdin}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

/// The samples of a metrics file: the metric name, its labels as written (without the
/// braces) and the value.
fn samples(text: &str) -> Vec<(String, String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            (name.to_string(), labels.to_string(), value)
        })
        .collect()
}

/// The sum of a metric's samples whose labels hold `label` (all of them for None).
fn metric(text: &str, name: &str, label: Option<&str>) -> f64 {
    samples(text)
        .iter()
        .filter(|(n, labels, _)| n == name && label.is_none_or(|l| labels.contains(l)))
        .map(|(_, _, v)| v)
        .sum()
}

/// The metrics file after a run: promtool accepts it, it is this pass's (written between
/// `before` and now), its numbers are the summary line's, no temporary file is left, and
/// the last success is this pass's when it delivered, else `last_success`. Returns the
/// file's text.
fn assert_metrics_of(run: &Run, file: &Path, before: f64, last_success: f64) -> String {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("no metrics file {} ({e}): {run}", file.display()));
    assert_promtool(&["check", "metrics"], &text);
    let ended = metric(&text, "asgard_stats_last_run_timestamp_seconds", None);
    assert!(
        before <= ended && ended <= now(),
        "not this pass's file: ended {ended}, pass started {before}\n{text}"
    );
    let summary = run.summary();
    for (key, value) in &summary {
        if LOG_FIELDS.contains(&key.as_str()) || WORD_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let (_, name, label) = SUMMARY_IN_METRICS
            .iter()
            .find(|(k, _, _)| k == key)
            .unwrap_or_else(|| panic!("the summary's {key} has no metric"));
        let expected = value
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {run}"));
        let got = metric(&text, name, *label);
        assert!(
            (got - expected).abs() < 1e-6,
            "{key}: summary {expected}, metrics {got}\n{text}\n{run}"
        );
    }
    for (key, _, _) in SUMMARY_IN_METRICS {
        assert!(summary.contains_key(*key), "the summary lost {key}: {run}");
    }
    assert_eq!(
        metric(&text, "asgard_stats_exit_code", None),
        f64::from(run.status.expect("an exit code")),
    );
    let code = run.status.expect("an exit code");
    let expected_success = if code == 0 || code == 3 {
        ended
    } else {
        last_success
    };
    assert_eq!(
        metric(&text, "asgard_stats_last_success_timestamp_seconds", None),
        expected_success,
        "{text}"
    );
    let folder = file.parent().expect("a folder");
    let names: Vec<_> = std::fs::read_dir(folder)
        .expect("read the folder")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
        "a temporary file was left: {names:?}"
    );
    text
}

/// One pass of `collector` with the metrics file and JSON logs; returns the run, its
/// metrics file's text (checked by `assert_metrics_of`) and the new last success.
fn pass(collector: Collector, file: &Path, code: i32, last_success: f64) -> (Run, String, f64) {
    let before = now();
    let run = collector
        .env("STATS_COLLECTOR_METRICS_FILE", file)
        .args(["--log-format", "json", "collect"])
        .run();
    run.assert_status(code);
    let text = assert_metrics_of(&run, file, before, last_success);
    let success = metric(&text, "asgard_stats_last_success_timestamp_seconds", None);
    (run, text, success)
}

#[test]
fn every_kind_of_pass_leaves_a_valid_current_metrics_file_matching_its_summary() {
    let mut world = World::start(spec(3, 2, [14, 1, 1]));
    let scratch = Scratch::new();
    let file = scratch.0.join("asgard-stats.prom");

    // 0: a first pass sees every task for the first time.
    let (_, text, success) = pass(world.collector(), &file, 0, 0.0);
    assert_eq!(metric(&text, "asgard_stats_agents_listed", None), 3.0);
    assert_eq!(
        metric(
            &text,
            "asgard_stats_documents",
            Some("outcome=\"first_sightings\"")
        ),
        6.0
    );
    assert_eq!(
        metric(&text, "asgard_stats_pass_deadline_seconds", None),
        50.0
    );
    assert!(!text.contains("shard="), "no shard label without --shard");

    // 3: one agent refuses; the others' documents are published.
    world.cluster.set_agent_fault(2, AgentFault::Refuse);
    std::thread::sleep(Duration::from_millis(1100));
    let (_, text, success) = pass(world.collector(), &file, 3, success);
    assert_eq!(
        metric(
            &text,
            "asgard_stats_agents_failed",
            Some("reason=\"refused\"")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "asgard_stats_documents",
            Some("outcome=\"published\"")
        ),
        4.0
    );
    world.cluster.set_agent_fault(2, AgentFault::Healthy);

    // 69: the broker is down.
    let down = format!("127.0.0.1:{}", free_port());
    let broker_down = world
        .collector()
        .env("STATS_COLLECTOR_RABBITMQ_HOST", &down);
    let (run, _, success) = pass(broker_down, &file, 69, success);
    assert!(run.stderr.contains("cannot connect"), "{run}");

    // 69: no master answers.
    let no_master = world.collector().env(
        "HOLLOWMAN_MESOS_ADDRESS",
        format!("http://127.0.0.1:{}", free_port()),
    );
    let (_, _, success) = pass(no_master, &file, 69, success);

    // 75: another pass holds the lock.
    let lock = format!("{}lock", world.prefix);
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("another-host:1:2")
        .query(&mut world.redis.conn())
        .expect("SET the lock");
    let (run, _, success) = pass(world.collector(), &file, 75, success);
    assert!(run.stderr.contains("another pass holds the lock"), "{run}");
    let _: () = redis::cmd("DEL")
        .arg(&lock)
        .query(&mut world.redis.conn())
        .expect("DEL the lock");

    // A dry run writes nothing anywhere, the metrics file included.
    let before = std::fs::read_to_string(&file).expect("the file");
    world
        .collector()
        .env("STATS_COLLECTOR_METRICS_FILE", &file)
        .args(["collect", "--dry-run", "--dry-run-interval", "0.1"])
        .run()
        .assert_success();
    assert_eq!(std::fs::read_to_string(&file).expect("the file"), before);

    // 69: Redis is down; the last success still comes from the file.
    world.redis.stop();
    pass(world.collector(), &file, 69, success);
    assert_eq!(scratch.names(), ["asgard-stats.prom"]);
}

#[test]
fn shards_label_their_files_and_check_tells_whether_the_folder_is_writable() {
    let world = World::start(spec(3, 2, [14, 2, 1]));
    let scratch = Scratch::new();
    let files: Vec<PathBuf> = (1..=2)
        .map(|k| scratch.0.join(format!("asgard-stats-{k}-of-2.prom")))
        .collect();
    for (k, file) in (1..=2).zip(&files) {
        let shard = world.collector().args(["--shard", &format!("{k}/2")]);
        let (_, text, _) = pass(shard, file, 0, 0.0);
        for (name, labels, _) in samples(&text) {
            assert!(
                labels.starts_with(&format!("shard=\"{k}/2\"")),
                "{name}{{{labels}}} has no shard label"
            );
        }
    }
    let listed: f64 = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("a shard's file");
            metric(&text, "asgard_stats_agents_listed", None)
        })
        .sum();
    assert_eq!(listed, 3.0, "the shards split the agents");

    let check = |file: &Path| {
        world
            .collector()
            .env("STATS_COLLECTOR_METRICS_FILE", file)
            .arg("check")
            .run()
    };
    let writable = check(&files[0]);
    writable.assert_success();
    assert!(
        writable.stdout.contains(&format!(
            "metrics  ok    {}: folder writable",
            files[0].display()
        )),
        "{writable}"
    );
    let missing_folder = scratch.0.join("no-such-folder").join("asgard-stats.prom");
    let unwritable = check(&missing_folder);
    unwritable.assert_status(69);
    assert!(
        unwritable.stdout.contains(&format!(
            "metrics  FAIL  {}: cannot be written",
            missing_folder.display()
        )),
        "{unwritable}"
    );
    assert!(
        unwritable
            .stdout
            .ends_with("pass     FAIL  a pass can run but cannot write its metrics file\n"),
        "{unwritable}"
    );

    // A pass whose file cannot be written still delivers, says so, and ends with its
    // summary.
    let run = world
        .collector()
        .env("STATS_COLLECTOR_METRICS_FILE", &missing_folder)
        .args(["--log-format", "json", "collect"])
        .run();
    run.assert_success();
    assert!(
        run.stderr.contains("cannot write the metrics file"),
        "{run}"
    );
    run.summary();
}

#[test]
fn the_alert_rules_pass_promtool_and_their_own_tests() {
    let rules = "contrib/prometheus/asgard-stats.rules.yml";
    let tests = "contrib/prometheus/asgard-stats.rules.test.yml";
    assert_promtool(&["check", "rules", rules], "");
    assert_promtool(&["test", "rules", tests], "");
    let text = std::fs::read_to_string(repo_root().join(rules)).expect("the rules");
    for alert in [
        "AsgardStatsPassesFailing",
        "AsgardStatsNoSuccess",
        "AsgardStatsAgentsFailing",
        "AsgardStatsNearDeadline",
    ] {
        assert!(text.contains(&format!("alert: {alert}")), "{alert} missing");
    }
    let tested = std::fs::read_to_string(repo_root().join(tests)).expect("the rule tests");
    for alert in text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tested.contains(&format!("alertname: {alert}")),
            "the rule tests leave out {alert}"
        );
    }
}

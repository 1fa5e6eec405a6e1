//! The metrics file (`--metrics-file`) and the alert rules of `contrib/prometheus`: every
//! kind of pass (0, 3, 69 for each thing that can be down, 75) leaves a current file that
//! `promtool check metrics` accepts and whose numbers are those of the pass's own summary
//! line; the last success survives failed passes; shards label their samples; `check`
//! says whether the file can be written; the rules pass `promtool check rules` and their
//! own `promtool test rules`. promtool comes from the Debian package `prometheus`, which
//! `scripts/services ensure` installs: these tests fail without it, they never skip.
//! Clusters here bind agents on loopback ranges from `loopback_range`.

use crate::common::*;
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
    ("resent", "asgard_stats_documents_resent", None),
    ("outbox_full", "asgard_stats_outbox_full", None),
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
    assert_counts_of(run, &text);
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

/// Every count of the run's summary line (`--log-format json`) is the number of `text`
/// (a metrics file, or what a Pushgateway holds for the pass's group), and so is its exit
/// code.
fn assert_counts_of(run: &Run, text: &str) {
    let summary = run.summary();
    for (key, value) in &summary {
        if LOG_FIELDS.contains(&key.as_str()) || WORD_FIELDS.contains(&key.as_str()) {
            continue;
        }
        // A count per reason (`agents_failed_http_status`) is its family's sample of that
        // reason (`asgard_stats_agents_failed{reason="http-status"}`).
        let by_reason = ["agents_failed", "deliveries_failed"]
            .iter()
            .find_map(|family| {
                let reason = key.strip_prefix(&format!("{family}_"))?;
                let label = format!("reason=\"{}\"", reason.replace('_', "-"));
                Some((format!("asgard_stats_{family}"), label))
            });
        let (name, label) = match &by_reason {
            Some((name, label)) => (name.as_str(), Some(label.as_str())),
            None => {
                let (_, name, label) = SUMMARY_IN_METRICS
                    .iter()
                    .find(|(k, _, _)| k == key)
                    .unwrap_or_else(|| panic!("the summary's {key} has no metric"));
                (*name, *label)
            }
        };
        let expected = value
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {run}"));
        let got = metric(text, name, label);
        assert!(
            (got - expected).abs() < 1e-6,
            "{key}: summary {expected}, metrics {got}\n{text}\n{run}"
        );
    }
    for (key, _, _) in SUMMARY_IN_METRICS {
        assert!(summary.contains_key(*key), "the summary lost {key}: {run}");
    }
    assert_eq!(
        metric(text, "asgard_stats_exit_code", None),
        f64::from(run.status.expect("an exit code")),
    );
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
    let mut world = World::start(fresh_spec(3, 2));
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
    world.wait_for_new_samples();
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
    let world = World::start(fresh_spec(3, 2));
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

/// The samples a Pushgateway's `/metrics` holds for one group of job asgard-stats: the
/// shard's (`Some("1/2")`) or the unsharded one's (None), as sample lines.
fn pushed_group(pushgateway: &Pushgateway, shard: Option<&str>) -> String {
    let shard_label = shard.map(|s| format!("shard=\"{s}\""));
    pushgateway
        .metrics()
        .lines()
        .filter(|l| l.starts_with("asgard_stats_") && l.contains("job=\"asgard-stats\""))
        .filter(|l| match &shard_label {
            Some(label) => l.contains(label.as_str()),
            None => !l.contains("shard="),
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Every sample of a metrics file is in the pushed group, with the same value: the same
/// families, the Pushgateway adding only its `job` and `instance` labels.
fn assert_file_pushed(file_text: &str, pushed: &str) {
    let label_set = |labels: &str| -> std::collections::BTreeSet<String> {
        labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let pushed = samples(pushed);
    for (name, labels, value) in samples(file_text) {
        let wanted = label_set(&labels);
        let found = pushed.iter().find(|(n, l, _)| {
            let mut l = label_set(l);
            l.remove("instance=\"\"");
            l.remove("job=\"asgard-stats\"");
            *n == name && l == wanted
        });
        match found {
            Some((_, _, pushed_value)) => assert_eq!(
                *pushed_value, value,
                "{name}{{{labels}}} pushed with another value"
            ),
            None => panic!("{name}{{{labels}}} was not pushed:\n{pushed:?}"),
        }
    }
}

#[test]
fn passes_push_the_metrics_file_to_a_real_pushgateway_grouped_by_shard() {
    let world = World::start(fresh_spec(3, 2));
    let pushgateway = Pushgateway::start();
    let scratch = Scratch::new();
    let file = scratch.0.join("asgard-stats.prom");
    let pushing = || {
        world
            .collector()
            .env("STATS_COLLECTOR_PUSHGATEWAY", pushgateway.url())
    };

    // With a metrics file: the group holds the file's very samples.
    let (run, text, success) = pass(pushing(), &file, 0, 0.0);
    let pushed = pushed_group(&pushgateway, None);
    assert_counts_of(&run, &pushed);
    assert_file_pushed(&text, &pushed);
    assert!(!run.stderr.contains("Pushgateway"), "{run}");

    // Without one, and failing (the broker is down): the exit code and counts are this
    // pass's, and the last success pushed before stays.
    let down = format!("127.0.0.1:{}", free_port());
    let run = pushing()
        .env("STATS_COLLECTOR_RABBITMQ_HOST", &down)
        .args(["--log-format", "json", "collect"])
        .run();
    run.assert_status(69);
    let pushed = pushed_group(&pushgateway, None);
    assert_counts_of(&run, &pushed);
    assert_eq!(
        metric(&pushed, "asgard_stats_last_success_timestamp_seconds", None),
        success,
        "{pushed}"
    );

    // Shards: each its own group, whichever way the shard is given.
    for shard in [
        &["--shard-index", "0", "--shard-count", "2"][..],
        &["--shard", "2/2"],
    ] {
        let run = pushing()
            .args(shard)
            .args(["--log-format", "json", "collect"])
            .run();
        run.assert_success();
        let value = if shard.len() == 2 { "2/2" } else { "1/2" };
        let pushed = pushed_group(&pushgateway, Some(value));
        assert_counts_of(&run, &pushed);
        for (name, labels, _) in samples(&pushed) {
            assert!(
                labels.contains(&format!("shard=\"{value}\"")),
                "{name}{{{labels}}}"
            );
        }
    }
    let listed: f64 = ["1/2", "2/2"]
        .iter()
        .map(|s| {
            let pushed = pushed_group(&pushgateway, Some(s));
            metric(&pushed, "asgard_stats_agents_listed", None)
        })
        .sum();
    assert_eq!(listed, 3.0, "the shards split the agents");
    // The unsharded group is still there, unchanged by the shards.
    let unsharded = pushed_group(&pushgateway, None);
    assert_eq!(metric(&unsharded, "asgard_stats_exit_code", None), 69.0);

    // A dry run pushes nothing.
    let before = pushed_group(&pushgateway, Some("2/2"));
    pushing()
        .args([
            "--shard",
            "2/2",
            "collect",
            "--dry-run",
            "--dry-run-interval",
            "0.1",
        ])
        .run()
        .assert_success();
    assert_eq!(pushed_group(&pushgateway, Some("2/2")), before);
}

#[test]
fn credentials_in_the_pushgateway_url_are_sent_as_basic_auth_and_never_shown() {
    let world = World::start(fresh_spec(2, 1));
    let pushgateway = Pushgateway::with_basic_auth();
    let (user, password) = PUSHGATEWAY_USER;
    let authority = pushgateway.url().replace("http://", "");
    let with = |user_info: &str| format!("http://{user_info}@{authority}");
    let shown = format!("http://<redacted>@{authority}");
    let right = with(&format!("{user}:{}", password.replace('-', "%2D")));
    let wrong = with(&format!("{user}:{password}x"));

    let check = |url: &str| {
        world
            .collector()
            .env("STATS_COLLECTOR_PUSHGATEWAY", url)
            .arg("check")
            .run()
    };
    let ok = check(&right);
    ok.assert_success();
    assert!(
        ok.stdout
            .contains(&format!("pushgateway  ok    {shown}: reachable, ready")),
        "{ok}"
    );
    let refused = check(&wrong);
    refused.assert_status(69);
    assert!(
        refused.stdout.contains(&format!(
            "pushgateway  FAIL  {shown}: not reachable: HTTP 401 Unauthorized"
        )),
        "{refused}"
    );

    let collect = |url: &str| {
        world
            .collector()
            .env("STATS_COLLECTOR_PUSHGATEWAY", url)
            .args(["--log-format", "json", "collect"])
            .run()
    };
    let pushed = collect(&right);
    pushed.assert_success();
    assert!(!pushed.stderr.contains("Pushgateway"), "{pushed}");
    assert_counts_of(&pushed, &pushed_group(&pushgateway, None));
    let unauthorized = collect(&wrong);
    unauthorized.assert_success();
    assert!(
        unauthorized.stderr.contains(&format!(
            "cannot push the metrics to the Pushgateway {shown}: HTTP 401 Unauthorized"
        )),
        "{unauthorized}"
    );
    for run in [&ok, &refused, &pushed, &unauthorized] {
        let out = format!("{}{}", run.stdout, run.stderr);
        assert!(!out.contains(password), "{run}");
    }
}

#[test]
fn a_pushgateway_that_is_down_or_hangs_changes_nothing_else() {
    let world = World::start(fresh_spec(3, 2));
    let scratch = Scratch::new();
    let file = scratch.0.join("asgard-stats.prom");
    world.collect().assert_success();
    let refused = format!("http://asgard:Pu5h-s3cret@127.0.0.1:{}", free_port());
    let silent = SilentListener::start();
    let hangs = format!("http://asgard:Pu5h-s3cret@127.0.0.1:{}", silent.port());
    let mut success = 0.0;
    for (gateway, why) in [(&refused, "connection refused"), (&hangs, "timed out")] {
        world.wait_for_new_samples();
        let started = std::time::Instant::now();
        let collector = world
            .collector()
            .env("STATS_COLLECTOR_PUSHGATEWAY", gateway)
            .env("STATS_CONNECT_TIMEOUT", "1")
            .env("STATS_REQUEST_TIMEOUT", "2");
        let (run, _, last) = pass(collector, &file, 0, success);
        success = last;
        let took = started.elapsed();
        assert_eq!(run.summary()["published"], 6, "{run}");
        assert_eq!(world.messages().len(), 6, "every document delivered: {run}");
        assert_eq!(world.stored_tasks().len(), 6, "{run}");
        let warnings: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains("Pushgateway"))
            .collect();
        assert_eq!(warnings.len(), 1, "one line: {run}");
        let redacted = gateway.replace("asgard:Pu5h-s3cret", "<redacted>");
        assert!(
            warnings[0].contains(&format!(
                "cannot push the metrics to the Pushgateway {redacted}: {why}"
            )) && warnings[0].contains("\"level\":\"WARN\""),
            "{run}"
        );
        assert!(!run.stderr.contains("Pu5h-s3cret"), "{run}");
        // Bounded by the timeouts (2 s here), with room for a loaded machine; a push that
        // hung would hold the pass until the test's own 60 s limit.
        assert!(took < Duration::from_secs(40), "took {took:?}: {run}");
        eprintln!("pass with a Pushgateway that gives {why}: {took:?}");

        let check = world
            .collector()
            .env("STATS_COLLECTOR_PUSHGATEWAY", gateway)
            .env("STATS_CONNECT_TIMEOUT", "1")
            .env("STATS_REQUEST_TIMEOUT", "2")
            .arg("check")
            .run();
        check.assert_status(69);
        assert!(
            check.stdout.contains(&format!(
                "pushgateway  FAIL  {redacted}: not reachable: {why}"
            )) && check
                .stdout
                .ends_with("a pass can run but cannot push its metrics\n"),
            "{check}"
        );
    }
}

/// A run whose settings are wrong (exit 2) still leaves its exit code and time in the
/// metrics file and the Pushgateway, whose own settings could be read: the alert on
/// failing passes sees it. Its last success stays the one before.
#[test]
fn a_configuration_error_reaches_the_metrics_file_and_the_pushgateway() {
    let pushgateway = Pushgateway::start();
    let scratch = Scratch::new();
    let file = scratch.0.join("asgard-stats.prom");
    std::fs::write(
        &file,
        "asgard_stats_last_success_timestamp_seconds 1700000000\nasgard_stats_exit_code 0\n",
    )
    .expect("an old file");
    for (variable, value) in [
        ("STATS_COLLECTOR_DEADLINE", "abc"),
        ("STATS_COLLECTOR_WORKERS", "0"),
    ] {
        let before = now();
        let run = collector()
            .env(variable, value)
            .env("STATS_COLLECTOR_METRICS_FILE", &file)
            .env("STATS_COLLECTOR_PUSHGATEWAY", pushgateway.url())
            .env("STATS_COLLECTOR_SHARD", "2/3")
            .arg("collect")
            .run();
        run.assert_status(2);
        let text = std::fs::read_to_string(&file).expect("the metrics file");
        assert_promtool(&["check", "metrics"], &text);
        assert_eq!(
            metric(&text, "asgard_stats_exit_code", None),
            2.0,
            "{variable}: {text}"
        );
        let ran = metric(&text, "asgard_stats_last_run_timestamp_seconds", None);
        assert!(
            ran >= before.floor() && ran <= now() + 1.0,
            "{variable}: {text}"
        );
        assert_eq!(
            metric(&text, "asgard_stats_last_success_timestamp_seconds", None),
            1_700_000_000.0,
            "{variable}: {text}"
        );
        assert!(text.contains("shard=\"2/3\""), "{text}");
        let pushed = pushed_group(&pushgateway, Some("2/3"));
        assert!(pushed.contains("asgard_stats_exit_code{"), "{pushed}");
        assert_eq!(
            metric(&pushed, "asgard_stats_exit_code", None),
            2.0,
            "{pushed}"
        );
    }
    // A metrics file that cannot itself be read is not written: nothing to report to.
    let run = collector()
        .env("STATS_COLLECTOR_METRICS_FILE", scratch.0.join("folder/"))
        .arg("collect")
        .run();
    run.assert_status(2);
    assert!(!scratch.0.join("folder").exists());
}

/// A scheduler's partial pass: with `STATS_COLLECTOR_PARTIAL_EXIT_CODE=0` the process
/// exits 0, while its summary and metrics still say 3.
#[test]
fn a_partial_pass_may_exit_0_for_a_scheduler_and_still_say_partial() {
    let world = World::start(fresh_spec(2, 2));
    world.cluster.set_agent_fault(0, AgentFault::Refuse);
    let scratch = Scratch::new();
    let file = scratch.0.join("asgard-stats.prom");
    let run = world
        .collector()
        .env("STATS_COLLECTOR_PARTIAL_EXIT_CODE", "0")
        .env("STATS_COLLECTOR_METRICS_FILE", &file)
        .arg("collect")
        .run();
    run.assert_status(0);
    assert!(run.stderr.contains(" exit=3"), "{run}");
    let text = std::fs::read_to_string(&file).expect("the metrics file");
    assert_eq!(metric(&text, "asgard_stats_exit_code", None), 3.0, "{text}");
    for other in ["1", "2", "69"] {
        let refused = world
            .collector()
            .env("STATS_COLLECTOR_PARTIAL_EXIT_CODE", other)
            .arg("collect")
            .run();
        refused.assert_status(2);
    }
}

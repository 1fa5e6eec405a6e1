//! Logs an operator can read in any failure (docs/exit-codes.md): lines about single
//! agents and tasks are bounded per pass and the rest counted in one line per reason,
//! while the summary and the metrics count everything; a setting error is one line in
//! the chosen log format, naming where the value came from.

use crate::common::*;
use mesos_sim::{AgentFault, ClusterSpec};
use std::time::Duration;

/// The stderr lines of a run logged with `--log-format json`, parsed.
fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

fn message(line: &serde_json::Value) -> &str {
    line["message"].as_str().unwrap_or_default()
}

#[test]
fn a_hundred_thousand_refusing_agents_give_a_few_dozen_lines_and_are_all_counted() {
    const AGENTS: u64 = 100_000;
    let world = World::start(ClusterSpec {
        unserved_agents: AGENTS as usize - 2,
        ..fresh_spec(2, 2)
    });
    let metrics = std::env::temp_dir().join(unique_name("asgard-logs-metrics"));
    let run = world
        .collector()
        .args(["--log-format", "json", "--metrics-file"])
        .arg(&metrics)
        // A debug build reading a list of 100,000 agents on a loaded machine: room enough
        // (as for the 50,000 agents of tests/versions.rs).
        .args(["collect", "--deadline", "110", "--request-timeout", "100"])
        .timeout(Duration::from_secs(180))
        .run();
    run.assert_status(3);
    let lines = json_lines(&run);
    eprintln!(
        "{} stderr lines for {AGENTS} agents, {}s",
        lines.len(),
        run.summary()["duration_secs"]
    );
    assert!(lines.len() <= 40, "{} lines: {run}", lines.len());
    let named = lines
        .iter()
        .filter(|l| l["reason"] == "refused" && message(l).contains(" failed: "))
        .count();
    assert_eq!(named, 20, "the first 20 failed agents are named: {run}");
    let rest = format!(
        "... and {} more agents failed (refused) not named above ({} in all)",
        AGENTS - 2 - 20,
        AGENTS - 2
    );
    let rest_line = lines
        .iter()
        .find(|l| message(l) == rest)
        .unwrap_or_else(|| panic!("no line {rest:?}: {run}"));
    assert_eq!(rest_line["agents"], AGENTS - 2 - 20);
    let summary = run.summary();
    assert_eq!(count(&summary, "agents_listed"), AGENTS, "{run}");
    assert_eq!(count(&summary, "agents_failed"), AGENTS - 2, "{run}");
    assert_eq!(count(&summary, "agents_answered"), 2, "{run}");
    assert!(
        message(&lines[lines.len() - 1]).contains(&format!("failed={} refused=", AGENTS - 2)),
        "{run}"
    );
    let text = std::fs::read_to_string(&metrics).expect("the metrics file is written");
    let _ = std::fs::remove_file(&metrics);
    let sample = format!(
        "asgard_stats_agents_failed{{reason=\"refused\"}} {}\n",
        AGENTS - 2
    );
    assert!(text.contains(&sample), "no {sample:?} in {text}");
}

/// Every task of both agents restarts between two passes: its CPU counters go down.
#[test]
fn counter_resets_after_a_restart_name_ten_then_count_the_rest() {
    const TASKS: usize = 30;
    let world = World::start(fresh_spec(2, 1));
    let body = |agent: usize, ts: f64, user: f64| {
        let entries: Vec<String> = (0..TASKS)
            .map(|task| {
                format!(
                    r#"{{"executor_id": "restarted_app-{agent}.{task}", "statistics": {{"timestamp": {ts}, "cpus_user_time_secs": {user}, "cpus_system_time_secs": 1, "cpus_limit": 1.1, "mem_rss_bytes": 512, "mem_limit_bytes": 1024}}}}"#
                )
            })
            .collect();
        format!("[{}]", entries.join(","))
    };
    for agent in 0..2 {
        let answer = AgentFault::Body(body(agent, 1000.0, 500.0));
        world.cluster.set_agent_fault(agent, answer);
    }
    world
        .collector()
        .args(["--log-format", "json", "collect"])
        .run()
        .assert_success();
    // The cluster restarted: the same tasks, their counters from nearly zero.
    for agent in 0..2 {
        let answer = AgentFault::Body(body(agent, 1060.0, 3.0));
        world.cluster.set_agent_fault(agent, answer);
    }
    let run = world
        .collector()
        .args(["--log-format", "json", "collect"])
        .run();
    run.assert_success();
    let lines = json_lines(&run);
    let named = lines
        .iter()
        .filter(|l| message(l).contains("went down; new baseline"))
        .count();
    assert_eq!(named, 10, "ten resets named: {run}");
    let rest = format!(
        "... and {} more tasks whose CPU counters went down ({} in all); new baselines",
        2 * TASKS - 10,
        2 * TASKS
    );
    assert!(
        lines.iter().any(|l| message(l) == rest),
        "no {rest:?}: {run}"
    );
    assert!(lines.len() <= 16, "{} lines: {run}", lines.len());
    assert_eq!(count(&run.summary(), "resets"), 2 * TASKS as u64, "{run}");
}

/// The one line of a run that failed on a setting: JSON with a time, exit 2.
#[track_caller]
fn setting_error(run: &Run) -> String {
    run.assert_status(2);
    let lines = json_lines(run);
    assert_eq!(lines.len(), 1, "one line: {run}");
    let line = &lines[0];
    assert_eq!(line["level"], "ERROR", "{run}");
    assert!(
        line["time"].as_str().is_some_and(|t| t.len() >= 20),
        "{run}"
    );
    message(line).to_string()
}

#[test]
fn a_setting_error_is_logged_in_the_chosen_format_naming_where_the_value_came_from() {
    let master = ("HOLLOWMAN_MESOS_ADDRESS", "http://127.0.0.1:1");
    // A number clap cannot parse, from a variable: the variable is named.
    let run = collector()
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
        .env("STATS_CONNECT_TIMEOUT", "two")
        .arg("collect")
        .run();
    let line = setting_error(&run);
    assert!(
        line.contains("invalid value \"two\" for STATS_CONNECT_TIMEOUT (--connect-timeout)"),
        "{run}"
    );
    // The same from the flag: the flag is named.
    let run = collector()
        .args(["--log-format=json", "--connect-timeout", "three", "collect"])
        .run();
    let line = setting_error(&run);
    assert!(
        line.contains("invalid value \"three\" for --connect-timeout"),
        "{run}"
    );
    assert!(!line.contains("STATS_CONNECT_TIMEOUT"), "{run}");
    // clap reads the variable even beside a good flag: the variable is named.
    let run = collector()
        .env("STATS_CONNECT_TIMEOUT", "two")
        .args(["--log-format=json", "--connect-timeout", "3", "collect"])
        .run();
    let line = setting_error(&run);
    assert!(line.contains("\"two\" for STATS_CONNECT_TIMEOUT"), "{run}");
    // A value checked by the configuration, from a variable.
    let run = collector()
        .env(master.0, master.1)
        .env("STATS_COLLECTOR_SHARD", "5/4")
        .args(["--log-format", "json", "collect"])
        .run();
    let line = setting_error(&run);
    assert!(
        line.contains("STATS_COLLECTOR_SHARD (--shard) must be K/N"),
        "{run}"
    );
    // Any other usage error is one line too.
    let run = collector()
        .args(["--log-format", "json", "collect", "--no-such-flag"])
        .run();
    let line = setting_error(&run);
    assert!(line.contains("--no-such-flag"), "{run}");
}

#[test]
fn an_invalid_dry_run_interval_is_a_setting_error_not_two_seconds() {
    let master = ("HOLLOWMAN_MESOS_ADDRESS", "http://127.0.0.1:1");
    for bad in ["0", "-1", "NaN", "inf", "100000"] {
        let run = collector()
            .env(master.0, master.1)
            .env("STATS_COLLECTOR_DRY_RUN_INTERVAL", bad)
            .args(["--log-format", "json", "collect", "--dry-run"])
            .run();
        let line = setting_error(&run);
        assert!(
            line.contains("STATS_COLLECTOR_DRY_RUN_INTERVAL (--dry-run-interval) must be"),
            "{bad}: {run}"
        );
    }
    let run = collector()
        .env(master.0, master.1)
        .args(["--log-format", "json", "collect", "--dry-run"])
        .arg("--dry-run-interval=0")
        .run();
    let line = setting_error(&run);
    assert!(line.contains("--dry-run-interval must be"), "{run}");
}

/// The summary's level and fields, by how the pass ended: what an operator acts on is a
/// warning or an error, a normal state (another pass holds the lock) is not; the failures
/// per reason are fields of their own.
#[test]
fn the_summary_level_follows_the_exit_and_counts_each_reason_as_a_field() {
    let world = World::start(fresh_spec(3, 2));
    world.cluster.set_agent_fault(0, AgentFault::Refuse);
    let json = || world.collector().args(["--log-format", "json", "collect"]);
    let partial = json().run();
    partial.assert_status(3);
    let summary = partial.summary();
    assert_eq!(summary["level"], "WARN", "{partial}");
    assert_eq!(summary["agents_failed_refused"], 1, "{partial}");
    assert_eq!(summary["agents_failed"], 1, "{partial}");
    assert_eq!(summary["exit_code"], 3, "{partial}");

    // Another pass holds the lock: exit 75, nothing logged as an error.
    let _: () = redis::cmd("SET")
        .arg(format!("{}lock", world.prefix))
        .arg("another-pass")
        .arg("EX")
        .arg(60)
        .query(&mut world.redis.conn())
        .expect("SET");
    let locked = json().run();
    locked.assert_status(75);
    for line in json_lines(&locked) {
        assert_ne!(line["level"], "ERROR", "{line}");
    }
    assert_eq!(locked.summary()["level"], "INFO", "{locked}");

    // Nothing could be done: an error, and so is its summary.
    let down = json()
        .env(
            "STATS_COLLECTOR_RABBITMQ_HOST",
            format!("127.0.0.1:{}", free_port()),
        )
        .run();
    down.assert_status(69);
    assert_eq!(down.summary()["level"], "ERROR", "{down}");
}

/// Under systemd, stderr is the journal's stream and `JOURNAL_STREAM` names it: each line
/// starts with its sd-daemon priority. A `JOURNAL_STREAM` naming another stream (inherited
/// by a child whose stderr goes elsewhere) changes nothing.
#[test]
fn under_the_journal_each_line_starts_with_its_priority() {
    let binary = env!("CARGO_BIN_EXE_asgard-stats");
    let run = |journal_stream: &str| {
        command("sh")
            .args([
                "-c",
                &format!("JOURNAL_STREAM={journal_stream} exec {binary} --deadline abc collect"),
            ])
            .run()
    };
    let journal = run("$(stat -L -c %d:%i /proc/self/fd/2)");
    journal.assert_status(2);
    let line = journal.stderr.lines().next().unwrap_or_default();
    assert!(line.starts_with("<3>"), "{journal}");
    let elsewhere = run("1:1");
    elsewhere.assert_status(2);
    assert!(!elsewhere.stderr.contains("<3>"), "{elsewhere}");
}

/// Typos are caught: a variable of ours that no setting reads is named with the nearest
/// known one (never with its value), a mistyped subcommand or flag gets clap's
/// suggestion, and a bare `asgard-stats` says a subcommand is needed.
#[test]
fn typos_in_variables_subcommands_and_flags_are_named_with_what_was_meant() {
    let binary = env!("CARGO_BIN_EXE_asgard-stats");
    let secret = "typo-secret-5f1e";
    let run = command(binary)
        .env("STATS_COLLECTOR_RABBITMQ_PASSWORD", secret)
        .env("STATS_COLLECTOR_WORKER", "4")
        .env(
            "STATS_COLLECTOR_RABBITMQ_HOST",
            format!("127.0.0.1:{}", free_port()),
        )
        .env(
            "HOLLOWMAN_MESOS_ADDRESS",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .args(["--deadline", "3", "collect"])
        .run();
    for (typo, meant) in [
        (
            "STATS_COLLECTOR_RABBITMQ_PASSWORD",
            "STATS_COLLECTOR_RABBITMQ_PWD",
        ),
        ("STATS_COLLECTOR_WORKER", "STATS_COLLECTOR_WORKERS"),
    ] {
        let line = format!(
            "{typo} is not a setting of asgard-stats and is ignored; did you mean {meant}?"
        );
        assert_eq!(run.stderr.matches(&line).count(), 1, "{run}");
    }
    assert!(
        !run.stderr.contains(secret) && !run.stdout.contains(secret),
        "{run}"
    );
    for (args, said) in [
        (
            &["colect"][..],
            "unrecognized subcommand 'colect'; some similar subcommands exist: 'check', 'collect'",
        ),
        (
            &["collect", "--dryrun"][..],
            "a similar argument exists: '--dry-run'",
        ),
        (
            &[][..],
            "a subcommand is needed: collect (one pass) or check (can a pass run?)",
        ),
    ] {
        let run = command(binary).args(args).run();
        run.assert_status(2);
        assert!(run.stderr.contains(said), "{args:?}: {run}");
    }
}

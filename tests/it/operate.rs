//! Operating the tool ("pleasant to operate"): the checked-in man page matches the clap
//! definitions, `asgard-stats check` against real servers and simulated masters, the
//! dry-run table, JSON log lines, and a README that lists every setting `--help` shows.
//! Clusters here bind agents on loopback ranges from `loopback_range`.

use crate::common::*;
use mesos_sim::{AgentFault, ClusterSpec, MasterFault};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Two agents of two tasks behind a leader and one standby master.
fn cluster() -> ClusterSpec {
    ClusterSpec {
        standby_masters: 1,
        ..fresh_spec(2, 2)
    }
}

fn read_repo_file(path: &str) -> String {
    let path = repo_root().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// The man page

#[test]
fn the_checked_in_man_page_is_generated_from_the_clap_definitions() {
    let run = collector().arg("man").run();
    run.assert_success();
    let page = run.stdout.clone();
    let checked_in = read_repo_file("man/asgard-stats.1");
    assert!(
        page == checked_in,
        "man page out of date: run `cargo run -q -- man > man/asgard-stats.1`"
    );

    // Complete: both commands with their own options, every variable, every exit code.
    for section in [
        ".SH SYNOPSIS",
        ".SH COMMANDS",
        ".SH OPTIONS",
        ".SH \"COLLECT OPTIONS\"",
        ".SH ENVIRONMENT",
        ".SH \"EXIT STATUS\"",
    ] {
        assert!(
            page.contains(section),
            "{section} missing from the man page"
        );
    }
    let collect_options = &page[page.find(".SH \"COLLECT OPTIONS\"").unwrap_or(0)..];
    for flag in [
        "dry\\-run",
        "output",
        "dry\\-run\\-interval",
        "declare\\-queue",
    ] {
        assert!(
            collect_options.contains(&format!("\\fB\\-\\-{flag}\\fR")),
            "collect --{flag} missing from the man page"
        );
    }
    assert!(page.contains("\\fBcheck\\fR"), "the check command");
    let help = Help::read();
    let environment = &page[page.find(".SH ENVIRONMENT").unwrap_or(0)..];
    for variable in help.options.values().filter_map(|o| o.env.as_ref()) {
        assert!(
            environment.contains(&variable.replace('-', "\\-")),
            "{variable} missing from ENVIRONMENT"
        );
    }
    assert!(environment.contains("HOLLOWMAN_MESOS_ADDRESS_0"));
    let exit_status = &page[page.find(".SH \"EXIT STATUS\"").unwrap_or(0)..];
    for code in help.exit_codes.keys() {
        assert!(
            exit_status.contains(&format!(".TP\n\\fB{code}\\fR\n")),
            "exit code {code} missing from EXIT STATUS"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// check

/// One line of `check`: part, status word, detail, and the column the status starts at.
#[derive(Debug)]
struct CheckLine {
    part: String,
    status: String,
    detail: String,
    status_column: usize,
}

fn check_lines(run: &Run) -> Vec<CheckLine> {
    let lines: Vec<CheckLine> = run
        .stdout
        .lines()
        .map(|line| {
            let part = line.split_whitespace().next().unwrap_or("").to_string();
            let rest = line[part.len()..].trim_start();
            let status_column = line.len() - rest.len();
            let status = rest.split_whitespace().next().unwrap_or("").to_string();
            let detail = rest[status.len()..].trim_start().to_string();
            CheckLine {
                part,
                status,
                detail,
                status_column,
            }
        })
        .collect();
    assert!(!lines.is_empty(), "check printed nothing: {run}");
    let column = lines[0].status_column;
    for line in &lines {
        assert!(
            ["ok", "FAIL", "-"].contains(&line.status.as_str()),
            "status word {:?}: {run}",
            line.status
        );
        assert_eq!(
            line.status_column, column,
            "status column not aligned: {run}"
        );
    }
    let last = lines.last().map(|l| l.part.as_str());
    assert_eq!(last, Some("pass"), "the verdict comes last: {run}");
    lines
}

/// The line of a master, whose detail starts with its URL.
#[track_caller]
fn master_line<'a>(lines: &'a [CheckLine], url: &str, run: &Run) -> &'a CheckLine {
    let found: Vec<&CheckLine> = lines
        .iter()
        .filter(|l| l.part == "master" && l.detail.starts_with(&format!("{url}: ")))
        .collect();
    assert_eq!(found.len(), 1, "expected one line for master {url}: {run}");
    found[0]
}

/// The only line of `part` whose detail contains `needle`.
#[track_caller]
fn line_of<'a>(lines: &'a [CheckLine], part: &str, needle: &str, run: &Run) -> &'a CheckLine {
    let found: Vec<&CheckLine> = lines
        .iter()
        .filter(|l| l.part == part && l.detail.contains(needle))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {part} line with {needle:?}: {run}"
    );
    found[0]
}

#[test]
fn check_says_ok_for_every_part_and_names_the_leader_behind_a_standby() {
    let world = World::start(cluster());
    let run = world.collector().arg("check").run();
    run.assert_success();
    let lines = check_lines(&run);
    let leader = world.cluster.leader_url();
    let standby = &world.cluster.standby_urls()[0];
    let via_standby = master_line(&lines, standby, &run);
    assert_eq!(via_standby.status, "ok", "{run}");
    assert!(
        via_standby
            .detail
            .contains(&format!("not leading; leader {leader}")),
        "{run}"
    );
    let leading = master_line(&lines, &leader, &run);
    assert_eq!(leading.status, "ok");
    assert!(leading.detail.contains("leading; 2 active agents"), "{run}");
    let redis = line_of(&lines, "redis", &world.redis.url(), &run);
    assert!(
        redis.status == "ok" && redis.detail.contains("version "),
        "{run}"
    );
    assert!(
        redis
            .detail
            .contains(&format!("lock {}lock free", world.prefix)),
        "{run}"
    );
    let broker = line_of(&lines, "broker", "logged in as guest", &run);
    assert_eq!(broker.status, "ok");
    let queue = line_of(&lines, "queue", &world.queue, &run);
    assert_eq!(queue.status, "ok");
    let verdict = line_of(&lines, "pass", "a pass can run", &run);
    assert_eq!(verdict.status, "ok");
    assert!(
        lines.iter().all(|l| l.status == "ok"),
        "every line ok: {run}"
    );
    assert!(world.stored_keys().is_empty(), "check collects nothing");
    assert!(!world.redis_exists(&format!("{}lock", world.prefix)));
}

#[test]
fn check_fails_a_master_that_is_down_but_passes_while_another_leads() {
    let world = World::start(cluster());
    let standby = world.cluster.standby_urls()[0].clone();
    world.cluster.set_master_fault(0, MasterFault::Refuse);
    let run = world.collector().arg("check").run();
    run.assert_success();
    let lines = check_lines(&run);
    let down = master_line(&lines, &standby, &run);
    assert_eq!(down.status, "FAIL", "{run}");
    assert!(down.detail.contains("connection refused"), "{run}");
    let leader = master_line(&lines, &world.cluster.leader_url(), &run);
    assert_eq!(leader.status, "ok", "{run}");

    // With no master leading, a pass cannot run.
    world.cluster.set_master_fault(1, MasterFault::Status(503));
    let run = world.collector().arg("check").run();
    run.assert_status(69);
    let lines = check_lines(&run);
    let no_leader = master_line(&lines, &world.cluster.leader_url(), &run);
    assert_eq!(no_leader.status, "FAIL");
    assert!(no_leader.detail.contains("HTTP 503"), "{run}");
    let verdict = line_of(&lines, "pass", "no master leads", &run);
    assert_eq!(verdict.status, "FAIL");
}

#[test]
fn check_exits_69_when_redis_is_down() {
    let mut world = World::start(cluster());
    world.redis.stop();
    let run = world.collector().arg("check").run();
    run.assert_status(69);
    let lines = check_lines(&run);
    let redis = line_of(&lines, "redis", &world.redis.url(), &run);
    assert_eq!(redis.status, "FAIL", "{run}");
    assert!(redis.detail.contains("connection refused"), "{run}");
    let verdict = line_of(&lines, "pass", "Redis does not answer", &run);
    assert_eq!(verdict.status, "FAIL");
    // The other parts are still checked and shown.
    assert_eq!(line_of(&lines, "broker", "logged in", &run).status, "ok");
    assert_eq!(line_of(&lines, "queue", &world.queue, &run).status, "ok");
}

#[test]
fn check_fails_the_broker_on_a_wrong_password_without_showing_it() {
    let world = World::start(cluster());
    let run = world
        .collector()
        .env("STATS_COLLECTOR_RABBITMQ_PWD", "not-the-password")
        .arg("check")
        .run();
    run.assert_status(69);
    let lines = check_lines(&run);
    let broker = line_of(&lines, "broker", "login refused", &run);
    assert_eq!(broker.status, "FAIL", "{run}");
    assert!(
        broker.detail.contains("STATS_COLLECTOR_RABBITMQ_USER/_PWD"),
        "names the settings to fix: {run}"
    );
    assert!(!run.stdout.contains("not-the-password"), "{run}");
    assert!(!run.stderr.contains("not-the-password"), "{run}");
    let verdict = line_of(&lines, "pass", "no broker login", &run);
    assert_eq!(verdict.status, "FAIL");
    // Masters and Redis are fine.
    assert!(lines
        .iter()
        .filter(|l| l.part == "master" || l.part == "redis")
        .all(|l| l.status == "ok"));
}

#[test]
fn check_fails_when_no_queue_receives_the_routing_key() {
    let world = World::without_queue(cluster());
    let run = world.collector().arg("check").run();
    run.assert_status(69);
    let lines = check_lines(&run);
    assert_eq!(line_of(&lines, "broker", "logged in", &run).status, "ok");
    let queue = line_of(&lines, "queue", "no queue receives it", &run);
    assert_eq!(queue.status, "FAIL", "{run}");
    assert!(
        queue
            .detail
            .contains(&format!("routing key {:?}", world.queue)),
        "{run}"
    );
    let verdict = line_of(&lines, "pass", "no queue receives the routing key", &run);
    assert_eq!(verdict.status, "FAIL");
    assert_eq!(
        queue_len(&world.broker, &world.queue),
        None,
        "check declares nothing"
    );
}

#[test]
fn check_shows_who_holds_the_lock() {
    let world = World::start(cluster());
    let holder = "other-host:4242:1764075000000000000";
    let mut conn = world.redis.conn();
    let key = format!("{}lock", world.prefix);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(holder)
        .query(&mut conn)
        .expect("SET");
    let run = world.collector().arg("check").run();
    run.assert_success();
    let lines = check_lines(&run);
    let redis = line_of(
        &lines,
        "redis",
        &format!("lock {key} held by {holder}"),
        &run,
    );
    assert_eq!(redis.status, "ok", "a running pass is not a failure: {run}");

    // A shard has a lock of its own, which is free.
    let run = world.collector().args(["check", "--shard", "2/3"]).run();
    run.assert_success();
    let lines = check_lines(&run);
    line_of(&lines, "redis", &format!("lock {key}:2-of-3 free"), &run);
    assert_eq!(
        redis::cmd("GET")
            .arg(&key)
            .query::<String>(&mut conn)
            .expect("GET"),
        holder,
        "check never touches the lock"
    );
}

#[test]
fn check_exits_2_on_a_configuration_error() {
    let run = collector()
        .env(
            "HOLLOWMAN_MESOS_ADDRESS",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .arg("check")
        .run();
    run.assert_status(2);
    let lines = check_lines(&run);
    let broker = line_of(&lines, "broker", "no broker configured", &run);
    assert_eq!(broker.status, "FAIL");

    let run = collector().arg("check").run();
    run.assert_status(2);
    assert!(run.stderr.contains("no Mesos master configured"), "{run}");
}

// ---------------------------------------------------------------------------------------------
// The dry-run table

#[test]
fn a_dry_run_table_is_sorted_by_cpu_and_fits_80_columns() {
    // 8 tasks per agent give several distinct cpu_pct values.
    let world = World::start(ClusterSpec {
        agents: 3,
        tasks_per_agent: 8,
        no_cfs_every: 3,
        first_ip: loopback_range(3),
        ..ClusterSpec::default()
    });
    let tasks = 24;
    let run = world
        .collector()
        .args([
            "collect",
            "--dry-run",
            "--output",
            "table",
            "--dry-run-interval",
            "0.3",
        ])
        .run();
    run.assert_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1 + tasks,
        "a header and one row per task: {run}"
    );
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["APP", "TASK", "HOST", "CPU%", "THR%", "MEM%", "MEM"],
        "{run}"
    );
    let width = lines[0].chars().count();
    let agents: BTreeSet<String> = world
        .cluster
        .agents()
        .into_iter()
        .map(|a| a.address)
        .collect();
    let apps: BTreeSet<String> = world
        .cluster
        .tasks()
        .into_iter()
        .map(|t| t.app_id)
        .collect();
    let mut cpus = Vec::new();
    for line in &lines {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
        assert_eq!(line.chars().count(), width, "not aligned: {run}");
    }
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells.len(), 7, "{line:?}");
        assert!(
            apps.iter().any(|app| shortened_from(cells[0], app)),
            "app {:?}: {line:?}",
            cells[0]
        );
        assert!(
            agents.iter().any(|host| shortened_from(cells[2], host)),
            "host {:?}: {line:?}",
            cells[2]
        );
        let cpu: f64 = cells[3]
            .parse()
            .unwrap_or_else(|_| panic!("CPU% in {line:?}"));
        cpus.push(cpu);
        let memory = cells[6];
        assert!(
            memory.ends_with(['K', 'M', 'G']) && memory[..memory.len() - 1].parse::<f64>().is_ok(),
            "memory in human units: {line:?}"
        );
    }
    assert!(
        cpus.windows(2).all(|w| w[0] >= w[1]),
        "rows sorted by CPU, highest first: {cpus:?}"
    );
    let distinct: BTreeSet<u64> = cpus.iter().map(|c| (c * 10.0) as u64).collect();
    assert!(
        distinct.len() >= 3,
        "the sort was tested on equal values: {cpus:?}"
    );

    // stdout is a pipe here, so without --output the documents are JSON lines.
    let run = world
        .collector()
        .args(["collect", "--dry-run", "--dry-run-interval", "0.3"])
        .run();
    run.assert_success();
    let docs = run.stdout_json_lines();
    assert_eq!(docs.len(), tasks, "{run}");
    assert!(docs.iter().all(|d| d["cpu_pct"].is_number()), "{run}");
    let max_json = docs
        .iter()
        .filter_map(|d| d["cpu_pct"].as_f64())
        .fold(f64::MIN, f64::max);
    assert!(
        (max_json - cpus[0]).abs() < 0.051,
        "the table's first row has the highest cpu_pct: {max_json} vs {}",
        cpus[0]
    );
}

/// Whether a table cell shows `full`, whole or shortened in the middle with `…`.
fn shortened_from(cell: &str, full: &str) -> bool {
    match cell.split_once('…') {
        None => cell == full,
        Some((head, tail)) => {
            full.len() > cell.len() - '…'.len_utf8()
                && full.starts_with(head)
                && full.ends_with(tail)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON logs

/// Every stderr line as a JSON object with level, time and message.
#[track_caller]
fn json_log_lines(run: &Run) -> Vec<serde_json::Map<String, Value>> {
    run.stderr
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}\n{run}"));
            let Value::Object(object) = value else {
                panic!("log line is not a JSON object: {line}");
            };
            for field in ["level", "time", "message"] {
                assert!(object[field].is_string(), "{field} in {line}");
            }
            let time = object["time"].as_str().unwrap_or("");
            assert!(
                time.len() >= 20 && time.contains('T') && time.ends_with('Z'),
                "RFC 3339 time: {line}"
            );
            object
        })
        .collect()
}

#[test]
fn json_logs_carry_the_agent_the_reason_and_the_summary_counts() {
    let world = World::start(ClusterSpec {
        agents: 3,
        tasks_per_agent: 2,
        first_ip: loopback_range(3),
        ..ClusterSpec::default()
    });
    let dead = world.cluster.agents()[1].address.clone();
    world.cluster.set_agent_fault(1, AgentFault::Refuse);

    let first = world
        .collector()
        .args(["--log-format", "json", "collect"])
        .run();
    first.assert_status(3);
    world.wait_for_new_samples();
    // The variable works as well as the flag.
    let second = world
        .collector()
        .env("STATS_COLLECTOR_LOG_FORMAT", "json")
        .arg("collect")
        .run();
    second.assert_status(3);

    for (run, published) in [(&first, 0), (&second, 4)] {
        let lines = json_log_lines(run);
        let failure = lines
            .iter()
            .find(|l| l.get("agent").and_then(Value::as_str) == Some(dead.as_str()))
            .unwrap_or_else(|| panic!("no line names agent {dead}: {run}"));
        assert_eq!(failure["reason"], "refused", "{run}");
        assert_eq!(failure["level"], "WARN", "{run}");
        assert!(
            failure["message"].as_str().unwrap_or("").contains(&dead),
            "{run}"
        );

        let summary = lines.last().unwrap_or_else(|| panic!("no log: {run}"));
        assert!(
            summary["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("pass done"),
            "the summary is the last line: {run}"
        );
        let counts: BTreeMap<&str, u64> = [
            "agents_listed",
            "agents_answered",
            "agents_failed",
            "published",
            "exit_code",
        ]
        .into_iter()
        .map(|field| {
            let n = summary
                .get(field)
                .and_then(Value::as_u64)
                .unwrap_or_else(|| panic!("numeric {field} in the summary: {run}"));
            (field, n)
        })
        .collect();
        let want = BTreeMap::from([
            ("agents_listed", 3),
            ("agents_answered", 2),
            ("agents_failed", 1),
            ("published", published),
            ("exit_code", 3),
        ]);
        assert_eq!(counts, want, "{run}");
        assert!(summary["duration_secs"].is_f64(), "{run}");
    }
    assert_eq!(world.messages().len(), 4);
}

// ---------------------------------------------------------------------------------------------
// README

/// An option as `--help` describes it.
#[derive(Debug, Default)]
struct HelpOption {
    env: Option<String>,
    default: Option<String>,
}

/// What `asgard-stats --help`, `collect --help` and `check --help` say.
struct Help {
    /// By long flag name, without the dashes.
    options: BTreeMap<String, HelpOption>,
    /// Exit code -> meaning, from the text `--help` ends with.
    exit_codes: BTreeMap<u32, String>,
}

impl Help {
    fn read() -> Help {
        let mut help = Help {
            options: BTreeMap::new(),
            exit_codes: BTreeMap::new(),
        };
        for text in help_texts() {
            help.parse(&text);
        }
        assert!(help.options.len() > 20, "too few options parsed");
        assert!(help.exit_codes.len() >= 6, "too few exit codes parsed");
        help
    }

    fn parse(&mut self, text: &str) {
        let mut current: Option<String> = None;
        let mut in_exit_codes = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed == "Exit codes:" {
                in_exit_codes = true;
                continue;
            }
            if in_exit_codes {
                if let Some((code, meaning)) = trimmed.split_once(char::is_whitespace) {
                    if let Ok(code) = code.parse() {
                        self.exit_codes.insert(code, meaning.trim().to_string());
                    }
                }
                continue;
            }
            // "  -h, --help" or "      --connect-timeout <SECS>"
            if line.starts_with("  ") && trimmed.starts_with('-') {
                let flag = trimmed
                    .split([' ', ','])
                    .find_map(|word| word.strip_prefix("--"))
                    .filter(|f| !f.is_empty());
                if let Some(flag) = flag {
                    current = Some(flag.to_string());
                    self.options.entry(flag.to_string()).or_default();
                    continue;
                }
            }
            let Some(flag) = &current else { continue };
            let option = self.options.entry(flag.clone()).or_default();
            if let Some(env) = trimmed.strip_prefix("[env: ") {
                let name = env.split(['=', ']']).next().unwrap_or("");
                option.env = Some(name.to_string());
            } else if let Some(default) = trimmed.strip_prefix("[default: ") {
                option.default = Some(default.trim_end_matches(']').to_string());
            }
        }
    }
}

/// The cells of a README table row (`\|` inside a cell is not a separator).
fn cells_of_row(row: &str) -> Vec<String> {
    row.replace("\\|", "/")
        .split('|')
        .map(|cell| cell.trim().to_string())
        .collect()
}

/// The flags named in a README table row's first cell.
fn flags_of_row(row: &str) -> Vec<String> {
    let cells = cells_of_row(row);
    let first_cell = cells.get(1).map_or("", String::as_str);
    first_cell
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter_map(|word| word.strip_prefix("--"))
        .map(|f| f.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|f| f.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_lists_every_setting_with_its_variable_and_default() {
    let help = Help::read();
    let readme = read_repo_file("README.md");
    let settings = readme
        .split("\n## ")
        .find(|section| section.starts_with("Settings"))
        .expect("README has a Settings section");
    let rows: Vec<&str> = settings
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("--"))
        .collect();
    let mut documented = BTreeSet::new();
    for row in &rows {
        for flag in flags_of_row(row) {
            assert!(
                help.options.contains_key(&flag),
                "README documents --{flag}, which --help does not know"
            );
            let option = &help.options[&flag];
            let cells = cells_of_row(row);
            if let Some(env) = &option.env {
                assert!(
                    cells[2].contains(env.as_str()),
                    "README row of --{flag} must name {env}: {row}"
                );
            }
            if let Some(default) = &option.default {
                assert!(
                    cells[3].contains(default.as_str()),
                    "README row of --{flag} must give the default {default}: {row}"
                );
            }
            documented.insert(flag);
        }
    }
    for (flag, option) in &help.options {
        if flag == "help" || flag == "version" {
            continue;
        }
        assert!(
            documented.contains(flag),
            "--{flag} is missing from README's settings table"
        );
        if let Some(env) = &option.env {
            assert!(
                readme.contains(env.as_str()),
                "{env} is missing from README"
            );
        }
    }
    for variable in [
        "HOLLOWMAN_MESOS_ADDRESS",
        "HOLLOWMAN_MESOS_ADDRESS_0",
        "RUST_LOG",
    ] {
        assert!(
            settings.contains(variable),
            "{variable} missing from Settings"
        );
    }

    // The exit codes table says what --help says.
    let exit_codes = readme
        .split("\n## ")
        .find(|section| section.starts_with("Exit codes"))
        .expect("README has an Exit codes section");
    for (code, meaning) in &help.exit_codes {
        let row = exit_codes
            .lines()
            .find(|l| l.starts_with(&format!("| {code} |")))
            .unwrap_or_else(|| panic!("exit code {code} missing from README"));
        assert!(
            row.contains(meaning.as_str()),
            "README's exit {code}: {row} vs {meaning}"
        );
    }
    for section in [
        "Sharding",
        "Migrating from the Python collector",
        "The document",
    ] {
        assert!(
            readme.contains(&format!("\n## {section}")),
            "README lacks a {section} section"
        );
    }
}

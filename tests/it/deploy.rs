//! What operators install, checked with the real tools: the systemd units
//! (`systemd-analyze verify` and `security`), the Debian package (`lintian`, unpacked with
//! `dpkg-deb -x` and its binary run for a real pass), the OCI image (loaded with podman and
//! run for a real pass), and the Kubernetes, Nomad and Metronome job files
//! (`kubernetes-validate`, python-hcl2, JSON), none of which may hold a secret.
//!
//! The package and the image are `scripts/package`'s outputs (scripts/test runs it first);
//! the PyPI tools live in `.services/venv` (`scripts/ensure-deploy-tools`). A missing tool
//! or output fails its test with the line that installs or builds it: nothing is skipped.

use crate::common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How to get every tool these tests use.
const INSTALL: &str = "bash scripts/ensure-deploy-tools";
/// The pass deadline by default (`--deadline`), and the grace a stopped pass takes.
const DEADLINE_SECS: u64 = 50;
const STOP_GRACE_SECS: u64 = 5;
/// Secret settings: only their `_FILE` forms may appear in a unit or a job file.
const SECRET_SETTINGS: &[&str] = &[
    "STATS_COLLECTOR_RABBITMQ_PWD",
    "STATS_COLLECTOR_MESOS_SECRET",
    "STATS_COLLECTOR_REDIS_URL",
];
/// The podman options these machines need (runc, and limits the default runtime's
/// defaults exceed), and the host's network so the container reaches the test's loopback
/// services.
const PODMAN_RUN: &[&str] = &[
    "run",
    "--rm",
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
    "--network",
    "host",
];

fn contrib(path: &str) -> PathBuf {
    repo_root().join("contrib").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs a tool to completion; fails the test with `install` when it cannot be started.
#[track_caller]
fn run_tool(command: &mut Command, install: &str) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install it with: {install}"))
}

/// [`run_tool`], then fails the test unless it exited 0; returns its stdout.
#[track_caller]
fn run_ok(command: &mut Command, install: &str) -> String {
    let description = format!("{command:?}");
    let out = run_tool(command, install);
    assert!(
        out.status.success(),
        "{description} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A program of the project's venv (`.services/venv/bin`), else the one on PATH.
fn venv_program(name: &str) -> PathBuf {
    let venv = repo_root().join(".services/venv/bin").join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// A whole-number setting (`TimeoutStartSec=55s`) of a unit, in seconds.
#[track_caller]
fn unit_seconds(unit: &str, key: &str) -> u64 {
    let value = unit_values(unit, key);
    let [value] = value.as_slice() else {
        panic!("{key} is set once: {value:?}");
    };
    value
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("{key}={value}: {e}"))
}

/// Every value given to `key` in a unit file, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// systemd

/// The units as installed, in a scratch folder, their ExecStart pointed at the binary just
/// built, and the man page their Documentation= names where `man` finds it.
fn units_in_scratch() -> Scratch {
    let scratch = Scratch::new();
    for name in [
        "asgard-stats.service",
        "asgard-stats.timer",
        "asgard-stats@.service",
        "asgard-stats@.timer",
    ] {
        let unit = read(&contrib(&format!("systemd/{name}")))
            .replace("/usr/bin/asgard-stats", env!("CARGO_BIN_EXE_asgard-stats"));
        std::fs::write(scratch.0.join(name), unit).expect("write a unit");
    }
    let man1 = scratch.0.join("man/man1");
    std::fs::create_dir_all(&man1).expect("create man/man1");
    std::fs::copy(
        repo_root().join("man/asgard-stats.1"),
        man1.join("asgard-stats.1"),
    )
    .expect("copy the man page");
    scratch
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify_and_rate_ok_for_security() {
    let scratch = units_in_scratch();
    let units = [
        "asgard-stats.service",
        "asgard-stats.timer",
        "asgard-stats@1-4.service",
        "asgard-stats@1-4.timer",
    ];
    let install = "apt-get install systemd (or bash scripts/ensure-deploy-tools)";
    let out = run_tool(
        Command::new("systemd-analyze")
            .arg("verify")
            .args(units.map(|u| format!("./{u}")))
            .current_dir(&scratch.0)
            .env("MANPATH", scratch.0.join("man")),
        install,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify has no remark: {said}"
    );

    // Exposure 1.2 measured with systemd 252 (0 is best, 10 worst; "OK" up to 4.9): the
    // threshold (in tenths) leaves room for a systemd that rates one more setting.
    for service in ["asgard-stats.service", "asgard-stats@1-4.service"] {
        let out = run_tool(
            Command::new("systemd-analyze")
                .args(["security", "--offline=yes", "--threshold=15"])
                .arg(format!("./{service}"))
                .current_dir(&scratch.0),
            install,
        );
        let report = String::from_utf8_lossy(&out.stdout);
        let rating = report.lines().last().unwrap_or_default();
        eprintln!("{rating}");
        assert!(
            out.status.success() && rating.contains("OK"),
            "{service} rated above 1.5:\n{report}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_units_run_one_bounded_pass_a_minute_and_accept_the_normal_exit_codes() {
    let service = read(&contrib("systemd/asgard-stats.service"));
    assert_eq!(unit_values(&service, "Type"), ["oneshot"]);
    let start = unit_seconds(&service, "TimeoutStartSec");
    assert!(
        (DEADLINE_SECS + 1..60).contains(&start),
        "the start timeout ({start} s) sits just above the pass deadline"
    );
    assert_eq!(unit_values(&service, "KillSignal"), ["SIGTERM"]);
    assert!(unit_seconds(&service, "TimeoutStopSec") > STOP_GRACE_SECS);
    let accepted: BTreeSet<String> = unit_values(&service, "SuccessExitStatus")
        .iter()
        .flat_map(|v| v.split_whitespace().map(str::to_string))
        .collect();
    assert_eq!(
        accepted,
        ["3", "75"].map(String::from).into(),
        "docs/deployment.md"
    );
    assert_eq!(
        unit_values(&service, "EnvironmentFile"),
        ["-/etc/default/asgard-stats"]
    );
    assert_eq!(unit_values(&service, "User"), ["asgard-stats"]);
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("StateDirectory", "asgard-stats"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ] {
        assert_eq!(unit_values(&service, key), [value], "{key}");
    }
    assert!(
        unit_values(&service, "ReadWritePaths").is_empty(),
        "only the state folder is writable"
    );
    // The broker password is a credential, handed over as a file.
    assert_eq!(
        unit_values(&service, "LoadCredential"),
        ["rabbitmq-password:/etc/asgard-stats/rabbitmq-password"]
    );
    assert!(unit_values(&service, "Environment")
        .contains(&"STATS_COLLECTOR_RABBITMQ_PWD_FILE=%d/rabbitmq-password".to_string()));

    let timer = read(&contrib("systemd/asgard-stats.timer"));
    assert_eq!(unit_values(&timer, "OnCalendar"), ["minutely"]);
    assert_eq!(unit_values(&timer, "AccuracySec"), ["1s"]);
    assert_eq!(unit_values(&timer, "Persistent"), ["false"]);
}

/// The shard template is the service line for line, apart from what makes it a shard: its
/// description, `--shard %I` and a metrics file per instance.
#[test]
fn the_shard_template_is_the_service_with_a_shard_of_its_instance() {
    let settings = |unit: &str| -> Vec<String> {
        unit.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter(|l| !l.starts_with("Description="))
            .map(str::to_string)
            .collect()
    };
    let service = settings(&read(&contrib("systemd/asgard-stats.service")));
    let template = settings(&read(&contrib("systemd/asgard-stats@.service")));
    let metrics = "Environment=STATS_COLLECTOR_METRICS_FILE=%S/asgard-stats/asgard-stats";
    let expected: Vec<String> = service
        .iter()
        .map(|l| match l.as_str() {
            "ExecStart=/usr/bin/asgard-stats collect" => {
                "ExecStart=/usr/bin/asgard-stats collect --shard %I".to_string()
            }
            l if l == format!("{metrics}.prom") => format!("{metrics}-%i.prom"),
            l => l.to_string(),
        })
        .collect();
    assert_eq!(template, expected);

    let timer = read(&contrib("systemd/asgard-stats@.timer"));
    assert_eq!(unit_values(&timer, "Unit"), ["asgard-stats@%i.service"]);
    let single = read(&contrib("systemd/asgard-stats.timer"));
    for key in ["OnCalendar", "AccuracySec", "Persistent", "WantedBy"] {
        assert_eq!(unit_values(&timer, key), unit_values(&single, key), "{key}");
    }
}

// ---------------------------------------------------------------------------------------------
// The Debian package

/// `scripts/package`'s .deb; fails the test when there is none.
fn the_deb() -> PathBuf {
    let dir = repo_root().join("target/debian");
    let debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with("asgard-stats_") && name.ends_with(".deb")
                })
                .collect()
        })
        .unwrap_or_default();
    match debs.as_slice() {
        [deb] => deb.clone(),
        _ => panic!(
            "expected one target/debian/asgard-stats_*.deb, found {debs:?}: build it with \
             bash scripts/package"
        ),
    }
}

/// The package's files (`-x`) or its control files (`-e`), unpacked by `dpkg-deb` into a
/// scratch folder: never installed.
fn unpacked_deb(part: &str) -> Scratch {
    let scratch = Scratch::new();
    run_ok(
        Command::new("dpkg-deb")
            .arg(part)
            .arg(the_deb())
            .arg(&scratch.0),
        "apt-get install dpkg",
    );
    scratch
}

#[test]
fn lintian_finds_no_error_in_the_package() {
    let deb = the_deb();
    let out = run_tool(
        Command::new("lintian")
            .args(["--fail-on", "error", "--tag-display-limit", "0"])
            .arg(&deb),
        "apt-get install lintian (or bash scripts/ensure-deploy-tools)",
    );
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("lintian {}:\n{report}", deb.display());
    assert!(
        out.status.success(),
        "lintian reports errors:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_package_holds_the_stripped_binary_man_page_units_settings_and_examples() {
    let root = unpacked_deb("-x");
    let at = |path: &str| root.0.join(path);
    for path in [
        "usr/bin/asgard-stats",
        "usr/share/man/man1/asgard-stats.1.gz",
        "etc/default/asgard-stats",
        "usr/share/doc/asgard-stats/copyright",
        "usr/share/doc/asgard-stats/changelog.Debian.gz",
        "usr/share/doc/asgard-stats/crontab.example",
        "usr/share/doc/asgard-stats/asgard-stats.rules.yml",
    ] {
        assert!(at(path).is_file(), "the package holds {path}");
    }
    let unit_dir = ["lib/systemd/system", "usr/lib/systemd/system"]
        .into_iter()
        .map(at)
        .find(|d| d.is_dir())
        .expect("the package holds systemd units");
    for unit in [
        "asgard-stats.service",
        "asgard-stats.timer",
        "asgard-stats@.service",
        "asgard-stats@.timer",
    ] {
        assert_eq!(
            read(&unit_dir.join(unit)),
            read(&contrib(&format!("systemd/{unit}"))),
            "{unit} is the one in contrib/systemd"
        );
    }
    assert_eq!(
        read(&at("etc/default/asgard-stats")),
        read(&contrib("debian/asgard-stats.default"))
    );

    // Stripped: no symbol table left.
    let sections = run_ok(
        Command::new("readelf")
            .args(["--section-headers", "--wide"])
            .arg(at("usr/bin/asgard-stats")),
        "apt-get install binutils",
    );
    assert!(
        !sections.contains(".symtab") && !sections.contains(".debug_info"),
        "the packaged binary is stripped:\n{sections}"
    );

    // The settings file is a conffile; the units are installed but never enabled or started.
    let control = unpacked_deb("-e");
    assert_eq!(
        read(&control.0.join("conffiles")).trim(),
        "/etc/default/asgard-stats"
    );
    // The package's version is the crate's, and its Debian changelog says so.
    let version = format!("{}-1", env!("CARGO_PKG_VERSION"));
    assert!(read(&control.0.join("control")).contains(&format!("\nVersion: {version}\n")));
    let changelog = read(&contrib("debian/changelog"));
    assert!(
        changelog.starts_with(&format!("asgard-stats ({version}) ")),
        "contrib/debian/changelog follows Cargo.toml's version {version}"
    );
    // The static binary (no program interpreter, no glibc floor), depending on no library.
    let headers = run_ok(
        Command::new("readelf")
            .args(["--program-headers", "--wide"])
            .arg(at("usr/bin/asgard-stats")),
        "apt-get install binutils",
    );
    assert!(!headers.contains("INTERP"), "a static binary:\n{headers}");
    let fields = read(&control.0.join("control"));
    let depends = fields
        .lines()
        .find_map(|l| l.strip_prefix("Depends: "))
        .unwrap_or_default();
    assert_eq!(depends, "adduser", "{fields}");
    // An upgrade neither stops nor restarts a unit: a running pass ends as it would.
    let prerm = read(&control.0.join("prerm"));
    for script in [&postinst_of(&control), &prerm] {
        assert!(!script.contains("restart"), "{script}");
    }
    assert!(
        prerm
            .lines()
            .filter(|l| l.contains("deb-systemd-invoke stop"))
            .all(|_| prerm.contains(r#"[ "$1" = remove ]"#)),
        "{prerm}"
    );
    let postinst = postinst_of(&control);
    assert!(postinst.contains("adduser --system"), "{postinst}");
    for starts in [
        "systemctl enable",
        "deb-systemd-invoke start",
        "systemctl start",
    ] {
        assert!(
            !postinst.contains(starts),
            "postinst runs {starts}: {postinst}"
        );
    }
}

fn postinst_of(control: &Scratch) -> String {
    read(&control.0.join("postinst"))
}

/// Removing the package stops and disables the shard timers the operator enabled
/// (`asgard-stats@K-N.timer`), which debhelper cannot name: the package's prerm, run as
/// dpkg would with a root of its own, a fake `systemctl` recording what it is asked.
#[test]
fn removing_the_package_stops_and_disables_the_shard_timers() {
    let control = unpacked_deb("-e");
    let root = Scratch::new();
    let bin = root.0.join("bin");
    let wants = root.0.join("etc/systemd/system/timers.target.wants");
    for dir in [&bin, &wants, &root.0.join("run/systemd/system")] {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    for shard in ["1-2", "2-2"] {
        std::os::unix::fs::symlink(
            "/lib/systemd/system/asgard-stats@.timer",
            wants.join(format!("asgard-stats@{shard}.timer")),
        )
        .expect("symlink");
    }
    let calls = root.0.join("calls");
    for tool in ["systemctl", "deb-systemd-invoke"] {
        let fake = bin.join(tool);
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho {tool} \"$@\" >> {}\n", calls.display()),
        )
        .expect("write");
        run_ok(Command::new("chmod").arg("755").arg(&fake), "coreutils");
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run_prerm = |argument: &str| {
        let _ = std::fs::remove_file(&calls);
        run_ok(
            Command::new("sh")
                .arg(control.0.join("prerm"))
                .arg(argument)
                .env("DPKG_ROOT", &root.0)
                .env("PATH", &path),
            "dash",
        );
        std::fs::read_to_string(&calls).unwrap_or_default()
    };
    assert_eq!(run_prerm("upgrade"), "", "an upgrade stops nothing");
    let removed = run_prerm("remove");
    for shard in ["1-2", "2-2"] {
        for verb in ["stop", "disable"] {
            let call = format!("systemctl {verb} asgard-stats@{shard}.timer");
            assert!(removed.contains(&call), "{call}: {removed}");
        }
    }
}

/// One host layout, the package's, wherever a host is described: the binary in
/// /usr/bin, user asgard-stats, settings in /etc/default/asgard-stats, secrets in
/// /etc/asgard-stats/; and the same preflight everywhere it is given.
#[test]
fn every_description_of_a_host_uses_the_package_layout_and_one_preflight() {
    let man = String::from_utf8(
        command(env!("CARGO_BIN_EXE_asgard-stats"))
            .arg("man")
            .run()
            .stdout
            .into_bytes(),
    )
    .expect("UTF-8");
    let files = [
        (
            "crontab.example",
            read(&repo_root().join("crontab.example")),
        ),
        ("README.md", read(&repo_root().join("README.md"))),
        (
            "the man page",
            man.replace("\\-", "-").replace("\\*(Aq", "'"),
        ),
        (
            "the settings file",
            read(&contrib("debian/asgard-stats.default")),
        ),
    ];
    for (name, text) in &files {
        for other in [
            "/usr/local/bin",
            "/etc/asgard-stats/env",
            "sudo -u asgard ",
            "-o asgard ",
            " asgard  ",
            "node-exporter asgard",
        ] {
            assert!(!text.contains(other), "{name} mentions {other:?}");
        }
        let flat: String = text
            .split_whitespace()
            .filter(|w| *w != "#")
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains("sudo -u asgard-stats sh -c 'set -a; . /etc/default/asgard-stats;"),
            "{name} gives the preflight"
        );
        if *name != "crontab.example" {
            assert!(
                flat.contains(
                    "STATS_COLLECTOR_RABBITMQ_PWD_FILE=/etc/asgard-stats/rabbitmq-password;"
                ),
                "{name}'s preflight reads the broker password"
            );
        }
    }
    let postinst = read(&contrib("debian/postinst"));
    assert!(
        postinst.contains("install -d -m 0750 -o root -g asgard-stats /etc/asgard-stats"),
        "{postinst}"
    );
}

/// Every variable the binary names in its help (clap's `[env: ...]` and the master
/// variables its help describes) is listed, commented out, in /etc/default/asgard-stats,
/// and nothing else.
#[test]
fn the_settings_file_lists_every_variable_the_binary_knows_and_no_other_commented_out() {
    let settings = read(&contrib("debian/asgard-stats.default"));
    for line in settings.lines() {
        assert!(
            line.is_empty() || line.starts_with('#'),
            "every setting stays commented out: {line}"
        );
    }
    let listed: BTreeSet<&str> = settings
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split_once('=').map(|(name, _)| name))
        .collect();
    let known: BTreeSet<String> = help_texts()
        .iter()
        .flat_map(|text| variable_names(text))
        .collect();
    assert!(known.len() > 25, "the help names the variables: {known:?}");
    let missing: Vec<&String> = known
        .iter()
        .filter(|v| !listed.contains(v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "contrib/debian/asgard-stats.default lacks {missing:?}"
    );
    // And it names no setting the binary does not know (a typo would be silently
    // ignored): the help writes the master variables after _0 as `_1, ...`.
    let unknown: Vec<&&str> = listed
        .iter()
        .filter(|v| v.starts_with("STATS_") || v.starts_with("HOLLOWMAN_"))
        .filter(|v| !known.contains(**v))
        .filter(|v| {
            let index = v.strip_prefix("HOLLOWMAN_MESOS_ADDRESS_");
            index.is_none_or(|i| i.parse::<u32>().is_err())
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "contrib/debian/asgard-stats.default names unknown settings {unknown:?}"
    );
}

/// The `STATS_*` and `HOLLOWMAN_*` names in a text (`HOLLOWMAN_MESOS_ADDRESS_0`, not the
/// `_1` abbreviations that follow it).
fn variable_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .map(|word| word.trim_end_matches('_'))
        .filter(|word| word.starts_with("STATS_") || word.starts_with("HOLLOWMAN_"))
        .map(str::to_string)
        .collect()
}

/// Two passes of `program` (a collector binary outside the build, or podman running one)
/// over a small cluster: the second delivers one document per task, and both exit 0.
fn two_passes_deliver(world: &World, pass: impl Fn() -> Run) {
    let first = pass();
    first.assert_success();
    assert!(first.stderr.contains("first_sightings=6"), "{first}");
    std::thread::sleep(Duration::from_millis(1100));
    let second = pass();
    second.assert_success();
    assert!(second.stderr.contains("published=6"), "{second}");
    let messages = world.messages();
    assert_eq!(messages.len(), 6, "one document per task: {second}");
    let tasks = world.tasks_by_id();
    for message in &messages {
        let task = message.body["taskname"].as_str().expect("taskname");
        assert_matches_rates(&message.body, &tasks[task]);
    }
}

fn world_env(world: &World) -> Vec<(String, String)> {
    collector_env(
        &world.cluster.master_urls(),
        &world.redis,
        &world.broker,
        &world.queue,
        &world.prefix,
    )
}

#[test]
fn the_packaged_binary_runs_a_real_pass() {
    let root = unpacked_deb("-x");
    let binary = root.0.join("usr/bin/asgard-stats");
    let world = World::start(spec(2, 3, [43, 1, 1]));
    two_passes_deliver(&world, || {
        command(&binary)
            .envs(world_env(&world))
            .arg("collect")
            .run()
    });
}

// ---------------------------------------------------------------------------------------------
// The OCI image

/// Loads `scripts/package`'s image into podman; returns its name.
fn load_image() -> String {
    let tar = repo_root().join("target/oci/asgard-stats.tar");
    assert!(
        tar.is_file(),
        "no {}: build it with bash scripts/package",
        tar.display()
    );
    run_ok(
        Command::new("podman").arg("load").arg("--input").arg(&tar),
        "apt-get install podman buildah runc (or bash scripts/ensure-deploy-tools)",
    );
    format!("localhost/asgard-stats:{}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn the_image_is_a_static_binary_from_scratch_run_as_nobody() {
    let image = load_image();
    let inspect = run_ok(
        Command::new("podman").args(["image", "inspect", &image]),
        INSTALL,
    );
    let inspect: Value = serde_json::from_str(&inspect).expect("podman's JSON");
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65534:65534", "{config}");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/bin/asgard-stats"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["collect"]));
    // What the image is, for registries and scanners (OCI annotations).
    let labels = &config["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION"),
        "{labels}"
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "MIT");
    for label in ["revision", "source", "title"] {
        let value = labels[format!("org.opencontainers.image.{label}")]
            .as_str()
            .unwrap_or_default();
        assert!(!value.is_empty() && value != "unknown", "{label}: {labels}");
    }
    let size = inspect[0]["Size"].as_u64().expect("image size");
    eprintln!("image {image}: {:.1} MiB", size as f64 / 1048576.0);
    assert!(
        size < 32 << 20,
        "the binary and CA certificates only: {size} bytes"
    );

    // No shell: only the binary's own commands run.
    let shell = command("podman")
        .args(PODMAN_RUN)
        .args(["--entrypoint", "/bin/sh", &image, "-c", "true"])
        .run();
    assert_ne!(shell.status, Some(0), "the image has no shell: {shell}");
    let version = command("podman")
        .args(PODMAN_RUN)
        .args([&image, "--version"])
        .run();
    version.assert_success();
    assert!(
        version.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{version}"
    );
}

#[test]
fn the_image_runs_a_real_pass_on_the_hosts_network() {
    let image = load_image();
    let world = World::start(spec(2, 3, [43, 2, 1]));
    let env = world_env(&world);
    // `-e NAME` without a value: podman hands its own variable over, so no value (the
    // broker password among them) shows on its command line.
    let names: Vec<String> = env
        .iter()
        .flat_map(|(k, _)| ["-e".into(), k.clone()])
        .collect();
    two_passes_deliver(&world, || {
        command("podman")
            .envs(env.clone())
            .args(PODMAN_RUN)
            .args(&names)
            .args(["-e", "RUST_LOG"])
            .arg(&image)
            .run()
    });
}

// ---------------------------------------------------------------------------------------------
// Kubernetes, Nomad, Metronome

/// A Python one-liner of the project's venv, printing JSON.
fn python_json(script: &str, file: &Path, install: &str) -> Value {
    let out = run_ok(
        Command::new(venv_program("python3"))
            .args(["-c", script])
            .arg(file),
        install,
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// HCL strings come out of python-hcl2 with their quotes.
fn unquoted(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim_matches('"').to_string(),
        other => other.to_string(),
    }
}

#[test]
fn the_kubernetes_cronjob_validates_and_runs_indexed_shards_without_retries() {
    let manifest = contrib("kubernetes/asgard-stats.yaml");
    let install = format!("pip install kubernetes-validate (or {INSTALL})");
    // 1.31: podFailurePolicy is stable there; and the validator's newest schema.
    for version in ["1.31.0", "1.37.0"] {
        run_ok(
            Command::new(venv_program("kubernetes-validate"))
                .args(["--strict", "--kubernetes-version", version])
                .arg(&manifest),
            &install,
        );
    }
    let documents = python_json(
        "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        &manifest,
        &install,
    );
    let kinds: Vec<&str> = documents
        .as_array()
        .expect("documents")
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "CronJob"], "no Secret is written here");
    let cron = &documents[1]["spec"];
    assert_eq!(cron["schedule"], "* * * * *");
    assert_eq!(cron["concurrencyPolicy"], "Forbid");
    assert!(cron["startingDeadlineSeconds"]
        .as_u64()
        .is_some_and(|s| s < 60));
    let job = &cron["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    // Each shard fails alone, never retried; a partial pass is no failure of its index.
    assert_eq!(job["backoffLimitPerIndex"], 0);
    assert!(job["backoffLimit"].is_null(), "{job}");
    assert_eq!(job["completions"], job["parallelism"]);
    for rule in job["podFailurePolicy"]["rules"].as_array().expect("rules") {
        assert_eq!(
            rule["action"], "FailIndex",
            "the index alone, never a retry: {rule}"
        );
    }
    assert_eq!(
        documents[0]["data"]["STATS_COLLECTOR_PARTIAL_EXIT_CODE"],
        "0"
    );
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert!(pod["terminationGracePeriodSeconds"].as_u64() > Some(STOP_GRACE_SECS));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][bound][resource].is_string(),
                "{bound}.{resource}"
            );
        }
    }

    let env = container["env"].as_array().expect("env");
    let var = |name: &str| {
        env.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {env:?}"))
    };
    assert_eq!(
        var("STATS_COLLECTOR_SHARD_INDEX")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    assert_eq!(
        var("STATS_COLLECTOR_SHARD_COUNT")["value"].as_str(),
        Some(job["completions"].to_string().as_str()),
        "one shard per completion index"
    );
    let mount = container["volumeMounts"][0]["mountPath"]
        .as_str()
        .expect("the secret's mount");
    for name in [
        "STATS_COLLECTOR_RABBITMQ_PWD_FILE",
        "STATS_COLLECTOR_REDIS_URL_FILE",
    ] {
        let file = var(name)["value"].as_str().expect("a file path");
        assert!(file.starts_with(&format!("{mount}/")), "{name}={file}");
    }
    let secret_volume = &pod["volumes"][0]["secret"]["secretName"];
    assert_eq!(secret_volume, "asgard-stats");
    assert!(
        documents[0]["data"]["STATS_COLLECTOR_PUSHGATEWAY"].is_string(),
        "metrics are pushed"
    );
}

#[test]
fn the_nomad_job_runs_a_counted_group_of_shards_every_minute_without_restarts() {
    let file = contrib("nomad/asgard-stats.nomad.hcl");
    let hcl = python_json(
        "import json, sys, hcl2; print(json.dumps(hcl2.load(open(sys.argv[1]))))",
        &file,
        &format!("pip install python-hcl2 (or {INSTALL})"),
    );
    let job = &hcl["job"][0]["\"asgard-stats\""];
    assert_eq!(unquoted(&job["type"]), "batch");
    let periodic = &job["periodic"][0];
    assert_eq!(unquoted(&periodic["crons"][0]), "* * * * *");
    assert_eq!(periodic["prohibit_overlap"], true);
    let group = &job["group"][0]["\"shards\""];
    assert_eq!(group["restart"][0]["attempts"], 0);
    assert_eq!(unquoted(&group["restart"][0]["mode"]), "fail");
    assert_eq!(group["reschedule"][0]["attempts"], 0);
    assert_eq!(group["reschedule"][0]["unlimited"], false);
    let task = &group["task"][0]["\"collect\""];
    let kill_timeout = unquoted(&task["kill_timeout"]);
    let kill_secs: u64 = kill_timeout
        .trim_end_matches('s')
        .parse()
        .unwrap_or_else(|e| panic!("kill_timeout {kill_timeout}: {e}"));
    assert!(kill_secs > STOP_GRACE_SECS);
    let env = &task["env"][0];
    assert_eq!(
        unquoted(&env["STATS_COLLECTOR_SHARD_INDEX"]),
        "${NOMAD_ALLOC_INDEX}"
    );
    assert_eq!(
        unquoted(&env["STATS_COLLECTOR_SHARD_COUNT"]),
        unquoted(&group["count"]),
        "as many shards as allocations"
    );
    for name in [
        "STATS_COLLECTOR_RABBITMQ_PWD_FILE",
        "STATS_COLLECTOR_REDIS_URL_FILE",
    ] {
        let path = unquoted(&env[name]);
        assert!(path.starts_with("${NOMAD_SECRETS_DIR}/"), "{name}={path}");
    }
}

#[test]
fn the_metronome_job_has_its_required_fields_and_forbids_overlap() {
    let job: Value =
        serde_json::from_str(&read(&contrib("metronome/asgard-stats.json"))).expect("JSON");
    assert_eq!(job["id"], "asgard-stats");
    let run = &job["run"];
    assert!(run["cmd"]
        .as_str()
        .is_some_and(|c| c.contains("asgard-stats collect")));
    for resource in ["cpus", "mem", "disk"] {
        assert!(run[resource].is_number(), "run.{resource}");
    }
    assert!(run["env"].is_object());
    assert_eq!(run["restart"]["policy"], "NEVER");
    let schedule = &job["schedules"][0];
    assert_eq!(schedule["cron"], "* * * * *");
    assert_eq!(schedule["concurrencyPolicy"], "FORBID");
    // Secret files come from the job's secrets, by name.
    let secrets = run["secrets"].as_object().expect("run.secrets");
    for volume in run["volumes"].as_array().expect("run.volumes") {
        let name = volume["secret"].as_str().expect("a secret volume");
        assert!(secrets.contains_key(name), "{name}");
        let path = volume["containerPath"].as_str().expect("containerPath");
        assert!(
            run["env"]
                .as_object()
                .is_some_and(|env| env.values().any(|v| v == path)),
            "a _FILE setting reads {path}"
        );
    }
}

/// No unit or job file holds a secret: the secret settings appear there only as their
/// `_FILE` forms, the settings file lists the password and the Mesos secret commented out
/// and empty, and no URL anywhere carries credentials.
#[test]
fn no_unit_or_job_file_holds_a_secret() {
    let job_files = [
        "systemd/asgard-stats.service",
        "systemd/asgard-stats@.service",
        "kubernetes/asgard-stats.yaml",
        "nomad/asgard-stats.nomad.hcl",
        "metronome/asgard-stats.json",
    ];
    for file in job_files {
        let text = read(&contrib(file));
        for setting in SECRET_SETTINGS {
            for (at, _) in text.match_indices(setting) {
                let line = text[at..].lines().next().unwrap_or_default();
                assert!(
                    line.starts_with(&format!("{setting}_FILE")),
                    "{file}: {setting} is only read from a file: {line}"
                );
            }
        }
    }
    let settings = read(&contrib("debian/asgard-stats.default"));
    for secret in [
        "STATS_COLLECTOR_RABBITMQ_PWD=",
        "STATS_COLLECTOR_MESOS_SECRET=",
    ] {
        let lines: Vec<&str> = settings.lines().filter(|l| l.contains(secret)).collect();
        assert_eq!(lines, [format!("#{secret}")], "listed, empty");
    }
    for file in job_files.iter().chain(&["debian/asgard-stats.default"]) {
        let text = read(&contrib(file));
        let urls = text
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter(|w| w.contains("://"));
        for url in urls {
            let after_scheme = url.split_once("://").map(|(_, rest)| rest);
            let authority = after_scheme.unwrap_or_default().split('/').next();
            assert!(
                !authority.unwrap_or_default().contains('@'),
                "{file}: a URL with credentials: {url}"
            );
        }
    }
}

//! The architecture invariants of ARCHITECTURE.md that are cheap to check: who may name
//! whom, read off the `crate::` paths of `src/**/*.rs` (comments and unit tests left
//! out), plus where
//! clap and the process-wide calls (libc, rustix, signal-hook) may appear. A rule that
//! fails here names the file and the path that breaks it.

use std::path::{Path, PathBuf};

/// One source file: its path under `src/` and its code, comment lines and unit tests
/// (from the first `#[cfg(test)]` module on) left out: the rules are about the program.
struct Source {
    path: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let unit_tests = unit_test_files(&files);
    files
        .into_iter()
        .filter(|file| !unit_tests.contains(file))
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("a source file is readable");
            let code = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let code = match code.find("#[cfg(test)]\nmod ") {
                Some(tests) => code[..tests].to_string(),
                None => code,
            };
            let path = file
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            Source { path, code }
        })
        .collect()
}

/// The files that hold a module of unit tests (`#[cfg(test)] mod tests;` in
/// `stats/document.rs` is `stats/document/tests.rs`): unit tests, left out like the
/// `#[cfg(test)]` modules written inline.
fn unit_test_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut unit_tests = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        let folder = if file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            file.parent().expect("in src").to_path_buf()
        } else {
            file.with_extension("")
        };
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines.next() else { break };
            let name = next.trim_start_matches("pub(crate) ").strip_prefix("mod ");
            if let Some(name) = name.and_then(|n| n.strip_suffix(';')) {
                unit_tests.push(folder.join(format!("{name}.rs")));
            }
        }
    }
    unit_tests
}

fn collect(folder: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// Every `crate::a::b` path of a file's code, as written (`crate::mesos::budget`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::`, `my_crate::`
        }
        let path: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(path.trim_end_matches(':').to_string());
    }
    paths
}

/// The files under `folder` whose `crate::` paths break `allowed`, with those paths.
fn breaking(folder: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    sources()
        .iter()
        .filter(|s| s.path.starts_with(folder))
        .flat_map(|s| {
            crate_paths(&s.code)
                .into_iter()
                .filter(|p| !allowed(p))
                .map(|p| format!("{}: {p}", s.path))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn under(path: &str, module: &str) -> bool {
    path == format!("crate::{module}") || path.starts_with(&format!("crate::{module}::"))
}

#[test]
fn stats_imports_nothing_outside_stats() {
    assert_eq!(
        breaking("stats/", |p| under(p, "stats")),
        Vec::<String>::new()
    );
}

#[test]
fn mesos_state_and_broker_know_nothing_of_each_other_nor_of_the_pass() {
    for (folder, others) in [
        ("mesos/", ["state", "broker", "pass", "ops"]),
        ("state/", ["mesos", "broker", "pass", "ops"]),
        ("broker/", ["mesos", "state", "pass", "ops"]),
    ] {
        assert_eq!(
            breaking(folder, |p| !others.iter().any(|o| under(p, o))),
            Vec::<String>::new(),
            "{folder} names one of {others:?}"
        );
    }
}

#[test]
fn the_amqp_client_imports_nothing_outside_itself() {
    // But the wire limits, a leaf of constants that `config` reads too.
    assert_eq!(
        breaking("broker/amqp/", |p| under(p, "broker::amqp")
            || under(p, "wire_limits")),
        Vec::<String>::new()
    );
}

#[test]
fn config_reads_no_one_but_cli() {
    // The AMQP wire limits are the one exception: a leaf of constants that imports
    // nothing of the crate.
    assert_eq!(
        breaking("config/", |p| under(p, "config")
            || under(p, "cli")
            || under(p, "wire_limits")),
        Vec::<String>::new()
    );
}

#[test]
fn dry_run_uses_the_agent_path_not_the_pass() {
    let children = ["agent", "shared", "workers", "stop", "tally"];
    assert_eq!(
        breaking("pass/dry_run.rs", |p| !under(p, "pass")
            || children.iter().any(|c| under(p, &format!("pass::{c}")))),
        Vec::<String>::new()
    );
}

/// The modules of `pass/` each file names (`pass/agent.rs` naming
/// `crate::pass::stop::Stop` names `stop`); `mod` stands for `pass/mod.rs`, named by any
/// path to an item of `pass` itself (`crate::pass::Mode`).
fn pass_modules_named(code: &str, modules: &[String]) -> Vec<String> {
    let ident = |text: &str| -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut firsts = Vec::new();
    for (at, _) in code.match_indices("crate::pass::") {
        let rest = &code[at + "crate::pass::".len()..];
        match rest.strip_prefix('{') {
            // `crate::pass::{agent::X, Mode}`: the first name of each part.
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                firsts.extend(group.split(',').map(ident));
            }
            None => firsts.push(ident(rest)),
        }
    }
    let mut named: Vec<String> = firsts
        .into_iter()
        .filter(|first| !first.is_empty())
        .map(|first| {
            if modules.contains(&first) {
                first
            } else {
                "mod".to_string()
            }
        })
        .collect();
    named.sort();
    named.dedup();
    named
}

#[test]
fn the_modules_of_the_pass_form_no_cycle() {
    let sources = sources();
    let in_pass: Vec<&Source> = sources
        .iter()
        .filter(|s| s.path.starts_with("pass/") && s.path.matches('/').count() == 1)
        .collect();
    let module_of = |path: &str| {
        path.trim_start_matches("pass/")
            .trim_end_matches(".rs")
            .to_string()
    };
    let modules: Vec<String> = in_pass.iter().map(|s| module_of(&s.path)).collect();
    assert!(modules.contains(&"agent".to_string()), "{modules:?}");
    let edges: Vec<(String, Vec<String>)> = in_pass
        .iter()
        .map(|s| {
            let from = module_of(&s.path);
            let to = pass_modules_named(&s.code, &modules)
                .into_iter()
                .filter(|m| *m != from)
                .collect();
            (from, to)
        })
        .collect();
    // Peel off the modules that name no module left; a cycle is what remains.
    let mut left = edges.clone();
    while let Some(at) = left
        .iter()
        .position(|(_, to)| to.iter().all(|m| !left.iter().any(|(from, _)| from == m)))
    {
        left.remove(at);
    }
    assert_eq!(left, Vec::new(), "the modules of pass/ in a cycle");
}

#[test]
fn the_cycle_finder_sees_a_cycle_and_items_of_the_pass() {
    let modules = vec!["agent".to_string(), "dry_run".to_string()];
    let code = "use crate::pass::dry_run::Rereads;\nuse crate::pass::{agent::f, Mode};";
    assert_eq!(
        pass_modules_named(code, &modules),
        ["agent", "dry_run", "mod"]
    );
}

#[test]
fn ops_never_runs_a_pass() {
    let runs: Vec<String> = sources()
        .iter()
        .filter(|s| s.path.starts_with("ops/") && s.code.contains("pass::run("))
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(runs, Vec::<String>::new());
}

#[test]
fn only_cli_and_the_crate_root_know_clap() {
    let knowing: Vec<String> = sources()
        .iter()
        .filter(|s| !(s.path.starts_with("cli/") || s.path == "lib.rs"))
        .filter(|s| s.code.contains("clap"))
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(knowing, Vec::<String>::new());
}

/// The file that holds the process-wide calls, each a function `run` (lib.rs) calls once.
const PROCESS_WIDE: [(&str, &str); 3] = [
    ("process.rs", "on_signals("),
    ("process.rs", "give_large_buffers_back("),
    ("process.rs", "raise_to_hard_limit("),
];

/// Signal numbers are no process-wide call: the stop's reasons name SIGTERM and SIGINT.
const SIGNAL_NUMBERS: (&str, &str) = ("pass/stop.rs", "signal_hook::consts::");

#[test]
fn only_the_crate_root_touches_process_wide_settings() {
    let holders: Vec<&str> = PROCESS_WIDE.iter().map(|(file, _)| *file).collect();
    let elsewhere: Vec<String> = sources()
        .iter()
        .filter(|s| !holders.contains(&s.path.as_str()))
        .filter(|s| {
            let code = match SIGNAL_NUMBERS {
                (file, numbers) if s.path == file => s.code.replace(numbers, ""),
                _ => s.code.clone(),
            };
            ["libc::", "rustix::", "signal_hook"]
                .iter()
                .any(|c| code.contains(c))
        })
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        elsewhere,
        Vec::<String>::new(),
        "system calls outside {holders:?}"
    );
    for (file, call) in PROCESS_WIDE {
        let callers: Vec<String> = sources()
            .iter()
            .filter(|s| s.path != file && s.code.contains(call))
            .map(|s| s.path.clone())
            .collect();
        assert_eq!(callers, ["lib.rs"], "{call} is called from `run` only");
    }
}

#[test]
fn the_path_reader_sees_every_form_of_path() {
    let code = "use crate::mesos::{self, Agent};\nlet x = crate::exit::OK;\n$crate::y;";
    assert_eq!(crate_paths(code), ["crate::mesos", "crate::exit::OK"]);
}

/// Every `crate::` path of a file's code with its brace groups opened
/// (`crate::pass::{agent::f, Mode}` is `crate::pass::agent::f` and `crate::pass::Mode`).
fn crate_paths_expanded(code: &str) -> Vec<String> {
    fn expand(prefix: &str, rest: &str, out: &mut Vec<String>) {
        let head: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let prefix = format!("{prefix}{head}");
        let Some(group) = rest[head.len()..].strip_prefix('{') else {
            out.push(prefix.trim_end_matches(':').to_string());
            return;
        };
        // The group's parts, split at the commas outside nested groups.
        let (mut depth, mut start) = (0, 0);
        for (at, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    expand(&prefix, group[start..at].trim_start(), out);
                    return;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&prefix, group[start..at].trim_start(), out);
                    start = at + 1;
                }
                _ => {}
            }
        }
    }
    let mut paths = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        expand("", &code[at..], &mut paths);
    }
    paths
}

/// The file of `src/` a `crate::` path names: the longest run of its segments that is a
/// file (`a/b.rs`) or a folder's `mod.rs`; `crate::broker::Batch` names `broker/mod.rs`.
fn file_named(path: &str, files: &[String]) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches("crate::").split("::").collect();
    (1..=segments.len()).rev().find_map(|n| {
        let stem = segments[..n].join("/");
        [format!("{stem}.rs"), format!("{stem}/mod.rs")]
            .into_iter()
            .find(|file| files.contains(file))
    })
}

#[test]
fn no_two_files_import_each_other() {
    let sources = sources();
    let files: Vec<String> = sources.iter().map(|s| s.path.clone()).collect();
    let imports = |source: &Source| -> Vec<String> {
        let mut named: Vec<String> = crate_paths_expanded(&source.code)
            .iter()
            .filter_map(|p| file_named(p, &files))
            .filter(|file| *file != source.path)
            .collect();
        named.sort();
        named.dedup();
        named
    };
    let edges: Vec<(String, Vec<String>)> = sources
        .iter()
        .map(|s| (s.path.clone(), imports(s)))
        .collect();
    let mut pairs = Vec::new();
    for (from, to) in &edges {
        for other in to {
            let back = edges
                .iter()
                .any(|(file, named)| file == other && named.contains(from));
            if back && from < other {
                pairs.push(format!("{from} <-> {other}"));
            }
        }
    }
    assert_eq!(pairs, Vec::<String>::new(), "files that import each other");
}

#[test]
fn the_file_finder_opens_groups_and_finds_facades() {
    let code = "use crate::pass::{agent::{f, g}, Mode};\nuse crate::broker::Batch;";
    assert_eq!(
        crate_paths_expanded(code),
        [
            "crate::pass::agent::f",
            "crate::pass::agent::g",
            "crate::pass::Mode",
            "crate::broker::Batch"
        ]
    );
    let files = ["pass/mod.rs", "pass/agent.rs", "broker/mod.rs"].map(String::from);
    assert_eq!(
        file_named("crate::pass::agent::f", &files).as_deref(),
        Some("pass/agent.rs")
    );
    assert_eq!(
        file_named("crate::broker::Batch", &files).as_deref(),
        Some("broker/mod.rs")
    );
}

/// Every type a file of `src/` declares at its top level (`struct`, `enum`, `trait`,
/// `type`, `union`), public or not: its name and the file.
fn declared_types(sources: &[Source]) -> Vec<(String, String)> {
    let mut declared = Vec::new();
    for source in sources {
        for line in source.code.lines() {
            let mut words = line.split_whitespace().peekable();
            if words.peek().is_some_and(|w| w.starts_with("pub")) {
                words.next();
            }
            let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let top_level = !line.starts_with(char::is_whitespace);
            if top_level && ["struct", "enum", "trait", "type", "union"].contains(&kind) {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                declared.push((name, source.path.clone()));
            }
        }
    }
    declared.sort();
    declared
}

#[test]
fn every_type_name_is_unique() {
    let declared = declared_types(&sources());
    assert!(
        declared.iter().any(|(name, _)| name == "StateStore"),
        "is the scan blind? {declared:?}"
    );
    let twice: Vec<String> = declared
        .windows(2)
        .filter(|pair| pair[0].0 == pair[1].0)
        .map(|pair| format!("{} in {} and {}", pair[0].0, pair[0].1, pair[1].1))
        .collect();
    assert_eq!(twice, Vec::<String>::new(), "type names declared twice");
}

#[test]
fn the_type_finder_sees_top_level_types_only() {
    let code = "pub(crate) struct A<'a> {\n    b: B,\n}\nenum C {}\nimpl D for A {\n    type Target = u8;\n}\ntrait E {}\ntype F = u8;\n";
    let sources = [Source {
        path: "x.rs".into(),
        code: code.into(),
    }];
    let names: Vec<String> = declared_types(&sources)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["A", "C", "E", "F"]);
}

#[test]
fn unit_tests_in_files_of_their_own_are_left_out() {
    let paths: Vec<String> = sources().into_iter().map(|s| s.path).collect();
    assert!(paths.contains(&"config/mod.rs".to_string()), "{paths:?}");
    for unit_tests in [
        "config/tests.rs",
        "stats/document/tests.rs",
        "broker/amqp/properties.rs",
    ] {
        assert!(
            !paths.contains(&unit_tests.to_string()),
            "{unit_tests} is read"
        );
    }
}

/// Every fuzz target of `fuzz/` is one call through `asgard_stats::fuzzing`, and every
/// function there has its target: no source included by path, nothing else `pub`.
#[test]
fn fuzz_targets_call_only_the_fuzzing_door() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let door = std::fs::read_to_string(root.join("src/fuzzing/mod.rs")).expect("the door");
    let mut doors: Vec<String> = door
        .lines()
        .filter_map(|l| l.strip_prefix("pub use ")?.split("::").nth(1))
        .map(|name| name.trim_end_matches(';').to_string())
        .collect();
    doors.sort();
    let mut targets = Vec::new();
    for entry in std::fs::read_dir(root.join("fuzz/fuzz_targets")).expect("fuzz targets") {
        let path = entry.expect("an entry").path();
        let code = std::fs::read_to_string(&path).expect("a target");
        let name = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .to_string();
        let call = format!("asgard_stats::fuzzing::{name}(bytes)");
        assert!(
            code.contains(&call),
            "{} does not call {call}",
            path.display()
        );
        assert!(
            !code.contains("#[path"),
            "{} includes sources by path",
            path.display()
        );
        targets.push(name);
    }
    targets.sort();
    assert_eq!(
        targets, doors,
        "a target without its door, or a door without its target"
    );
}

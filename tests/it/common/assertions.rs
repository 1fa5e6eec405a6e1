//! Assertions over runs and documents: summaries that add up, bounded log lines, no secret in
//! any output, intervals that tile time.

use super::*;

/// A count of a summary (see [`Run::summary`]).
#[track_caller]
pub fn count(summary: &Summary, field: &str) -> u64 {
    summary
        .get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no count {field} in {summary:?}"))
}

/// Checks that every listed agent is accounted for once: listed = answered + failed +
/// abandoned + not started.
#[track_caller]
pub fn assert_agents_add_up(summary: &Summary, run: &Run) {
    let accounted: u64 = [
        "agents_answered",
        "agents_failed",
        "agents_abandoned",
        "agents_not_started",
    ]
    .iter()
    .map(|field| count(summary, field))
    .sum();
    assert_eq!(
        accounted,
        count(summary, "agents_listed"),
        "the counts add up: {run}"
    );
}

/// Checks a pass over millions of bad entries: of its `lines` log lines about them, ten
/// name an entry and one gives the total (`total`), and its peak RSS (`peak_kib`, read
/// while it ran) stayed under 64 MiB.
#[track_caller]
pub fn assert_named_ten_then_counted(run: &Run, lines: usize, total: &str, peak_kib: u64) {
    assert_eq!(lines, 11, "ten entries named, then the total: {run}");
    assert!(run.stderr.contains(total), "{run}");
    assert!(peak_kib > 1024, "the pass was measured while it ran");
    let peak_mib = peak_kib / 1024;
    eprintln!("peak RSS: {peak_mib} MiB");
    assert!(peak_mib < 64, "peak RSS {peak_mib} MiB");
}

/// A way to feed a secret: its name, the exit codes of `collect`, `collect --dry-run` and
/// `check` with it, and the settings it changes (an empty value removes the setting).
pub type SecretCase = (&'static str, (i32, i32, i32), Vec<(&'static str, String)>);

/// Runs every case through `collect`, `collect --dry-run` and `check`, in both log
/// formats at the most verbose level, on the collector `base` makes (a setting the case
/// gives as empty is removed): none of `forms` (a secret, its encodings) shows anywhere,
/// and each run exits as its case says.
#[track_caller]
pub fn assert_no_secret_in_any_output(
    base: impl Fn() -> Collector,
    cases: &[SecretCase],
    forms: &[String],
) {
    for (case, codes, overrides) in cases {
        for command in [&["collect"][..], &["collect", "--dry-run"], &["check"]] {
            for format in ["text", "json"] {
                let run = base()
                    .env("RUST_LOG", "trace")
                    .env("STATS_COLLECTOR_LOG_FORMAT", format)
                    .envs(
                        overrides
                            .iter()
                            .filter(|(_, v)| !v.is_empty())
                            .map(|(k, v)| (*k, v.as_str())),
                    )
                    .args(command);
                let run = overrides
                    .iter()
                    .filter(|(_, v)| v.is_empty())
                    .fold(run, |run, (k, _)| run.env_remove(k))
                    .run();
                for form in forms {
                    assert!(
                        !run.stdout.contains(form.as_str()) && !run.stderr.contains(form.as_str()),
                        "{case}, {command:?}, {format}: {form:?} leaked\n{run}"
                    );
                }
                // Each case got as far as it should: the secret was really handled.
                let expected = match command {
                    ["collect"] => codes.0,
                    ["collect", "--dry-run"] => codes.1,
                    _ => codes.2,
                };
                assert_eq!(run.status, Some(expected), "{case}, {command:?}: {run}");
            }
        }
    }
}

/// What a consumer that drops repeated message ids sees of each task's documents.
#[derive(Debug, Default)]
pub struct Tiling {
    /// Documents kept after dropping repeated message ids.
    pub kept: usize,
    /// Messages dropped as repeats of an earlier message id (with an identical body).
    pub repeats: usize,
}

/// Drops repeated message ids as a consumer would (checking that a repeat is identical to
/// the first), then checks that each task's intervals tile time from its baseline reading
/// (`baselines`, by executor id): each document starts (`timestamp - period_secs`) where
/// the previous one ended, with no hole and no overlap, and the last ends at `ends[id]`
/// when given. Panics naming the task otherwise.
pub fn assert_intervals_tile(
    messages: &[Message],
    baselines: &std::collections::BTreeMap<String, f64>,
    ends: Option<&std::collections::BTreeMap<String, f64>>,
) -> Tiling {
    let mut tiling = Tiling::default();
    let mut seen: std::collections::HashMap<String, &Message> = std::collections::HashMap::new();
    let mut by_task: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    for m in messages {
        let id = m
            .message_id
            .clone()
            .expect("every document has a message id");
        if let Some(first) = seen.get(&id) {
            assert_eq!(first.raw, m.raw, "a repeat of {id} is identical");
            assert_eq!(first.content_type, m.content_type, "{id}");
            assert_eq!(first.delivery_mode, m.delivery_mode, "{id}");
            tiling.repeats += 1;
            continue;
        }
        seen.insert(id, m);
        tiling.kept += 1;
        let num = |f: &str| {
            m.body[f]
                .as_f64()
                .unwrap_or_else(|| panic!("{f} in {}", m.body))
        };
        let task = m.body["taskname"].as_str().expect("taskname").to_string();
        let end = num("timestamp");
        by_task
            .entry(task)
            .or_default()
            .push((end - num("period_secs"), end));
    }
    for (task, mut intervals) in by_task {
        intervals.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut at = *baselines
            .get(&task)
            .unwrap_or_else(|| panic!("{task} has no baseline"));
        for (start, end) in &intervals {
            assert!(
                (start - at).abs() < 1e-4,
                "{task}: an interval starts at {start} where the previous ended at {at} ({}): {intervals:?}",
                if *start > at { "a hole" } else { "an overlap" }
            );
            at = *end;
        }
        if let Some(end) = ends.and_then(|ends| ends.get(&task)) {
            assert!(
                (at - end).abs() < 1e-4,
                "{task}: reported up to {at}, read up to {end}"
            );
        }
    }
    tiling
}

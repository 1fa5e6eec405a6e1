//! The metrics file (`--metrics-file`, docs/exit-codes.md): what the last collecting pass
//! did, in the Prometheus text exposition format, for node_exporter's textfile collector.
//! It is written at the end of every pass that read its configuration, whatever its
//! outcome, atomically (a temporary file in the same folder, then a rename), so the
//! collector never reads half a file.
//!
//! The last success survives failed passes by being read back from the file it replaces:
//! that needs nothing but the file itself, so it holds when Redis or the broker is what
//! failed, and it lives where the alert reads it.
//!
//! Every metric is one entry of [`FAMILIES`], read off the pass's [`Summary`]; a new
//! counter is one more entry (or one more pair in a family's list). Labels are bounded:
//! states, outcomes and reasons, never agents or tasks, plus `shard="K/N"` with `--shard`
//! so the shards' files can sit side by side.

use crate::config::{MetricsDestination, Shard};
use crate::exit;
use crate::pass::reason::Reason;
use crate::pass::tally::Summary;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The prefix of every metric name.
const PREFIX: &str = "asgard_stats_";
/// The family of the last pass that delivered, which a failed pass must not forget.
const LAST_SUCCESS: &str = "last_success_timestamp_seconds";
/// Stands in a help line for the list of exit codes (`crate::exit`), filled in when
/// written, so the metric's help never lists other codes than `--help`.
const EXIT_CODES: &str = "{EXIT_CODES}";

/// What the metrics of one pass are read from.
struct Pass<'a> {
    summary: &'a Summary,
    deadline: Duration,
    shard: Option<Shard>,
    /// When the pass ended, in seconds since the epoch.
    ended: f64,
    /// When the last pass that delivered ended (this one if it did); 0 when none is known.
    last_success: f64,
}

/// One metric family: its name after the prefix, its help line and its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Samples,
}

/// How a family's samples are read off a pass.
enum Samples {
    /// One sample, from the pass as a whole.
    Gauge(fn(&Pass) -> f64),
    /// One sample, a count of the summary.
    Count(fn(&Summary) -> u64),
    /// One sample per value of a label (a state, an outcome, a reason).
    By(&'static str, fn(&Summary) -> Vec<(&'static str, u64)>),
}

/// Every metric, in the order of the file.
const FAMILIES: &[Family] = &[
    gauge(
        "last_run_timestamp_seconds",
        "When the last pass ended, whatever its outcome (Unix time).",
        |p| p.ended,
    ),
    gauge(
        LAST_SUCCESS,
        "When the last pass that delivered (exit 0 or 3) ended (Unix time); 0 when none is known.",
        |p| p.last_success,
    ),
    gauge(
        "exit_code",
        "Exit code of the last pass: {EXIT_CODES}.",
        |p| f64::from(p.summary.exit_code()),
    ),
    gauge(
        "pass_duration_seconds",
        "How long the last pass took.",
        |p| p.summary.duration.as_secs_f64(),
    ),
    gauge(
        "pass_deadline_seconds",
        "The deadline of a pass (--deadline): work not done by then is abandoned.",
        |p| p.deadline.as_secs_f64(),
    ),
    count(
        "agents_listed",
        "Active agents the leading master listed for the last pass (of its shard).",
        |s| s.agents_listed,
    ),
    by(
        "agents",
        "state",
        "Agents of the last pass by what became of them.",
        |s| {
            vec![
                ("answered", s.agents_answered),
                ("abandoned", s.agents_abandoned),
                ("not_started", s.agents_not_started),
                ("unusable", s.agents_unusable),
            ]
        },
    ),
    by(
        "agents_failed",
        "reason",
        "Agents of the last pass that failed, by reason.",
        |s| counts(&s.agent_failures),
    ),
    count(
        "tasks_seen",
        "Tasks in the answers of the agents of the last pass.",
        |s| s.tasks_seen,
    ),
    by(
        "documents",
        "outcome",
        "Tasks of the last pass by the outcome of their document: published, or none this pass (first sighting, reset, not newer, incomplete).",
        |s| {
            vec![
                ("published", s.published),
                ("first_sightings", s.first_sightings),
                ("resets", s.resets),
                ("not_newer", s.not_newer),
                ("incomplete", s.incomplete),
            ]
        },
    ),
    by(
        "deliveries_failed",
        "reason",
        "Documents of the last pass not delivered, by reason.",
        |s| {
            s.delivery_failures
                .iter()
                .map(|(reason, (n, _))| (reason.as_str(), *n))
                .collect()
        },
    ),
    count(
        "documents_resent",
        "Documents the last pass sent again, identical and under their message id, because an earlier pass could not confirm them.",
        |s| s.resent,
    ),
    count(
        "outbox_full",
        "New readings the last pass left out because their task already had the most pending documents; the next document covers the longer interval.",
        |s| s.outbox_full,
    ),
    count(
        "readings_unstored",
        "Readings the last pass could not store in Redis.",
        |s| s.unstored,
    ),
    count(
        "skipped_entries",
        "Entries of agents' answers the last pass skipped as unusable.",
        |s| s.skipped_entries,
    ),
    count(
        "malformed_fields",
        "Fields of agents' answers the last pass left out as not usable numbers.",
        |s| s.malformed_fields,
    ),
    count(
        "bad_state",
        "Stored readings the last pass found unreadable (and replaced).",
        |s| s.bad_state,
    ),
];

const fn gauge(name: &'static str, help: &'static str, read: fn(&Pass) -> f64) -> Family {
    Family {
        name,
        help,
        samples: Samples::Gauge(read),
    }
}

const fn count(name: &'static str, help: &'static str, read: fn(&Summary) -> u64) -> Family {
    Family {
        name,
        help,
        samples: Samples::Count(read),
    }
}

const fn by(
    name: &'static str,
    label: &'static str,
    help: &'static str,
    read: fn(&Summary) -> Vec<(&'static str, u64)>,
) -> Family {
    Family {
        name,
        help,
        samples: Samples::By(label, read),
    }
}

/// One sample per reason, labelled by the reason's stable label.
fn counts(by_reason: &BTreeMap<Reason, u64>) -> Vec<(&'static str, u64)> {
    by_reason.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

/// True for the exit codes of a pass that delivered: everything (0) or part of it (3).
/// A partial pass is a success here, since a cluster often has an agent down; the share
/// of failing agents has its own alert.
fn delivered(code: i32) -> bool {
    code == exit::OK || code == exit::PARTIAL
}

impl<'a> Pass<'a> {
    /// The metrics of a pass that just ended; `previous` is the last success of the file
    /// it replaces, if any.
    fn new(summary: &'a Summary, to: &MetricsDestination, previous: Option<f64>) -> Pass<'a> {
        let ended = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let last_success = if delivered(summary.exit_code()) {
            ended
        } else {
            previous.unwrap_or(0.0)
        };
        Pass {
            summary,
            deadline: to.deadline,
            shard: to.shard,
            ended,
            last_success,
        }
    }

    /// The file's text: `# HELP`, `# TYPE` and the samples of every family.
    fn render(&self) -> String {
        self.render_families(|_| true)
    }

    /// `render` of the families `keep` accepts.
    fn render_families(&self, keep: impl Fn(&Family) -> bool) -> String {
        let mut out = String::new();
        for family in FAMILIES.iter().filter(|f| keep(f)) {
            let name = format!("{PREFIX}{}", family.name);
            // Writing to a String cannot fail.
            let help = family.help.replace(EXIT_CODES, &exit::one_line());
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (label, value) in self.samples(&family.samples) {
                let labels = self.labels(label);
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        }
        out
    }

    /// A family's samples: an optional (label, value) pair and the number.
    fn samples(&self, samples: &Samples) -> Vec<(Option<(&'static str, &'static str)>, f64)> {
        match samples {
            Samples::Gauge(read) => vec![(None, read(self))],
            Samples::Count(read) => vec![(None, read(self.summary) as f64)],
            Samples::By(label, read) => read(self.summary)
                .into_iter()
                .map(|(value, n)| (Some((*label, value)), n as f64))
                .collect(),
        }
    }

    /// `{shard="K/N",label="value"}`, or nothing when there is no label at all.
    fn labels(&self, label: Option<(&str, &str)>) -> String {
        let shard = self.shard.map(|s| ("shard", s.to_string()));
        let pairs: Vec<String> = shard
            .into_iter()
            .chain(label.map(|(k, v)| (k, v.to_string())))
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(&v)))
            .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", pairs.join(","))
        }
    }
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics of a pass that just ended, rendered once for every place they go.
pub(crate) struct Rendered {
    /// The whole text: the metrics file's, and what a Pushgateway gets.
    pub(crate) text: String,
    /// When no last success is known (no metrics file to read it back from, and this
    /// pass did not deliver), the text without that family: a Pushgateway then keeps the
    /// last success pushed before instead of being told 0.
    pub(crate) without_last_success: Option<String>,
}

/// The metrics of this pass; with a metrics file, its last success is read back from the
/// file this pass replaces.
pub(crate) fn render(summary: &Summary, to: &MetricsDestination) -> Rendered {
    let previous = to
        .metrics_file
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| last_success(&text));
    let pass = Pass::new(summary, to, previous);
    let without_last_success = (pass.last_success == 0.0)
        .then(|| pass.render_families(|family| family.name != LAST_SUCCESS));
    Rendered {
        text: pass.render(),
        without_last_success,
    }
}

/// Writes a pass's metrics text to `path`, atomically.
pub(crate) fn write(path: &Path, text: &str) -> io::Result<()> {
    replace(path, text.as_bytes())
}

/// The last success recorded in a metrics file's text, if it holds a usable one.
fn last_success(text: &str) -> Option<f64> {
    let name = format!("{PREFIX}{LAST_SUCCESS}");
    text.lines()
        .filter(|line| {
            line.strip_prefix(&name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .filter(|t| t.is_finite() && *t > 0.0)
}

/// Replaces `path` with `bytes`: a temporary file in the same folder (so the rename
/// stays on one file system), synced, then renamed over it.
fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temporary_path(path);
    let written = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// `.NAME.PID.tmp` beside `path`: hidden and without `.prom`, so node_exporter never
/// reads it, and private to this process.
fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Whether a pass could write `path`: creates and removes its temporary file.
pub(crate) fn probe(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Err(io::Error::other("it is a folder"));
    }
    let temp = temporary_path(path);
    write_synced(&temp, b"")?;
    std::fs::remove_file(&temp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(summary: &Summary, shard: Option<Shard>) -> Pass<'_> {
        Pass {
            summary,
            deadline: Duration::from_secs(50),
            shard,
            ended: 1_700_000_100.5,
            last_success: 1_700_000_000.25,
        }
    }

    fn partial() -> Summary {
        let mut summary = Summary {
            agents_listed: 3,
            agents_answered: 2,
            tasks_seen: 7,
            published: 5,
            first_sightings: 2,
            duration: Duration::from_millis(1500),
            ..Summary::default()
        };
        summary.agent_failures.insert(Reason::Timeout, 1);
        summary
            .delivery_failures
            .insert(Reason::Nacked, (4, "first message".into()));
        summary
    }

    #[test]
    fn every_family_has_help_type_and_prefixed_samples() {
        let summary = partial();
        let text = pass(&summary, None).render();
        for family in FAMILIES {
            let name = format!("{PREFIX}{}", family.name);
            assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with(PREFIX), "{line}");
        }
        for sample in [
            "asgard_stats_last_run_timestamp_seconds 1700000100.5\n",
            "asgard_stats_last_success_timestamp_seconds 1700000000.25\n",
            "asgard_stats_exit_code 3\n",
            "asgard_stats_pass_duration_seconds 1.5\n",
            "asgard_stats_pass_deadline_seconds 50\n",
            "asgard_stats_agents_listed 3\n",
            "asgard_stats_agents{state=\"answered\"} 2\n",
            "asgard_stats_agents_failed{reason=\"timeout\"} 1\n",
            "asgard_stats_documents{outcome=\"first_sightings\"} 2\n",
            "asgard_stats_deliveries_failed{reason=\"nacked\"} 4\n",
        ] {
            assert!(text.contains(sample), "{sample} missing from\n{text}");
        }
        assert!(!text.contains("first message"), "messages are not labels");
    }

    #[test]
    fn a_shard_labels_every_sample() {
        let summary = partial();
        let text = pass(&summary, Some(Shard { index: 2, count: 3 })).render();
        assert!(text.contains("asgard_stats_exit_code{shard=\"2/3\"} 3\n"));
        assert!(text.contains("asgard_stats_agents_failed{shard=\"2/3\",reason=\"timeout\"} 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.contains("{shard=\"2/3\""), "{line}");
        }
    }

    #[test]
    fn the_last_success_is_read_back_from_a_previous_file() {
        let summary = partial();
        let text = pass(&summary, Some(Shard { index: 1, count: 2 })).render();
        assert_eq!(last_success(&text), Some(1_700_000_000.25));
        assert_eq!(
            last_success(&pass(&summary, None).render()),
            Some(1_700_000_000.25)
        );
        assert_eq!(last_success(""), None);
        assert_eq!(
            last_success("asgard_stats_last_success_timestamp_seconds_x 5\n"),
            None
        );
        assert_eq!(
            last_success("asgard_stats_last_success_timestamp_seconds garbage\n"),
            None
        );
        assert_eq!(
            last_success("asgard_stats_last_success_timestamp_seconds 0\n"),
            None
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn only_passes_that_delivered_are_successes() {
        assert!(delivered(exit::OK));
        assert!(delivered(exit::PARTIAL));
        for code in [
            exit::OTHER,
            exit::USAGE,
            exit::UNAVAILABLE,
            exit::LOCKED,
            130,
            143,
        ] {
            assert!(!delivered(code), "{code}");
        }
    }
}

//! What happened during a pass: counters shared by the worker threads, the summary line
//! that ends every pass, and the exit code that follows from them (docs/exit-codes.md).
//!
//! Lines about single agents and tasks are bounded per pass, so that a pass over 100,000
//! refusing agents, or a restarted cluster whose every task resets its counters, still
//! logs a few dozen lines: the first [`NAMED_AGENT_FAILURES`] failed agents are named,
//! then one line per reason counts the others; the first [`NAMED_RESETS`] resets are
//! named, then one line counts the others; past [`NAMED_AGENT_NOTES`] other lines about
//! one agent (skipped entries, documents not delivered, readings not stored), one line
//! says how many were left out. The summary and the metrics count everything.

use crate::exit;
use crate::pass::reason::Reason;
use crate::pass::stop::StopReason;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Failed agents named in a line of their own per pass, all reasons together.
pub(crate) const NAMED_AGENT_FAILURES: u64 = 20;
/// Tasks whose CPU counters went down named in a line of their own per pass.
pub(crate) const NAMED_RESETS: u64 = 10;
/// Other lines about one agent (skipped entries, documents not delivered, readings not
/// stored, ...) per pass.
pub(crate) const NAMED_AGENT_NOTES: u64 = 20;

/// Failed agents of one reason: how many, and how many of them a line named.
#[derive(Debug, Clone, Copy, Default)]
struct Failed {
    agents: u64,
    named: u64,
}

/// Counts kept while a pass runs; every method can be called from any worker.
#[derive(Default)]
pub(crate) struct Tally {
    agents_listed: AtomicU64,
    agents_answered: AtomicU64,
    agents_abandoned: AtomicU64,
    agents_not_started: AtomicU64,
    /// Set once agents in flight were counted abandoned: their threads may still end,
    /// but are not counted again.
    closed: std::sync::atomic::AtomicBool,
    /// Set when the pass stopped starting agents early.
    stopped: std::sync::OnceLock<StopReason>,
    agents_unusable: AtomicU64,
    tasks_seen: AtomicU64,
    published: AtomicU64,
    resent: AtomicU64,
    outbox_full: AtomicU64,
    first_sightings: AtomicU64,
    resets: AtomicU64,
    not_newer: AtomicU64,
    incomplete: AtomicU64,
    skipped_entries: AtomicU64,
    malformed_fields: AtomicU64,
    bad_state: AtomicU64,
    unstored: AtomicU64,
    agent_failures: Mutex<BTreeMap<Reason, Failed>>,
    /// Lines about one agent asked for (see [`Tally::may_note_agent`]).
    agent_notes: AtomicU64,
    /// Failed deliveries by reason, with the first message of each reason.
    delivery_failures: Mutex<BTreeMap<Reason, (u64, String)>>,
}

/// The counters, read once the pass is over.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Summary {
    pub(crate) agents_listed: u64,
    pub(crate) agents_answered: u64,
    pub(crate) agents_abandoned: u64,
    /// Agents never started: the pass was stopped (a signal, a halted broker) before
    /// their turn.
    pub(crate) agents_not_started: u64,
    pub(crate) stopped: Option<StopReason>,
    /// Entries of the agent list that name no reachable agent.
    pub(crate) agents_unusable: u64,
    pub(crate) agent_failures: BTreeMap<Reason, u64>,
    /// Of the failed agents, those named in a line of their own, by reason.
    pub(crate) agent_failures_named: BTreeMap<Reason, u64>,
    /// Lines about one agent left out past [`NAMED_AGENT_NOTES`].
    pub(crate) agent_notes_left_out: u64,
    pub(crate) tasks_seen: u64,
    pub(crate) published: u64,
    /// Documents sent again, identical, because an earlier pass could not confirm them.
    pub(crate) resent: u64,
    /// New readings left out because their task's outbox was full (docs/state.md).
    pub(crate) outbox_full: u64,
    pub(crate) first_sightings: u64,
    pub(crate) resets: u64,
    pub(crate) not_newer: u64,
    /// Documents held back for want of cpu_pct or mem_pct (their readings are stored).
    pub(crate) incomplete: u64,
    pub(crate) skipped_entries: u64,
    pub(crate) malformed_fields: u64,
    pub(crate) bad_state: u64,
    pub(crate) delivery_failures: BTreeMap<Reason, (u64, String)>,
    pub(crate) unstored: u64,
    pub(crate) duration: Duration,
    /// A dry run prints its documents rather than publishing them.
    pub(crate) dry_run: bool,
    /// The exit code of a pass that ended before collecting (the broker, Redis or every
    /// master unreachable, the lock held, ...); None when it collected.
    pub(crate) ended_early: Option<i32>,
}

/// Poisoning only means a worker panicked mid-update of a map of plain counts, which
/// stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Tally {
    pub(crate) fn agents_listed(&self, n: usize) {
        self.agents_listed.store(n as u64, Relaxed);
    }
    pub(crate) fn agent_answered(&self, tasks: usize) {
        if self.closed.load(Relaxed) {
            return;
        }
        self.agents_answered.fetch_add(1, Relaxed);
        self.tasks_seen.fetch_add(tasks as u64, Relaxed);
    }
    /// Counts a failed agent; names it in a line while fewer than
    /// [`NAMED_AGENT_FAILURES`] were named this pass.
    pub(crate) fn agent_failed(&self, address: &str, reason: Reason, why: &dyn Display) {
        if self.closed.load(Relaxed) {
            return;
        }
        let name = {
            let mut failures = lock(&self.agent_failures);
            let named: u64 = failures.values().map(|f| f.named).sum();
            let failed = failures.entry(reason).or_default();
            failed.agents += 1;
            let name = named < NAMED_AGENT_FAILURES;
            if name {
                failed.named += 1;
            }
            name
        };
        if name {
            log::warn!(agent = address, reason = reason.as_str(); "agent {address} failed: {why}");
        }
    }
    /// Whether one more line about one agent may be logged this pass: true for the first
    /// [`NAMED_AGENT_NOTES`], and the others are counted as left out.
    pub(crate) fn may_note_agent(&self) -> bool {
        self.agent_notes.fetch_add(1, Relaxed) < NAMED_AGENT_NOTES
    }
    /// Counts agents still in flight as abandoned; whatever becomes of them later is not
    /// counted (nor logged) again, so each agent is counted once.
    pub(crate) fn agents_abandoned(&self, n: u64) {
        self.agents_abandoned.fetch_add(n, Relaxed);
        if n > 0 {
            self.closed.store(true, Relaxed);
        }
    }
    pub(crate) fn agents_not_started(&self, n: u64) {
        self.agents_not_started.fetch_add(n, Relaxed);
    }
    pub(crate) fn stopped(&self, reason: StopReason) {
        let _ = self.stopped.set(reason);
    }
    pub(crate) fn published(&self, n: usize) {
        self.published.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn resent(&self) {
        self.resent.fetch_add(1, Relaxed);
    }
    pub(crate) fn outbox_full(&self) {
        self.outbox_full.fetch_add(1, Relaxed);
    }
    pub(crate) fn first_sighting(&self) {
        self.first_sightings.fetch_add(1, Relaxed);
    }
    /// Counts a task whose CPU counters went down; names it while fewer than
    /// [`NAMED_RESETS`] were named this pass.
    pub(crate) fn reset(&self, address: &str, executor_id: &str) {
        if self.resets.fetch_add(1, Relaxed) < NAMED_RESETS {
            log::info!(agent = address; "agent {address}: CPU counters of {executor_id} went down; new baseline");
        }
    }
    pub(crate) fn not_newer(&self) {
        self.not_newer.fetch_add(1, Relaxed);
    }
    pub(crate) fn agents_unusable(&self, n: usize) {
        self.agents_unusable.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn incomplete(&self) {
        self.incomplete.fetch_add(1, Relaxed);
    }
    pub(crate) fn skipped_entries(&self, n: usize) {
        self.skipped_entries.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn malformed_fields(&self, n: usize) {
        self.malformed_fields.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn bad_state(&self) {
        self.bad_state.fetch_add(1, Relaxed);
    }
    pub(crate) fn unstored(&self, n: usize) {
        self.unstored.fetch_add(n as u64, Relaxed);
    }
    pub(crate) fn delivery_failed(&self, reason: Reason, why: &dyn Display) {
        let mut failures = lock(&self.delivery_failures);
        let entry = failures
            .entry(reason)
            .or_insert_with(|| (0, why.to_string()));
        entry.0 += 1;
    }

    pub(crate) fn summary(&self, duration: Duration) -> Summary {
        let failures = lock(&self.agent_failures).clone();
        Summary {
            agents_listed: self.agents_listed.load(Relaxed),
            agents_answered: self.agents_answered.load(Relaxed),
            agents_abandoned: self.agents_abandoned.load(Relaxed),
            agents_not_started: self.agents_not_started.load(Relaxed),
            stopped: self.stopped.get().copied(),
            ended_early: None,
            agents_unusable: self.agents_unusable.load(Relaxed),
            agent_failures: failures.iter().map(|(r, f)| (*r, f.agents)).collect(),
            agent_failures_named: failures.iter().map(|(r, f)| (*r, f.named)).collect(),
            agent_notes_left_out: self
                .agent_notes
                .load(Relaxed)
                .saturating_sub(NAMED_AGENT_NOTES),
            tasks_seen: self.tasks_seen.load(Relaxed),
            published: self.published.load(Relaxed),
            resent: self.resent.load(Relaxed),
            outbox_full: self.outbox_full.load(Relaxed),
            first_sightings: self.first_sightings.load(Relaxed),
            resets: self.resets.load(Relaxed),
            not_newer: self.not_newer.load(Relaxed),
            incomplete: self.incomplete.load(Relaxed),
            skipped_entries: self.skipped_entries.load(Relaxed),
            malformed_fields: self.malformed_fields.load(Relaxed),
            bad_state: self.bad_state.load(Relaxed),
            delivery_failures: lock(&self.delivery_failures).clone(),
            unstored: self.unstored.load(Relaxed),
            duration,
            dry_run: false,
        }
    }
}

impl Summary {
    /// The summary of a pass that ended with `code` before collecting: no counts, so
    /// that its summary line and metrics still say how it ended.
    pub(crate) fn ended_early(code: i32, duration: Duration, dry_run: bool) -> Summary {
        Summary {
            duration,
            dry_run,
            ended_early: Some(code),
            ..Summary::default()
        }
    }

    pub(crate) fn agents_failed(&self) -> u64 {
        self.agent_failures.values().sum()
    }

    pub(crate) fn deliveries_failed(&self) -> u64 {
        self.delivery_failures.values().map(|(n, _)| n).sum()
    }

    /// 0 when everything was delivered, 69 when nothing could be, 3 in between; 128 + the
    /// signal's number when a signal stopped the pass; the code of a pass that ended early.
    pub(crate) fn exit_code(&self) -> i32 {
        if let Some(code) = self.ended_early {
            return code;
        }
        if let Some(code) = self.stopped.and_then(StopReason::exit_code) {
            return code;
        }
        // An unusable entry of the agent list is an agent whose tasks were not collected.
        let agents_missing = self.agents_failed()
            + self.agents_abandoned
            + self.agents_not_started
            + self.agents_unusable;
        let documents_missing = self.deliveries_failed() + self.unstored;
        if agents_missing == 0 && documents_missing == 0 {
            return exit::OK;
        }
        let no_agent_answered = self.agents_listed > 0 && self.agents_answered == 0;
        let nothing_delivered = self.deliveries_failed() > 0 && self.published == 0;
        if no_agent_answered || nothing_delivered {
            exit::UNAVAILABLE
        } else {
            exit::PARTIAL
        }
    }

    /// Logs what the bounded lines left out (one line per reason of the failed agents
    /// not named, one for the resets not named, one for the other lines about single
    /// agents), one line per reason of failed deliveries, then the summary line, last.
    pub(crate) fn log(&self) {
        for (reason, failed) in &self.agent_failures {
            let named = self.agent_failures_named.get(reason).copied().unwrap_or(0);
            let unnamed = failed.saturating_sub(named);
            if unnamed > 0 {
                log::warn!(reason = reason.as_str(), agents = unnamed; "... and {unnamed} more agents failed ({reason}) not named above ({failed} in all)");
            }
        }
        let resets_unnamed = self.resets.saturating_sub(NAMED_RESETS);
        if resets_unnamed > 0 {
            log::info!(tasks = resets_unnamed; "... and {resets_unnamed} more tasks whose CPU counters went down ({} in all); new baselines", self.resets);
        }
        if self.agent_notes_left_out > 0 {
            log::warn!(lines = self.agent_notes_left_out; "... and {} more lines about single agents left out (skipped entries, documents not delivered, readings not stored); the summary counts them", self.agent_notes_left_out);
        }
        for (reason, (count, first)) in &self.delivery_failures {
            log::error!(reason = reason.as_str(), documents = *count; "{count} documents not delivered ({reason}): {first}");
        }
        let failures = |map: &BTreeMap<Reason, u64>| -> String {
            map.iter().map(|(k, v)| format!(" {k}={v}")).collect()
        };
        let delivery: BTreeMap<Reason, u64> = self
            .delivery_failures
            .iter()
            .map(|(k, (n, _))| (*k, *n))
            .collect();
        let level = exit::log_level(self.exit_code());
        if !log::log_enabled!(level) {
            return;
        }
        let message = format!(
            "pass done: agents listed={} answered={} failed={}{} abandoned={} not_started={}{} \
             unusable={}; tasks seen={} {}={} resent={} outbox_full={} first_sightings={} resets={} not_newer={} \
             incomplete={} skipped_entries={} \
             malformed_fields={} bad_state={} deliveries_failed={}{} unstored={}; \
             duration={:.3}s exit={}",
            self.agents_listed,
            self.agents_answered,
            self.agents_failed(),
            failures(&self.agent_failures),
            self.agents_abandoned,
            self.agents_not_started,
            self.stopped
                .map(|reason| format!(" stopped_by={reason}"))
                .unwrap_or_default(),
            self.agents_unusable,
            self.tasks_seen,
            if self.dry_run { "printed" } else { "published" },
            self.published,
            self.resent,
            self.outbox_full,
            self.first_sightings,
            self.resets,
            self.not_newer,
            self.incomplete,
            self.skipped_entries,
            self.malformed_fields,
            self.bad_state,
            self.deliveries_failed(),
            failures(&delivery),
            self.unstored,
            self.duration.as_secs_f64(),
            self.exit_code()
        );
        let fields = self.fields(&delivery);
        log::logger().log(
            &log::Record::builder()
                .level(level)
                .target(module_path!())
                .args(format_args!("{message}"))
                .key_values(&fields)
                .build(),
        );
    }
}

impl Summary {
    /// The summary line's fields (`--log-format json`): every count, and one field per
    /// reason of failed agents (`agents_failed_<reason>`) and of failed deliveries
    /// (`deliveries_failed_<reason>`), so a log pipeline reads them without parsing the
    /// message.
    fn fields(&self, delivery: &BTreeMap<Reason, u64>) -> Vec<(String, SummaryField)> {
        let stopped_by = self.stopped.map(|reason| reason.to_string());
        let counts: [(&str, u64); 19] = [
            ("agents_listed", self.agents_listed),
            ("agents_answered", self.agents_answered),
            ("agents_failed", self.agents_failed()),
            ("agents_abandoned", self.agents_abandoned),
            ("agents_not_started", self.agents_not_started),
            ("agents_unusable", self.agents_unusable),
            ("tasks_seen", self.tasks_seen),
            ("published", self.published),
            ("resent", self.resent),
            ("outbox_full", self.outbox_full),
            ("first_sightings", self.first_sightings),
            ("resets", self.resets),
            ("not_newer", self.not_newer),
            ("incomplete", self.incomplete),
            ("skipped_entries", self.skipped_entries),
            ("malformed_fields", self.malformed_fields),
            ("bad_state", self.bad_state),
            ("deliveries_failed", self.deliveries_failed()),
            ("unstored", self.unstored),
        ];
        let mut fields: Vec<(String, SummaryField)> = counts
            .into_iter()
            .map(|(name, n)| (name.to_string(), SummaryField::Count(n)))
            .collect();
        let by_reason = |kind: &str, map: &BTreeMap<Reason, u64>| -> Vec<(String, SummaryField)> {
            map.iter()
                .map(|(reason, n)| {
                    let name = format!("{kind}_{}", reason.as_str().replace('-', "_"));
                    (name, SummaryField::Count(*n))
                })
                .collect()
        };
        fields.extend(by_reason("agents_failed", &self.agent_failures));
        fields.extend(by_reason("deliveries_failed", delivery));
        // Empty when the pass ran to its end.
        fields.push((
            "stopped_by".to_string(),
            SummaryField::Text(stopped_by.unwrap_or_default()),
        ));
        fields.push((
            "duration_secs".to_string(),
            SummaryField::Seconds(self.duration.as_secs_f64()),
        ));
        fields.push((
            "exit_code".to_string(),
            SummaryField::Count(u64::try_from(self.exit_code()).unwrap_or_default()),
        ));
        fields
    }
}

/// A field of the summary line, owned so the line's fields can be built at run time.
enum SummaryField {
    Count(u64),
    Seconds(f64),
    Text(String),
}

impl log::kv::ToValue for SummaryField {
    fn to_value(&self) -> log::kv::Value<'_> {
        match self {
            SummaryField::Count(n) => log::kv::Value::from(*n),
            SummaryField::Seconds(x) => log::kv::Value::from(*x),
            SummaryField::Text(text) => log::kv::Value::from(text.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_what_was_delivered() {
        let ok = Summary {
            agents_listed: 2,
            agents_answered: 2,
            published: 10,
            ..Summary::default()
        };
        assert_eq!(ok.exit_code(), exit::OK);
        let mut one_agent_down = ok.clone();
        one_agent_down.agents_answered = 1;
        one_agent_down.agent_failures.insert(Reason::Timeout, 1);
        assert_eq!(one_agent_down.exit_code(), exit::PARTIAL);
        let mut all_down = one_agent_down.clone();
        all_down.agents_answered = 0;
        all_down.agent_failures.insert(Reason::Timeout, 2);
        assert_eq!(all_down.exit_code(), exit::UNAVAILABLE);
        let mut some_lost = ok.clone();
        some_lost
            .delivery_failures
            .insert(Reason::Nacked, (1, "x".into()));
        assert_eq!(some_lost.exit_code(), exit::PARTIAL);
        let mut none_delivered = some_lost.clone();
        none_delivered.published = 0;
        assert_eq!(none_delivered.exit_code(), exit::UNAVAILABLE);
        let mut unstored = ok.clone();
        unstored.unstored = 3;
        assert_eq!(unstored.exit_code(), exit::PARTIAL);
        let mut abandoned = ok.clone();
        abandoned.agents_abandoned = 1;
        assert_eq!(abandoned.exit_code(), exit::PARTIAL);
        let mut not_started = ok.clone();
        not_started.agents_not_started = 1;
        assert_eq!(not_started.exit_code(), exit::PARTIAL);
        let mut signalled = ok.clone();
        signalled.stopped = Some(StopReason::Signal(15));
        assert_eq!(
            signalled.exit_code(),
            143,
            "a signal's code, however it went"
        );
        let mut unusable = ok.clone();
        unusable.agents_unusable = 1;
        assert_eq!(unusable.exit_code(), exit::PARTIAL);
        let incomplete = Summary {
            incomplete: 4,
            ..ok.clone()
        };
        assert_eq!(incomplete.exit_code(), exit::OK, "held back on purpose");
        let empty = Summary::default();
        assert_eq!(
            empty.exit_code(),
            exit::OK,
            "a cluster without agents is not an error"
        );
        let locked = Summary::ended_early(exit::LOCKED, Duration::ZERO, false);
        assert_eq!(locked.exit_code(), exit::LOCKED);
    }
}

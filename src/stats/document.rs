//! The document published for a task: pure arithmetic from two readings, no I/O.
//!
//! This is the public contract with the dashboards and the autoscaler (docs/document.md):
//! field names, units and meanings match the Python collector. A field whose inputs are
//! missing is left out rather than sent as 0, null, NaN or infinity, and every computed
//! float is rounded to 5 decimal places, half away from zero.

use crate::stats::appname::appname;
use crate::stats::reading::{Reading, Sample};
use serde::Serialize;
use serde_json::value::RawValue;

/// Mesos gives every command executor 0.1 CPU on top of the task's own limit.
const EXECUTOR_CPUS: f64 = 0.1;

/// What one task's new reading leads to.
#[derive(Debug)]
pub(crate) enum Outcome<'a> {
    /// Publish this document, then store the new reading once the broker confirmed it.
    Publish(Box<Document<'a>>),
    /// No previous reading: store the new one, publish nothing.
    FirstSighting,
    /// The new sample is not newer than the stored one: keep the stored one.
    NotNewer,
    /// A CPU counter went down: store the new reading as the baseline, publish nothing.
    Reset,
}

/// The JSON document for one task and one interval, in the field order of the contract.
#[derive(Debug, Serialize)]
pub(crate) struct Document<'a> {
    pub(crate) timestamp: f64,
    pub(crate) host: &'a str,
    pub(crate) taskname: &'a str,
    pub(crate) appname: String,
    pub(crate) period_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_limit_raw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_usr_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_sys_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_thr_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_usr_host_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_sys_host_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_host_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_usr_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_sys_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_thr_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mem_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mem_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stats: Option<RawStats<'a>>,
    /// Only in a dry run's output: a pass would hold this document back (see
    /// [`Document::is_complete`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) incomplete: bool,
}

/// Both readings' `statistics` objects exactly as the agent sent them.
#[derive(Debug, Serialize)]
pub(crate) struct RawStats<'a> {
    pub(crate) before: &'a RawValue,
    pub(crate) now: &'a RawValue,
}

impl Document<'_> {
    /// The document as JSON, appended to `out` (a batch's buffer of bodies): serde_json's
    /// writer of the derived `Serialize`, so the contract's names, order and omissions are
    /// the struct's. A writer by hand measured 0.55 to 0.60 of its time per document, about
    /// 2 % of a pass's CPU: under what CONTRIBUTING.md asks of code a crate does, so it went
    /// back (issue 28, BENCHMARKS.md).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        // Cannot fail: a Vec takes every write, and every field has a JSON form (a float
        // that is not finite is written as null, which `compute` never lets in).
        let _ = serde_json::to_writer(out, self);
    }

    /// Whether the document carries both `cpu_pct` and `mem_pct`. The consumers average
    /// them per app and fail on a window of documents that all lack one, so by default
    /// only complete documents are published.
    pub(crate) fn is_complete(&self) -> bool {
        self.cpu_pct.is_some() && self.mem_pct.is_some()
    }

    /// The message id, `<executor_id>@<timestamp>`, that lets a consumer drop repeats;
    /// publishing fits it to what AMQP can carry (`broker::message_id`).
    /// Appended to `id` (a batch's buffer of ids).
    pub(crate) fn write_message_id(&self, id: &mut String) {
        use std::fmt::Write;
        // Room for the usual timestamp (`1541084157.12885`), so it is never grown.
        id.reserve(self.taskname.len() + 24);
        id.push_str(self.taskname);
        id.push('@');
        // Writing to a String never fails.
        let _ = write!(id, "{}", self.timestamp);
    }
}

/// Decides what a task's new reading leads to, and computes its document if any.
pub(crate) fn compute<'a>(
    before: Option<&'a Reading>,
    now: &'a Reading,
    host: &'a str,
    include_raw_metrics: bool,
) -> Outcome<'a> {
    let Some(before) = before else {
        return Outcome::FirstSighting;
    };
    let (b, n) = (&before.sample, &now.sample);
    let period = n.timestamp - b.timestamp;
    if !(period.is_finite() && period > 0.0) {
        return Outcome::NotNewer;
    }
    let Some(cpu) = CpuDeltas::between(b, n) else {
        return Outcome::Reset;
    };
    let limit = n.cpus_limit.filter(|&raw| raw > EXECUTOR_CPUS);
    let task_limit = limit.map(|raw| raw - EXECUTOR_CPUS);
    let host_pct = |secs: f64| secs / period * 100.0;
    let usr_host_pct = cpu.user.map(host_pct);
    let sys_host_pct = cpu.system.map(host_pct);
    let busy_secs = cpu.user.zip(cpu.system).map(|(u, s)| u + s);
    Outcome::Publish(Box::new(Document {
        timestamp: n.timestamp,
        host,
        taskname: &now.executor_id,
        appname: appname(&now.executor_id),
        period_secs: round5(period).unwrap_or(period),
        cpu_limit_raw: limit.and_then(round5),
        cpu_limit: task_limit.and_then(round5),
        cpu_usr_secs: cpu.user.and_then(round5),
        cpu_sys_secs: cpu.system.and_then(round5),
        cpu_thr_secs: cpu.throttled.and_then(round5),
        cpu_usr_host_pct: usr_host_pct.and_then(round5),
        cpu_sys_host_pct: sys_host_pct.and_then(round5),
        cpu_host_pct: usr_host_pct
            .zip(sys_host_pct)
            .and_then(|(u, s)| round5(u + s)),
        cpu_usr_pct: usr_host_pct
            .zip(task_limit)
            .and_then(|(p, l)| round5(p / l)),
        cpu_sys_pct: sys_host_pct
            .zip(task_limit)
            .and_then(|(p, l)| round5(p / l)),
        cpu_pct: busy_secs
            .zip(task_limit)
            .and_then(|(secs, l)| round5(secs / period / l * 100.0)),
        cpu_thr_pct: cpu.throttled.map(host_pct).and_then(round5),
        mem_bytes: n.mem_rss_bytes,
        mem_pct: n
            .mem_rss_bytes
            .zip(n.mem_limit_bytes.filter(|&l| l > 0))
            .and_then(|(rss, l)| round5(rss as f64 / l as f64 * 100.0)),
        stats: include_raw_metrics
            .then(|| {
                Some(RawStats {
                    before: before.statistics()?,
                    now: now.statistics()?,
                })
            })
            .flatten(),
        incomplete: false,
    }))
}

/// Growth of the CPU counters between two samples; a counter missing from either is None.
struct CpuDeltas {
    user: Option<f64>,
    system: Option<f64>,
    throttled: Option<f64>,
}

impl CpuDeltas {
    /// None when any counter went down: the task's processes restarted and the old
    /// reading is no baseline any more.
    fn between(b: &Sample, n: &Sample) -> Option<CpuDeltas> {
        let delta = |old: Option<f64>, new: Option<f64>| old.zip(new).map(|(o, n)| n - o);
        let deltas = CpuDeltas {
            user: delta(b.cpus_user_time_secs, n.cpus_user_time_secs),
            system: delta(b.cpus_system_time_secs, n.cpus_system_time_secs),
            throttled: delta(b.cpus_throttled_time_secs, n.cpus_throttled_time_secs),
        };
        let went_down = [deltas.user, deltas.system, deltas.throttled]
            .iter()
            .any(|d| d.is_some_and(|d| d < 0.0));
        (!went_down).then_some(deltas)
    }
}

/// Rounds to 5 decimal places, half away from zero, as the shortest decimal that reads
/// back as `x` would round; None for NaN and infinities, which are never published.
///
/// Working on the decimal form is what makes `0.35 - 0.1` (0.24999999999999997 in binary)
/// come out as 0.25, as a person computing with the agent's decimal numbers expects.
pub(crate) fn round5(x: f64) -> Option<f64> {
    if !x.is_finite() {
        return None;
    }
    let scaled = x * 1e5;
    // Far from a tie, rounding the binary product gives the same digit as rounding the
    // decimal; near one (or where the product loses precision) decide on the digits.
    let tie_distance = (scaled - scaled.trunc()).abs() - 0.5;
    let rounded = if scaled.abs() < 1e15 && tie_distance.abs() > scaled.abs() * 1e-14 + 1e-9 {
        scaled.round() / 1e5
    } else {
        round5_decimal(x)
    };
    // -0.0 would print as "-0.0".
    Some(if rounded == 0.0 { 0.0 } else { rounded })
}

/// The exact path of [`round5`]: rounds the shortest decimal representation's digits.
fn round5_decimal(x: f64) -> f64 {
    // `{:e}` prints the shortest digits that read back as x: "d.ddddde<exp>".
    let text = format!("{:e}", x.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| d - b'0')
        .collect();
    // The value is 0.d1d2d3... * 10^(exponent + 1); keep digits down to 10^-5.
    let keep = exponent + 1 + 5;
    if keep < 0 {
        return 0.0;
    }
    let keep = keep as usize;
    if keep >= digits.len() {
        return x;
    }
    let mut kept: u128 = digits[..keep]
        .iter()
        .fold(0, |acc, &d| acc * 10 + u128::from(d));
    if digits[keep] >= 5 {
        kept += 1;
    }
    // kept * 10^-5 exactly; parsing the decimal text gives the nearest double.
    let magnitude: f64 = format!("{kept}e-5").parse().unwrap_or(f64::NAN);
    magnitude.copysign(x)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod reference_cases;

#[cfg(test)]
mod properties;

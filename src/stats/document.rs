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
    /// The document as JSON, written field by field in one allocation: byte for byte what
    /// `serde_json::to_writer` makes of the derived `Serialize` (the `properties` tests
    /// compare them), without serde's generic machinery, which cost a tenth of a pass's
    /// CPU (issue 18), appended to `out` (a batch's buffer of bodies). It cannot fail:
    /// every value it writes has a JSON form.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        // Keys, numbers and punctuation stay under 768 bytes; strings may double when
        // escaped, which only costs a regrowth.
        let raw_len = self
            .stats
            .as_ref()
            .map_or(0, |raw| raw.before.get().len() + raw.now.get().len() + 32);
        out.reserve(768 + self.host.len() + self.taskname.len() + self.appname.len() + raw_len);
        out.extend_from_slice(b"{\"timestamp\":");
        write_f64(out, self.timestamp);
        out.extend_from_slice(b",\"host\":");
        write_str(out, self.host);
        out.extend_from_slice(b",\"taskname\":");
        write_str(out, self.taskname);
        out.extend_from_slice(b",\"appname\":");
        write_str(out, &self.appname);
        out.extend_from_slice(b",\"period_secs\":");
        write_f64(out, self.period_secs);
        let optional_floats: [(&[u8], Option<f64>); 12] = [
            (b",\"cpu_limit_raw\":", self.cpu_limit_raw),
            (b",\"cpu_limit\":", self.cpu_limit),
            (b",\"cpu_usr_secs\":", self.cpu_usr_secs),
            (b",\"cpu_sys_secs\":", self.cpu_sys_secs),
            (b",\"cpu_thr_secs\":", self.cpu_thr_secs),
            (b",\"cpu_usr_host_pct\":", self.cpu_usr_host_pct),
            (b",\"cpu_sys_host_pct\":", self.cpu_sys_host_pct),
            (b",\"cpu_host_pct\":", self.cpu_host_pct),
            (b",\"cpu_usr_pct\":", self.cpu_usr_pct),
            (b",\"cpu_sys_pct\":", self.cpu_sys_pct),
            (b",\"cpu_pct\":", self.cpu_pct),
            (b",\"cpu_thr_pct\":", self.cpu_thr_pct),
        ];
        for (key, value) in optional_floats {
            if let Some(value) = value {
                out.extend_from_slice(key);
                write_f64(out, value);
            }
        }
        if let Some(bytes) = self.mem_bytes {
            out.extend_from_slice(b",\"mem_bytes\":");
            out.extend_from_slice(itoa::Buffer::new().format(bytes).as_bytes());
        }
        if let Some(pct) = self.mem_pct {
            out.extend_from_slice(b",\"mem_pct\":");
            write_f64(out, pct);
        }
        if let Some(raw) = &self.stats {
            out.extend_from_slice(b",\"stats\":{\"before\":");
            out.extend_from_slice(raw.before.get().as_bytes());
            out.extend_from_slice(b",\"now\":");
            out.extend_from_slice(raw.now.get().as_bytes());
            out.push(b'}');
        }
        if self.incomplete {
            out.extend_from_slice(b",\"incomplete\":true");
        }
        out.push(b'}');
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

/// A float as serde_json writes one: the shortest form that reads back (zmij, the
/// crate serde_json itself calls), `null` for NaN and infinities (which `round5` and
/// `compute` never let into a document).
fn write_f64(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
    } else if !write_five_decimals(out, value) {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    }
}

/// The fast path of [`write_f64`], for the values `round5` makes (and zero): about four
/// times cheaper than zmij, with the same text. Writes nothing and returns false unless
/// `value` is the double nearest to k·10⁻⁵ for an integer 1 ≤ k < 10¹⁵.
///
/// Why the text is zmij's: below 10¹⁰ two doubles are at most 2⁻¹⁹ apart, less than
/// 10⁻⁵, so no other decimal of at most as many digits as k (trailing zeros dropped)
/// reads back as `value`: k's digits are the shortest, which is what zmij prints, in
/// plain notation for leading digits from 10⁻⁵ to 10¹⁵ (`0.00001`, `12.5`, `3.0`).
/// The `properties` tests compare both on such values.
fn write_five_decimals(out: &mut Vec<u8>, value: f64) -> bool {
    if value == 0.0 {
        out.extend_from_slice(if value.is_sign_negative() {
            b"-0.0"
        } else {
            b"0.0"
        });
        return true;
    }
    let magnitude = value.abs();
    let scaled = (magnitude * 1e5).round();
    // k and 1e5 are exact doubles, so the division rounds k·10⁻⁵ once, to its nearest.
    if !((1.0..1e15).contains(&scaled) && scaled / 1e5 == magnitude) {
        return false;
    }
    // Exact: `scaled` is an integer below 10¹⁵.
    let units = scaled as u64;
    if value < 0.0 {
        out.push(b'-');
    }
    out.extend_from_slice(itoa::Buffer::new().format(units / 100_000).as_bytes());
    out.push(b'.');
    let (mut fraction, mut digits) = (units % 100_000, 5);
    if fraction == 0 {
        out.push(b'0');
        return true;
    }
    while fraction % 10 == 0 {
        fraction /= 10;
        digits -= 1;
    }
    let mut text = [b'0'; 5];
    for at in (0..digits).rev() {
        text[at] = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out.extend_from_slice(&text[..digits]);
    true
}

/// A string as serde_json writes one: quoted, with `"`, `\` and the control characters
/// escaped (`\n` and its kin by letter, the others as `\u00xx`), everything else as is.
fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut plain_from = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let control;
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";
                control = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX_DIGITS[usize::from(byte >> 4)],
                    HEX_DIGITS[usize::from(byte & 0xf)],
                ];
                &control
            }
            _ => continue,
        };
        // Escaped bytes are ASCII, so the runs between them are whole characters.
        out.extend_from_slice(&bytes[plain_from..at]);
        out.extend_from_slice(escape);
        plain_from = at + 1;
    }
    out.extend_from_slice(&bytes[plain_from..]);
    out.push(b'"');
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
mod tests {
    use super::*;
    use crate::stats::reading::parse_entry;

    fn reading(id: &str, statistics: &str) -> Reading {
        let entry = format!(r#"{{"executor_id":"{id}","statistics":{statistics}}}"#);
        parse_entry(entry.into()).expect("valid entry")
    }

    fn document(before: &str, now: &str) -> serde_json::Value {
        let (b, n) = (reading("g_a.1", before), reading("g_a.1", now));
        match compute(Some(&b), &n, "h:5051", false) {
            Outcome::Publish(doc) => serde_json::to_value(&doc).expect("serializes"),
            other => panic!("expected a document, got {other:?}"),
        }
    }

    #[test]
    fn rounds_half_away_from_zero_on_the_decimal() {
        let cases = [
            (0.35 - 0.1, 0.25),
            (0.7 - 0.1, 0.6),
            (0.9 - 0.1, 0.8),
            (1.000005, 1.00001),
            (1.000004999, 1.0),
            (-1.000005, -1.00001),
            (2.675, 2.675),
            (0.000005, 0.00001),
            (0.0000049, 0.0),
            (-0.0000049, 0.0),
            (12345678901.234565, 12345678901.23457),
            (1e300, 1e300),
            (1e-300, 0.0),
            (10.550000000000004, 10.55),
            (73.17724500000001, 73.17725),
        ];
        for (input, expected) in cases {
            assert_eq!(round5(input), Some(expected), "round5({input:e})");
        }
        assert_eq!(round5(f64::NAN), None);
        assert_eq!(round5(f64::INFINITY), None);
        assert!(round5(-0.0000001).is_some_and(|r| r.is_sign_positive()));
    }

    #[test]
    fn fast_and_decimal_paths_agree() {
        // Every value the fast path takes must round as the digits do.
        let mut x = 0.123456789_f64;
        for i in 0..20_000 {
            x = (x * 1.618033988749 + i as f64 * 0.000731).fract() * 10f64.powi(i % 12 - 3);
            assert_eq!(
                round5(x),
                Some(round5_decimal(x)).map(|r| r + 0.0),
                "x = {x:e}"
            );
        }
    }

    #[test]
    fn first_sighting_repeat_and_reset_publish_nothing() {
        let n = reading("t", r#"{"timestamp": 10, "cpus_user_time_secs": 5}"#);
        assert!(matches!(
            compute(None, &n, "h", false),
            Outcome::FirstSighting
        ));
        let same = reading("t", r#"{"timestamp": 10, "cpus_user_time_secs": 6}"#);
        assert!(matches!(
            compute(Some(&n), &same, "h", false),
            Outcome::NotNewer
        ));
        let older = reading("t", r#"{"timestamp": 9, "cpus_user_time_secs": 6}"#);
        assert!(matches!(
            compute(Some(&n), &older, "h", false),
            Outcome::NotNewer
        ));
        let restarted = reading("t", r#"{"timestamp": 11, "cpus_user_time_secs": 1}"#);
        assert!(matches!(
            compute(Some(&n), &restarted, "h", false),
            Outcome::Reset
        ));
        let thr_b = reading("t", r#"{"timestamp": 1, "cpus_throttled_time_secs": 5}"#);
        let thr_n = reading("t", r#"{"timestamp": 2, "cpus_throttled_time_secs": 4}"#);
        assert!(matches!(
            compute(Some(&thr_b), &thr_n, "h", false),
            Outcome::Reset
        ));
        let sys_b = reading("t", r#"{"timestamp": 1, "cpus_system_time_secs": 5}"#);
        let sys_n = reading("t", r#"{"timestamp": 2, "cpus_system_time_secs": 4.9}"#);
        assert!(matches!(
            compute(Some(&sys_b), &sys_n, "h", false),
            Outcome::Reset
        ));
    }

    #[test]
    fn missing_inputs_leave_fields_out() {
        // Only timestamps: no CPU or memory field at all, never zeros.
        let b = reading("g_a.1", r#"{"timestamp": 1}"#);
        let n = reading("g_a.1", r#"{"timestamp": 3}"#);
        let Outcome::Publish(doc) = compute(Some(&b), &n, "h:5051", false) else {
            panic!("expected a document");
        };
        assert_eq!(
            serde_json::to_string(&doc).expect("serializes"),
            r#"{"timestamp":3.0,"host":"h:5051","taskname":"g_a.1","appname":"/g/a","period_secs":2.0}"#
        );
    }

    #[test]
    fn cfs_off_in_either_reading_drops_throttling() {
        let with = r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_throttled_time_secs": 1}"#;
        let without = r#"{"timestamp": 2, "cpus_user_time_secs": 2}"#;
        for (b, n) in [(with, without), (without.replace('2', "0").as_str(), with)] {
            let doc = document(b, n);
            assert!(doc.get("cpu_thr_secs").is_none() && doc.get("cpu_thr_pct").is_none());
        }
        let doc = document(
            with,
            r#"{"timestamp": 3, "cpus_user_time_secs": 2, "cpus_throttled_time_secs": 1.5}"#,
        );
        assert_eq!(doc["cpu_thr_secs"], 0.5);
        assert_eq!(doc["cpu_thr_pct"], 25.0);
    }

    #[test]
    fn cpu_limit_missing_or_at_most_the_executor_share_drops_limit_fields() {
        let base = r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}"#;
        for limit in [
            "",
            r#", "cpus_limit": 0.1"#,
            r#", "cpus_limit": 0.05"#,
            r#", "cpus_limit": 0"#,
            r#", "cpus_limit": -2"#,
        ] {
            let now = format!(
                r#"{{"timestamp": 2, "cpus_user_time_secs": 2, "cpus_system_time_secs": 1.5{limit}}}"#
            );
            let doc = document(base, &now);
            for field in [
                "cpu_limit",
                "cpu_limit_raw",
                "cpu_usr_pct",
                "cpu_sys_pct",
                "cpu_pct",
            ] {
                assert!(doc.get(field).is_none(), "{field} with limit {limit:?}");
            }
            assert_eq!(doc["cpu_usr_host_pct"], 100.0);
            assert_eq!(doc["cpu_sys_host_pct"], 50.0);
            assert_eq!(doc["cpu_host_pct"], 150.0);
        }
    }

    #[test]
    fn cpu_limit_keeps_its_decimals() {
        let doc = document(
            r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}"#,
            r#"{"timestamp": 2, "cpus_user_time_secs": 1.25, "cpus_system_time_secs": 1, "cpus_limit": 0.35}"#,
        );
        assert_eq!(doc["cpu_limit_raw"], 0.35);
        assert_eq!(doc["cpu_limit"], 0.25);
        assert_eq!(doc["cpu_pct"], 100.0);
        assert_eq!(doc["cpu_usr_pct"], 100.0);
        assert_eq!(doc["cpu_sys_pct"], 0.0);
    }

    #[test]
    fn soft_limits_give_cpu_and_memory_percentages_and_completeness() {
        let b = r#"{"timestamp": 1, "cpus_user_time_secs": 1, "cpus_system_time_secs": 1}"#;
        let n = r#"{"timestamp": 2, "cpus_user_time_secs": 1.5, "cpus_system_time_secs": 1,
            "cpus_soft_limit": 1.1, "mem_rss_bytes": 256, "mem_soft_limit_bytes": 1024}"#;
        let doc = document(b, n);
        assert_eq!(doc["cpu_limit_raw"], 1.1);
        assert_eq!(doc["cpu_limit"], 1.0);
        assert_eq!(doc["cpu_pct"], 50.0);
        assert_eq!(doc["mem_pct"], 25.0);
        let complete = |now: &str| {
            let (b, n) = (reading("g_a.1", b), reading("g_a.1", now));
            match compute(Some(&b), &n, "h", false) {
                Outcome::Publish(doc) => doc.is_complete(),
                other => panic!("expected a document, got {other:?}"),
            }
        };
        assert!(complete(n));
        assert!(!complete(
            r#"{"timestamp": 2, "cpus_user_time_secs": 2, "cpus_system_time_secs": 1, "mem_rss_bytes": 1, "mem_limit_bytes": 2}"#
        ));
        assert!(!complete(
            r#"{"timestamp": 2, "cpus_user_time_secs": 2, "cpus_system_time_secs": 1, "cpus_limit": 1.1, "mem_rss_bytes": 1}"#
        ));
    }

    #[test]
    fn memory_fields_need_their_inputs() {
        let b = r#"{"timestamp": 1}"#;
        let doc = document(
            b,
            r#"{"timestamp": 2, "mem_rss_bytes": 50, "mem_limit_bytes": 0}"#,
        );
        assert_eq!(doc["mem_bytes"], 50);
        assert!(doc.get("mem_pct").is_none());
        let doc = document(b, r#"{"timestamp": 2, "mem_limit_bytes": 100}"#);
        assert!(doc.get("mem_bytes").is_none() && doc.get("mem_pct").is_none());
        let doc = document(b, r#"{"timestamp": 2, "mem_rss_bytes": 50}"#);
        assert!(doc.get("mem_pct").is_none());
        let doc = document(
            b,
            r#"{"timestamp": 2, "mem_rss_bytes": 9007199254740993, "mem_limit_bytes": 18014398509481986}"#,
        );
        assert_eq!(
            doc["mem_bytes"].as_u64(),
            Some(9007199254740993),
            "exact past 2^53"
        );
        assert_eq!(doc["mem_pct"], 50.0);
    }

    #[test]
    fn huge_numbers_never_become_infinite_fields() {
        let doc = document(
            r#"{"timestamp": 1, "cpus_user_time_secs": -1.7e308, "cpus_limit": 1e308}"#,
            r#"{"timestamp": 1.000001, "cpus_user_time_secs": 1.7e308, "cpus_limit": 1e308}"#,
        );
        for (name, value) in doc.as_object().expect("object") {
            if let Some(x) = value.as_f64() {
                assert!(x.is_finite(), "{name} = {x}");
            }
        }
        assert!(doc.get("cpu_usr_secs").is_none(), "inf delta is left out");
        let b = reading("t", r#"{"timestamp": -1.7e308}"#);
        let n = reading("t", r#"{"timestamp": 1.7e308}"#);
        assert!(matches!(
            compute(Some(&b), &n, "h", false),
            Outcome::NotNewer
        ));
    }

    #[test]
    fn raw_metrics_carry_both_statistics_verbatim() {
        let b = reading(
            "t",
            r#"{"timestamp": 1541084142.7118, "x": 2178.139999999}"#,
        );
        let n = reading(
            "t",
            r#"{"timestamp":1541084157.12885,"big":18446744073709551615}"#,
        );
        let Outcome::Publish(doc) = compute(Some(&b), &n, "h", true) else {
            panic!("expected a document");
        };
        let text = serde_json::to_string(&doc).expect("serializes");
        assert!(text.ends_with(
            r#""stats":{"before":{"timestamp": 1541084142.7118, "x": 2178.139999999},"now":{"timestamp":1541084157.12885,"big":18446744073709551615}}}"#
        ), "{text}");
        let mut id = String::from("before|");
        doc.write_message_id(&mut id);
        assert_eq!(id, "before|t@1541084157.12885");
        let Outcome::Publish(doc) = compute(Some(&b), &n, "h", false) else {
            panic!("expected a document");
        };
        assert!(doc.stats.is_none());
    }
}

/// The readings and documents of the Python collector, copied from the shared contract.
#[cfg(test)]
mod reference_cases {
    use super::*;
    use crate::stats::reading::parse_entry;
    use serde_json::Value;

    const CASES: &str = include_str!("../../tests/data/reference-cases.json");

    fn cases() -> Value {
        serde_json::from_str(CASES).expect("reference cases are JSON")
    }

    fn reading_of(entry: &Value) -> Reading {
        parse_entry(entry.to_string().into()).expect("reference entries are valid")
    }

    #[test]
    fn documents_match_the_python_collector() {
        let cases = cases();
        let documents = cases["documents"].as_array().expect("documents");
        assert!(!documents.is_empty());
        for case in documents {
            let name = case["name"].as_str().expect("name");
            let (b, n) = (reading_of(&case["before"]), reading_of(&case["now"]));
            let raw = case["include_raw_metrics"].as_bool().expect("flag");
            let host = case["host"].as_str().expect("host");
            let Outcome::Publish(doc) = compute(Some(&b), &n, host, raw) else {
                panic!("{name}: expected a document");
            };
            let got = serde_json::to_value(&doc).expect("serializes");
            let got_fields = got.as_object().expect("object");
            // A case gives either the whole document or only the fields it is about.
            let expected = match case["expected"].as_object() {
                Some(whole) => {
                    assert_eq!(
                        got_fields.keys().collect::<std::collections::BTreeSet<_>>(),
                        whole.keys().collect(),
                        "{name}: same fields"
                    );
                    whole
                }
                None => case["expected_subset"]
                    .as_object()
                    .expect("expected_subset"),
            };
            for (field, want) in expected {
                assert_close(name, field, &got[field], want);
            }
            for absent in case["absent"].as_array().into_iter().flatten() {
                let absent = absent.as_str().expect("field name");
                assert!(got.get(absent).is_none(), "{name}: {absent} must be absent");
            }
        }
    }

    /// Numbers within 2e-5 (the Python collector rounded up), everything else equal.
    fn assert_close(case: &str, field: &str, got: &Value, want: &Value) {
        match (got, want) {
            (Value::Number(g), Value::Number(w)) => {
                let (g, w) = (g.as_f64().expect("f64"), w.as_f64().expect("f64"));
                assert!((g - w).abs() <= 2e-5, "{case}: {field} = {g}, expected {w}");
            }
            (Value::Object(g), Value::Object(w)) => {
                assert_eq!(g.len(), w.len(), "{case}: {field} has the same keys");
                for (key, w) in w {
                    assert_close(case, &format!("{field}.{key}"), &g[key], w);
                }
            }
            _ => assert_eq!(got, want, "{case}: {field}"),
        }
    }

    #[test]
    fn first_sighting_publishes_nothing() {
        let now = reading_of(&cases()["first_sighting"]["now"]);
        assert!(matches!(
            compute(None, &now, "h", true),
            Outcome::FirstSighting
        ));
    }

    #[test]
    fn the_full_agent_entry_is_read() {
        let now = reading_of(&cases()["agent_statistics_entry_full"]);
        assert_eq!(now.sample.cpus_limit, Some(8.25));
        assert_eq!(now.sample.mem_rss_bytes, Some(5105614848));
        assert_eq!(now.sample.timestamp, 1388534400.0);
        assert!(now.malformed_fields.is_empty());
    }

    #[test]
    fn appnames_match_the_python_collector() {
        for pair in cases()["appnames"].as_array().expect("appnames") {
            let (id, app) = (
                pair[0].as_str().expect("id"),
                pair[1].as_str().expect("app"),
            );
            assert_eq!(crate::stats::appname::appname(id), app);
        }
    }
}

/// Generated agent answers, well-formed and not: parsing and arithmetic never panic, and
/// a published document never holds null, NaN, infinity or a field without its inputs.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::stats::reading::{parse_answer, Entries};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Any JSON number an agent could send: tiny, huge, negative, integral, past 2^53.
    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<f64>()
                .prop_filter("JSON has no NaN/inf", |x| x.is_finite())
                .prop_map(|x| json!(x)),
            (-1e6f64..1e6).prop_map(|x| json!(x)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            Just(json!(0)),
            Just(json!(1e308)),
            Just(json!(-1e308)),
            Just(json!(5e-324)),
        ]
    }

    /// A statistics value: mostly numbers, sometimes the wrong type.
    fn field() -> impl Strategy<Value = Value> {
        prop_oneof![
            6 => number(),
            1 => "[a-z0-9.]{0,8}".prop_map(Value::from),
            1 => Just(Value::Null),
            1 => Just(json!({"x": [1, 2]})),
            1 => any::<bool>().prop_map(Value::from),
        ]
    }

    const FIELDS: [&str; 9] = [
        "timestamp",
        "cpus_limit",
        "cpus_soft_limit",
        "mem_soft_limit_bytes",
        "cpus_user_time_secs",
        "cpus_system_time_secs",
        "cpus_throttled_time_secs",
        "mem_rss_bytes",
        "mem_limit_bytes",
    ];

    fn statistics() -> impl Strategy<Value = Value> {
        proptest::collection::vec(proptest::option::of(field()), FIELDS.len()).prop_map(|values| {
            let map = FIELDS
                .iter()
                .zip(values)
                .filter_map(|(name, v)| v.map(|v| (name.to_string(), v)))
                .collect();
            Value::Object(map)
        })
    }

    fn entry() -> impl Strategy<Value = Value> {
        prop_oneof![
            8 => (prop_oneof![Just("t.1".to_string()), "[a-z_.-]{0,12}"], statistics())
                .prop_map(|(id, s)| json!({"executor_id": id, "statistics": s})),
            1 => field(),
            1 => statistics().prop_map(|s| json!({"statistics": s})),
            1 => Just(json!({"executor_id": "t.1", "statistics": [1]})),
        ]
    }

    fn check_document(before: &Reading, now: &Reading) {
        let Outcome::Publish(doc) = compute(Some(before), now, "h:1", true) else {
            return;
        };
        let text = serde_json::to_string(&doc).expect("a document always serializes");
        let value: Value = serde_json::from_str(&text).expect("and reads back");
        let object = value.as_object().expect("an object");
        for (name, v) in object {
            assert!(!v.is_null(), "{name} is null in {text}");
            if let Some(x) = v.as_f64() {
                assert!(x.is_finite(), "{name} = {x}");
            }
        }
        let (b, n) = (&before.sample, &now.sample);
        let has = |name: &str| object.contains_key(name);
        assert!(
            n.timestamp > b.timestamp && object["period_secs"].as_f64().is_some_and(|p| p >= 0.0)
        );
        assert_eq!(has("mem_bytes"), n.mem_rss_bytes.is_some());
        if has("mem_pct") {
            assert!(n.mem_rss_bytes.is_some() && n.mem_limit_bytes.is_some_and(|l| l > 0));
        }
        if has("cpu_thr_secs") || has("cpu_thr_pct") {
            assert!(b.cpus_throttled_time_secs.is_some() && n.cpus_throttled_time_secs.is_some());
        }
        for limited in [
            "cpu_limit",
            "cpu_limit_raw",
            "cpu_usr_pct",
            "cpu_sys_pct",
            "cpu_pct",
        ] {
            if has(limited) {
                assert!(
                    n.cpus_limit.is_some_and(|l| l > EXECUTOR_CPUS),
                    "{limited} in {text}"
                );
            }
        }
        for (field, old, new) in [
            ("cpu_usr_secs", b.cpus_user_time_secs, n.cpus_user_time_secs),
            (
                "cpu_sys_secs",
                b.cpus_system_time_secs,
                n.cpus_system_time_secs,
            ),
        ] {
            if has(field) {
                assert!(old.is_some() && new.is_some());
                assert!(
                    object[field].as_f64().is_some_and(|d| d >= 0.0),
                    "{field} < 0 in {text}"
                );
            }
        }
    }

    /// 4,000 cases a test run; `PROPTEST_CASES=N` runs longer (as a fuzzing session).
    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(4000)
    }

    /// Any float a document field could hold, and a few it never does (NaN, infinities,
    /// -0.0): serde_json and `to_json` must still agree on them.
    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => any::<f64>().prop_filter("finite", |x| x.is_finite()),
            2 => -1e6f64..1e6,
            2 => (-1e6f64..1e6).prop_map(|x| (x * 1e5).round() / 1e5),
            // What `round5` makes, over the whole range of `write_five_decimals` and past.
            4 => (any::<bool>(), 0u64..2_000_000_000_000_000)
                .prop_map(|(negative, k)| if negative { -(k as f64) } else { k as f64 } / 1e5),
            1 => (1u64..100_000_000, 0i32..12)
                .prop_map(|(k, shift)| k as f64 * 10f64.powi(shift) / 1e5),
            1 => any::<i64>().prop_map(|n| n as f64),
            1 => any::<u64>().prop_map(|n| (n >> (n % 64)) as f64),
            1 => -1e-300f64..1e-300,
            1 => prop_oneof![
                Just(0.0),
                Just(-0.0),
                Just(5e-324),
                Just(f64::MAX),
                Just(-f64::MIN_POSITIVE),
                Just(1e16),
                Just(1e15),
                Just(1.5e-7),
                Just(1e-5),
                Just(9.99999e-6),
                Just(9_999_999_999.999_99),
                Just(10_000_000_000.000_01),
                Just(1541084157.12885),
                Just(0.1 + 0.2),
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
            ],
        ]
    }

    /// Text with everything serde_json escapes or could get wrong: quotes, backslashes,
    /// every control character, DEL, multi-byte characters, any Unicode at all.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9_.:-]{0,24}",
            "[\"\\\\/\\x00-\\x1f\\x7fa\u{e9}\u{20ac}\u{1f600}]{0,16}",
            any::<String>(),
        ]
    }

    /// A raw `statistics` object as an agent may send it, spacing and all.
    fn raw_statistics() -> impl Strategy<Value = Box<RawValue>> {
        (statistics(), any::<bool>()).prop_map(|(value, pretty)| {
            let text = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            RawValue::from_string(text.expect("a Value serializes")).expect("valid JSON")
        })
    }

    /// Every field of a document, owned, so that a `Document` can borrow it.
    #[derive(Debug)]
    struct Fields {
        floats: [Option<f64>; 15],
        strings: [String; 3],
        mem_bytes: Option<u64>,
        raw: Option<(Box<RawValue>, Box<RawValue>)>,
        incomplete: bool,
    }

    fn fields() -> impl Strategy<Value = Fields> {
        (
            proptest::array::uniform15(proptest::option::of(float())),
            [text(), text(), text()],
            proptest::option::of(any::<u64>()),
            proptest::option::of((raw_statistics(), raw_statistics())),
            any::<bool>(),
        )
            .prop_map(|(floats, strings, mem_bytes, raw, incomplete)| Fields {
                floats,
                strings,
                mem_bytes,
                raw,
                incomplete,
            })
    }

    impl Fields {
        fn document(&self) -> Document<'_> {
            let [timestamp, period_secs, ..] = self.floats;
            let f = |i: usize| self.floats[i];
            Document {
                // The two fields that are always there; None stands for a finite value.
                timestamp: timestamp.unwrap_or(1541084157.12885),
                host: &self.strings[0],
                taskname: &self.strings[1],
                appname: self.strings[2].clone(),
                period_secs: period_secs.unwrap_or(60.0),
                cpu_limit_raw: f(2),
                cpu_limit: f(3),
                cpu_usr_secs: f(4),
                cpu_sys_secs: f(5),
                cpu_thr_secs: f(6),
                cpu_usr_host_pct: f(7),
                cpu_sys_host_pct: f(8),
                cpu_host_pct: f(9),
                cpu_usr_pct: f(10),
                cpu_sys_pct: f(11),
                cpu_pct: f(12),
                cpu_thr_pct: f(13),
                mem_bytes: self.mem_bytes,
                mem_pct: f(14),
                stats: self
                    .raw
                    .as_ref()
                    .map(|(before, now)| RawStats { before, now }),
                incomplete: self.incomplete,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

        /// The hand-written `to_json` is byte for byte what serde_json makes of the
        /// derived `Serialize`, the contract's field names, order and omissions included.
        #[test]
        fn to_json_writes_what_serde_json_writes(fields in fields()) {
            let doc = fields.document();
            let reference = serde_json::to_vec(&doc).expect("a document serializes");
            let mut written = Vec::new();
            doc.write_json(&mut written);
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&reference)
            );
            prop_assert_eq!(written, reference);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_answer(&bytes, Entries::Kept);
            let _ = parse_answer(&bytes, Entries::Dropped);
        }

        #[test]
        fn any_answer_parses_and_computes_safely(
            entries in proptest::collection::vec(entry(), 0..6),
            later in proptest::collection::vec(entry(), 0..6),
        ) {
            let text = Value::Array(entries.clone()).to_string();
            let first = parse_answer(text.as_bytes(), Entries::Kept)
                .expect("an array is always an answer");
            let dropped = parse_answer(text.as_bytes(), Entries::Dropped)
                .expect("an array is always an answer");
            crate::stats::reading::tests::assert_same(&first, &dropped);
            let second = parse_answer(Value::Array(later).to_string().as_bytes(), Entries::Kept)
                .expect("an array is always an answer");
            prop_assert_eq!(first.readings.len() + first.skipped, entries.len());
            for before in &first.readings {
                for now in &second.readings {
                    check_document(before, now);
                    check_document(now, before);
                }
            }
        }
    }
}

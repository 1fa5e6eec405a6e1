//! Parses an agent's `/monitor/statistics` answer (and readings stored in Redis) into
//! [`Reading`]s, without ever panicking or giving up on a whole agent for one bad entry.
//!
//! Each reading keeps the agent's entry byte for byte, so what Redis stores and what raw
//! metrics show is exactly what the agent sent (floats keep every digit, integers past
//! 2^53 stay integers); the numbers the arithmetic needs are parsed beside it.

use crate::stats::json::{Object, Scalar};
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// One executor's entry of an agent's answer: its id, its exact JSON, and its numbers.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) executor_id: String,
    /// The whole entry as the agent sent it (valid JSON); this is what Redis stores.
    pub(crate) entry: Box<str>,
    pub(crate) sample: Sample,
    /// Names of fields that held something other than a usable number; treated as missing.
    pub(crate) malformed_fields: Vec<&'static str>,
}

impl Reading {
    /// The entry's `statistics` object exactly as the agent sent it. The entry was read
    /// with statistics before, so this is always Some; it is looked up again rather than
    /// kept because raw metrics are off by default.
    pub(crate) fn statistics(&self) -> Option<&RawValue> {
        serde_json::from_str::<EntryHead>(&self.entry)
            .ok()
            .map(|head| head.statistics)
    }
}

/// The numbers of one reading that the document is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Sample {
    pub(crate) timestamp: f64,
    /// `cpus_limit`, else `cpus_soft_limit`.
    pub(crate) cpus_limit: Option<f64>,
    pub(crate) cpus_user_time_secs: Option<f64>,
    pub(crate) cpus_system_time_secs: Option<f64>,
    pub(crate) cpus_throttled_time_secs: Option<f64>,
    pub(crate) mem_rss_bytes: Option<u64>,
    /// `mem_limit_bytes` when above 0, else `mem_soft_limit_bytes`.
    pub(crate) mem_limit_bytes: Option<u64>,
}

/// Why a whole answer could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AnswerError {
    #[error("the answer is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the answer is JSON but not an array of executors")]
    NotAnArray,
}

/// Why one entry was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EntryError {
    #[error("entry is not an object")]
    NotAnObject,
    #[error("entry has no executor_id string")]
    NoExecutorId,
    #[error("entry has no statistics object")]
    NoStatistics,
    #[error("entry has no numeric timestamp")]
    NoTimestamp,
}

/// How many skipped entries an answer names one by one; the rest are only counted, so an
/// answer of millions of bad entries costs a counter, not an item (and a log line) each.
pub(crate) const SKIPPED_NAMED: usize = 10;

/// An agent's answer: the readings that could be read, and the entries that could not.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub(crate) readings: Vec<Reading>,
    /// How many entries were skipped.
    pub(crate) skipped: usize,
    /// (position in the array, why) of the first [`SKIPPED_NAMED`] skipped entries.
    pub(crate) first_skipped: Vec<(usize, EntryError)>,
}

impl Answer {
    fn skip(&mut self, position: usize, why: EntryError) {
        if self.first_skipped.len() < SKIPPED_NAMED {
            self.first_skipped.push((position, why));
        }
        self.skipped += 1;
    }
}

/// Reads an agent's whole answer: a JSON array of executor entries, read entry by entry
/// from the body, so only the readings are kept (each entry copied once, into its reading).
pub(crate) fn parse_answer(body: &[u8]) -> Result<Answer, AnswerError> {
    let visitor = AnswerVisitor {
        expected_readings: body.len() / SMALL_ENTRY_BYTES,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    deserializer
        .deserialize_seq(visitor)
        .and_then(|answer| deserializer.end().map(|()| answer))
        .map_err(|err| match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => AnswerError::NotAnArray,
            Err(_) => AnswerError::NotJson(err),
        })
}

/// A real entry is larger than this (its statistics alone are ~400 bytes), so the readings
/// are allocated once for a real answer, never grown (growing them cost 4% of parsing a
/// 50-entry answer, measured). An answer of tiny bad entries reserves at most about two
/// thirds of the body's size, which stays untouched address space, not resident memory.
const SMALL_ENTRY_BYTES: usize = 256;

/// Reads the executors array entry by entry, keeping only readings and what was skipped.
struct AnswerVisitor {
    expected_readings: usize,
}

impl<'de> Visitor<'de> for AnswerVisitor {
    type Value = Answer;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of executors")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Answer, A::Error> {
        let mut answer = Answer {
            readings: Vec::with_capacity(self.expected_readings),
            ..Answer::default()
        };
        let mut position = 0;
        while let Some(entry) = seq.next_element::<&'de RawValue>()? {
            match read_entry(entry.get()) {
                Ok(fields) => answer
                    .readings
                    .push(fields.into_reading(entry.get().into())),
                Err(why) => answer.skip(position, why),
            }
            position += 1;
        }
        Ok(answer)
    }
}

/// Reads one entry, as found in an agent's answer or stored in Redis. Reading it checks
/// the whole text is one valid JSON object, so any text can be given. The numbers are
/// read in the same scan; the raw `statistics` are found again only for raw metrics.
pub(crate) fn parse_entry(entry: Box<str>) -> Result<Reading, EntryError> {
    Ok(read_entry(&entry)?.into_reading(entry))
}

/// What a reading holds besides its entry's text.
struct ReadFields {
    executor_id: String,
    sample: Sample,
    malformed_fields: Vec<&'static str>,
}

impl ReadFields {
    fn into_reading(self, entry: Box<str>) -> Reading {
        Reading {
            executor_id: self.executor_id,
            entry,
            sample: self.sample,
            malformed_fields: self.malformed_fields,
        }
    }
}

/// Reads an entry's text without keeping it, so a skipped entry is never copied.
fn read_entry(entry: &str) -> Result<ReadFields, EntryError> {
    // Serde would also read a struct from an array; only an object is an entry.
    if !entry.trim_start().starts_with('{') {
        return Err(EntryError::NotAnObject);
    }
    let fields: EntryFields = serde_json::from_str(entry).map_err(|_| EntryError::NotAnObject)?;
    let executor_id = fields
        .executor_id
        .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
        .filter(|id| !id.is_empty())
        .ok_or(EntryError::NoExecutorId)?;
    let Some(Object::Is(statistics)) = fields.statistics else {
        return Err(EntryError::NoStatistics);
    };
    let (sample, malformed_fields) = statistics.into_sample()?;
    Ok(ReadFields {
        executor_id,
        sample,
        malformed_fields,
    })
}

/// The two parts of an entry this program reads; everything else is kept only as raw JSON.
#[derive(Deserialize)]
struct EntryFields<'a> {
    #[serde(borrow, default)]
    executor_id: Option<&'a RawValue>,
    #[serde(default)]
    statistics: Option<Object<SampleFields>>,
}

/// The two parts again, with `statistics` kept raw, for raw metrics.
#[derive(Deserialize)]
struct EntryHead<'a> {
    #[serde(borrow)]
    statistics: &'a RawValue,
}

/// The statistics fields the document uses, each as loosely typed as agents send them.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SampleFields {
    timestamp: Scalar,
    cpus_limit: Scalar,
    cpus_soft_limit: Scalar,
    cpus_user_time_secs: Scalar,
    cpus_system_time_secs: Scalar,
    cpus_throttled_time_secs: Scalar,
    mem_rss_bytes: Scalar,
    mem_limit_bytes: Scalar,
    mem_soft_limit_bytes: Scalar,
}

impl SampleFields {
    fn into_sample(self) -> Result<(Sample, Vec<&'static str>), EntryError> {
        let timestamp = self.timestamp.float().ok_or(EntryError::NoTimestamp)?;
        let mut malformed = Vec::new();
        let mut float = |name: &'static str, field: Scalar| {
            let value = field.float();
            if value.is_none() && field != Scalar::Missing {
                malformed.push(name);
            }
            value
        };
        // Mesos 1.10+ without CFS sends only the soft limit (the task's request, the
        // executor's share included), which then stands in for the hard one.
        let cpus_limit = float("cpus_limit", self.cpus_limit)
            .or_else(|| float("cpus_soft_limit", self.cpus_soft_limit));
        let cpus_user_time_secs = float("cpus_user_time_secs", self.cpus_user_time_secs);
        let cpus_system_time_secs = float("cpus_system_time_secs", self.cpus_system_time_secs);
        let cpus_throttled_time_secs =
            float("cpus_throttled_time_secs", self.cpus_throttled_time_secs);
        let mut bytes = |name: &'static str, field: Scalar| {
            let value = field.bytes();
            if value.is_none() && field != Scalar::Missing {
                malformed.push(name);
            }
            value
        };
        let mem_rss_bytes = bytes("mem_rss_bytes", self.mem_rss_bytes);
        let mem_limit_bytes = bytes("mem_limit_bytes", self.mem_limit_bytes)
            .filter(|&limit| limit > 0)
            .or_else(|| bytes("mem_soft_limit_bytes", self.mem_soft_limit_bytes));
        let sample = Sample {
            timestamp,
            cpus_limit,
            cpus_user_time_secs,
            cpus_system_time_secs,
            cpus_throttled_time_secs,
            mem_rss_bytes,
            mem_limit_bytes,
        };
        Ok((sample, malformed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer {
        parse_answer(text.as_bytes()).expect("answer parses")
    }

    #[test]
    fn reads_a_full_entry_and_keeps_its_bytes() {
        let text = r#"[{"executor_id":"a.1","framework_id":"f","statistics":{"timestamp":1541084157.12885,"cpus_limit":8.25,"cpus_user_time_secs":96348.84,"cpus_system_time_secs":2178.139999999,"cpus_throttled_time_secs":352.597023453,"mem_rss_bytes":18446744073709551615,"mem_limit_bytes":7650410496, "extra": [1,2]}}]"#;
        let a = answer(text);
        assert_eq!(a.skipped, 0);
        let r = &a.readings[0];
        assert_eq!(r.executor_id, "a.1");
        assert_eq!(&*r.entry, &text[1..text.len() - 1]);
        let statistics = r.statistics().expect("statistics").get();
        assert!(statistics.starts_with(r#"{"timestamp":1541084157.12885,"#));
        assert!(statistics.ends_with(r#""extra": [1,2]}"#));
        assert_eq!(r.sample.timestamp, 1541084157.12885);
        assert_eq!(r.sample.cpus_system_time_secs, Some(2178.139999999));
        assert_eq!(r.sample.mem_rss_bytes, Some(u64::MAX));
        assert_eq!(r.sample.mem_limit_bytes, Some(7650410496));
        assert!(r.malformed_fields.is_empty());
    }

    #[test]
    fn whole_answers_that_are_not_arrays_are_errors() {
        assert!(matches!(
            parse_answer(b"<html>"),
            Err(AnswerError::NotJson(_))
        ));
        assert!(matches!(
            parse_answer(b"[{\"a\":"),
            Err(AnswerError::NotJson(_))
        ));
        assert!(matches!(parse_answer(b""), Err(AnswerError::NotJson(_))));
        assert!(matches!(
            parse_answer(b"{\"executor_id\":\"x\"}"),
            Err(AnswerError::NotAnArray)
        ));
        assert!(matches!(parse_answer(b"42"), Err(AnswerError::NotAnArray)));
        assert_eq!(answer("[]").readings.len(), 0);
    }

    #[test]
    fn bad_entries_are_skipped_and_the_rest_kept() {
        let a = answer(
            r#"[1, "x", null, [], {}, {"executor_id": 5, "statistics": {"timestamp": 1}},
               {"executor_id": "", "statistics": {"timestamp": 1}},
               {"executor_id": "a", "statistics": 3},
               {"executor_id": "b"},
               {"executor_id": "c", "statistics": {"timestamp": "1"}},
               {"executor_id": "d", "statistics": {}},
               {"executor_id": "ok", "statistics": {"timestamp": 2.5}}]"#,
        );
        let reasons: Vec<_> = a.first_skipped.iter().map(|(_, why)| *why).collect();
        use EntryError::*;
        assert_eq!(
            reasons,
            vec![
                NotAnObject,
                NotAnObject,
                NotAnObject,
                NotAnObject,
                NoExecutorId,
                NoExecutorId,
                NoExecutorId,
                NoStatistics,
                NoStatistics,
                NoTimestamp,
            ]
        );
        assert_eq!(a.skipped, 11, "the eleventh is counted, not named");
        assert_eq!(a.readings.len(), 1);
        assert_eq!(a.readings[0].executor_id, "ok");
        assert_eq!(a.readings[0].sample.timestamp, 2.5);
    }

    #[test]
    fn past_the_first_few_skipped_entries_are_only_counted() {
        let mut text = "[0".to_string() + &",0".repeat(999);
        text.push_str(r#",{"executor_id":"ok","statistics":{"timestamp":1}}]"#);
        let a = answer(&text);
        assert_eq!(a.skipped, 1000);
        let positions: Vec<usize> = a.first_skipped.iter().map(|&(at, _)| at).collect();
        assert_eq!(positions, (0..SKIPPED_NAMED).collect::<Vec<_>>());
        assert_eq!(a.readings.len(), 1);
    }

    #[test]
    fn fields_of_the_wrong_type_are_missing_and_named() {
        let a = answer(
            r#"[{"executor_id":"x","statistics":{"timestamp":10,"cpus_limit":"1.1",
                "cpus_user_time_secs":{"a":1},"cpus_system_time_secs":[1],
                "cpus_throttled_time_secs":null,"mem_rss_bytes":-5,"mem_limit_bytes":1.5}}]"#,
        );
        let r = &a.readings[0];
        assert_eq!(
            r.sample,
            Sample {
                timestamp: 10.0,
                ..Sample::default()
            }
        );
        assert_eq!(
            r.malformed_fields,
            vec![
                "cpus_limit",
                "cpus_user_time_secs",
                "cpus_system_time_secs",
                "cpus_throttled_time_secs",
                "mem_rss_bytes",
                "mem_limit_bytes"
            ]
        );
    }

    #[test]
    fn soft_limits_stand_in_for_missing_hard_ones() {
        let sample = |statistics: &str| {
            let a = answer(&format!(
                r#"[{{"executor_id":"x","statistics":{{"timestamp":1{statistics}}}}}]"#
            ));
            (a.readings[0].sample, a.readings[0].malformed_fields.clone())
        };
        let (s, _) = sample(r#","cpus_soft_limit":1.1,"mem_soft_limit_bytes":512"#);
        assert_eq!((s.cpus_limit, s.mem_limit_bytes), (Some(1.1), Some(512)));
        let (s, _) = sample(
            r#","cpus_limit":2.1,"cpus_soft_limit":1.1,"mem_limit_bytes":1024,"mem_soft_limit_bytes":512"#,
        );
        assert_eq!((s.cpus_limit, s.mem_limit_bytes), (Some(2.1), Some(1024)));
        let (s, _) = sample(r#","mem_limit_bytes":0,"mem_soft_limit_bytes":512"#);
        assert_eq!(
            s.mem_limit_bytes,
            Some(512),
            "a hard limit of 0 is no limit"
        );
        let (s, malformed) = sample(r#","cpus_limit":"2","cpus_soft_limit":1.1"#);
        assert_eq!(s.cpus_limit, Some(1.1));
        assert_eq!(malformed, ["cpus_limit"]);
        let (s, _) = sample(r#","cpus_limit":0.05,"cpus_soft_limit":1.1"#);
        assert_eq!(
            s.cpus_limit,
            Some(0.05),
            "a hard limit present is the limit"
        );
        let (s, _) = sample("");
        assert_eq!((s.cpus_limit, s.mem_limit_bytes), (None, None));
    }

    #[test]
    fn numbers_of_every_json_form_are_read() {
        let a = answer(
            r#"[{"executor_id":"x","statistics":{"timestamp":1e9,"cpus_limit":-1,
                "cpus_user_time_secs":1E2,"mem_rss_bytes":4096.0,"mem_limit_bytes":1e300}}]"#,
        );
        let s = a.readings[0].sample;
        assert_eq!(s.timestamp, 1e9);
        assert_eq!(s.cpus_limit, Some(-1.0));
        assert_eq!(s.cpus_user_time_secs, Some(100.0));
        assert_eq!(s.mem_rss_bytes, Some(4096));
        assert_eq!(s.mem_limit_bytes, None, "1e300 bytes is past u64");
        assert_eq!(a.readings[0].malformed_fields, vec!["mem_limit_bytes"]);
    }
}

//! Parses an agent's `/monitor/statistics` answer (and readings stored in Redis) into
//! [`Reading`]s, without ever panicking or giving up on a whole agent for one bad entry.
//!
//! With raw metrics, each reading keeps the agent's entry byte for byte, so what Redis
//! stores and what raw metrics show is exactly what the agent sent (floats keep every
//! digit, integers past 2^53 stay integers); the numbers the arithmetic needs are parsed
//! beside it. Without them the entry is read in the same scan as the array and only the
//! numbers are kept.

use crate::stats::json::{Object, Scalar};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt;

/// One executor's entry of an agent's answer: its id, its exact JSON, and its numbers.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    pub(crate) executor_id: String,
    /// The whole entry as the agent sent it (valid JSON), kept for raw metrics only
    /// ([`Entries`]); empty otherwise.
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
pub(crate) struct ParsedAnswer {
    pub(crate) readings: Vec<Reading>,
    /// How many entries were skipped.
    pub(crate) skipped: usize,
    /// (position in the array, why) of the first [`SKIPPED_NAMED`] skipped entries.
    pub(crate) first_skipped: Vec<(usize, EntryError)>,
}

impl ParsedAnswer {
    fn skip(&mut self, position: usize, why: EntryError) {
        if self.first_skipped.len() < SKIPPED_NAMED {
            self.first_skipped.push((position, why));
        }
        self.skipped += 1;
    }
}

/// Whether each reading keeps its entry's text. Only raw metrics need it (and the
/// previous release's stored entries, which are text anyway); without it an entry is read
/// in the same scan as the array and never copied, which halves the cost of reading an
/// answer (docs/scale.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entries {
    Kept,
    Dropped,
}

/// Reads an agent's whole answer: a JSON array of executor entries, read entry by entry
/// from the body, so only the readings are kept.
pub(crate) fn parse_answer(body: &[u8], entries: Entries) -> Result<ParsedAnswer, AnswerError> {
    let text = std::str::from_utf8(body).ok();
    let parse = |entries: Entries| {
        let visitor = ExecutorsVisitor {
            expected_readings: body.len() / SMALL_ENTRY_BYTES,
            entries,
        };
        // A body that is UTF-8 throughout (any real one) is checked once, in one fast scan,
        // instead of string by string as each key is read (about 1.5 million keys a pass
        // at 1000 x 50); any other is read as bytes, string by string.
        match text {
            Some(text) => read_answer(serde_json::Deserializer::from_str(text), visitor),
            // Not UTF-8 throughout (a broken agent; found by fuzzing): read without the
            // raw entries, which are text: the readings are those of a pass without raw
            // metrics, rather than the whole answer refused for one byte; that agent's
            // documents then carry no `stats`.
            None => read_answer(
                serde_json::Deserializer::from_slice(body),
                ExecutorsVisitor {
                    entries: Entries::Dropped,
                    ..visitor
                },
            ),
        }
    };
    let read = match (parse(entries), entries) {
        // Reading the fields in the array's own scan refuses an entry no lexer would (a
        // number past f64's range, found by fuzzing) with the whole answer: read again
        // keeping each entry whole, which skips that entry alone, and drop the entries.
        // Only a broken answer pays for the second scan.
        (Err(_), Entries::Dropped) if text.is_some() => parse(Entries::Kept).map(|mut answer| {
            for reading in &mut answer.readings {
                reading.entry = Box::default();
            }
            answer
        }),
        (read, _) => read,
    };
    read.map_err(|err| {
        // Other JSON than an array; an array that failed is no JSON at all, whatever a
        // lenient skim says (it lets bytes that are not UTF-8 pass inside strings).
        let array = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) if !array => AnswerError::NotAnArray,
            _ => AnswerError::NotJson(err),
        }
    })
}

fn read_answer<'de, R: serde_json::de::Read<'de>>(
    mut deserializer: serde_json::Deserializer<R>,
    visitor: ExecutorsVisitor,
) -> Result<ParsedAnswer, serde_json::Error> {
    let answer = deserializer.deserialize_seq(visitor)?;
    deserializer.end()?;
    Ok(answer)
}

/// A real entry is larger than this (its statistics alone are ~400 bytes), so the readings
/// are allocated once for a real answer, never grown (growing them cost 4% of parsing a
/// 50-entry answer, measured). An answer of tiny bad entries reserves at most about two
/// thirds of the body's size, which stays untouched address space, not resident memory.
const SMALL_ENTRY_BYTES: usize = 256;

/// Reads the executors array entry by entry, keeping only readings and what was skipped.
struct ExecutorsVisitor {
    expected_readings: usize,
    entries: Entries,
}

impl<'de> Visitor<'de> for ExecutorsVisitor {
    type Value = ParsedAnswer;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of executors")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ParsedAnswer, A::Error> {
        let mut answer = ParsedAnswer {
            readings: Vec::with_capacity(self.expected_readings),
            ..ParsedAnswer::default()
        };
        let mut position = 0;
        loop {
            let read = match self.entries {
                Entries::Kept => seq.next_element::<&'de RawValue>()?.map(|entry| {
                    read_entry(entry.get()).map(|f| f.into_reading(entry.get().into()))
                }),
                Entries::Dropped => seq
                    .next_element::<Object<EntryFields>>()?
                    .map(|entry| fields_of(entry).map(|f| f.into_reading(Box::default()))),
            };
            match read {
                Some(Ok(reading)) => answer.readings.push(reading),
                Some(Err(why)) => answer.skip(position, why),
                None => return Ok(answer),
            }
            position += 1;
        }
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
    serde_json::from_str::<Object<EntryFields>>(entry)
        .map_or(Err(EntryError::NotAnObject), fields_of)
}

/// An entry's two fields this program reads, and whether it named one twice. An entry
/// is read whole in one scan, as `Object<EntryFields>`: any other JSON value is a
/// reason to skip it (`json::Object`), never an error, and nothing here fails on a value
/// of an unexpected type or a repeated key; only a broken JSON text is an error (which
/// ends the whole answer).
struct EntryFields {
    executor_id: Option<Scalar>,
    statistics: Option<Object<StatisticsFields>>,
    /// Serde's derived structs refuse a repeated field, and so the entry: kept as it was.
    repeated: bool,
}

impl<'de> Deserialize<'de> for EntryFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EntryVisitor)
    }
}

struct EntryVisitor;

/// The fields of an entry or of its statistics, by name.
#[derive(Clone, Copy)]
enum Key {
    ExecutorId,
    Statistics,
    /// A statistics field the document uses, by its index in [`SampleFields`].
    Sample(usize),
    Other,
}

/// The statistics fields the document uses, in [`SampleFields`] order.
const SAMPLE_FIELDS: [&str; 9] = [
    "timestamp",
    "cpus_limit",
    "cpus_soft_limit",
    "cpus_user_time_secs",
    "cpus_system_time_secs",
    "cpus_throttled_time_secs",
    "mem_rss_bytes",
    "mem_limit_bytes",
    "mem_soft_limit_bytes",
];

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, name: &str) -> Result<Key, E> {
        Ok(match name {
            "executor_id" => Key::ExecutorId,
            "statistics" => Key::Statistics,
            _ => SAMPLE_FIELDS
                .iter()
                .position(|&field| field == name)
                .map_or(Key::Other, Key::Sample),
        })
    }
}

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = EntryFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an executor entry")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryFields, A::Error> {
        let mut executor_id = None;
        let mut statistics = None;
        let mut repeated = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::ExecutorId if executor_id.is_none() => {
                    executor_id = Some(map.next_value::<Scalar>()?);
                }
                Key::Statistics if statistics.is_none() => {
                    statistics = Some(map.next_value::<Object<StatisticsFields>>()?);
                }
                Key::ExecutorId | Key::Statistics => {
                    repeated = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Key::Sample(_) | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(EntryFields {
            executor_id,
            statistics,
            repeated,
        })
    }
}

/// What an entry makes of a reading, or why it is skipped.
fn fields_of(entry: Object<EntryFields>) -> Result<ReadFields, EntryError> {
    let Object::Is(EntryFields {
        executor_id,
        statistics,
        repeated,
    }) = entry
    else {
        return Err(EntryError::NotAnObject);
    };
    let statistics_repeated = matches!(&statistics, Some(Object::Is(s)) if s.repeated);
    if repeated || statistics_repeated {
        return Err(EntryError::NotAnObject);
    }
    let executor_id = match executor_id {
        Some(Scalar::Text(id)) if !id.is_empty() => id,
        _ => return Err(EntryError::NoExecutorId),
    };
    let Some(Object::Is(statistics)) = statistics else {
        return Err(EntryError::NoStatistics);
    };
    let (sample, malformed_fields) = statistics.fields.into_sample()?;
    Ok(ReadFields {
        executor_id,
        sample,
        malformed_fields,
    })
}

/// An object's statistics fields the document uses, and whether it named one twice
/// (`json::Object` reads any other value as no object).
struct StatisticsFields {
    fields: SampleFields,
    repeated: bool,
}

impl<'de> Deserialize<'de> for StatisticsFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StatisticsVisitor)
    }
}

struct StatisticsVisitor;

impl<'de> Visitor<'de> for StatisticsVisitor {
    type Value = StatisticsFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a statistics object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StatisticsFields, A::Error> {
        let mut fields: [Option<Scalar>; SAMPLE_FIELDS.len()] = Default::default();
        let mut repeated = false;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Sample(i) if fields[i].is_none() => fields[i] = Some(map.next_value()?),
                Key::Sample(_) => {
                    repeated = true;
                    map.next_value::<IgnoredAny>()?;
                }
                Key::ExecutorId | Key::Statistics | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(StatisticsFields {
            fields: SampleFields::from_fields(fields),
            repeated,
        })
    }
}

/// An entry's `statistics` kept raw, for raw metrics.
#[derive(Deserialize)]
struct EntryHead<'a> {
    #[serde(borrow)]
    statistics: &'a RawValue,
}

/// The statistics fields the document uses, each as loosely typed as agents send them.
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
    /// The fields found, in [`SAMPLE_FIELDS`] order; a missing one is `Scalar::Missing`.
    fn from_fields(fields: [Option<Scalar>; SAMPLE_FIELDS.len()]) -> SampleFields {
        let [timestamp, cpus_limit, cpus_soft_limit, cpus_user_time_secs, cpus_system_time_secs, cpus_throttled_time_secs, mem_rss_bytes, mem_limit_bytes, mem_soft_limit_bytes] =
            fields.map(Option::unwrap_or_default);
        SampleFields {
            timestamp,
            cpus_limit,
            cpus_soft_limit,
            cpus_user_time_secs,
            cpus_system_time_secs,
            cpus_throttled_time_secs,
            mem_rss_bytes,
            mem_limit_bytes,
            mem_soft_limit_bytes,
        }
    }

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
pub(crate) mod tests;

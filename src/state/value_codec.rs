//! One agent entry's value in Redis and its write-ahead (docs/state.md): written, and read
//! back exactly; any bytes are read without a panic.
//!
//! The value, all integers as LEB128 varints, strings as a varint length then UTF-8:
//! `"as" 1 host task*`, a task being `executor_id stored_at(unix s) reading pending_count
//! reading*`, a reading being `flags(u8) timestamp(f64 LE) [field]*`, the fields present
//! as the flags say, in [`Field`] order.

use crate::stats::reading::{Reading, Sample};

/// Starts every value of this layout: a tag and the format's version.
const VERSION_TAG: &[u8; 3] = b"as\x01";

/// The optional fields of a stored reading, by their bit in its flags byte.
#[derive(Clone, Copy)]
enum Field {
    User = 1,
    System = 2,
    Throttled = 4,
    CpusLimit = 8,
    MemRss = 16,
    MemLimit = 32,
    Raw = 64,
}

/// One task as stored: the reading its next document starts from, when that entry was
/// last written, and the readings of its documents not yet confirmed, oldest first.
#[derive(Debug)]
pub(crate) struct StoredTask {
    pub(crate) base: Reading,
    pub(crate) stored_at: u64,
    pub(crate) pending: Vec<Reading>,
}

/// One agent's stored tasks, and the host its pending documents were built with.
#[derive(Debug, Default)]
pub(crate) struct AgentState {
    pub(crate) host: String,
    pub(crate) tasks: Vec<StoredTask>,
}

/// Writes an agent's value, one task at a time.
pub(crate) struct AgentValueEncoder {
    out: Vec<u8>,
    raw: bool,
}

impl AgentValueEncoder {
    /// A value for the agent at `host`; `raw` keeps each reading's raw entry (raw metrics).
    pub(crate) fn new(host: &str, tasks: usize, raw: bool) -> AgentValueEncoder {
        let per_task = if raw { 768 } else { 128 };
        let mut out = Vec::with_capacity(16 + host.len() + tasks * per_task);
        out.extend_from_slice(VERSION_TAG);
        push_str(&mut out, host);
        AgentValueEncoder { out, raw }
    }

    /// Adds a task: `base` keeps only what a `before` needs, unless `full` (a write-ahead,
    /// whose readings are a document's `now`); the pending readings are kept whole.
    pub(crate) fn task(
        &mut self,
        base: &Reading,
        full: bool,
        stored_at: u64,
        pending: &[&Reading],
    ) {
        push_str(&mut self.out, &base.executor_id);
        push_varint(&mut self.out, stored_at);
        self.reading(base, full);
        // At most `outbox::MAX_PENDING`, far below 256.
        self.out.push(pending.len().min(255) as u8);
        for reading in pending.iter().take(255) {
            self.reading(reading, true);
        }
    }

    fn reading(&mut self, reading: &Reading, full: bool) {
        let s = &reading.sample;
        let raw = self.raw && !reading.entry.is_empty();
        let floats = [
            (Field::User, s.cpus_user_time_secs),
            (Field::System, s.cpus_system_time_secs),
            (Field::Throttled, s.cpus_throttled_time_secs),
            (Field::CpusLimit, s.cpus_limit.filter(|_| full)),
        ];
        let integers = [
            (Field::MemRss, s.mem_rss_bytes.filter(|_| full)),
            (Field::MemLimit, s.mem_limit_bytes.filter(|_| full)),
        ];
        let mut flags = if raw { Field::Raw as u8 } else { 0 };
        for (field, value) in floats {
            flags |= value.map_or(0, |_| field as u8);
        }
        for (field, value) in integers {
            flags |= value.map_or(0, |_| field as u8);
        }
        self.out.push(flags);
        self.out.extend_from_slice(&s.timestamp.to_le_bytes());
        for value in floats.iter().filter_map(|(_, v)| *v) {
            self.out.extend_from_slice(&value.to_le_bytes());
        }
        for value in integers.iter().filter_map(|(_, v)| *v) {
            push_varint(&mut self.out, value);
        }
        if raw {
            push_str(&mut self.out, &reading.entry);
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Reads an agent's value back; None when it is not one this release wrote (or is cut
/// short or corrupt), which the caller reports and then treats as no state.
pub(crate) fn decode(bytes: &[u8]) -> Option<AgentState> {
    let mut cursor = Cursor { bytes, at: 0 };
    if cursor.take(VERSION_TAG.len())? != VERSION_TAG {
        return None;
    }
    let host = cursor.string()?;
    let mut tasks = Vec::new();
    while cursor.at < bytes.len() {
        let executor_id = cursor.string()?;
        let stored_at = cursor.varint()?;
        let base = cursor.reading(executor_id)?;
        let count = cursor.byte()?;
        let pending = (0..count)
            .map(|_| cursor.reading(base.executor_id.clone()))
            .collect::<Option<Vec<_>>>()?;
        tasks.push(StoredTask {
            base,
            stored_at,
            pending,
        });
    }
    Some(AgentState { host, tasks })
}

/// Reads a value from its start; every read is checked, so any bytes can be given.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }
    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    fn f64(&mut self) -> Option<f64> {
        let bytes: [u8; 8] = self.take(8)?.try_into().ok()?;
        Some(f64::from_le_bytes(bytes))
    }
    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
    fn reading(&mut self, executor_id: String) -> Option<Reading> {
        let flags = self.byte()?;
        let timestamp = self.f64()?;
        // Struct fields are read in the order written, which is the encoding's.
        let sample = Sample {
            timestamp,
            cpus_user_time_secs: self.optional(flags, Field::User, Cursor::f64)?,
            cpus_system_time_secs: self.optional(flags, Field::System, Cursor::f64)?,
            cpus_throttled_time_secs: self.optional(flags, Field::Throttled, Cursor::f64)?,
            cpus_limit: self.optional(flags, Field::CpusLimit, Cursor::f64)?,
            mem_rss_bytes: self.optional(flags, Field::MemRss, Cursor::varint)?,
            mem_limit_bytes: self.optional(flags, Field::MemLimit, Cursor::varint)?,
        };
        let entry = self
            .optional(flags, Field::Raw, Cursor::string)?
            .unwrap_or_default();
        Some(Reading {
            executor_id,
            entry: entry.into_boxed_str(),
            sample,
            malformed_fields: Vec::new(),
        })
    }

    /// A field the flags say is there, read with `read`; None when it is cut short.
    fn optional<T>(
        &mut self,
        flags: u8,
        field: Field,
        read: fn(&mut Self) -> Option<T>,
    ) -> Option<Option<T>> {
        if flags & field as u8 == 0 {
            return Some(None);
        }
        read(self).map(Some)
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn push_str(out: &mut Vec<u8>, text: &str) {
    push_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::reading::parse_entry;

    fn reading(statistics: &str) -> Reading {
        let entry = format!(r#"{{"executor_id":"g_a.1","statistics":{statistics}}}"#);
        parse_entry(entry.into()).expect("valid entry")
    }

    const FULL: &str = r#"{"timestamp":1541084157.12885,"cpus_limit":0.35,"cpus_user_time_secs":96348.84,"cpus_system_time_secs":2178.139999999,"cpus_throttled_time_secs":0.1,"mem_rss_bytes":18446744073709551615,"mem_limit_bytes":7650410496}"#;

    #[test]
    fn values_read_back_exactly() {
        let base = reading(FULL);
        let pending = reading(r#"{"timestamp":1541084217.5,"cpus_user_time_secs":96349}"#);
        for raw in [false, true] {
            let mut encoder = AgentValueEncoder::new("h:5051", 1, raw);
            encoder.task(&base, false, 1_764_000_000, &[&pending, &base]);
            let state = decode(&encoder.finish()).expect("decodes");
            assert_eq!(state.host, "h:5051");
            let task = &state.tasks[0];
            assert_eq!(task.stored_at, 1_764_000_000);
            assert_eq!(task.base.executor_id, "g_a.1");
            let before = Sample {
                cpus_limit: None,
                mem_rss_bytes: None,
                mem_limit_bytes: None,
                ..base.sample
            };
            assert_eq!(task.base.sample, before, "a base keeps what `before` needs");
            assert_eq!(task.pending[0].sample, pending.sample);
            assert_eq!(
                task.pending[1].sample, base.sample,
                "pending readings are whole"
            );
            let kept = if raw { &*base.entry } else { "" };
            assert_eq!(&*task.base.entry, kept);
        }
    }

    #[test]
    fn a_base_stays_small() {
        let mut encoder = AgentValueEncoder::new("h:5051", 1, false);
        encoder.task(&reading(FULL), false, 1_764_000_000, &[]);
        // Tag, host, id, stored-at, flags, timestamp, three counters, pending count.
        assert_eq!(encoder.finish().len(), 3 + 7 + 6 + 5 + 1 + 8 + 24 + 1);
    }

    #[test]
    fn anything_else_is_no_state_and_never_a_panic() {
        let mut encoder = AgentValueEncoder::new("h", 2, true);
        encoder.task(&reading(FULL), true, 7, &[&reading(FULL)]);
        let whole = encoder.finish();
        for cut in 0..whole.len() {
            // A value cut at a task's boundary is a shorter valid value; others fail.
            let _ = decode(&whole[..cut]);
        }
        assert!(decode(b"").is_none());
        assert!(decode(br#"{"executor_id":"x"}"#).is_none());
        assert!(decode(b"as\x02\x00").is_none(), "another version");
        assert!(decode(b"as\x01\x00\x01x\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01").is_none());
        let mut flipped = whole.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode(&flipped);
            flipped[i] ^= 0xff;
        }
    }
}

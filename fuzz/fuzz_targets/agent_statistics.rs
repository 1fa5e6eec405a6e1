//! An agent's `/monitor/statistics` body (`src/stats/reading.rs`), any bytes: read or
//! refused, never a panic; read with its raw entries kept or dropped, the readings are
//! the same; and each kept entry (a body that is text throughout keeps them), read again
//! alone, gives the same reading.

#![no_main]

// The collector's own files, by path: what is fuzzed is what ships.
#[allow(dead_code, unused_imports)]
#[path = "../../src/stats"]
mod stats {
    pub(crate) mod json;
    pub(crate) mod reading;
}

use libfuzzer_sys::fuzz_target;
use stats::reading::{parse_answer, parse_entry, Entries};

fuzz_target!(|bytes: &[u8]| {
    let kept = parse_answer(bytes, Entries::Kept);
    let dropped = parse_answer(bytes, Entries::Dropped);
    assert_eq!(kept.is_ok(), dropped.is_ok(), "one mode refused what the other read");
    let (Ok(kept), Ok(dropped)) = (kept, dropped) else {
        return;
    };
    assert_eq!(kept.skipped, dropped.skipped);
    assert_eq!(kept.readings.len(), dropped.readings.len());
    for (k, d) in kept.readings.iter().zip(&dropped.readings) {
        assert_eq!(k.executor_id, d.executor_id);
        assert!(k.sample.timestamp.is_finite());
        assert_eq!(k.sample, d.sample);
        // A body that is not text throughout keeps no raw entry; any other keeps each.
        if std::str::from_utf8(bytes).is_err() {
            assert!(k.entry.is_empty());
            continue;
        }
        let again = parse_entry(k.entry.clone()).expect("a kept entry reads again");
        assert_eq!(again.sample, k.sample);
        assert_eq!(again.executor_id, k.executor_id);
    }
});

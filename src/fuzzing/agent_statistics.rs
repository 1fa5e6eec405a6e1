//! `agent_statistics`: an agent's `/monitor/statistics` body (`stats/reading.rs`), any
//! bytes.

use crate::stats::appname::appname;
use crate::stats::reading::{parse_answer, parse_entry, Entries};

/// Read or refused; read with its raw entries kept or dropped, the readings are the
/// same; every timestamp is finite; every executor id gives an app name (`/` before each
/// segment, no `_`); and each kept entry (a body that is text throughout keeps them), read
/// again alone, gives the same reading.
pub fn agent_statistics(bytes: &[u8]) {
    let kept = parse_answer(bytes, Entries::Kept);
    let dropped = parse_answer(bytes, Entries::Dropped);
    assert_eq!(
        kept.is_ok(),
        dropped.is_ok(),
        "one mode refused what the other read"
    );
    let (Ok(kept), Ok(dropped)) = (kept, dropped) else {
        return;
    };
    assert_eq!(kept.skipped, dropped.skipped);
    assert_eq!(kept.readings.len(), dropped.readings.len());
    let text = std::str::from_utf8(bytes).is_ok();
    for (k, d) in kept.readings.iter().zip(&dropped.readings) {
        assert_eq!(k.executor_id, d.executor_id);
        assert!(k.sample.timestamp.is_finite());
        assert_eq!(k.sample, d.sample);
        let app = appname(&k.executor_id);
        assert!(
            app.starts_with('/') && !app.contains('_'),
            "app name {app:?}"
        );
        if !text {
            assert!(k.entry.is_empty(), "a raw entry kept from a body not text");
            continue;
        }
        let Ok(again) = parse_entry(k.entry.clone()) else {
            panic!("a kept entry does not read again");
        };
        assert_eq!(again.sample, k.sample);
        assert_eq!(again.executor_id, k.executor_id);
    }
}

//! `state_value`: an entry's value or write-ahead in Redis (`state/value_codec.rs`), any
//! bytes, as a pass reads whatever a key holds.

use crate::state::value_codec::{decode, AgentState, AgentValueEncoder};
use crate::stats::reading::Reading;

/// Read or refused; a value read is written again to bytes that read back to a value
/// written to those same bytes: the encoding is exact, to the bit of every f64.
pub fn state_value(bytes: &[u8]) {
    let Some(state) = decode(bytes) else {
        return;
    };
    let written = encode(&state);
    let Some(read_back) = decode(&written) else {
        panic!("a value written does not read back");
    };
    assert_eq!(read_back.host, state.host);
    assert_eq!(read_back.tasks.len(), state.tasks.len());
    assert_eq!(
        encode(&read_back),
        written,
        "a value does not read back exactly"
    );
}

/// The value as a pass writes it, every reading whole, raw entries kept when any is there.
fn encode(state: &AgentState) -> Vec<u8> {
    let has_raw = |r: &Reading| !r.entry.is_empty();
    let raw = state
        .tasks
        .iter()
        .any(|t| has_raw(&t.base) || t.pending.iter().any(has_raw));
    let mut encoder = AgentValueEncoder::new(&state.host, state.tasks.len(), raw);
    for task in &state.tasks {
        let pending: Vec<&Reading> = task.pending.iter().collect();
        encoder.task(&task.base, true, task.stored_at, &pending);
    }
    encoder.finish()
}

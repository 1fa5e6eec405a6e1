//! An agent's `/monitor/statistics` body (`src/stats/reading.rs`). What must hold
//! is checked in `src/fuzzing/agent_statistics.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::agent_statistics(bytes));

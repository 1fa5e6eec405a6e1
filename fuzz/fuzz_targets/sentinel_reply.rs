//! A Redis Sentinel's or a named node's reply (`src/state/sentinel_reply.rs`). What must hold
//! is checked in `src/fuzzing/sentinel_reply.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::sentinel_reply(bytes));

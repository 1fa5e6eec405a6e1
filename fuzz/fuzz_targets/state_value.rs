//! An entry's value or write-ahead in Redis (`src/state/value_codec.rs`). What must hold
//! is checked in `src/fuzzing/state_value.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::state_value(bytes));

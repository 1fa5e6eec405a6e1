//! An agent's answer over plain HTTP (`src/mesos/plain.rs`). What must hold
//! is checked in `src/fuzzing/agent_http_answer.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::agent_http_answer(bytes));

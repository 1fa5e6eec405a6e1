//! A master's agent list, read as a stream (`src/mesos/agents.rs`). What must hold
//! is checked in `src/fuzzing/master_agent_list.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::master_agent_list(bytes));

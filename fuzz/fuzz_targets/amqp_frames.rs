//! What a broker sends a publisher (`src/broker/amqp/`). What must hold
//! is checked in `src/fuzzing/amqp_frames.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::amqp_frames(bytes));

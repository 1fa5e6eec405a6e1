//! The subject of the broker's certificate, as `check` shows it
//! (`src/broker/amqp/transport.rs`). What must hold is checked in
//! `src/broker/amqp/wire_fuzzing.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::broker_certificate(bytes));

//! The settings' URLs and host lists (`src/config/`). What must hold
//! is checked in `src/fuzzing/settings_addresses.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| asgard_stats::fuzzing::settings_addresses(bytes));

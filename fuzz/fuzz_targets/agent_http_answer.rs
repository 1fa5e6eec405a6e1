//! An agent's answer over plain HTTP (`src/mesos/plain.rs`), any bytes as the socket
//! gives them: read or refused with a reason, never a panic, and a body never larger than
//! the limit it was read under.

#![no_main]

// The collector's own files, by path: what is fuzzed is what ships.
#[allow(dead_code, unused_imports)]
#[path = "../../src/mesos"]
mod mesos {
    pub(crate) mod fetch_error;
    pub(crate) mod plain;
}

use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer meets it often, as `--max-body-bytes` bounds a real pass.
const LIMIT: u64 = 4096;

fuzz_target!(|bytes: &[u8]| {
    if let Ok((status, body)) = mesos::plain::read_answer(bytes, LIMIT) {
        assert!(body.len() as u64 <= LIMIT, "a body past its limit");
        assert!((100..600).contains(&status), "status {status}");
    }
});

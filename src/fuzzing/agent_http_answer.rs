//! `agent_http_answer`: an agent's answer over plain HTTP (`mesos/plain.rs`), any bytes,
//! given at once and again a few bytes per read, as a slow or hostile agent sends them.

use crate::mesos::read_answer;
use std::io::Read;

/// Small enough that the fuzzer meets it often, as `--max-body-bytes` bounds a pass.
const LIMIT: u64 = 4096;

/// Read or refused with a reason; a status in 100-599; a body within its limit; and the
/// same outcome however the bytes are cut into reads.
pub fn agent_http_answer(bytes: &[u8]) {
    let whole = read_answer(bytes, LIMIT);
    match &whole {
        Ok((status, body)) => {
            assert!(body.len() as u64 <= LIMIT, "a body past its limit");
            assert!((100..600).contains(status), "status {status}");
        }
        Err(e) => assert!(!e.to_string().is_empty(), "a refusal without a reason"),
    }
    let step = bytes.len() % 7 + 1;
    let trickled = read_answer(Trickle { rest: bytes, step }, LIMIT);
    assert_eq!(
        whole.ok(),
        trickled.ok(),
        "what is read depends on how the bytes arrive"
    );
}

/// Gives its bytes `step` at a time, one read each.
struct Trickle<'a> {
    rest: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

//! The process-wide settings a pass needs, each made once by `main` before the pass and
//! nowhere else: glibc's mmap threshold, the SIGTERM/SIGINT handlers, and the open-files
//! soft limit raised to the hard one. The only module that names libc or rustix.
//!
//! The memory budget (`mesos/budget.rs`) bounds what is held, and
//! `give_large_buffers_back` makes the process's resident memory follow it: left to
//! itself, glibc serves a large buffer freed once from its heap from then on and keeps it
//! there, in each thread's arena, so a pass over large answers grew to several times the
//! budget.

use crate::pass::stop::{Stop, StopReason};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::Arc;

/// Buffers from this size on are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LARGE_BUFFER: libc::c_int = 1024 * 1024;

/// Makes glibc return large buffers (agent bodies past a MiB) to the system when freed,
/// instead of raising its mapping threshold to the largest freed so far and keeping
/// such buffers in the heap of whichever arena served them. Answers of a healthy
/// cluster are far smaller and keep being served from the heap.
#[allow(
    unsafe_code,
    reason = "mallopt is glibc's only way to fix the threshold; see SAFETY below"
)]
pub(crate) fn give_large_buffers_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of glibc's allocator, under its own locks; a
    // fixed value is always valid for M_MMAP_THRESHOLD (at most 32 MiB on 64-bit).
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BUFFER) } != 1 {
        log::debug!("glibc refused a fixed mmap threshold; freed large answers may stay resident");
    }
}

/// Handles SIGTERM and SIGINT from now on: the first one requests the returned `Stop`, a
/// second one exits at once (after the last words, if they come quickly).
pub(crate) fn on_signals() -> std::io::Result<Arc<Stop>> {
    let stop = Arc::new(Stop::default());
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let requested = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut first = true;
            for signal in signals.forever() {
                let reason = StopReason::Signal(signal);
                if !first {
                    requested.exit(128 + signal);
                }
                first = false;
                // After a halted broker the signal becomes the reason; either way this
                // is the first signal.
                requested.request(reason);
                log::warn!(signal = reason.to_string().as_str(); "{reason}: starting no further agent; the agents in flight get a short grace, then the pass ends as usual (a second signal ends it at once)");
            }
        })?;
    Ok(stop)
}

/// Raises the soft limit to the hard one when it is lower; returns the soft limit now in
/// force (None: unlimited).
pub(crate) fn raise_to_hard_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return limit.maximum,
            Err(e) => log::debug!("cannot raise the open-files limit to the hard limit: {e}"),
        }
    }
    limit.current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = raise_to_hard_limit();
        assert_eq!(now, getrlimit(Resource::Nofile).maximum);
    }
}

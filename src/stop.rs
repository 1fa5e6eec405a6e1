//! Why a pass stops starting agents before its list is done, and the signals that ask for
//! it. `Stop` holds the first reason given (later ones are ignored); the pool checks it
//! between agents (`pool.rs`), lets the agents in flight settle for a short grace, and
//! the pass then stores, releases its lock and logs its summary as usual.
//!
//! SIGTERM (cron's timeout, systemd) and SIGINT (Ctrl-C) are such a reason: the first one
//! only requests the stop; a second one ends the process at once, from the signal handler
//! itself, with 128 + the signal's number (its lock then expires by itself at the
//! deadline). Any other part of a pass may give a reason of its own the same way.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// Why the pass stopped starting agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// SIGTERM or SIGINT, by number.
    Signal(i32),
    /// The broker blocked publishers past `--blocked-timeout` or gave the connection up
    /// (`Publisher::halted`): no document of a further agent could be delivered.
    BrokerHalted,
}

impl StopReason {
    /// The exit code this reason imposes, if any: 128 + the number for a signal, as a
    /// shell reports a process the signal ended (143 for SIGTERM, 130 for SIGINT).
    pub(crate) fn exit_code(self) -> Option<i32> {
        match self {
            StopReason::Signal(number) => Some(128 + number),
            // The counts say how it went: 3 or 69.
            StopReason::BrokerHalted => None,
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            StopReason::Signal(SIGTERM) => f.write_str("SIGTERM"),
            StopReason::Signal(SIGINT) => f.write_str("SIGINT"),
            StopReason::Signal(number) => write!(f, "signal {number}"),
            StopReason::BrokerHalted => f.write_str("broker halted"),
        }
    }
}

/// A request to stop starting agents, set at most once.
#[derive(Debug, Default)]
pub(crate) struct Stop(OnceLock<StopReason>);

impl Stop {
    /// Requests the stop; true if this was the first request.
    pub(crate) fn request(&self, reason: StopReason) -> bool {
        self.0.set(reason).is_ok()
    }

    /// The first reason given, once a stop was requested.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.0.get().copied()
    }
}

/// Handles SIGTERM and SIGINT from now on: the first one requests the returned `Stop`, a
/// second one exits at once.
pub(crate) fn on_signals() -> std::io::Result<Arc<Stop>> {
    let stop = Arc::new(Stop::default());
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        // Registered before the flag is set by the same signal, so only a second signal
        // finds it set.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            128 + signal,
            Arc::clone(&signalled),
        )?;
        signal_hook::flag::register(signal, Arc::clone(&signalled))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let requested = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let reason = StopReason::Signal(signal);
                if requested.request(reason) {
                    log::warn!(signal = reason.to_string().as_str(); "{reason}: starting no further agent; the agents in flight get a short grace, then the pass stores, unlocks and ends (a second signal ends it at once)");
                }
            }
        })?;
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let stop = Stop::default();
        assert_eq!(stop.reason(), None);
        assert!(stop.request(StopReason::Signal(SIGTERM)));
        assert!(!stop.request(StopReason::Signal(SIGINT)));
        assert_eq!(stop.reason(), Some(StopReason::Signal(SIGTERM)));
    }

    #[test]
    fn signals_exit_as_a_shell_reports_them() {
        assert_eq!(StopReason::Signal(SIGTERM).exit_code(), Some(143));
        assert_eq!(StopReason::Signal(SIGINT).exit_code(), Some(130));
        assert_eq!(StopReason::Signal(SIGTERM).to_string(), "SIGTERM");
        assert_eq!(StopReason::Signal(SIGINT).to_string(), "SIGINT");
    }
}

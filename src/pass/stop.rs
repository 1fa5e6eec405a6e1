//! Why a pass stops starting agents before its list is done, and the signals that ask for
//! it. `Stop` holds the first reason given (later ones are ignored); the pool checks it
//! between agents (`pool.rs`), lets the agents in flight settle for a short grace, and
//! the pass then stores, releases its lock and logs its summary as usual.
//!
//! SIGTERM (cron's timeout, systemd) and SIGINT (Ctrl-C) are such a reason: the first one
//! only requests the stop; a second one ends the process at once with 128 + the signal's
//! number, after giving its last words (the pass lock's release) a moment at most, so the
//! next pass is not kept waiting for the lock to expire. Any other part of a pass may give
//! a reason of its own the same way.

use signal_hook::consts::{SIGINT, SIGTERM};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long a second signal waits for the last words before the process exits.
const LAST_WORDS: Duration = Duration::from_millis(300);

/// What to do, if there is time, before a second signal ends the process.
type LastWords = Box<dyn Fn() + Send + Sync>;

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

/// A request to stop starting agents, and what a second signal does before the process
/// exits.
#[derive(Default)]
pub(crate) struct Stop {
    reason: Mutex<Option<StopReason>>,
    last_words: OnceLock<LastWords>,
}

impl Stop {
    /// Requests the stop; true if this was the first request. The first reason stays,
    /// except that a signal replaces a halted broker: the operator's signal decides the
    /// exit code (143, 130) however the rest went.
    pub(crate) fn request(&self, reason: StopReason) -> bool {
        let mut current = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        let first = current.is_none();
        if first || (*current == Some(StopReason::BrokerHalted) && reason.exit_code().is_some()) {
            *current = Some(reason);
        }
        first
    }

    /// The reason given, once a stop was requested.
    pub(crate) fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets what a second signal does, given a moment, before the process exits.
    pub(crate) fn before_exit(&self, last_words: impl Fn() + Send + Sync + 'static) {
        let _ = self.last_words.set(Box::new(last_words));
    }

    /// Gives the last words up to `LAST_WORDS` (a thread of their own, so a hung Redis
    /// cannot hold the exit), then ends the process with `code`.
    pub(crate) fn exit(self: &Arc<Self>, code: i32) -> ! {
        let (done, finished) = std::sync::mpsc::channel();
        let stop = Arc::clone(self);
        let spoken = std::thread::Builder::new().spawn(move || {
            if let Some(last_words) = stop.last_words.get() {
                last_words();
            }
            let _ = done.send(());
        });
        if spoken.is_ok() {
            let _ = finished.recv_timeout(LAST_WORDS);
        }
        std::process::exit(code)
    }
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
    fn a_signal_after_a_halted_broker_names_the_signal() {
        let stop = Stop::default();
        assert!(stop.request(StopReason::BrokerHalted));
        assert!(!stop.request(StopReason::Signal(SIGTERM)));
        assert_eq!(stop.reason(), Some(StopReason::Signal(SIGTERM)));
        assert!(!stop.request(StopReason::BrokerHalted));
        assert_eq!(stop.reason(), Some(StopReason::Signal(SIGTERM)));
    }

    #[test]
    fn last_words_are_kept_once() {
        let stop = Stop::default();
        let said = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&said);
        stop.before_exit(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        stop.before_exit(|| panic!("only the first last words are kept"));
        if let Some(last_words) = stop.last_words.get() {
            last_words();
        }
        assert_eq!(said.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn signals_exit_as_a_shell_reports_them() {
        assert_eq!(StopReason::Signal(SIGTERM).exit_code(), Some(143));
        assert_eq!(StopReason::Signal(SIGINT).exit_code(), Some(130));
        assert_eq!(StopReason::Signal(SIGTERM).to_string(), "SIGTERM");
        assert_eq!(StopReason::Signal(SIGINT).to_string(), "SIGINT");
    }
}

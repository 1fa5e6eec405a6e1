//! One collection pass, start to end (docs/pass.md): broker, lock, masters, then the
//! worker pool (`workers`), whose threads each take one agent at a time (`agent`) through
//! fetch → load previous readings → compute → publish → store, and finally the summary.
//!
//! A worker holds only its current agent's readings, so memory stays flat however large
//! the cluster. The main thread never joins a worker that may hang: it supervises the
//! pool up to the pass deadline and then returns, so a hung agent, Redis or broker cannot
//! hold the process. SIGTERM or SIGINT, or a broker that halted publishing (`stop`), ends
//! the pass early the same way: no further agent is started, those in flight get a short
//! grace, and the pass still stores, releases its lock and logs its summary.

pub(crate) mod agent;
pub(crate) mod dry_run;
pub(crate) mod error;
pub(crate) mod open_files;
pub(crate) mod outbox;
pub(crate) mod reason;
mod run;
pub(crate) mod shared;
pub(crate) mod stop;
pub(crate) mod tally;
mod turns;
pub(crate) mod workers;

pub(crate) use run::{run, Mode, Process};

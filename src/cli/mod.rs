//! The command line: clap definitions only. Every setting is a flag and an environment
//! variable (flags win), with the Python collector's variable names; [`crate::config`]
//! turns what is parsed here into the validated `Config` the rest of the program reads.
//!
//! One file per role: `args` (the program, its subcommands and their flags), `settings`
//! (the shared settings), `parse` (parsing, where values came from), `errors` (a
//! setting's error in one line), `logging`, `man` (the man page), `unknown_env` (setting
//! variables no setting reads).

mod args;
pub(crate) mod errors;
pub(crate) mod logging;
pub(crate) mod man;
mod parse;
mod settings;
pub(crate) mod unknown_env;

pub(crate) use args::{every_argument, Cli, CollectArgs, Command};
#[cfg(any(test, fuzzing))]
pub(crate) use parse::parse_from;
pub(crate) use parse::{parse_keeping_matches, settings_despite_errors};
pub(crate) use settings::{LogFormat, Settings};

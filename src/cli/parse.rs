//! Parsing the command line: the settings and clap's matches (where each value came from),
//! which secrets came as flags, and what can still be read of a command line clap refused.

use super::args::Cli;
use super::settings::Settings;

/// The settings holding secrets: their flag (without `--`) and clap's id.
const SECRET_FLAGS: &[(&str, &str)] = &[
    ("mesos-secret", "mesos_secret"),
    ("rabbitmq-password", "rabbitmq_password"),
    ("redis-url", "redis_url"),
    ("pushgateway", "pushgateway"),
];

/// Parses these arguments, noting which secrets were given as flags; clap's matches are
/// kept beside the settings: they tell where each value came from (a flag or its
/// variable), which a setting's error names (`errors::setting_name`).
pub(crate) fn parse_keeping_matches<I, T>(args: I) -> Result<(Cli, clap::ArgMatches), clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = <Cli as clap::CommandFactory>::command().try_get_matches_from(args)?;
    let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)?;
    cli.settings.secret_flags = SECRET_FLAGS
        .iter()
        .filter(|(_, id)| on_command_line(&matches, id))
        .map(|(flag, _)| *flag)
        .collect();
    Ok((cli, matches))
}

/// The settings of a command line clap refused, as far as they parse: each value clap
/// could not read (from a flag or its variable) is dropped and clap asked again, so the
/// settings that did parse (the metrics file, say) can still be used, the dropped ones at
/// their defaults. None when the refusal names no setting (an unknown subcommand, say).
pub(crate) fn settings_despite_errors(args: &[std::ffi::OsString]) -> Option<Settings> {
    use clap::error::{ContextKind, ContextValue};
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut args = args.to_vec();
    // Each round drops one setting, and there are fewer than this many.
    for _ in 0..64 {
        let error = match command.clone().try_get_matches_from(&args) {
            Ok(matches) => {
                return <Settings as clap::FromArgMatches>::from_arg_matches(&matches).ok()
            }
            Err(error) => error,
        };
        let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
            return None;
        };
        let long = arg
            .split_whitespace()
            .next()?
            .strip_prefix("--")?
            .to_string();
        let id = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))?
            .get_id()
            .clone();
        args = without_flag(&args, &long);
        command = command.mut_arg(id, |a| a.env(None));
    }
    None
}

/// `args` without the flag `--long` and its value (`--long VALUE` or `--long=VALUE`).
fn without_flag(args: &[std::ffi::OsString], long: &str) -> Vec<std::ffi::OsString> {
    let flag = format!("--{long}");
    let mut kept = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for arg in args {
        let text = arg.to_string_lossy();
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if text == flag {
            skip_value = true;
        } else if !text.starts_with(&format!("{flag}=")) {
            kept.push(arg.clone());
        }
    }
    kept
}

/// [`parse_keeping_matches`] without the matches.
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    parse_keeping_matches(args).map(|(cli, _)| cli)
}

/// Whether this argument came from the command line, before or after the subcommand
/// (a global argument given after it is recorded in the subcommand's matches).
fn on_command_line(matches: &clap::ArgMatches, id: &str) -> bool {
    let here = matches!(
        matches.try_get_raw(id),
        Ok(Some(_)) if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
    );
    here || matches
        .subcommand()
        .is_some_and(|(_, sub)| on_command_line(sub, id))
}

#[cfg(test)]
mod settings_despite_errors_tests {
    use super::*;

    fn settings(args: &[&str]) -> Option<Settings> {
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        settings_despite_errors(&args)
    }

    #[test]
    fn the_settings_that_parse_survive_those_that_do_not() {
        let kept = settings(&[
            "asgard-stats",
            "--deadline",
            "abc",
            "--workers=x",
            "--metrics-file",
            "/tmp/m.prom",
            "collect",
        ])
        .expect("settings");
        assert_eq!(kept.metrics_file, Some("/tmp/m.prom".into()));
        assert_eq!((kept.deadline, kept.workers), (50.0, 32), "defaults");
        assert!(settings(&["asgard-stats", "colect"]).is_none());
    }
}

//! Setting errors told the operator in one line, the way every other line is logged, and
//! naming the setting as the operator wrote it: its environment variable when the value
//! came from one, its flag when it came from the command line. clap fails a value it
//! cannot parse before logging is set up and before there are parsed settings, so the
//! log format is read here straight off the arguments and the environment, and the
//! source of a value straight off the arguments.

use crate::cli::{every_argument, Cli, LogFormat};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use std::ffi::OsString;

/// The `--log-format` to log a parse error in: the flag's value if the arguments hold a
/// valid one, else `STATS_COLLECTOR_LOG_FORMAT`'s, else text (what clap would choose).
pub(crate) fn log_format_before_parsing(
    args: &[OsString],
    env: impl Fn(&str) -> Option<String>,
) -> LogFormat {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let from_args =
        args.iter()
            .enumerate()
            .find_map(|(i, arg)| match arg.strip_prefix("--log-format") {
                Some("") => args.get(i + 1).cloned(),
                Some(value) => value.strip_prefix('=').map(str::to_string),
                None => None,
            });
    let chosen = from_args.or_else(|| env("STATS_COLLECTOR_LOG_FORMAT"));
    match chosen.as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// A parse error in one line (clap's usage and tips left to `--help`): what was wrong,
/// with the setting named as the operator gave it.
pub(crate) fn describe_parse_error(error: &clap::Error, args: &[OsString]) -> String {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand
    ) {
        return "a subcommand is needed: collect (one pass) or check (can a pass run?); see --help"
            .to_string();
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let mut first = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // clap's suggestions for a mistyped subcommand or flag ("tip: a similar subcommand
    // exists: 'collect'"), kept in the one line.
    for tip in rendered
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tip: "))
    {
        first.push_str("; ");
        first.push_str(tip);
    }
    let (Some(ContextValue::String(arg)), Some(ContextValue::String(value))) = (
        error.get(ContextKind::InvalidArg),
        error.get(ContextKind::InvalidValue),
    ) else {
        return first;
    };
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return first;
    }
    // `--connect-timeout <SECS>`: the flag is the first word.
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    // clap reads a variable even when the flag is given too: the value tells which it was.
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let given_as_flag = args.iter().enumerate().any(|(i, a)| {
        *a == format!("{flag}={value}")
            || (a == flag && args.get(i + 1).is_some_and(|next| next == value))
    });
    let name = match (given_as_flag, env_of(flag)) {
        (false, Some(variable)) => format!("{variable} (--{})", flag.trim_start_matches('-')),
        _ => flag.to_string(),
    };
    // What clap adds after the value's name: the parser's reason, or the valid values.
    let why = first
        .split_once(&format!("'{arg}'"))
        .map(|(_, why)| why.trim_start_matches(':').trim())
        .filter(|why| !why.is_empty());
    let mut line = format!("invalid value {value:?} for {name}");
    if let Some(why) = why {
        line.push_str(": ");
        line.push_str(why);
    }
    for hint in rendered.lines().skip(1).map(str::trim) {
        if let Some(values) = hint.strip_prefix("[possible values: ") {
            line.push_str(&format!(" (possible values: {}", values));
            line = line.trim_end_matches(']').to_string() + ")";
        }
    }
    line
}

/// The environment variable of the setting whose flag is `flag` (`--deadline`), on the
/// top command or a subcommand.
fn env_of(flag: &str) -> Option<String> {
    let long = flag.strip_prefix("--")?;
    let command = Cli::command();
    let mut args = every_argument(&command);
    args.find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned())
}

/// How an error about the setting `flag` names it: `VARIABLE (--flag)` when its value came
/// from its environment variable, else the flag.
pub(crate) fn setting_name(matches: &ArgMatches, flag: &str) -> String {
    let long = flag.trim_start_matches('-');
    let command = Cli::command();
    let id = every_argument(&command)
        .find(|a| a.get_long() == Some(long))
        .map(|a| a.get_id().as_str().to_string());
    let Some(id) = id else {
        return flag.to_string();
    };
    let from_env = std::iter::once(matches)
        .chain(matches.subcommand().map(|(_, m)| m))
        .filter(|m| m.ids().any(|i| i.as_str() == id))
        .any(|m| m.value_source(&id) == Some(ValueSource::EnvVariable));
    match (from_env, env_of(flag)) {
        (true, Some(variable)) => format!("{variable} (--{long})"),
        _ => flag.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_log_format_is_read_before_parsing() {
        let none = |_: &str| None;
        let json = |_: &str| Some("json".to_string());
        assert_eq!(
            log_format_before_parsing(&args(&["x", "--log-format", "json"]), none),
            LogFormat::Json
        );
        assert_eq!(
            log_format_before_parsing(&args(&["x", "--log-format=json"]), none),
            LogFormat::Json
        );
        assert_eq!(
            log_format_before_parsing(&args(&["x", "--log-format=text"]), json),
            LogFormat::Text,
            "the flag wins"
        );
        assert_eq!(
            log_format_before_parsing(&args(&["x"]), json),
            LogFormat::Json
        );
        assert_eq!(
            log_format_before_parsing(&args(&["x"]), none),
            LogFormat::Text
        );
    }

    #[test]
    fn a_bad_number_names_its_flag_or_its_variable() {
        let given = args(&["asgard-stats", "--deadline", "soon", "collect"]);
        let error = Cli::command()
            .try_get_matches_from(&given)
            .expect_err("not a number");
        let line = describe_parse_error(&error, &given);
        assert!(
            line.starts_with("invalid value \"soon\" for --deadline: "),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
}

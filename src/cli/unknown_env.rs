//! Settings given under a name the program does not know: a `STATS_COLLECTOR_*` or
//! `HOLLOWMAN_*` variable that no setting reads (`STATS_COLLECTOR_RABBITMQ_PASSWORD` for
//! `_PWD`, `STATS_COLLECTOR_WORKER` for `_WORKERS`) would otherwise be ignored in silence,
//! and the pass fall back to a default. Each is named with the nearest known name, never
//! with its value (it may be a secret).

use crate::cli::{every_argument, Cli};
use clap::CommandFactory;

/// The prefixes of the variables this program reads; a variable with one of them that
/// no setting reads is a mistake.
const OURS: [&str; 2] = ["STATS_COLLECTOR_", "HOLLOWMAN_"];

/// The masters' indexed variables, `HOLLOWMAN_MESOS_ADDRESS_<n>`, read up to the first
/// missing index (docs/configuration.md).
const INDEXED_MASTER: &str = "HOLLOWMAN_MESOS_ADDRESS_";

/// One warning line per variable of `names` that looks like one of ours and is not,
/// with the nearest name that is.
pub(crate) fn unknown_variable_warnings(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let known = known_variables();
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| OURS.iter().any(|prefix| name.starts_with(prefix)))
        .filter(|name| !known.contains(name) && !is_indexed_master(name))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| {
            let nearest = known
                .iter()
                .min_by_key(|candidate| strsim::levenshtein(&name, candidate))
                .map(|n| format!("; did you mean {n}?"))
                .unwrap_or_default();
            format!("the environment variable {name} is not a setting of asgard-stats and is ignored{nearest}")
        })
        .collect()
}

/// Every variable a setting reads: the `env` of each flag, the top command's and each
/// subcommand's, and the first master's.
fn known_variables() -> Vec<String> {
    let command = Cli::command();
    let mut known: Vec<String> = every_argument(&command)
        .filter_map(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .collect();
    known.push("HOLLOWMAN_MESOS_ADDRESS".to_string());
    known.sort();
    known.dedup();
    known
}

fn is_indexed_master(name: &str) -> bool {
    name.strip_prefix(INDEXED_MASTER)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(names: &[&str]) -> Vec<String> {
        unknown_variable_warnings(names.iter().map(|n| n.to_string()))
    }

    #[test]
    fn unknown_variables_of_ours_are_named_with_the_nearest_known_one() {
        let found = warnings(&[
            "STATS_COLLECTOR_RABBITMQ_PASSWORD",
            "STATS_COLLECTOR_WORKER",
            "HOLLOWMAN_MESOS_ADRESS",
            "STATS_COLLECTOR_WORKERS",
            "STATS_COLLECTOR_RABBITMQ_PWD_FILE",
            "HOLLOWMAN_MESOS_ADDRESS",
            "HOLLOWMAN_MESOS_ADDRESS_12",
            "PATH",
            "STATSD_HOST",
        ]);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].contains("HOLLOWMAN_MESOS_ADRESS ")
                && found[0].ends_with("did you mean HOLLOWMAN_MESOS_ADDRESS?"),
            "{found:?}"
        );
        assert!(
            found[1].ends_with("did you mean STATS_COLLECTOR_RABBITMQ_PWD?"),
            "{found:?}"
        );
        assert!(
            found[2].ends_with("did you mean STATS_COLLECTOR_WORKERS?"),
            "{found:?}"
        );
        assert!(warnings(&["HOLLOWMAN_MESOS_ADDRESS_x"]).len() == 1);
    }
}

//! The one list of exit codes: each code's number, its short name and its meaning. It
//! feeds the text `--help` ends with, the man page's EXIT STATUS, and the help line of
//! the `exit_code` metric, and a test holds README's table to it, so the contract
//! (docs/exit-codes.md) is written down once in the code.

pub(crate) const OK: i32 = 0;
pub(crate) const OTHER: i32 = 1;
pub(crate) const USAGE: i32 = 2;
pub(crate) const PARTIAL: i32 = 3;
pub(crate) const UNAVAILABLE: i32 = 69;
pub(crate) const LOCKED: i32 = 75;
/// 128 + SIGINT, as a shell reports a process SIGINT ended.
pub(crate) const SIGINT: i32 = 130;
/// 128 + SIGTERM, as a shell reports a process SIGTERM ended.
pub(crate) const SIGTERM: i32 = 143;

/// The level a pass that ends with `code` logs its summary (and why it ended early) at,
/// by what an operator does about it: nothing for 0 and 75 (another pass holds the lock,
/// a normal state that only matters when it lasts, which the metrics tell), a look for 3
/// and a pass stopped by a signal, action for the rest.
pub(crate) fn log_level(code: i32) -> log::Level {
    match code {
        OK | LOCKED => log::Level::Info,
        PARTIAL | SIGINT | SIGTERM => log::Level::Warn,
        _ => log::Level::Error,
    }
}

/// One exit code of the contract.
pub(crate) struct ExitCode {
    pub(crate) code: i32,
    /// A few words, for a one-line list (the metric's help).
    pub(crate) name: &'static str,
    /// What it tells the operator, for `--help` and the man page.
    pub(crate) meaning: &'static str,
}

/// Every exit code, by number.
pub(crate) const ALL: &[ExitCode] = &[
    ExitCode {
        code: OK,
        name: "ok",
        meaning: "every agent answered and every document was confirmed",
    },
    ExitCode {
        code: OTHER,
        name: "other",
        meaning: "any other error",
    },
    ExitCode {
        code: USAGE,
        name: "configuration",
        meaning: "bad command line or configuration",
    },
    ExitCode {
        code: PARTIAL,
        name: "partial",
        meaning: "partial: some agents or documents failed; the rest was delivered",
    },
    ExitCode {
        code: UNAVAILABLE,
        name: "nothing could be done",
        meaning: "nothing could be done: no master, Redis or broker reachable",
    },
    ExitCode {
        code: LOCKED,
        name: "lock held",
        meaning: "another pass holds the lock",
    },
    ExitCode {
        code: SIGINT,
        name: "stopped by SIGINT",
        meaning: "stopped by SIGINT; the next pass catches up",
    },
    ExitCode {
        code: SIGTERM,
        name: "stopped by SIGTERM",
        meaning: "stopped by SIGTERM; the next pass catches up",
    },
];

/// The text `--help` ends with: a heading, then one line per code.
pub(crate) fn help_text() -> String {
    let mut text = String::from("Exit codes:");
    for exit in ALL {
        text.push_str(&format!("\n  {:<3} {}", exit.code, exit.meaning));
    }
    text
}

/// Every code with its short name on one line: `0 ok, 1 other, ...`.
pub(crate) fn one_line() -> String {
    let codes: Vec<String> = ALL
        .iter()
        .map(|e| format!("{} {}", e.code, e.name))
        .collect();
    codes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README's "Exit codes" table says what this list says, code by code. A README
    /// meaning may add a pointer in parentheses (`(see "Signals")`).
    #[test]
    fn the_readme_table_and_the_list_agree() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("\n## Exit codes\n")
            .nth(1)
            .expect("README has an Exit codes section");
        let rows: Vec<(i32, String)> = section
            .lines()
            .skip_while(|line| !line.starts_with('|'))
            .take_while(|line| line.starts_with('|'))
            .skip(2)
            .map(|line| {
                let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
                let code = cells[0].parse().expect("a code");
                let meaning = cells[1].split(" (see ").next().unwrap_or_default();
                (code, meaning.to_string())
            })
            .collect();
        let listed: Vec<(i32, String)> = ALL
            .iter()
            .map(|e| (e.code, e.meaning.to_string()))
            .collect();
        assert_eq!(rows, listed);
    }

    #[test]
    fn the_help_text_is_one_line_per_code() {
        let text = help_text();
        assert!(text.starts_with("Exit codes:\n  0   every agent"), "{text}");
        assert!(text.contains("\n  69  nothing could be done"), "{text}");
        assert!(text.ends_with("\n  143 stopped by SIGTERM; the next pass catches up"));
        assert_eq!(text.lines().count(), ALL.len() + 1);
    }
}

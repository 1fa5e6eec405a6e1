//! The man page, `man/asgard-stats.1`, printed by the hidden `asgard-stats man` and built
//! from the clap definitions in [`crate::cli`], so it cannot drift from `--help` (a test
//! compares the checked-in file with this output). clap_mangen renders one command's
//! options at a time, so the page is put together here: the shared settings, each
//! subcommand with its own options, every environment variable (including the indexed
//! `HOLLOWMAN_MESOS_ADDRESS_<n>` that clap cannot express) and [`crate::exit`].

use crate::cli::Cli;
use crate::exit;
use clap::{Arg, Command, CommandFactory};
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;
use std::io::Write;

/// Writes the whole page (roff) to `out`.
pub(crate) fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let mut cli = Cli::command();
    // Taken before `build` copies the global settings into every subcommand, so that each
    // keeps only the options of its own.
    let subcommands: Vec<Command> = cli
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    cli.build();
    let man = Man::new(cli.clone());

    let mut page = Vec::new();
    page.extend_from_slice(
        b".\\\" Generated from src/cli/mod.rs by `asgard-stats man`; do not edit: run\n\
          .\\\" `cargo run -q -- man > man/asgard-stats.1` after changing the command line.\n",
    );
    man.render_title(&mut page)?;
    let mut part = |render: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut buf = Vec::new();
        render(&mut buf)?;
        page.extend_from_slice(without_preamble(&buf));
        Ok::<(), std::io::Error>(())
    };
    part(&|w| man.render_name_section(w))?;
    part(&|w| write_roff(w, &synopsis(&cli, &subcommands)))?;
    part(&|w| write_roff(w, &description()))?;
    part(&|w| write_roff(w, &commands(&subcommands)))?;
    part(&|w| man.render_options_section(w))?;
    for sub in &subcommands {
        if own_options(sub).next().is_some() {
            part(&|w| subcommand_options(sub, w))?;
        }
    }
    part(&|w| write_roff(w, &environment(&cli, &subcommands)))?;
    part(&|w| write_roff(w, &exit_status()))?;
    part(&|w| write_roff(w, &examples()))?;
    part(&|w| write_roff(w, &see_also()))?;
    out.write_all(&page)
}

/// Every rendered part starts with the same preamble (the apostrophe string); the title
/// keeps it and the other parts drop it.
fn without_preamble(rendered: &[u8]) -> &[u8] {
    let preamble = Roff::new().render();
    rendered
        .strip_prefix(preamble.as_bytes())
        .unwrap_or(rendered)
}

fn write_roff(w: &mut Vec<u8>, roff: &Roff) -> std::io::Result<()> {
    roff.to_writer(w)
}

/// The options a subcommand declares itself (help flags aside).
fn own_options(sub: &Command) -> impl Iterator<Item = &Arg> {
    sub.get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help")
}

/// A subcommand's own options under the heading "<NAME> OPTIONS".
fn subcommand_options(sub: &Command, w: &mut Vec<u8>) -> std::io::Result<()> {
    let mut rendered = Vec::new();
    Man::new(sub.clone().disable_help_flag(true)).render_options_section(&mut rendered)?;
    let rendered = String::from_utf8_lossy(&rendered);
    let heading = format!(".SH \"{} OPTIONS\"", sub.get_name().to_uppercase());
    w.extend_from_slice(rendered.replacen(".SH OPTIONS", &heading, 1).as_bytes());
    Ok(())
}

/// `<VALUE>` of an option that takes one, for the synopsis.
fn value_name(arg: &Arg) -> Option<String> {
    if !arg.get_action().takes_values() {
        return None;
    }
    let names = arg.get_value_names()?;
    Some(
        names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn synopsis(cli: &Command, subcommands: &[Command]) -> Roff {
    let name = cli.get_name();
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    for sub in subcommands {
        let mut line = vec![
            bold(name),
            roman(" ["),
            italic("OPTIONS"),
            roman("] "),
            bold(sub.get_name()),
        ];
        for arg in own_options(sub) {
            let Some(long) = arg.get_long() else { continue };
            line.push(roman(" ["));
            line.push(bold(format!("--{long}")));
            if let Some(value) = value_name(arg) {
                line.push(roman(" "));
                line.push(italic(value));
            }
            line.push(roman("]"));
        }
        roff.text(line);
        roff.control("br", []);
    }
    roff.text([
        bold(name),
        roman(" "),
        bold("--help"),
        roman(" | "),
        bold("--version"),
    ]);
    roff
}

fn paragraphs(roff: &mut Roff, text: &[&str]) {
    for (i, paragraph) in text.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*paragraph)]);
    }
}

fn description() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    paragraphs(
        &mut roff,
        &[
            "asgard-stats collects the CPU and memory usage of every task of an Apache Mesos \
             cluster and publishes one JSON document per task to RabbitMQ. cron runs \
             asgard-stats collect every minute; each run is one pass that ends with an exit \
             code.",
            "A pass takes a lock in Redis, asks the masters in order for the agents of the \
             leading master (following a standby's redirect), reads every agent's \
             /monitor/statistics through a bounded pool of workers, compares each task's \
             counters with its previous reading in Redis, publishes the documents to the \
             default exchange with the routing key and waits for the broker's confirms, then \
             stores the new readings. A document not confirmed is kept in Redis and sent \
             again, identical and under the same message id, by the next pass: a consumer \
             that drops repeated message ids sees every interval exactly once. It ends by its \
             deadline, whatever happens.",
            "Logs go to stderr, as text or as one JSON object per line (--log-format). The \
             last line of a pass is its summary: agents listed, answered, failed by reason, \
             abandoned and not started (these add up to the agents listed); tasks seen, documents published, documents sent again, readings left out of a full outbox, first sightings, resets, \
             skipped entries, failed deliveries, readings not stored; the duration and the \
             exit code.",
            "Every option is also an environment variable (the Python collector's names) and \
             applies to every command; a flag wins over its variable.",
        ],
    );
    roff
}

fn commands(subcommands: &[Command]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in subcommands {
        roff.control("TP", []);
        roff.text([bold(sub.get_name())]);
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|s| s.to_string())
            .unwrap_or_default();
        let paragraphs: Vec<&str> = about.split("\n\n").collect();
        for (i, paragraph) in paragraphs.iter().enumerate() {
            if i > 0 {
                roff.text([Inline::LineBreak]);
            }
            roff.text([roman(paragraph.replace('\n', " "))]);
        }
    }
    roff
}

/// The rule for the master variables, which clap cannot express as one `env`.
const MASTER_VARIABLES: &str = "Mesos master URLs (http://HOST:PORT or https://...), tried in \
    order: HOLLOWMAN_MESOS_ADDRESS first, then HOLLOWMAN_MESOS_ADDRESS_0, \
    HOLLOWMAN_MESOS_ADDRESS_1, ... up to the first missing index (a variable after a gap is \
    never read). Used when no --master is given; when none is set either, \
    STATS_COLLECTOR_MESOS_MASTER_IP names one master.";

fn environment(cli: &Command, subcommands: &[Command]) -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", []);
    roff.text([bold(
        "HOLLOWMAN_MESOS_ADDRESS, HOLLOWMAN_MESOS_ADDRESS_0, HOLLOWMAN_MESOS_ADDRESS_1, ...",
    )]);
    roff.text([roman(MASTER_VARIABLES)]);
    let shared = cli.get_arguments().map(|a| (None, a));
    let own = subcommands
        .iter()
        .flat_map(|s| own_options(s).map(move |a| (Some(s.get_name()), a)));
    for (sub, arg) in shared.chain(own) {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let flag = match sub {
            Some(sub) => format!("{sub} --{long}"),
            None => format!("--{long}"),
        };
        let default = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy())
            .collect::<Vec<_>>()
            .join(",");
        roff.control("TP", []);
        roff.text([bold(env.to_string_lossy())]);
        let mut line = vec![roman("Same as "), bold(flag)];
        if !default.is_empty() {
            line.push(roman(format!("; default {default}")));
        }
        line.push(roman("."));
        roff.text(line);
    }
    roff.control("TP", []);
    roff.text([bold("RUST_LOG")]);
    roff.text([roman(
        "Log level: error, warn, info (the default), debug or trace, or an env_logger \
         filter such as warn,asgard_stats=debug.",
    )]);
    roff
}

/// The exit codes, from the same list `--help` ends with.
fn exit_status() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for code in exit::ALL {
        roff.control("TP", []);
        roff.text([bold(code.code.to_string())]);
        roff.text([roman(code.meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(
        "check exits 0 when a pass could run, 69 when it could not and 2 on a \
         configuration error.",
    )]);
    roff
}

fn example(roff: &mut Roff, what: &str, lines: &[&str]) {
    roff.control("PP", []);
    roff.text([roman(what)]);
    roff.control("PP", []);
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in lines {
        roff.text([roman(*line)]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
}

fn examples() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    example(
        &mut roff,
        "The cron entry (/etc/cron.d/asgard-stats, one line there), on a host laid out as \
         the Debian package lays it out (settings in /etc/default/asgard-stats, secrets in \
         /etc/asgard-stats/); crontab.example adds mail on failures:",
        &[
            "* * * * * asgard-stats  set -a; . /etc/default/asgard-stats; set +a;",
            "    /usr/bin/asgard-stats collect 2>>/var/log/asgard-stats/collect.log",
        ],
    );
    example(
        &mut roff,
        "After installing, or when passes fail: can a pass run, with its settings and \
         broker password?",
        &[
            "sudo -u asgard-stats sh -c 'set -a; . /etc/default/asgard-stats;",
            "  STATS_COLLECTOR_RABBITMQ_PWD_FILE=/etc/asgard-stats/rabbitmq-password;",
            "  exec /usr/bin/asgard-stats check'",
        ],
    );
    example(
        &mut roff,
        "What a pass would publish now, as a table, writing nothing anywhere:",
        &["asgard-stats collect --dry-run --output table"],
    );
    example(
        &mut roff,
        "A large cluster split between three cron hosts; host 2 runs:",
        &["asgard-stats collect --shard 2/3"],
    );
    roff
}

fn see_also() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("crontab"),
        roman("(5), "),
        bold("cron"),
        roman(
            "(8). README.md (the document's fields and units, migrating from the Python \
               collector, sharding) and crontab.example in the source.",
        ),
    ]);
    roff
}

//! The command line's shape: the program, its subcommands and their own flags, and the
//! values of `--output` and `--log-format` (clap definitions only).

use super::settings::Settings;
use crate::output::OutputFormat;
use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Collects CPU and memory usage of every Mesos task and publishes one JSON document per
/// task to RabbitMQ. Meant to run from cron every minute.
#[derive(Debug, Parser)]
#[command(name = "asgard-stats", version, about, max_term_width = 100)]
#[command(after_help = crate::exit::help_text())]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    #[command(flatten)]
    pub(crate) settings: Settings,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one collection pass: list agents, read their statistics, publish documents.
    Collect(CollectArgs),
    /// Check that every master, Redis and the broker can be reached, without collecting.
    ///
    /// Prints one line per part: each master (and which master leads), Redis (version and
    /// the pass lock), the broker login and the queue receiving the routing key (or the
    /// exchange, whether it exists, and the key a document gets), with
    /// --metrics-file whether its folder is writable, and with --pushgateway whether the
    /// Pushgateway is ready. Exits 0 when a pass could run, 69 when it could not, 2 on a
    /// configuration error.
    Check,
    /// Print the man page (roff) generated from these definitions.
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Args)]
pub(crate) struct CollectArgs {
    /// Do a normal pass but write nothing anywhere (no Redis writes, no lock, no broker)
    /// and print the documents to stdout.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// How --dry-run prints documents [default: json, or table on a terminal]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) output: Option<OutputFormat>,

    /// With --dry-run, seconds between the two readings of tasks that have no previous
    /// reading in Redis.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_COLLECTOR_DRY_RUN_INTERVAL",
        default_value_t = 2.0
    )]
    pub(crate) dry_run_interval: f64,

    /// Declare a durable queue named after the routing key before publishing (for demos
    /// and first installs; production queues belong to the consumers). Only with the
    /// default exchange and a static key.
    #[arg(long)]
    pub(crate) declare_queue: bool,
}

/// `--output`'s values: the printer owns the formats, the command line only names them.
impl ValueEnum for OutputFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[OutputFormat::Json, OutputFormat::Table]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            OutputFormat::Json => PossibleValue::new("json").help("One JSON document per line"),
            OutputFormat::Table => {
                PossibleValue::new("table").help("An aligned table sorted by cpu_pct")
            }
        })
    }
}

/// Every flag of the program: the top command's and each subcommand's.
pub(crate) fn every_argument(command: &clap::Command) -> impl Iterator<Item = &clap::Arg> {
    command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
}

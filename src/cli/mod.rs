//! The command line: clap definitions only. Every setting is a flag and an environment
//! variable (flags win), with the Python collector's variable names; [`crate::config`]
//! turns what is parsed here into the validated `Config` the rest of the program reads.

pub(crate) mod errors;
pub(crate) mod logging;
pub(crate) mod man;
pub(crate) mod unknown_env;

use crate::output::OutputFormat;
use clap::builder::PossibleValue;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Plain text lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings shared by every subcommand.
#[derive(Debug, Args)]
pub(crate) struct Settings {
    /// Mesos master URL (http://IP:PORT), repeatable, tried in order. Without it:
    /// HOLLOWMAN_MESOS_ADDRESS, then HOLLOWMAN_MESOS_ADDRESS_0, _1, ... up to the first
    /// missing index; else STATS_COLLECTOR_MESOS_MASTER_IP.
    #[arg(long = "master", value_name = "URL", global = true)]
    pub(crate) masters: Vec<String>,

    /// One master IP without port, meaning http://IP:5050, used when no
    /// HOLLOWMAN_MESOS_ADDRESS* is set.
    #[arg(
        long,
        value_name = "IP",
        env = "STATS_COLLECTOR_MESOS_MASTER_IP",
        global = true
    )]
    pub(crate) mesos_master_ip: Option<String>,

    /// Principal for HTTP basic authentication to masters and agents.
    #[arg(
        long,
        value_name = "PRINCIPAL",
        env = "STATS_COLLECTOR_MESOS_PRINCIPAL",
        global = true
    )]
    pub(crate) mesos_principal: Option<String>,

    /// Secret for HTTP basic authentication to masters and agents. A flag shows in the
    /// process list: prefer STATS_COLLECTOR_MESOS_SECRET_FILE.
    #[arg(
        long,
        value_name = "SECRET",
        env = "STATS_COLLECTOR_MESOS_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub(crate) mesos_secret: Option<String>,

    /// File holding the Mesos secret, instead of the value (one trailing newline is
    /// ignored): a Kubernetes secret volume, a Docker secret or a systemd credential.
    #[arg(
        long,
        value_name = "FILE",
        env = "STATS_COLLECTOR_MESOS_SECRET_FILE",
        global = true
    )]
    pub(crate) mesos_secret_file: Option<PathBuf>,

    /// PEM file of the CA that signed the masters' and agents' certificates (https).
    #[arg(
        long,
        value_name = "FILE",
        env = "STATS_COLLECTOR_MESOS_CA_FILE",
        global = true
    )]
    pub(crate) mesos_ca_file: Option<PathBuf>,

    /// Seconds to connect to a master, an agent, Redis or the broker; also the Redis
    /// command timeout.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_CONNECT_TIMEOUT",
        default_value_t = 2.0,
        global = true
    )]
    pub(crate) connect_timeout: f64,

    /// Seconds for a whole request to a master or agent, body included.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_REQUEST_TIMEOUT",
        default_value_t = 5.0,
        global = true
    )]
    pub(crate) request_timeout: f64,

    /// Largest agent answer accepted, in bytes.
    #[arg(long, value_name = "BYTES", env = "STATS_COLLECTOR_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024, global = true)]
    pub(crate) max_body_bytes: u64,

    /// Bytes of agent answers held at once, read or being read: a fetch whose answer
    /// would exceed it waits (within its request timeout) until others are done.
    #[arg(long, value_name = "BYTES", env = "STATS_COLLECTOR_BODY_BUDGET_BYTES", default_value_t = 256 * 1024 * 1024, global = true)]
    pub(crate) body_budget_bytes: u64,
    /// Largest agent list accepted from a master, in bytes; a real list is ~1.7 KB per
    /// agent. It is read as a stream: memory holds each usable agent's id and address,
    /// and past the first 10 unusable entries at most 8 bytes each, never the list.
    #[arg(long, value_name = "BYTES", env = "STATS_COLLECTOR_MAX_AGENT_LIST_BYTES", default_value_t = 256 * 1024 * 1024, global = true)]
    pub(crate) max_agent_list_bytes: u64,

    /// Agents handled at once. A fetch that waits over 100 ms stops counting, so slow or
    /// hung agents wait beside the workers (up to 1024 of them), not in their place.
    #[arg(
        long,
        value_name = "N",
        env = "STATS_COLLECTOR_WORKERS",
        default_value_t = 32,
        global = true
    )]
    pub(crate) workers: usize,

    /// Seconds a whole pass may take, and the lifetime of its lock; work not done by then
    /// is abandoned.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_COLLECTOR_DEADLINE",
        default_value_t = 50.0,
        global = true
    )]
    pub(crate) deadline: f64,

    /// Handle only the agents whose id hashes to shard K of N (1 <= K <= N), with a lock
    /// of its own, so N cron hosts split one cluster.
    #[arg(long, value_name = "K/N", env = "STATS_COLLECTOR_SHARD", global = true)]
    pub(crate) shard: Option<String>,

    /// This shard's 0-based index, as schedulers number their instances (a Kubernetes
    /// Indexed Job's JOB_COMPLETION_INDEX, Nomad's NOMAD_ALLOC_INDEX), with the shard
    /// count: index I of N is shard (I+1)/N, the same agents and the same lock.
    #[arg(
        long,
        value_name = "I",
        env = "STATS_COLLECTOR_SHARD_INDEX",
        global = true
    )]
    pub(crate) shard_index: Option<u32>,

    /// How many shards split the agents, with --shard-index.
    #[arg(
        long,
        value_name = "N",
        env = "STATS_COLLECTOR_SHARD_COUNT",
        global = true
    )]
    pub(crate) shard_count: Option<u32>,

    /// Redis URL (redis:// or rediss://) holding previous readings and the pass lock
    /// [default: redis://127.0.0.1/0]; or its sentinels:
    /// redis+sentinel://[[user]:password@]host1:26379,host2:26379/<master-name>[/<db>]
    /// (rediss+sentinel:// for TLS), the master's credentials before the @, the
    /// sentinels' own as ?sentinel_password=...&sentinel_username=... With a password,
    /// prefer STATS_COLLECTOR_REDIS_URL_FILE: a flag shows in the process list.
    #[arg(
        long,
        value_name = "URL",
        env = "STATS_COLLECTOR_REDIS_URL",
        hide_env_values = true,
        global = true
    )]
    pub(crate) redis_url: Option<String>,

    /// File holding the Redis URL, instead of the value (one trailing newline is ignored).
    #[arg(
        long,
        value_name = "FILE",
        env = "STATS_COLLECTOR_REDIS_URL_FILE",
        global = true
    )]
    pub(crate) redis_url_file: Option<PathBuf>,

    /// PEM file of the CA that signed the certificates of Redis and of its sentinels
    /// (rediss://, rediss+sentinel://); the public (webpki) roots without it.
    #[arg(
        long,
        value_name = "FILE",
        env = "STATS_COLLECTOR_REDIS_CA_FILE",
        global = true
    )]
    pub(crate) redis_ca_file: Option<PathBuf>,

    /// Redis connections kept open at least.
    #[arg(
        long,
        value_name = "N",
        env = "STATS_COLLECTOR_REDIS_POOL_MIN",
        default_value_t = 0,
        global = true
    )]
    pub(crate) redis_pool_min: u32,

    /// Redis connections open at most [default: --workers, so that no worker waits for
    /// a connection].
    #[arg(
        long,
        value_name = "N",
        env = "STATS_COLLECTOR_REDIS_POOL_MAX",
        global = true
    )]
    pub(crate) redis_pool_max: Option<u32>,

    /// Prefix of every Redis key this program writes, each with a TTL: an agent's readings
    /// are <PREFIX>agent/<agent id>/<address>, a pass's write-ahead
    /// <PREFIX>wal/<agent id>/<address>, the layout marker <PREFIX>layout/by-address/since,
    /// the pass lock <PREFIX>lock (<PREFIX>lock:K-of-N with --shard), where the next pass
    /// starts its agents <PREFIX>turn; the previous releases' keys are still read after an
    /// upgrade.
    #[arg(
        long,
        value_name = "PREFIX",
        env = "STATS_COLLECTOR_KEY_PREFIX",
        default_value = "asgard-stats:task:",
        global = true
    )]
    pub(crate) key_prefix: String,

    /// Seconds a stored reading (and a task's pending documents) lives after the task's
    /// last reading; a task that ended leaves nothing behind after it.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_COLLECTOR_STATE_TTL",
        default_value_t = 600,
        global = true
    )]
    pub(crate) state_ttl: u64,

    /// RabbitMQ brokers, comma-separated, tried in order: host[:PORT] or amqp://host[:PORT]
    /// (port 5672), or amqps://host[:PORT] for TLS (port 5671); an IPv6 address in
    /// brackets ([::1]:5672).
    #[arg(
        long,
        value_name = "HOST[:PORT],...",
        env = "STATS_COLLECTOR_RABBITMQ_HOST",
        global = true
    )]
    pub(crate) rabbitmq_host: Option<String>,

    /// PEM file of the CA that signed the brokers' certificates (amqps://).
    #[arg(
        long,
        value_name = "FILE",
        env = "STATS_COLLECTOR_RABBITMQ_CA_FILE",
        global = true
    )]
    pub(crate) rabbitmq_ca_file: Option<PathBuf>,

    /// RabbitMQ user.
    #[arg(
        long,
        value_name = "USER",
        env = "STATS_COLLECTOR_RABBITMQ_USER",
        default_value = "guest",
        global = true
    )]
    pub(crate) rabbitmq_user: Option<String>,

    /// RabbitMQ password [default: guest]. A flag shows in the process list: prefer
    /// STATS_COLLECTOR_RABBITMQ_PWD_FILE.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "STATS_COLLECTOR_RABBITMQ_PWD",
        hide_env_values = true,
        global = true
    )]
    pub(crate) rabbitmq_password: Option<String>,

    /// File holding the RabbitMQ password, instead of the value (one trailing newline is
    /// ignored).
    #[arg(
        long,
        value_name = "FILE",
        env = "STATS_COLLECTOR_RABBITMQ_PWD_FILE",
        global = true
    )]
    pub(crate) rabbitmq_password_file: Option<PathBuf>,

    /// RabbitMQ virtual host.
    #[arg(
        long,
        value_name = "VHOST",
        env = "STATS_COLLECTOR_RABBITMQ_VHOST",
        default_value = "/",
        global = true
    )]
    pub(crate) rabbitmq_vhost: String,

    /// Routing key of every document: a static key, or a template naming the document's
    /// {appname}, {taskname} or {host} (asgard.stats.{appname}); in a field, / becomes .
    /// and . becomes _; {{ and }} are braces. A key over 255 bytes is fitted (a digest at
    /// its end), never cut. With the default exchange, the name of the queue.
    #[arg(
        long,
        value_name = "KEY",
        env = "STATS_COLLECTOR_RABBITMQ_RK",
        global = true
    )]
    pub(crate) routing_key: Option<String>,

    /// Exchange the documents are published to; "" is the default exchange, which routes
    /// a key to the queue of that name. A named exchange must exist when a pass starts
    /// (checked), unless the pass declares it (--declare-exchange).
    #[arg(
        long,
        value_name = "NAME",
        env = "STATS_COLLECTOR_RABBITMQ_EXCHANGE",
        default_value = "",
        global = true
    )]
    pub(crate) exchange: String,

    /// Type of the exchange --declare-exchange declares: direct, fanout, topic, headers,
    /// x-consistent-hash (RabbitMQ's plugin), or any type the broker knows.
    #[arg(
        long,
        value_name = "TYPE",
        env = "STATS_COLLECTOR_RABBITMQ_EXCHANGE_TYPE",
        default_value = "topic",
        global = true
    )]
    pub(crate) exchange_type: String,

    /// Declare the exchange (durable, of --exchange-type) at the start of each pass,
    /// instead of only checking that it exists. The queues and their bindings are the
    /// consumers'.
    #[arg(long, env = "STATS_COLLECTOR_RABBITMQ_DECLARE_EXCHANGE", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub(crate) declare_exchange: bool,

    /// Seconds to wait for the broker to confirm a batch of documents.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_COLLECTOR_CONFIRM_TIMEOUT",
        default_value_t = 10.0,
        global = true
    )]
    pub(crate) confirm_timeout: f64,

    /// Seconds the broker may block publishing (a memory or disk alarm) before the pass
    /// stops starting agents and counts the documents waiting as not delivered.
    #[arg(
        long,
        value_name = "SECS",
        env = "STATS_COLLECTOR_BLOCKED_TIMEOUT",
        default_value_t = 10.0,
        global = true
    )]
    pub(crate) blocked_timeout: f64,

    /// Add `stats: {before, now}` (both raw readings) to each document (0 or 1).
    #[arg(long, value_name = "0|1", env = "STATS_COLLECTOR_INCLUDE_RAW_METRICS", default_value = "0", value_parser = ["0", "1"], global = true)]
    pub(crate) include_raw_metrics: String,

    /// Also publish documents that lack cpu_pct or mem_pct (their inputs are missing),
    /// with those fields left out. Off by default: consumers averaging them fail on
    /// documents without them.
    #[arg(long, env = "STATS_COLLECTOR_PUBLISH_INCOMPLETE", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub(crate) publish_incomplete: bool,

    /// The exit code of a partial pass (some agents or documents failed, the rest was
    /// delivered): 3, or 0 for a scheduler that counts every other code as a failure (a
    /// Kubernetes Job, Nomad, Metronome). The summary, the logs and the metrics still
    /// say 3.
    #[arg(long, value_name = "0|3", env = "STATS_COLLECTOR_PARTIAL_EXIT_CODE", default_value = "3", value_parser = ["0", "3"], global = true)]
    pub(crate) partial_exit_code: String,

    /// Log line format on stderr; the level comes from RUST_LOG (default info). The last
    /// line of a pass is its summary.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        env = "STATS_COLLECTOR_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub(crate) log_format: LogFormat,

    /// Write the counts of every collecting pass, whatever its outcome, to this file in the
    /// Prometheus text format (for node_exporter's textfile collector), atomically: a
    /// temporary file in the same folder, then a rename. One file per shard.
    #[arg(
        long,
        value_name = "PATH",
        env = "STATS_COLLECTOR_METRICS_FILE",
        global = true
    )]
    pub(crate) metrics_file: Option<PathBuf>,

    /// Push the counts of every collecting pass (the metrics file's) to this
    /// Prometheus Pushgateway, http(s)://[USER:PASSWORD@]HOST:PORT[/PATH], job
    /// asgard-stats, grouped by shard. A push that fails is logged and changes nothing
    /// else. Credentials in the URL are sent as basic authentication, never shown.
    #[arg(
        long,
        value_name = "URL",
        env = "STATS_COLLECTOR_PUSHGATEWAY",
        hide_env_values = true,
        global = true
    )]
    pub(crate) pushgateway: Option<String>,

    /// The secret settings given on the command line, where every user sees them in the
    /// process list (filled by [`parse`], not by clap).
    #[arg(skip)]
    pub(crate) secret_flags: Vec<&'static str>,
}

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
#[cfg(test)]
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

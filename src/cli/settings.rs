//! The settings every subcommand shares, each a flag and an environment variable (flags
//! win), with the Python collector's variable names (clap definitions only).

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Plain text lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
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

//! The validated [`Config`] the rest of the program reads, built once from the parsed
//! command line (and the `HOLLOWMAN_MESOS_ADDRESS_<n>` variables), each part checked by
//! its own file; and the checks of numbers of seconds and of counts.

use super::broker::{broker, BrokerSettings};
use super::error::{invalid, invalid_value, ConfigError};
use super::masters::{credentials, masters, HttpSettings};
use super::metrics::{metrics_file, pushgateway, MetricsDestination, PushgatewaySettings};
use super::redact;
use super::redis::{redis, RedisSettings};
use super::shard::{shard, Shard};
use crate::cli::{CollectArgs, Settings};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// Master base URLs, in the order they are tried.
    pub(crate) masters: Vec<String>,
    pub(crate) http: HttpSettings,
    pub(crate) workers: usize,
    pub(crate) deadline: Duration,
    pub(crate) shard: Option<Shard>,
    pub(crate) redis: RedisSettings,
    /// None when no broker is configured; only a dry run can do without one.
    pub(crate) broker: Option<BrokerSettings>,
    pub(crate) include_raw_metrics: bool,
    /// Where a collecting pass writes its metrics (`metrics.rs`), if anywhere.
    pub(crate) metrics_file: Option<PathBuf>,
    /// Where a collecting pass pushes its metrics (`push.rs`), if anywhere.
    pub(crate) pushgateway: Option<PushgatewaySettings>,
    /// Publish documents without cpu_pct or mem_pct too (off: they are held back).
    pub(crate) publish_incomplete: bool,
    /// Whether a partial pass exits 0 rather than 3, for schedulers
    /// (`--partial-exit-code 0`).
    pub(crate) partial_exits_zero: bool,
}

impl Config {
    /// Where this pass's metrics go.
    pub(crate) fn metrics_destination(&self) -> MetricsDestination {
        MetricsDestination {
            metrics_file: self.metrics_file.clone(),
            pushgateway: self.pushgateway.clone(),
            shard: self.shard,
            deadline: self.deadline,
            connect_timeout: self.http.connect_timeout,
            request_timeout: self.http.request_timeout,
        }
    }

    /// Validates the parsed settings; `env` looks up environment variables.
    pub(crate) fn from_settings(
        settings: &Settings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let connect_timeout = seconds("--connect-timeout", settings.connect_timeout)?;
        let workers = match settings.workers {
            1..=1024 => settings.workers,
            _ => return Err(invalid_value("--workers", "must be between 1 and 1024")),
        };
        Ok(Config {
            masters: masters(settings, &env)?,
            http: HttpSettings {
                credentials: credentials(settings)?,
                ca_file: settings.mesos_ca_file.clone(),
                connect_timeout,
                request_timeout: seconds("--request-timeout", settings.request_timeout)?,
                max_body_bytes: positive("--max-body-bytes", settings.max_body_bytes)?,
                body_budget_bytes: positive("--body-budget-bytes", settings.body_budget_bytes)?,
                max_agent_list_bytes: positive(
                    "--max-agent-list-bytes",
                    settings.max_agent_list_bytes,
                )?,
            },
            workers,
            deadline: seconds("--deadline", settings.deadline)?,
            shard: shard(settings)?,
            redis: redis(settings, connect_timeout, workers)?,
            broker: broker(settings, connect_timeout)?,
            include_raw_metrics: settings.include_raw_metrics == "1",
            metrics_file: metrics_file(settings)?,
            pushgateway: pushgateway(settings)?,
            publish_incomplete: settings.publish_incomplete,
            partial_exits_zero: settings.partial_exit_code == "0",
        })
    }

    /// One warning line for each secret given as a flag, which every user of the host
    /// sees in the process list. A Redis URL or Pushgateway URL is one only when it
    /// holds credentials.
    pub(crate) fn secret_flag_warnings(settings: &Settings) -> Vec<String> {
        let holds_secret = |url: &Option<String>| {
            url.as_deref()
                .is_some_and(|url| redact::url(url) != url.trim())
        };
        settings
            .secret_flags
            .iter()
            .filter(|flag| match **flag {
                "redis-url" => holds_secret(&settings.redis_url),
                "pushgateway" => holds_secret(&settings.pushgateway),
                _ => true,
            })
            .map(|flag| {
                let instead = match *flag {
                    "mesos-secret" => "STATS_COLLECTOR_MESOS_SECRET_FILE (--mesos-secret-file)",
                    "rabbitmq-password" => {
                        "STATS_COLLECTOR_RABBITMQ_PWD_FILE (--rabbitmq-password-file)"
                    }
                    "redis-url" => "STATS_COLLECTOR_REDIS_URL_FILE (--redis-url-file)",
                    _ => "STATS_COLLECTOR_PUSHGATEWAY",
                };
                format!(
                    "--{flag} is given on the command line, where every user of this host \
                     sees it in the process list; use {instead} instead"
                )
            })
            .collect()
    }

    /// The broker settings, required for anything that publishes.
    pub(crate) fn require_broker(&self) -> Result<&BrokerSettings, ConfigError> {
        self.broker.as_ref().ok_or_else(|| {
            invalid(
                "no broker configured: set STATS_COLLECTOR_RABBITMQ_HOST and \
                 STATS_COLLECTOR_RABBITMQ_RK (or --rabbitmq-host and --routing-key)",
            )
        })
    }
}

pub(super) fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() < 86_400)
        .ok_or_else(|| {
            invalid_value(
                flag,
                format!("must be a number of seconds above 0 and under a day, got {value}"),
            )
        })
}

/// `--dry-run-interval`, checked like every other number of seconds (a value that is
/// not one is exit 2, never a quiet default).
pub(crate) fn dry_run_interval(args: &CollectArgs) -> Result<Duration, ConfigError> {
    seconds("--dry-run-interval", args.dry_run_interval)
}

/// `--declare-queue`: the queue the default exchange routes a static key to. With an
/// exchange, or a key naming fields (a queue per document), the operator binds the
/// queues: asking to declare one is a configuration error, not a guess.
pub(crate) fn declare_queue(args: &CollectArgs, config: &Config) -> Result<bool, ConfigError> {
    let Some(broker) = config.broker.as_ref().filter(|_| args.declare_queue) else {
        return Ok(false);
    };
    if !broker.exchange.is_empty() {
        return Err(invalid_value(
            "--declare-queue",
            "declares the queue the default exchange routes the routing key to; with an \
             exchange (STATS_COLLECTOR_RABBITMQ_EXCHANGE) the queues are bound by the operator",
        ));
    }
    if broker.routing_key.fixed().is_none() {
        return Err(invalid_value(
            "--declare-queue",
            "needs a routing key without fields: with fields each document names its own queue",
        ));
    }
    Ok(true)
}

pub(super) fn positive(flag: &'static str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(invalid_value(flag, "must be above 0"));
    }
    Ok(value)
}

//! The validated configuration the rest of the program reads.
//!
//! Built once from the parsed command line plus the indexed `HOLLOWMAN_MESOS_ADDRESS_<n>`
//! variables that clap cannot express. Every check happens here, so a bad setting is one
//! clear line and exit code 2 before anything is contacted. Secrets are wrapped in
//! [`Secret`], whose `Debug` and `Display` never show the value.

use crate::broker::amqp::SHORT_STR_MAX;
use crate::cli::Settings;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) mod redact;
mod shard;

pub(crate) use shard::{fnv1a, Shard};

/// A configuration error: shown as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConfigError(String);

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

/// A value that must never reach a log, an error message or `--help`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

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
    /// Publish documents without cpu_pct or mem_pct too (off: they are held back).
    pub(crate) publish_incomplete: bool,
}

/// How masters and agents are reached over HTTP.
#[derive(Clone, Debug)]
pub(crate) struct HttpSettings {
    pub(crate) credentials: Option<Credentials>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_body_bytes: u64,
    /// Bytes of agent answers held at once (`budget.rs`).
    pub(crate) body_budget_bytes: u64,
    pub(crate) max_agent_list_bytes: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Credentials {
    pub(crate) principal: String,
    pub(crate) secret: Secret,
}

#[derive(Clone, Debug)]
pub(crate) struct RedisSettings {
    pub(crate) url: Secret,
    /// The URL with any password replaced, for messages.
    pub(crate) shown_url: String,
    pub(crate) pool_min: u32,
    pub(crate) pool_max: u32,
    pub(crate) key_prefix: String,
    pub(crate) state_ttl: Duration,
    pub(crate) timeout: Duration,
}

#[derive(Clone, Debug)]
pub(crate) struct BrokerSettings {
    /// Tried in order; a pass uses the first that accepts the login.
    pub(crate) hosts: Vec<BrokerAddress>,
    /// PEM CA for `amqps://` brokers; the system's roots when None.
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) user: String,
    pub(crate) password: Secret,
    pub(crate) vhost: String,
    pub(crate) routing_key: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) confirm_timeout: Duration,
    pub(crate) blocked_timeout: Duration,
}

/// One broker of the list: where, and whether over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BrokerAddress {
    /// A name or an IP address; an IPv6 address without its brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.tls {
            f.write_str("amqps://")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Config {
    /// Validates the parsed settings; `env` looks up environment variables.
    pub(crate) fn from_settings(
        settings: &Settings,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let connect_timeout = seconds("--connect-timeout", settings.connect_timeout)?;
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
            workers: match settings.workers {
                1..=1024 => settings.workers,
                _ => return Err(invalid("--workers must be between 1 and 1024")),
            },
            deadline: seconds("--deadline", settings.deadline)?,
            shard: settings.shard.as_deref().map(parse_shard).transpose()?,
            redis: redis(settings, connect_timeout)?,
            broker: broker(settings, connect_timeout)?,
            include_raw_metrics: settings.include_raw_metrics == "1",
            metrics_file: metrics_file(settings)?,
            publish_incomplete: settings.publish_incomplete,
        })
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

fn seconds(name: &str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() < 86_400)
        .ok_or_else(|| {
            invalid(format!(
                "{name} must be a number of seconds above 0, got {value}"
            ))
        })
}

fn positive(name: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(invalid(format!("{name} must be above 0")));
    }
    Ok(value)
}

/// Masters in the documented order: flags, else the HOLLOWMAN variables, else one IP.
fn masters(
    settings: &Settings,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ConfigError> {
    let mut urls = settings.masters.clone();
    if urls.is_empty() {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        urls.extend(set("HOLLOWMAN_MESOS_ADDRESS"));
        urls.extend((0..).map_while(|i| set(&format!("HOLLOWMAN_MESOS_ADDRESS_{i}"))));
    }
    if urls.is_empty() {
        if let Some(ip) = settings
            .mesos_master_ip
            .as_deref()
            .filter(|ip| !ip.is_empty())
        {
            urls.push(format!("http://{ip}:5050"));
        }
    }
    if urls.is_empty() {
        return Err(invalid(
            "no Mesos master configured: set HOLLOWMAN_MESOS_ADDRESS (and _0, _1, ...), \
             STATS_COLLECTOR_MESOS_MASTER_IP, or --master",
        ));
    }
    urls.into_iter().map(master_url).collect()
}

fn master_url(url: String) -> Result<String, ConfigError> {
    let url = url.trim().trim_end_matches('/').to_string();
    let shown = redact::url(&url);
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            invalid(format!(
                "master URL {shown} must start with http:// or https://"
            ))
        })?;
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(invalid(format!(
            "master URL {shown} must be scheme://host[:port], without path or credentials"
        )));
    }
    Ok(url)
}

fn credentials(settings: &Settings) -> Result<Option<Credentials>, ConfigError> {
    match (&settings.mesos_principal, &settings.mesos_secret) {
        (None, None) => Ok(None),
        (Some(principal), Some(secret)) if !principal.is_empty() => Ok(Some(Credentials {
            principal: principal.clone(),
            secret: Secret(secret.clone()),
        })),
        _ => Err(invalid(
            "Mesos authentication needs both STATS_COLLECTOR_MESOS_PRINCIPAL and \
             STATS_COLLECTOR_MESOS_SECRET",
        )),
    }
}

fn parse_shard(text: &str) -> Result<Shard, ConfigError> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if (1..=count).contains(&index) => Ok(Shard { index, count }),
        _ => Err(invalid(format!(
            "--shard must be K/N with 1 <= K <= N, got {text:?}"
        ))),
    }
}

/// The metrics file, which must name a file (its temporary file goes beside it).
fn metrics_file(settings: &Settings) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = &settings.metrics_file else {
        return Ok(None);
    };
    let names_a_file = path.file_name().is_some() && !path.to_string_lossy().ends_with('/');
    if !names_a_file {
        return Err(invalid(format!(
            "--metrics-file must name a file, got {}",
            path.display()
        )));
    }
    Ok(Some(path.clone()))
}

fn redis(settings: &Settings, timeout: Duration) -> Result<RedisSettings, ConfigError> {
    let url = settings.redis_url.trim().to_string();
    let shown_url = redact::url(&url);
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(invalid(format!(
            "Redis URL {shown_url} must start with redis:// or rediss://"
        )));
    }
    if settings.redis_pool_max == 0 || settings.redis_pool_min > settings.redis_pool_max {
        return Err(invalid(
            "Redis pool sizes must satisfy 0 <= STATS_COLLECTOR_REDIS_POOL_MIN <= \
             STATS_COLLECTOR_REDIS_POOL_MAX, and the maximum must be above 0",
        ));
    }
    if settings.state_ttl == 0 {
        return Err(invalid("--state-ttl must be above 0"));
    }
    Ok(RedisSettings {
        url: Secret(url),
        shown_url,
        pool_min: settings.redis_pool_min,
        pool_max: settings.redis_pool_max,
        key_prefix: settings.key_prefix.clone(),
        state_ttl: Duration::from_secs(settings.state_ttl),
        timeout,
    })
}

fn broker(
    settings: &Settings,
    connect_timeout: Duration,
) -> Result<Option<BrokerSettings>, ConfigError> {
    let Some(host) = settings.rabbitmq_host.as_deref().filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let hosts = host
        .split(',')
        .map(broker_address)
        .collect::<Result<Vec<_>, _>>()?;
    let routing_key = settings
        .routing_key
        .clone()
        .filter(|rk| !rk.is_empty())
        .ok_or_else(|| invalid("STATS_COLLECTOR_RABBITMQ_RK (--routing-key) is required"))?;
    let routing_key = short_string("STATS_COLLECTOR_RABBITMQ_RK (--routing-key)", routing_key)?;
    let vhost = short_string(
        "STATS_COLLECTOR_RABBITMQ_VHOST (--rabbitmq-vhost)",
        settings.rabbitmq_vhost.clone(),
    )?;
    Ok(Some(BrokerSettings {
        hosts,
        ca_file: settings.rabbitmq_ca_file.clone(),
        user: settings
            .rabbitmq_user
            .clone()
            .unwrap_or_else(|| "guest".into()),
        password: Secret(
            settings
                .rabbitmq_password
                .clone()
                .unwrap_or_else(|| "guest".into()),
        ),
        vhost,
        routing_key,
        connect_timeout,
        confirm_timeout: seconds("--confirm-timeout", settings.confirm_timeout)?,
        blocked_timeout: seconds("--blocked-timeout", settings.blocked_timeout)?,
    }))
}

/// One entry of the broker list: `host[:port]`, `amqp://host[:port]` or
/// `amqps://host[:port]` (ports 5672 and 5671 by default), an IPv6 address in brackets.
fn broker_address(entry: &str) -> Result<BrokerAddress, ConfigError> {
    let entry = entry.trim();
    let shown = redact::url(entry);
    let bad = |why: &str| invalid(format!("RabbitMQ host {shown}: {why}"));
    let (tls, rest) = match entry.split_once("://") {
        Some(("amqps", rest)) => (true, rest),
        Some(("amqp", rest)) => (false, rest),
        Some(_) => return Err(bad("the scheme must be amqp:// or amqps://")),
        None => (false, entry),
    };
    if rest.contains('@') {
        return Err(bad(
            "credentials belong in STATS_COLLECTOR_RABBITMQ_USER and STATS_COLLECTOR_RABBITMQ_PWD",
        ));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#']) {
        return Err(bad(
            "must be [amqps://]host[:port]; the virtual host belongs in STATS_COLLECTOR_RABBITMQ_VHOST",
        ));
    }
    let (host, port) = redact::split_host_port(authority);
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || shown == redact::UNREADABLE {
        return Err(bad(
            "expected host[:port] or amqps://host[:port], an IPv6 address in brackets",
        ));
    }
    let port = match port {
        None if tls => 5671,
        None => 5672,
        Some(port) => port.parse::<u16>().map_err(|_| bad("bad port"))?,
    };
    Ok(BrokerAddress {
        host: host.to_string(),
        port,
        tls,
    })
}

/// A value sent as an AMQP short string: at most 255 bytes, or the broker would get it
/// cut (another routing key, another vhost) or refuse it.
fn short_string(name: &str, value: String) -> Result<String, ConfigError> {
    if value.len() > SHORT_STR_MAX {
        return Err(invalid(format!(
            "{name} is {} bytes long; AMQP carries at most {SHORT_STR_MAX}",
            value.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use std::collections::HashMap;

    fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut argv = vec!["asgard-stats"];
        argv.extend_from_slice(args);
        argv.push("check");
        let cli = Cli::try_parse_from(argv).expect("arguments parse");
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_settings(&cli.settings, |name| env.get(name).cloned())
    }

    #[test]
    fn masters_follow_the_documented_order() {
        let env = [
            ("HOLLOWMAN_MESOS_ADDRESS", "http://a:5050"),
            ("HOLLOWMAN_MESOS_ADDRESS_0", "http://b:5050/"),
            ("HOLLOWMAN_MESOS_ADDRESS_1", "https://c:5050"),
            ("HOLLOWMAN_MESOS_ADDRESS_3", "http://not-reached:5050"),
        ];
        let c = config(&[], &env).expect("valid");
        assert_eq!(
            c.masters,
            ["http://a:5050", "http://b:5050", "https://c:5050"]
        );
        let c = config(&[], &env[1..]).expect("valid");
        assert_eq!(c.masters, ["http://b:5050", "https://c:5050"]);
        let c = config(&["--master", "http://flag:1"], &env).expect("valid");
        assert_eq!(c.masters, ["http://flag:1"], "flags win");
        let c = config(&["--mesos-master-ip", "10.0.0.1"], &[]).expect("valid");
        assert_eq!(c.masters, ["http://10.0.0.1:5050"]);
        assert!(config(&[], &[]).is_err());
        assert!(config(&["--master", "ftp://x"], &[]).is_err());
        assert!(config(&["--master", "http://u:p@x"], &[]).is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = config(
            &[
                "--master",
                "http://m:5050",
                "--mesos-principal",
                "ops",
                "--mesos-secret",
                "hunter2",
                "--redis-url",
                "redis://:sekrit@r:6379/0",
                "--rabbitmq-host",
                "mq:5673",
                "--rabbitmq-password",
                "pa55",
                "--routing-key",
                "rk",
            ],
            &[],
        )
        .expect("valid");
        let shown = format!("{c:?}");
        for secret in ["hunter2", "sekrit", "pa55"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert_eq!(c.redis.shown_url, "redis://<redacted>@r:6379/0");
        let broker = c.require_broker().expect("configured");
        let mq = BrokerAddress {
            host: "mq".into(),
            port: 5673,
            tls: false,
        };
        assert_eq!(broker.hosts, [mq]);
        assert_eq!(broker.password.expose(), "pa55");
    }

    #[test]
    fn bad_settings_are_rejected() {
        let m = ["--master", "http://m:1"];
        let with = |extra: &[&str]| {
            let mut args = m.to_vec();
            args.extend_from_slice(extra);
            config(&args, &[])
        };
        assert!(with(&[]).is_ok());
        for bad in [
            &["--connect-timeout", "0"][..],
            &["--request-timeout=-1"],
            &["--deadline", "NaN"],
            &["--workers", "0"],
            &["--shard", "0/3"],
            &["--shard", "4/3"],
            &["--shard", "x"],
            &["--redis-url", "http://r"],
            &["--redis-pool-min", "5", "--redis-pool-max", "2"],
            &["--mesos-principal", "only"],
            &["--rabbitmq-host", "mq"],
            &["--rabbitmq-host", "mq:notaport", "--routing-key", "rk"],
            &["--state-ttl", "0"],
            &["--metrics-file", "/var/lib/node_exporter/"],
            &["--metrics-file", "/var/lib/.."],
            &["--body-budget-bytes", "0"],
            &["--max-agent-list-bytes", "0"],
            &[
                "--rabbitmq-host",
                "mq",
                "--routing-key",
                "rk",
                "--blocked-timeout",
                "0",
            ],
        ] {
            assert!(with(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            with(&["--shard", "2/3"]).expect("valid").shard,
            Some(Shard { index: 2, count: 3 })
        );
        assert!(with(&[]).expect("valid").require_broker().is_err());
        assert_eq!(
            with(&["--metrics-file", "m.prom"])
                .expect("valid")
                .metrics_file,
            Some(PathBuf::from("m.prom"))
        );
    }

    #[test]
    fn values_amqp_cannot_carry_are_rejected() {
        let with = |rk: &str, vhost: &str| {
            let args = ["--master", "http://m:1", "--rabbitmq-host", "mq"];
            let mut args = args.to_vec();
            args.extend(["--routing-key", rk, "--rabbitmq-vhost", vhost]);
            config(&args, &[])
        };
        let longest = "k".repeat(255);
        let broker = with(&longest, "/").expect("255 bytes fit");
        assert_eq!(broker.require_broker().expect("set").routing_key, longest);
        let error = with(&"k".repeat(256), "/").expect_err("256 bytes do not");
        assert!(error.to_string().contains("256 bytes"), "{error}");
        // 130 two-byte characters: 260 bytes, though only 130 characters.
        let error = with(&"é".repeat(130), "/").expect_err("bytes count, not characters");
        assert!(error.to_string().contains("RABBITMQ_RK"), "{error}");
        let error = with("rk", &"v".repeat(256)).expect_err("a vhost too");
        assert!(error.to_string().contains("RABBITMQ_VHOST"), "{error}");
    }

    #[test]
    fn broker_hosts_are_a_list_of_plain_and_tls_addresses() {
        let hosts = |value: &str| {
            let args = ["--master", "http://m:1", "--routing-key", "rk"];
            config(&[&args[..], &["--rabbitmq-host", value]].concat(), &[])
                .map(|c| {
                    let broker = c.broker.expect("configured");
                    broker
                        .hosts
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                })
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            hosts("mq1, amqps://mq2,amqp://mq3:1/,amqps://[::1]:5673,[fe80::1]"),
            Ok(vec![
                "mq1:5672".to_string(),
                "amqps://mq2:5671".into(),
                "mq3:1".into(),
                "amqps://[::1]:5673".into(),
                "[fe80::1]:5672".into(),
            ])
        );
        for bad in [
            "amqp://user:s3cret@mq/",
            "mq:s3cret",
            "http://mq",
            "mq,,mq2",
            "::1:5673",
            "amqps://mq/vhost",
            "mq:70000",
        ] {
            let why = hosts(bad).expect_err(bad);
            assert!(why.starts_with("RabbitMQ host "), "{why}");
            assert!(!why.contains("s3cret"), "{why}");
        }
    }

    #[test]
    fn master_urls_with_credentials_are_refused_without_showing_them() {
        let why = config(&["--master", "http://user:s3cret@m:5050"], &[])
            .expect_err("refused")
            .to_string();
        assert!(why.contains("http://<redacted>@m:5050"), "{why}");
        assert!(!why.contains("s3cret"), "{why}");
    }
}

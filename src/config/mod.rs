//! The validated configuration the rest of the program reads.
//!
//! Built once from the parsed command line plus the indexed `HOLLOWMAN_MESOS_ADDRESS_<n>`
//! variables that clap cannot express. Every check happens here, so a bad setting is one
//! clear line and exit code 2 before anything is contacted. Secrets are wrapped in
//! [`Secret`], whose `Debug` and `Display` never show the value; each may also be read
//! from a file (its `_FILE` setting), here, so a file that cannot be used is exit 2 too.

use crate::cli::{CollectArgs, Settings};
use crate::wire_limits::SHORT_STR_MAX;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) mod redact;
mod sentinel;
mod shard;

pub(crate) use sentinel::{Login, SentinelSettings};
pub(crate) use shard::{fnv1a, Shard};

/// Redis when none is configured.
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1/0";

/// A configuration error: shown as one line, exit code 2. When one setting's value is
/// wrong, `setting` is its flag, so the line can name the setting as the operator gave
/// it (its environment variable or its flag: see [`ConfigError::naming`]).
#[derive(Debug, thiserror::Error)]
#[error("{}", self.naming(self.setting.unwrap_or_default()))]
pub(crate) struct ConfigError {
    setting: Option<&'static str>,
    message: String,
}

impl ConfigError {
    /// The flag of the setting whose value is wrong (`--deadline`), if one is.
    pub(crate) fn setting(&self) -> Option<&'static str> {
        self.setting
    }

    /// The error with its setting called `name` (`STATS_COLLECTOR_DEADLINE (--deadline)`).
    pub(crate) fn naming(&self, name: &str) -> String {
        match self.setting {
            Some(_) => format!("{name} {}", self.message),
            None => self.message.clone(),
        }
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: None,
        message: message.into(),
    }
}

/// The value of the setting whose flag is `flag` is wrong; `message` follows its name.
fn invalid_value(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: Some(flag),
        message: message.into(),
    }
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
    /// Where a collecting pass pushes its metrics (`push.rs`), if anywhere.
    pub(crate) pushgateway: Option<PushgatewaySettings>,
    /// Publish documents without cpu_pct or mem_pct too (off: they are held back).
    pub(crate) publish_incomplete: bool,
}

/// A Prometheus Pushgateway: where, and the basic credentials its URL held.
#[derive(Clone, Debug)]
pub(crate) struct PushgatewaySettings {
    /// `scheme://host[:port][/path]` without user info or a trailing `/`.
    pub(crate) url: String,
    /// The URL as given, its user info replaced, for messages.
    pub(crate) shown_url: String,
    pub(crate) credentials: Option<Credentials>,
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
    /// The sentinels to ask for the master, with a `redis+sentinel://` URL.
    pub(crate) sentinel: Option<SentinelSettings>,
    /// PEM CA for `rediss://` and `rediss+sentinel://`; the public roots when None.
    pub(crate) ca_file: Option<PathBuf>,
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
                _ => return Err(invalid_value("--workers", "must be between 1 and 1024")),
            },
            deadline: seconds("--deadline", settings.deadline)?,
            shard: shard(settings)?,
            redis: redis(settings, connect_timeout)?,
            broker: broker(settings, connect_timeout)?,
            include_raw_metrics: settings.include_raw_metrics == "1",
            metrics_file: metrics_file(settings)?,
            pushgateway: pushgateway(settings)?,
            publish_incomplete: settings.publish_incomplete,
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

fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
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

fn positive(flag: &'static str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(invalid_value(flag, "must be above 0"));
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

/// The largest secret file read: a secret is a few bytes, and a path that names a device
/// or a log by mistake must not fill memory.
const SECRET_FILE_MAX_BYTES: u64 = 64 * 1024;

/// A secret setting given either as a value (flag or variable) or as a file holding it:
/// names for messages, and what was given.
struct SecretSetting<'a> {
    /// `STATS_COLLECTOR_RABBITMQ_PWD (--rabbitmq-password)`
    value_name: &'static str,
    /// `STATS_COLLECTOR_RABBITMQ_PWD_FILE (--rabbitmq-password-file)`
    file_name: &'static str,
    value: &'a Option<String>,
    file: &'a Option<PathBuf>,
}

impl SecretSetting<'_> {
    /// The value, from wherever it was given; None when it was not. Both ways at once is
    /// an error, as is a file that cannot be read; no message holds the file's content.
    fn read(&self) -> Result<Option<Secret>, ConfigError> {
        match (self.value, self.file) {
            (Some(_), Some(_)) => Err(invalid(format!(
                "{} and {} are both set: give the secret one way only",
                self.value_name, self.file_name
            ))),
            (Some(value), None) => Ok(Some(Secret(value.clone()))),
            (None, Some(path)) => read_secret_file(path)
                .map(|value| Some(Secret(value)))
                .map_err(|why| invalid(format!("{} {}: {why}", self.file_name, path.display()))),
            (None, None) => Ok(None),
        }
    }
}

/// A secret file's content, without one trailing newline (`\n` or `\r\n`), as editors
/// and `echo` leave it. Errors say what is wrong, never what the file holds.
fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err("cannot be read: it is a folder".into());
    }
    let mut bytes = Vec::new();
    file.take(SECRET_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > SECRET_FILE_MAX_BYTES {
        return Err(format!(
            "is over {SECRET_FILE_MAX_BYTES} bytes, too large for a secret"
        ));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| "is not UTF-8 text".to_string())?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err("is empty".into());
    }
    Ok(text)
}

fn credentials(settings: &Settings) -> Result<Option<Credentials>, ConfigError> {
    let secret = SecretSetting {
        value_name: "STATS_COLLECTOR_MESOS_SECRET (--mesos-secret)",
        file_name: "STATS_COLLECTOR_MESOS_SECRET_FILE (--mesos-secret-file)",
        value: &settings.mesos_secret,
        file: &settings.mesos_secret_file,
    }
    .read()?;
    match (&settings.mesos_principal, secret) {
        (None, None) => Ok(None),
        (Some(principal), Some(secret)) if !principal.is_empty() => Ok(Some(Credentials {
            principal: principal.clone(),
            secret,
        })),
        _ => Err(invalid(
            "Mesos authentication needs both STATS_COLLECTOR_MESOS_PRINCIPAL and \
             STATS_COLLECTOR_MESOS_SECRET (or STATS_COLLECTOR_MESOS_SECRET_FILE)",
        )),
    }
}

/// The shard, from `--shard K/N` or from `--shard-index I` with `--shard-count N`
/// (0-based, as schedulers number their instances); both forms must then agree.
fn shard(settings: &Settings) -> Result<Option<Shard>, ConfigError> {
    const INDEX: &str = "STATS_COLLECTOR_SHARD_INDEX (--shard-index)";
    const COUNT: &str = "STATS_COLLECTOR_SHARD_COUNT (--shard-count)";
    let given = settings.shard.as_deref().map(parse_shard).transpose()?;
    let indexed = match (settings.shard_index, settings.shard_count) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(invalid(format!(
                "{INDEX} and {COUNT} go together: set both or neither"
            )))
        }
        (Some(_), Some(0)) => return Err(invalid(format!("{COUNT} must be above 0"))),
        (Some(index), Some(count)) if index >= count => {
            return Err(invalid(format!(
                "{INDEX} is 0-based and must be below {COUNT}: got index {index} of {count} \
                 (0 to {} are the shards)",
                count - 1
            )))
        }
        (Some(index), Some(count)) => Some(Shard {
            index: index + 1,
            count,
        }),
    };
    match (given, indexed) {
        (Some(given), Some(indexed)) if given != indexed => Err(invalid(format!(
            "--shard {given} and {INDEX} {} of {} name different shards \
             (index I of N is --shard (I+1)/N)",
            indexed.index - 1,
            indexed.count
        ))),
        (given, indexed) => Ok(given.or(indexed)),
    }
}

fn parse_shard(text: &str) -> Result<Shard, ConfigError> {
    let parsed = text
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((index, count)) if (1..=count).contains(&index) => Ok(Shard { index, count }),
        _ => Err(invalid_value(
            "--shard",
            format!("must be K/N with 1 <= K <= N, got {text:?}"),
        )),
    }
}

/// The metrics file, which must name a file (its temporary file goes beside it).
fn metrics_file(settings: &Settings) -> Result<Option<PathBuf>, ConfigError> {
    let Some(path) = &settings.metrics_file else {
        return Ok(None);
    };
    let names_a_file = path.file_name().is_some() && !path.to_string_lossy().ends_with('/');
    if !names_a_file {
        return Err(invalid_value(
            "--metrics-file",
            format!("must name a file, got {}", path.display()),
        ));
    }
    Ok(Some(path.clone()))
}

/// The Pushgateway: `http(s)://[user[:password]@]host[:port][/path]`. User info is taken
/// off the URL (percent-decoded) to be sent as basic authentication.
fn pushgateway(settings: &Settings) -> Result<Option<PushgatewaySettings>, ConfigError> {
    let Some(given) = settings.pushgateway.as_deref().map(str::trim) else {
        return Ok(None);
    };
    if given.is_empty() {
        return Ok(None);
    }
    let shown_url = redact::secret_url(given);
    let bad = |why: &str| invalid(format!("Pushgateway URL {shown_url}: {why}"));
    let (scheme, rest) = given
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let (user_info, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if shown_url == redact::UNREADABLE || rest.contains(['?', '#']) || rest.starts_with('/') {
        return Err(bad("must be http(s)://[USER:PASSWORD@]HOST[:PORT][/PATH]"));
    }
    let credentials = user_info
        .map(|info| {
            let (user, password) = info.split_once(':').unwrap_or((info, ""));
            let decoded = |part: &str| {
                percent_decoded(part)
                    .ok_or_else(|| bad("its user info is not valid percent-encoded UTF-8"))
            };
            Ok::<_, ConfigError>(Credentials {
                principal: decoded(user)?,
                secret: Secret(decoded(password)?),
            })
        })
        .transpose()?;
    Ok(Some(PushgatewaySettings {
        url: format!("{scheme}://{}", rest.trim_end_matches('/')),
        shown_url,
        credentials,
    }))
}

/// `%XX` escapes decoded; None when one is malformed or the result is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?)
                .ok()
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn redis(settings: &Settings, timeout: Duration) -> Result<RedisSettings, ConfigError> {
    let url = SecretSetting {
        value_name: "STATS_COLLECTOR_REDIS_URL (--redis-url)",
        file_name: "STATS_COLLECTOR_REDIS_URL_FILE (--redis-url-file)",
        value: &settings.redis_url,
        file: &settings.redis_url_file,
    }
    .read()?;
    let url = url.as_ref().map_or(DEFAULT_REDIS_URL, Secret::expose);
    let url = url.trim().to_string();
    let shown_url = redact::secret_url(&url);
    let sentinel = if sentinel::is_sentinel_url(&url) {
        let parsed = sentinel::parse(&url)
            .map_err(|why| invalid(format!("Redis URL {shown_url}: {why}")))?;
        Some(parsed)
    } else if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(invalid(format!(
            "Redis URL {shown_url} must start with redis://, rediss://, redis+sentinel:// \
             or rediss+sentinel://"
        )));
    } else {
        None
    };
    if settings.redis_pool_max == 0 || settings.redis_pool_min > settings.redis_pool_max {
        return Err(invalid(
            "Redis pool sizes must satisfy 0 <= STATS_COLLECTOR_REDIS_POOL_MIN <= \
             STATS_COLLECTOR_REDIS_POOL_MAX, and the maximum must be above 0",
        ));
    }
    if settings.state_ttl == 0 {
        return Err(invalid_value("--state-ttl", "must be above 0"));
    }
    Ok(RedisSettings {
        url: Secret(url),
        shown_url,
        sentinel,
        ca_file: settings.redis_ca_file.clone(),
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
        password: SecretSetting {
            value_name: "STATS_COLLECTOR_RABBITMQ_PWD (--rabbitmq-password)",
            file_name: "STATS_COLLECTOR_RABBITMQ_PWD_FILE (--rabbitmq-password-file)",
            value: &settings.rabbitmq_password,
            file: &settings.rabbitmq_password_file,
        }
        .read()?
        .unwrap_or_else(|| Secret("guest".into())),
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
    use std::collections::HashMap;

    fn config(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut argv = vec!["asgard-stats"];
        argv.extend_from_slice(args);
        argv.push("check");
        let cli = crate::cli::parse_from(argv).expect("arguments parse");
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
    fn sentinel_urls_are_accepted_and_shown_without_their_passwords() {
        let redis = |url: &str| {
            config(&["--master", "http://m:1", "--redis-url", url], &[])
                .map(|c| c.redis.shown_url)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            redis("redis+sentinel://:s3cret@s1:26379,s2/mymaster/1?sentinel_password=s3cret"),
            Ok("redis+sentinel://<redacted>@s1:26379,s2/mymaster/1?<redacted>".into())
        );
        assert!(redis("rediss+sentinel://s1/mymaster").is_ok());
        for bad in [
            "redis+sentinel://:s3cret@s1:26379",
            "redis+sentinel://:s3cret@s1:x/m",
            "redis+sentinel://s1/m?sentinel_pasword=s3cret",
            "sentinel://s1/m",
        ] {
            let why = redis(bad).expect_err(bad);
            assert!(why.starts_with("Redis URL "), "{why}");
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

    #[test]
    fn a_shard_index_of_a_count_is_the_shard_one_above_it() {
        let m = ["--master", "http://m:1"];
        let shard = |extra: &[&str], env: &[(&str, &str)]| {
            config(&[&m[..], extra].concat(), env).map(|c| c.shard)
        };
        let third = Some(Shard { index: 3, count: 4 });
        assert_eq!(
            shard(&["--shard-index", "2", "--shard-count", "4"], &[]).ok(),
            Some(third)
        );
        assert_eq!(shard(&["--shard", "3/4"], &[]).ok(), Some(third));
        assert_eq!(
            shard(
                &["--shard", "3/4", "--shard-index=2", "--shard-count=4"],
                &[]
            )
            .ok(),
            Some(third),
            "both forms may be given when they agree"
        );
        assert_eq!(
            shard(&["--shard-index", "0", "--shard-count", "1"], &[]).ok(),
            Some(Some(Shard { index: 1, count: 1 }))
        );
        assert_eq!(shard(&[], &[]).ok(), Some(None));
        for (bad, why) in [
            (&["--shard-index", "2"][..], "go together"),
            (&["--shard-count", "4"], "go together"),
            (
                &["--shard-index", "4", "--shard-count", "4"],
                "got index 4 of 4",
            ),
            (
                &["--shard-index", "0", "--shard-count", "0"],
                "must be above 0",
            ),
            (
                &["--shard", "2/4", "--shard-index", "2", "--shard-count", "4"],
                "different shards",
            ),
            (
                &["--shard", "3/5", "--shard-index", "2", "--shard-count", "4"],
                "different shards",
            ),
        ] {
            let error = shard(bad, &[]).expect_err("refused").to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }

    /// A file of this test's own holding `content`.
    fn secret_file(name: &str, content: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("asgard-config-test-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("write a secret file");
        path
    }

    #[test]
    fn secrets_come_from_files_without_one_trailing_newline() {
        let base = [
            "--master",
            "http://m:1",
            "--rabbitmq-host",
            "mq",
            "--routing-key",
            "rk",
            "--mesos-principal",
            "ops",
        ];
        let with = |extra: &[&str]| config(&[&base[..], extra].concat(), &[]);
        let mesos = secret_file("mesos", b"m3sos\r\n");
        let broker = secret_file("broker", b"pa55\n\n");
        let redis = secret_file("redis", b"redis://:s3cret@r:6379/1\n");
        let c = with(&[
            "--mesos-secret-file",
            mesos.to_str().expect("UTF-8"),
            "--rabbitmq-password-file",
            broker.to_str().expect("UTF-8"),
            "--redis-url-file",
            redis.to_str().expect("UTF-8"),
        ])
        .expect("valid");
        let credentials = c.http.credentials.as_ref().expect("credentials");
        assert_eq!(credentials.secret.expose(), "m3sos");
        let broker_settings = c.require_broker().expect("configured");
        assert_eq!(
            broker_settings.password.expose(),
            "pa55\n",
            "only one newline goes"
        );
        assert_eq!(c.redis.url.expose(), "redis://:s3cret@r:6379/1");
        assert_eq!(c.redis.shown_url, "redis://<redacted>@r:6379/1");
        // Without a value or a file, the defaults.
        let c = with(&["--mesos-secret", "x"]).expect("valid");
        assert_eq!(c.redis.url.expose(), DEFAULT_REDIS_URL);
        assert_eq!(c.require_broker().expect("set").password.expose(), "guest");

        let missing = std::env::temp_dir().join("asgard-config-test-no-such-file");
        let empty = secret_file("empty", b"\n");
        let binary = secret_file("binary", b"\xffs3cret");
        let folder = std::env::temp_dir();
        let [mesos_path, broker_path, redis_path, missing, empty_path, binary_path, folder] =
            [&mesos, &broker, &redis, &missing, &empty, &binary, &folder]
                .map(|p| p.to_str().expect("UTF-8").to_string());
        for (extra, why) in [
            (
                vec!["--mesos-secret", "x", "--mesos-secret-file", &mesos_path],
                "are both set",
            ),
            (
                vec![
                    "--mesos-secret",
                    "x",
                    "--rabbitmq-password",
                    "x",
                    "--rabbitmq-password-file",
                    &broker_path,
                ],
                "RABBITMQ_PWD (--rabbitmq-password) and STATS_COLLECTOR_RABBITMQ_PWD_FILE",
            ),
            (
                vec![
                    "--mesos-secret",
                    "x",
                    "--redis-url",
                    "redis://r",
                    "--redis-url-file",
                    &redis_path,
                ],
                "STATS_COLLECTOR_REDIS_URL (--redis-url) and",
            ),
            (
                vec!["--mesos-secret-file", &missing],
                "cannot be read: No such file",
            ),
            (vec!["--mesos-secret-file", &empty_path], "is empty"),
            (vec!["--mesos-secret-file", &binary_path], "is not UTF-8"),
            (vec!["--mesos-secret-file", &folder], "it is a folder"),
        ] {
            let error = with(&extra).expect_err("refused").to_string();
            assert!(error.contains(why), "{extra:?}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
        for file in [mesos, broker, redis, empty, binary] {
            let _ = std::fs::remove_file(file);
        }
    }

    #[test]
    fn secrets_given_as_flags_are_warned_about() {
        let warned = |args: &[&str]| {
            let mut argv = vec!["asgard-stats", "--master", "http://m:1"];
            argv.extend_from_slice(args);
            let cli = crate::cli::parse_from(argv).expect("arguments parse");
            Config::secret_flag_warnings(&cli.settings)
        };
        assert!(warned(&["check"]).is_empty());
        // Before and after the subcommand alike.
        let lines = warned(&["--mesos-secret", "x", "check", "--rabbitmq-password", "y"]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("--mesos-secret is given on the command line")
                && lines[0].contains("process list"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("STATS_COLLECTOR_RABBITMQ_PWD_FILE"),
            "{lines:?}"
        );
        // A URL is a secret only with credentials in it.
        assert!(warned(&["--redis-url", "redis://r:6379/0", "check"]).is_empty());
        assert_eq!(
            warned(&["--redis-url", "redis://:pw@r/0", "check"]).len(),
            1
        );
        assert!(warned(&["--pushgateway", "http://pg:9091", "check"]).is_empty());
        assert_eq!(
            warned(&["check", "--pushgateway", "http://u:pw@pg:9091"]).len(),
            1
        );
    }

    #[test]
    fn a_pushgateway_url_loses_its_user_info_to_basic_credentials() {
        let gateway = |url: &str| {
            config(&["--master", "http://m:1", "--pushgateway", url], &[])
                .map(|c| c.pushgateway.expect("configured"))
                .map_err(|e| e.to_string())
        };
        let plain = gateway("http://pg:9091/").expect("valid");
        assert_eq!(plain.url, "http://pg:9091");
        assert!(plain.credentials.is_none());
        let with = gateway("https://ops:p%40ss%2Fw0rd@pg.example:9091/prefix").expect("valid");
        assert_eq!(with.url, "https://pg.example:9091/prefix");
        assert_eq!(with.shown_url, "https://<redacted>@pg.example:9091/prefix");
        let credentials = with.credentials.expect("credentials");
        assert_eq!(credentials.principal, "ops");
        assert_eq!(credentials.secret.expose(), "p@ss/w0rd");
        for bad in [
            "pg:9091",
            "ftp://pg",
            "http://u:s3cret@pg/?x=1",
            "http://u:s3cret@",
            "http://u:%zzs3cret@pg",
            "http://pg:9091#s3cret",
        ] {
            let why = gateway(bad).expect_err(bad);
            assert!(why.starts_with("Pushgateway URL "), "{why}");
            assert!(!why.contains("s3cret"), "{why}");
        }
        assert!(
            config(&["--master", "http://m:1", "--pushgateway", ""], &[])
                .expect("valid")
                .pushgateway
                .is_none()
        );
    }
}

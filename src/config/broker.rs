//! The broker settings: the list of brokers (plain or `amqps://`), the login, the vhost,
//! the exchange and the routing key (`routing_key.rs`), refused when AMQP could not carry
//! them.

use super::error::{invalid, ConfigError};
use super::redact;
use super::routing_key::RoutingKey;
use super::secret::{Secret, SecretSetting};
use super::validated::seconds;
use crate::cli::Settings;
use crate::wire_limits::SHORT_STR_MAX;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub(crate) struct BrokerSettings {
    /// Tried in order; a pass uses the first that accepts the login.
    pub(crate) hosts: Vec<BrokerAddress>,
    /// PEM CA for `amqps://` brokers; the system's roots when None.
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) user: String,
    pub(crate) password: Secret,
    pub(crate) vhost: String,
    /// Where documents are published; `""`, the default exchange, routes a key to the
    /// queue of that name.
    pub(crate) exchange: String,
    /// The exchange's type, for `--declare-exchange`.
    pub(crate) exchange_type: String,
    /// Declare the exchange (durable, of `exchange_type`) at the start of a pass, rather
    /// than only check that it exists.
    pub(crate) declare_exchange: bool,
    pub(crate) routing_key: RoutingKey,
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

pub(super) fn broker(
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
    let routing_key =
        RoutingKey::parse("STATS_COLLECTOR_RABBITMQ_RK (--routing-key)", &routing_key)?;
    let exchange = short_string(
        "STATS_COLLECTOR_RABBITMQ_EXCHANGE (--exchange)",
        settings.exchange.clone(),
    )?;
    let exchange_type = short_string(
        "STATS_COLLECTOR_RABBITMQ_EXCHANGE_TYPE (--exchange-type)",
        settings.exchange_type.clone(),
    )?;
    if exchange_type.is_empty() {
        return Err(invalid(
            "STATS_COLLECTOR_RABBITMQ_EXCHANGE_TYPE (--exchange-type) is empty",
        ));
    }
    if exchange.is_empty() && settings.declare_exchange {
        return Err(invalid(
            "STATS_COLLECTOR_RABBITMQ_DECLARE_EXCHANGE (--declare-exchange) needs an exchange \
             (STATS_COLLECTOR_RABBITMQ_EXCHANGE): the default exchange cannot be declared",
        ));
    }
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
        exchange,
        exchange_type,
        declare_exchange: settings.declare_exchange,
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

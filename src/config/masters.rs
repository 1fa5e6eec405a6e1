//! How masters and agents are reached: the masters in the documented order, their URLs
//! checked, and the HTTP settings with Mesos's credentials.

use super::error::{invalid, ConfigError};
use super::redact;
use super::secret::{Secret, SecretSetting};
use crate::cli::Settings;
use std::path::PathBuf;
use std::time::Duration;

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

/// Masters in the documented order: flags, else the HOLLOWMAN variables, else one IP.
pub(super) fn masters(
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
            urls.push(master_ip_url(ip.trim())?);
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
    if rest.is_empty() || rest.contains('/') || rest.contains('@') || !is_host_port(rest) {
        return Err(invalid(format!(
            "master URL {shown} must be scheme://host[:port], without path or credentials"
        )));
    }
    Ok(url)
}

/// `STATS_COLLECTOR_MESOS_MASTER_IP`, the Python collector's one master: an address
/// without a port (Mesos's 5050 is added), an IPv6 one bracketed in the URL.
fn master_ip_url(ip: &str) -> Result<String, ConfigError> {
    if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(format!("http://[{ip}]:5050"));
    }
    let bracketed_v6 = ip.starts_with('[') && ip.ends_with(']') && is_host_port(ip);
    if bracketed_v6 {
        return Ok(format!("http://{ip}:5050"));
    }
    if ip.contains(':') || !is_host_port(ip) {
        return Err(invalid(format!(
            "STATS_COLLECTOR_MESOS_MASTER_IP must be an address without port or scheme \
             (port 5050 is added), not {:?}; a master at another port goes in \
             HOLLOWMAN_MESOS_ADDRESS as http://host:port",
            redact::url(ip)
        )));
    }
    Ok(format!("http://{ip}:5050"))
}

/// `host[:port]`: a name or IPv4 address, or an IPv6 address in brackets, then at most
/// one port of digits within 1 to 65535.
fn is_host_port(authority: &str) -> bool {
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, port)) => (v6.parse::<std::net::Ipv6Addr>().is_ok(), port),
            None => return false,
        },
        None => {
            let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
            let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            (!host.is_empty() && host.bytes().all(name), port)
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u16>().is_ok_and(|p| p > 0)
        }
    };
    host_ok && port_ok
}

pub(super) fn credentials(settings: &Settings) -> Result<Option<Credentials>, ConfigError> {
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

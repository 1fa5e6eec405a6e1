//! Where a collecting pass's metrics go: the metrics file, and the Pushgateway, its URL
//! split into address and basic credentials.

use super::error::{invalid, invalid_value, ConfigError};
use super::masters::Credentials;
use super::redact;
use super::secret::Secret;
use super::shard::{shard, Shard};
use super::validated::seconds;
use crate::cli::Settings;
use std::path::PathBuf;
use std::time::Duration;

/// Where a pass's metrics go and what they need besides its summary: the part of the
/// configuration the metrics file and the push read, so that a pass whose other settings
/// are wrong (exit 2) still reports its exit there.
#[derive(Clone, Debug, Default)]
pub(crate) struct MetricsDestination {
    pub(crate) metrics_file: Option<PathBuf>,
    pub(crate) pushgateway: Option<PushgatewaySettings>,
    pub(crate) shard: Option<Shard>,
    /// The pass's deadline, a gauge of the metrics.
    pub(crate) deadline: Duration,
    /// The push's timeouts: the connect and request timeouts of HTTP.
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
}

impl MetricsDestination {
    /// What can be read of the destination from settings that did not all validate: the
    /// metrics file when it names one, the Pushgateway when it, the shard (its group) and
    /// the timeouts (its requests') are valid. A deadline that is not shows as 0.
    pub(crate) fn best_effort(settings: &Settings) -> MetricsDestination {
        // Read as the configuration reads them; one it would refuse is no setting here.
        let seconds = |flag, value| seconds(flag, value).ok();
        let shard = shard(settings);
        let timeouts = seconds("--connect-timeout", settings.connect_timeout)
            .zip(seconds("--request-timeout", settings.request_timeout));
        let pushgateway = match (&shard, timeouts) {
            (Ok(_), Some(_)) => pushgateway(settings).ok().flatten(),
            _ => None,
        };
        let (connect_timeout, request_timeout) = timeouts.unwrap_or_default();
        MetricsDestination {
            metrics_file: metrics_file(settings).ok().flatten(),
            pushgateway,
            shard: shard.ok().flatten(),
            deadline: seconds("--deadline", settings.deadline).unwrap_or_default(),
            connect_timeout,
            request_timeout,
        }
    }

    /// Whether the metrics go anywhere.
    pub(crate) fn is_some(&self) -> bool {
        self.metrics_file.is_some() || self.pushgateway.is_some()
    }
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

/// The metrics file, which must name a file (its temporary file goes beside it).
pub(super) fn metrics_file(settings: &Settings) -> Result<Option<PathBuf>, ConfigError> {
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
pub(super) fn pushgateway(settings: &Settings) -> Result<Option<PushgatewaySettings>, ConfigError> {
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

//! The broker list: the first broker that accepts the login (TLS for `amqps://`), the
//! TLS settings, and why a broker or the whole list could not be used.

use crate::broker::amqp::transport::{self, TlsPeer};
use crate::broker::amqp::{Login, Session};
use crate::config::{BrokerAddress, BrokerSettings};
use rustls::ClientConfig;
use std::sync::Arc;

/// Why one broker of the list could not be used.
#[derive(Debug, thiserror::Error)]
#[error("broker {}", self.detail())]
pub(crate) struct ConnectError {
    address: String,
    vhost: String,
    message: String,
}

impl ConnectError {
    /// The address, vhost and what went wrong, without the leading "broker": for a report
    /// whose line already names the broker (`check`).
    pub(crate) fn detail(&self) -> String {
        format!(
            "{} (vhost {:?}): {}",
            self.address, self.vhost, self.message
        )
    }
}

/// No broker of the list could be used at the start of a pass; each with its reason.
#[derive(Debug, thiserror::Error)]
#[error("{}", self.describe())]
pub(crate) struct NoBroker(pub(super) Vec<ConnectError>);

impl NoBroker {
    fn describe(&self) -> String {
        match &self.0[..] {
            [only] => only.to_string(),
            all => {
                let each: Vec<String> = all.iter().map(ToString::to_string).collect();
                format!("no broker accepted the login: {}", each.join("; "))
            }
        }
    }
}

pub(super) fn connect_error(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    message: String,
) -> ConnectError {
    ConnectError {
        address: address.to_string(),
        vhost: settings.vhost.clone(),
        message,
    }
}

/// The TLS settings for the `amqps://` brokers of the list (None when there are none):
/// the CA file's certificates, or the system's roots.
pub(crate) fn tls_config(settings: &BrokerSettings) -> Result<Option<Arc<ClientConfig>>, String> {
    if !settings.hosts.iter().any(|h| h.tls) {
        return Ok(None);
    }
    transport::client_config(settings.ca_file.as_deref()).map(Some)
}

/// Logs in to the first broker of the list that accepts, saying which.
pub(super) fn open_first<'a>(
    settings: &'a BrokerSettings,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Session, &'a BrokerAddress), NoBroker> {
    let mut failures = Vec::new();
    for address in &settings.hosts {
        match open_session(settings, address, tls) {
            Ok((session, _)) => {
                log::info!(broker = address.to_string().as_str(); "broker {address}: logged in as {}", settings.user);
                return Ok((session, address));
            }
            Err(e) => {
                if settings.hosts.len() > 1 {
                    log::warn!("{e}");
                }
                failures.push(e);
            }
        }
    }
    Err(NoBroker(failures))
}

/// Connects (TLS for `amqps://`) within the connect timeout and logs in.
pub(super) fn open_session(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<(Session, Option<TlsPeer>), ConnectError> {
    let error = |message: String| connect_error(settings, address, message);
    // An amqps:// broker is never reached in clear text, whatever the caller passed.
    let tls = match (address.tls, tls) {
        (true, None) => return Err(error("no TLS settings for an amqps:// broker".into())),
        (true, tls) => tls,
        (false, _) => None,
    };
    let mut link = transport::connect(&address.host, address.port, tls, settings.connect_timeout)
        .map_err(|e| error(e.to_string()))?;
    let peer = link.peer.take();
    let login = Login {
        user: &settings.user,
        password: settings.password.expose(),
        vhost: &settings.vhost,
    };
    let session = Session::open(link, &login).map_err(|e| error(e.to_string()))?;
    Ok((session, peer))
}

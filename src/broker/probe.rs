//! For `check`: one broker of the list logged in to, and the routing key's queue looked up.

use crate::broker::amqp::transport::TlsPeer;
use crate::broker::amqp::{self, AmqpError};
use crate::broker::connection::{open_session, ConnectError};
use crate::config::{BrokerAddress, BrokerSettings};
use rustls::ClientConfig;
use std::sync::Arc;

/// What `check` learns from the broker once logged in: the queue that receives the
/// routing key (the default exchange routes a key to the queue of that name), or why none.
pub(crate) struct Probe {
    pub(crate) queue: Result<amqp::QueueState, String>,
    /// The TLS version and certificate subject of an `amqps://` broker.
    pub(crate) tls: Option<TlsPeer>,
}

/// For `check`: logs in to one broker of the list (an error when that fails) and looks
/// for the routing key's queue.
pub(crate) fn probe(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Probe, ConnectError> {
    let (mut session, tls) = open_session(settings, address, tls)?;
    let queue = session.declare_queue(&settings.routing_key, true);
    session.close();
    Ok(Probe {
        tls,
        queue: queue.map_err(|e| match e {
            AmqpError::ChannelClosed(why) => why,
            other => other.to_string(),
        }),
    })
}

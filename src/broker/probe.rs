//! For `check`: one broker of the list logged in to, and where the documents would go
//! looked up: the routing key's queue on the default exchange, or the exchange.

use crate::broker::amqp::transport::TlsPeer;
use crate::broker::amqp::{self, AmqpError};
use crate::broker::connection::{open_session, ConnectError};
use crate::config::{BrokerAddress, BrokerSettings};
use rustls::ClientConfig;
use std::sync::Arc;

/// What `check` learns from the broker once logged in.
pub(crate) struct Probe {
    pub(crate) route: Route,
    /// The TLS version and certificate subject of an `amqps://` broker.
    pub(crate) tls: Option<TlsPeer>,
}

/// Where the documents go, as far as AMQP tells a client.
pub(crate) enum Route {
    /// The default exchange and a static key: the queue of that name, or why none.
    Queue(Result<amqp::QueueState, String>),
    /// The default exchange and a key naming fields: a queue per key, none looked up.
    QueuePerKey,
    /// A named exchange: whether it exists (looked up, never declared). Its bindings are
    /// not visible over AMQP 0-9-1.
    Exchange(Result<(), String>),
}

/// For `check`: logs in to one broker of the list (an error when that fails) and looks
/// up where the documents go, declaring nothing.
pub(crate) fn probe(
    settings: &BrokerSettings,
    address: &BrokerAddress,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Probe, ConnectError> {
    let (mut session, tls) = open_session(settings, address, tls)?;
    let why = |e: AmqpError| match e {
        AmqpError::ChannelClosed(why) => why,
        other => other.to_string(),
    };
    let route = if !settings.exchange.is_empty() {
        let found = session.declare_exchange(&settings.exchange, &settings.exchange_type, true);
        Route::Exchange(found.map_err(why))
    } else if let Some(queue) = settings.routing_key.fixed() {
        Route::Queue(session.declare_queue(queue, true).map_err(why))
    } else {
        Route::QueuePerKey
    };
    session.close();
    Ok(Probe { tls, route })
}

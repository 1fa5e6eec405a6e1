//! Why talking to the broker failed.

use std::io;

/// Why talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AmqpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("login refused (check STATS_COLLECTOR_RABBITMQ_USER/_PWD): {0}")]
    LoginRefused(String),
    #[error("virtual host refused (check STATS_COLLECTOR_RABBITMQ_VHOST): {0}")]
    VhostRefused(String),
    #[error("the broker closed the connection: {0}")]
    ConnectionClosed(String),
    #[error("the broker closed the channel: {0}")]
    ChannelClosed(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

pub(super) fn protocol(message: impl Into<String>) -> AmqpError {
    AmqpError::Protocol(message.into())
}

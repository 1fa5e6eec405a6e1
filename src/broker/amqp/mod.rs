//! The AMQP 0-9-1 wire protocol, only as much as a publisher needs: the connection
//! handshake (PLAIN login, virtual host), one channel with publisher confirms, exchange
//! and queue declaration, encoding `basic.publish` and decoding what the broker sends back (acks,
//! nacks, returns, `connection.blocked`/`unblocked`, closes), over the plain or TLS
//! halves of `transport`.
//!
//! It keeps the protocol's limits itself: a short string over 255 bytes is refused, never
//! cut; a frame larger than the negotiated frame size is refused before it is read; the
//! set-up must finish by the link's deadline. It replaced amiquip, which handed every
//! frame of every message to an I/O thread of its own, which cost more CPU than
//! everything else a pass does. Here a whole batch of messages is encoded into one buffer
//! and written with one system call.
//!
//! `session`: the handshake, the exchange, the queue and the confirms, over `transport`; then the
//! connection split into a `writer` (messages encoded into one buffer) and a `reader`
//! (frames into events); `codec`: frames read and written, short strings refused over
//! their limit; `ids`: the methods' numbers; `wire_fuzzing`: what the fuzz target checks.

mod codec;
mod error;
mod ids;
mod reader;
mod session;
pub(crate) mod transport;
mod writer;

#[cfg(fuzzing)]
pub(crate) mod wire_fuzzing;

pub(crate) use error::AmqpError;
pub(crate) use reader::Event;
pub(crate) use session::{Login, QueueState, Session};
pub(crate) use writer::{Message, Writer};

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

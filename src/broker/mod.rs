//! Delivery of documents: the narrow [`Publisher`] interface the pass depends on, and its
//! RabbitMQ implementation (docs/publishing.md) over the wire protocol of
//! [`crate::broker::amqp`]: the broker list and its failover (`connection`), the handle
//! workers publish through (`amqp_publisher`), the thread that owns the connection
//! (`publisher_thread`), and `check`'s look at one broker (`probe`).

pub(crate) mod amqp;
mod amqp_publisher;
mod batch;
mod connection;
pub(crate) mod message_id;
pub(crate) mod printer;
mod probe;
mod publisher;
mod publisher_thread;

pub(crate) use amqp_publisher::AmqpPublisher;
pub(crate) use batch::Batch;
pub(crate) use connection::{tls_config, NoBroker};
pub(crate) use probe::{probe, Route};
pub(crate) use publisher::{DeliveryError, Publisher};

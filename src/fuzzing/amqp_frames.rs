//! `amqp_frames`: what a broker sends a publisher (`broker/amqp/`), any bytes; the
//! checks live beside the codec (`broker/amqp/wire_fuzzing.rs`), whose items are its own.

/// Frames read and turned into events until the bytes end or the connection would.
pub fn amqp_frames(bytes: &[u8]) {
    crate::broker::amqp::wire_fuzzing::read_broker_bytes(bytes);
}

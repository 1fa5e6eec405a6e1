//! `broker_certificate`: the subject of the broker's certificate (DER), as `check` shows
//! it (`broker/amqp/transport.rs`), any bytes; the check lives beside the AMQP codec
//! (`broker/amqp/wire_fuzzing.rs`), whose items are its own.

/// The subject read into words, never empty, never longer than its bytes allow.
pub fn broker_certificate(bytes: &[u8]) {
    crate::broker::amqp::wire_fuzzing::read_certificate_subject(bytes);
}

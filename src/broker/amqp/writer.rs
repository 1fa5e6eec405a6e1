//! The writing half: messages encoded (method, header and body frames) into one buffer
//! and sent in one write.

#[cfg(test)]
use super::codec::MIN_FRAME_MAX;
use super::codec::{
    Encoder, CHANNEL, FRAME_BODY, FRAME_HEADER, FRAME_OVERHEAD, PROPERTY_CONTENT_TYPE,
    PROPERTY_DELIVERY_MODE, PROPERTY_MESSAGE_ID,
};
use super::error::AmqpError;
use super::ids;
use super::session::close_arguments;
use super::transport::WriteHalf;
use std::io::{self, Write};

/// A persistent, mandatory `application/json` message: method, header and body frames,
/// all of them or, when one cannot be encoded, none.
pub(super) fn encode_message(
    out: &mut Vec<u8>,
    message: &Message,
    frame_max: usize,
) -> Result<(), AmqpError> {
    let start = out.len();
    let encoded = encode_frames(out, message, frame_max);
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

fn encode_frames(out: &mut Vec<u8>, message: &Message, frame_max: usize) -> Result<(), AmqpError> {
    Encoder::method(out, CHANNEL, ids::BASIC_PUBLISH, |m| {
        m.short(0);
        m.short_str(message.exchange);
        m.short_str(message.routing_key);
        // mandatory, not immediate
        m.octet(0b01);
    })?;
    Encoder::frame(out, FRAME_HEADER, CHANNEL, |m| {
        m.short(60);
        m.short(0);
        m.long_long(message.body.len() as u64);
        m.short(PROPERTY_CONTENT_TYPE | PROPERTY_DELIVERY_MODE | PROPERTY_MESSAGE_ID);
        m.short_str("application/json");
        m.octet(2);
        m.short_str(message.message_id);
    })?;
    let chunk = frame_max.saturating_sub(FRAME_OVERHEAD).max(1);
    for piece in message.body.chunks(chunk) {
        Encoder::frame(out, FRAME_BODY, CHANNEL, |m| m.bytes(piece))?;
    }
    Ok(())
}

/// The writing half: encodes messages into one buffer and sends it in one write.
pub(crate) struct Writer {
    pub(super) stream: WriteHalf,
    pub(super) buffer: Vec<u8>,
    pub(super) frame_max: usize,
}

/// What a published message carries besides its body.
pub(crate) struct Message<'a> {
    /// `""`, the default exchange, or the name of one.
    pub(crate) exchange: &'a str,
    pub(crate) routing_key: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) body: &'a [u8],
}

impl Writer {
    /// Adds a message to the pending buffer. One that cannot be encoded (a short string
    /// over 255 bytes) is refused and leaves the buffer as it was: it takes no delivery tag.
    pub(crate) fn push(&mut self, message: &Message) -> Result<(), AmqpError> {
        encode_message(&mut self.buffer, message, self.frame_max)
    }

    /// Writes everything pushed since the last flush.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(&self.buffer);
        self.buffer.clear();
        result
    }

    /// Asks the broker to close the connection; the reader sees its close-ok.
    pub(crate) fn close(&mut self) -> Result<(), AmqpError> {
        Encoder::method(&mut self.buffer, 0, ids::CONNECTION_CLOSE, close_arguments)?;
        Ok(self.flush()?)
    }

    /// Ends the connection at once, unblocking the reader.
    pub(crate) fn shutdown(&self) {
        self.stream.shutdown();
    }
}

#[cfg(test)]
impl Writer {
    /// A writer on any connected socket, for tests of what is built on it.
    pub(crate) fn over(stream: std::net::TcpStream) -> Writer {
        Writer {
            stream: WriteHalf::Plain(stream),
            buffer: Vec::new(),
            frame_max: MIN_FRAME_MAX as usize,
        }
    }
}

//! What the fuzz targets `amqp_frames` and `broker_certificate` check (`src/fuzzing/`):
//! any bytes a broker may send, read as frames the way the publisher's reader reads them
//! and turned into events, each method's arguments also read as the handshake reads
//! `connection.start` and `connection.tune`; and any bytes as the subject of the broker's
//! certificate, which `check` shows. Built only with `--cfg fuzzing`.

use super::codec::{
    read_frame_into, split_method, Encoder, Frame, FRAME_METHOD, MAX_FRAME_MAX, MIN_FRAME_MAX,
};
use super::reader::{Decoder, Event};
use super::session::{offers_plain_login, tuned_frame_max};
use super::transport::subject;
use crate::wire_limits::SHORT_STR_MAX;

/// Reads `bytes` frame after frame until they end, a frame is refused, or an event ends
/// the connection, as the reader thread does. What must hold: a frame is never larger
/// than the negotiated size, it re-encodes to the very bytes it was read from, a return
/// carries short strings only, and the handshake's frame size is within this client's.
pub(crate) fn read_broker_bytes(bytes: &[u8]) {
    let frame_max = MIN_FRAME_MAX as usize;
    let mut rest = bytes;
    let mut frame = Frame::default();
    let mut decoder = Decoder::default();
    while !rest.is_empty() {
        let before = rest;
        if read_frame_into(&mut rest, frame_max, &mut frame).is_err() {
            return;
        }
        assert!(frame.payload.len() <= frame_max, "a frame past frame_max");
        let read = &before[..before.len() - rest.len()];
        let mut again = Vec::new();
        let encoded = Encoder::frame(&mut again, frame.kind, frame.channel, |e| {
            e.bytes(&frame.payload)
        });
        assert!(
            encoded.is_ok() && again == read,
            "a frame re-encodes to other bytes"
        );
        if frame.kind == FRAME_METHOD {
            read_as_handshake(&frame.payload);
        }
        match decoder.on_frame(&frame) {
            Ok(Some(Event::Closed(_))) | Err(_) => return,
            Ok(Some(Event::Returned {
                message_id,
                routing_key,
                ..
            })) => {
                let id = message_id.unwrap_or_default();
                for text in [id, routing_key] {
                    assert!(text.chars().count() <= SHORT_STR_MAX, "a long short string");
                }
            }
            Ok(_) => {}
        }
    }
}

/// A method read as `connection.start` and as `connection.tune`: refused or read, and a
/// frame size always within [`MIN_FRAME_MAX`, `MAX_FRAME_MAX`].
fn read_as_handshake(payload: &[u8]) {
    let Ok((_, args)) = split_method(payload) else {
        return;
    };
    let _ = offers_plain_login(args);
    if let Ok(size) = tuned_frame_max(args) {
        assert!(
            (MIN_FRAME_MAX..=MAX_FRAME_MAX).contains(&size),
            "frame size {size}"
        );
    }
}

/// A certificate's subject in words: either none, or beginning with an attribute it knows
/// by name (a value may itself hold `, ` or `=`, so only the first name is sure), and
/// never longer than the subject's own bytes allow (a byte that is not UTF-8 shows as one
/// replacement character of 3 bytes).
pub(crate) fn read_certificate_subject(der: &[u8]) {
    let shown = subject(der);
    if shown == "(no subject names)" {
        return;
    }
    let named = ["CN=", "C=", "L=", "ST=", "O=", "OU="];
    assert!(named.iter().any(|n| shown.starts_with(n)), "{shown:?}");
    assert!(
        shown.len() <= 3 * der.len() + 32,
        "{} bytes shown of {}",
        shown.len(),
        der.len()
    );
}

//! Frames read off the wire (bounded by the frame size) and written into an output
//! buffer: method arguments read in order, values encoded, a short string over
//! [`SHORT_STR_MAX`] refused, never cut.

use super::error::{protocol, AmqpError};
use crate::wire_limits::SHORT_STR_MAX;
use std::io::Read;

pub(super) const FRAME_METHOD: u8 = 1;
pub(super) const FRAME_HEADER: u8 = 2;
pub(super) const FRAME_BODY: u8 = 3;
pub(super) const FRAME_HEARTBEAT: u8 = 8;
pub(super) const FRAME_END: u8 = 0xCE;
/// Every frame's type, channel and size, and its end marker.
pub(super) const FRAME_OVERHEAD: usize = 8;
/// The channel all publishing happens on (0 is the connection's own).
pub(crate) const CHANNEL: u16 = 1;
/// The largest frame we accept before the broker tells its own limit.
pub(super) const MIN_FRAME_MAX: u32 = 4096;
/// The largest frame size we agree to, whatever the broker offers: every frame read is
/// allocated whole, so this bounds what one frame from the broker can cost.
pub(super) const MAX_FRAME_MAX: u32 = 1024 * 1024;

/// Basic content properties used: content-type, delivery-mode, message-id.
pub(super) const PROPERTY_CONTENT_TYPE: u16 = 1 << 15;
pub(super) const PROPERTY_DELIVERY_MODE: u16 = 1 << 12;
pub(super) const PROPERTY_MESSAGE_ID: u16 = 1 << 7;

/// One frame off the wire.
#[derive(Default)]
pub(super) struct Frame {
    pub(super) kind: u8,
    pub(super) channel: u16,
    pub(super) payload: Vec<u8>,
}

/// Reads one frame; a frame announcing more than `frame_max` bytes is refused before
/// anything is allocated for it (the broker never sends one).
pub(super) fn read_frame(reader: &mut impl Read, frame_max: usize) -> Result<Frame, AmqpError> {
    let mut frame = Frame::default();
    read_frame_into(reader, frame_max, &mut frame)?;
    Ok(frame)
}

/// Reads one frame into `frame`, reusing its payload's buffer (which grows to the largest
/// frame read so far, at most `frame_max`).
pub(super) fn read_frame_into(
    reader: &mut impl Read,
    frame_max: usize,
    frame: &mut Frame,
) -> Result<(), AmqpError> {
    let mut head = [0u8; 7];
    reader.read_exact(&mut head)?;
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    if size > frame_max {
        return Err(protocol(format!(
            "frame of {size} bytes, over the frame size limit of {frame_max}"
        )));
    }
    frame.kind = head[0];
    frame.channel = u16::from_be_bytes([head[1], head[2]]);
    frame.payload.clear();
    frame.payload.resize(size + 1, 0);
    reader.read_exact(&mut frame.payload)?;
    if frame.payload.pop() != Some(FRAME_END) {
        return Err(protocol("frame without its end marker"));
    }
    Ok(())
}

pub(super) fn split_method(payload: &[u8]) -> Result<((u16, u16), &[u8]), AmqpError> {
    if payload.len() < 4 {
        return Err(protocol("method frame too short"));
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    Ok(((class, method), &payload[4..]))
}

pub(super) fn close_reason(args: &[u8]) -> Result<String, AmqpError> {
    let mut a = Args::new(args);
    let code = a.short()?;
    let text = a.short_str()?;
    Ok(format!("{code} {text}"))
}

/// What the publisher needs from a content header.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) body_size: u64,
    pub(super) message_id: Option<String>,
}

pub(super) fn parse_header(payload: &[u8]) -> Result<Header, AmqpError> {
    let mut a = Args::new(payload);
    a.short()?;
    a.short()?;
    let body_size = a.long_long()?;
    let flags = a.short()?;
    let mut message_id = None;
    // Properties appear in flag order, from bit 15 down; read up to message-id (bit 7).
    for bit in (7..=15).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        match bit {
            13 => {
                a.table()?;
            }
            12 | 11 => {
                a.octet()?;
            }
            7 => message_id = Some(a.short_str()?),
            _ => {
                a.short_str()?;
            }
        }
    }
    Ok(Header {
        body_size,
        message_id,
    })
}

/// Reads method arguments in order.
pub(super) struct Args<'a> {
    data: &'a [u8],
}

impl<'a> Args<'a> {
    pub(super) fn new(data: &'a [u8]) -> Args<'a> {
        Args { data }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], AmqpError> {
        if self.data.len() < n {
            return Err(protocol("arguments cut short"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub(super) fn octet(&mut self) -> Result<u8, AmqpError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn short(&mut self) -> Result<u16, AmqpError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(super) fn long(&mut self) -> Result<u32, AmqpError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn long_long(&mut self) -> Result<u64, AmqpError> {
        let b = self.take(8)?;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(b);
        Ok(u64::from_be_bytes(bytes))
    }

    pub(super) fn short_str(&mut self) -> Result<String, AmqpError> {
        let len = usize::from(self.octet()?);
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    pub(super) fn long_str(&mut self) -> Result<&'a [u8], AmqpError> {
        let len = self.long()? as usize;
        self.take(len)
    }

    /// Skips a field table (its contents are not needed here).
    pub(super) fn table(&mut self) -> Result<(), AmqpError> {
        self.long_str().map(drop)
    }
}

/// Writes frames straight into an output buffer. A value the protocol cannot carry is
/// refused, never cut: the frame is then dropped whole and `frame` returns why.
pub(super) struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// The first value that could not be encoded.
    refused: Option<String>,
}

impl Encoder<'_> {
    /// Appends one frame; the payload is written by `fill` and its size patched in.
    pub(super) fn frame(
        out: &mut Vec<u8>,
        kind: u8,
        channel: u16,
        fill: impl FnOnce(&mut Encoder),
    ) -> Result<(), AmqpError> {
        let start = out.len();
        out.push(kind);
        out.extend_from_slice(&channel.to_be_bytes());
        let size_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let mut encoder = Encoder {
            out: &mut *out,
            refused: None,
        };
        fill(&mut encoder);
        let refused = encoder.refused;
        let size = u32::try_from(out.len() - size_at - 4);
        match (refused, size) {
            (None, Ok(size)) => {
                out[size_at..size_at + 4].copy_from_slice(&size.to_be_bytes());
                out.push(FRAME_END);
                Ok(())
            }
            (refused, _) => {
                out.truncate(start);
                let why = refused.unwrap_or_else(|| "a frame over 4 GiB".into());
                Err(AmqpError::Encode(why))
            }
        }
    }

    pub(super) fn method(
        out: &mut Vec<u8>,
        channel: u16,
        (class, method): (u16, u16),
        args: impl FnOnce(&mut Encoder),
    ) -> Result<(), AmqpError> {
        Encoder::frame(out, FRAME_METHOD, channel, |m| {
            m.short(class);
            m.short(method);
            args(m);
        })
    }

    pub(super) fn refuse(&mut self, why: String) {
        self.refused.get_or_insert(why);
    }

    pub(super) fn octet(&mut self, v: u8) {
        self.out.push(v);
    }
    pub(super) fn short(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn long(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn long_long(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    pub(super) fn bytes(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
    }
    /// A short string: at most [`SHORT_STR_MAX`] bytes, refused beyond (cutting it would
    /// change its meaning, and could split a UTF-8 character).
    pub(super) fn short_str(&mut self, v: &str) {
        match u8::try_from(v.len()) {
            Ok(len) => {
                self.octet(len);
                self.bytes(v.as_bytes());
            }
            Err(_) => {
                let start: String = v.chars().take(40).collect();
                self.refuse(format!(
                    "a short string of {} bytes (AMQP carries at most {SHORT_STR_MAX}): {start:?}...",
                    v.len()
                ));
            }
        }
    }
    pub(super) fn long_str(&mut self, v: &[u8]) {
        match u32::try_from(v.len()) {
            Ok(len) => {
                self.long(len);
                self.bytes(v);
            }
            Err(_) => self.refuse(format!("a long string of {} bytes", v.len())),
        }
    }
    pub(super) fn empty_table(&mut self) {
        self.long(0);
    }

    /// Encodes `fill` into a buffer of its own (a table's contents), keeping its refusal.
    pub(super) fn nested(&mut self, fill: impl FnOnce(&mut Encoder)) -> Vec<u8> {
        let mut out = Vec::new();
        let mut inner = Encoder {
            out: &mut out,
            refused: None,
        };
        fill(&mut inner);
        if let Some(why) = inner.refused {
            self.refuse(why);
        }
        out
    }

    /// Who we are, and that a refused login should be told rather than hung up on.
    pub(super) fn client_properties(&mut self) {
        let table = self.nested(|t| {
            t.short_str("product");
            t.octet(b'S');
            t.long_str(b"asgard-stats");
            t.short_str("version");
            t.octet(b'S');
            t.long_str(env!("CARGO_PKG_VERSION").as_bytes());
            t.short_str("capabilities");
            t.octet(b'F');
            let capabilities = t.nested(|c| {
                for name in [
                    "authentication_failure_close",
                    "publisher_confirms",
                    "connection.blocked",
                ] {
                    c.short_str(name);
                    c.octet(b't');
                    c.octet(1);
                }
            });
            t.long_str(&capabilities);
        });
        self.long_str(&table);
    }
}

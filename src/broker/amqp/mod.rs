//! The AMQP 0-9-1 wire protocol, only as much as a publisher needs: the connection
//! handshake (PLAIN login, virtual host), one channel with publisher confirms, queue
//! declaration, encoding `basic.publish` and decoding what the broker sends back (acks,
//! nacks, returns, `connection.blocked`/`unblocked`, closes), over the plain or TLS
//! halves of `transport`.
//!
//! It keeps the protocol's limits itself: a short string over 255 bytes is refused, never
//! cut; a frame larger than the negotiated frame size is refused before it is read; the
//! set-up must finish by the link's deadline. It replaced amiquip, which handed every
//! frame of every message to an I/O thread of its own, which cost more CPU than
//! everything else a pass does. Here a whole batch of messages is encoded into one buffer
//! and written with one system call.

pub(crate) mod transport;

use std::io::{self, BufReader, Read, Write};
use std::time::Instant;
use transport::{Link, ReadHalf, WriteHalf};

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
/// Every frame's type, channel and size, and its end marker.
const FRAME_OVERHEAD: usize = 8;
/// The channel all publishing happens on (0 is the connection's own).
pub(crate) const CHANNEL: u16 = 1;
/// The largest frame we accept before the broker tells its own limit.
const MIN_FRAME_MAX: u32 = 4096;
/// The largest frame size we agree to, whatever the broker offers: every frame read is
/// allocated whole, so this bounds what one frame from the broker can cost.
const MAX_FRAME_MAX: u32 = 1024 * 1024;
/// The longest short string (routing key, vhost, message id...) the protocol carries.
pub(crate) const SHORT_STR_MAX: usize = 255;

/// (class, method) ids of the methods used here.
mod ids {
    pub(super) const CONNECTION_START: (u16, u16) = (10, 10);
    pub(super) const CONNECTION_START_OK: (u16, u16) = (10, 11);
    pub(super) const CONNECTION_TUNE: (u16, u16) = (10, 30);
    pub(super) const CONNECTION_TUNE_OK: (u16, u16) = (10, 31);
    pub(super) const CONNECTION_OPEN: (u16, u16) = (10, 40);
    pub(super) const CONNECTION_OPEN_OK: (u16, u16) = (10, 41);
    pub(super) const CONNECTION_CLOSE: (u16, u16) = (10, 50);
    pub(super) const CONNECTION_CLOSE_OK: (u16, u16) = (10, 51);
    pub(super) const CONNECTION_BLOCKED: (u16, u16) = (10, 60);
    pub(super) const CONNECTION_UNBLOCKED: (u16, u16) = (10, 61);
    pub(super) const CHANNEL_OPEN: (u16, u16) = (20, 10);
    pub(super) const CHANNEL_OPEN_OK: (u16, u16) = (20, 11);
    pub(super) const CHANNEL_CLOSE: (u16, u16) = (20, 40);
    pub(super) const QUEUE_DECLARE: (u16, u16) = (50, 10);
    pub(super) const QUEUE_DECLARE_OK: (u16, u16) = (50, 11);
    pub(super) const BASIC_PUBLISH: (u16, u16) = (60, 40);
    pub(super) const BASIC_RETURN: (u16, u16) = (60, 50);
    pub(super) const BASIC_ACK: (u16, u16) = (60, 80);
    pub(super) const BASIC_NACK: (u16, u16) = (60, 120);
    pub(super) const CONFIRM_SELECT: (u16, u16) = (85, 10);
    pub(super) const CONFIRM_SELECT_OK: (u16, u16) = (85, 11);
}

/// Basic content properties used: content-type, delivery-mode, message-id.
const PROPERTY_CONTENT_TYPE: u16 = 1 << 15;
const PROPERTY_DELIVERY_MODE: u16 = 1 << 12;
const PROPERTY_MESSAGE_ID: u16 = 1 << 7;

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

fn protocol(message: impl Into<String>) -> AmqpError {
    AmqpError::Protocol(message.into())
}

/// Who to log in as, where.
pub(crate) struct Login<'a> {
    pub(crate) user: &'a str,
    pub(crate) password: &'a str,
    pub(crate) vhost: &'a str,
}

/// An open connection with channel [`CHANNEL`] open, before it is split for publishing.
pub(crate) struct Session {
    stream: WriteHalf,
    reader: BufReader<ReadHalf>,
    frame_max: usize,
    /// When the set-up must be done (`Link::ready_by`): every answer awaited before the
    /// split is awaited until then at most, however much else the broker sends.
    ready_by: Instant,
}

/// A queue's state as the broker declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueState {
    pub(crate) messages: u32,
    pub(crate) consumers: u32,
}

impl Session {
    /// Logs in on a connected stream and opens the channel. The stream's timeouts
    /// bound every read and write of the handshake.
    pub(crate) fn open(link: Link, login: &Login) -> Result<Session, AmqpError> {
        let mut session = Session {
            reader: BufReader::with_capacity(64 * 1024, link.reader),
            stream: link.writer,
            frame_max: MIN_FRAME_MAX as usize,
            ready_by: link.ready_by,
        };
        session.stream.write_all(b"AMQP\x00\x00\x09\x01")?;
        session.handshake(login)?;
        session.send_method(CHANNEL, ids::CHANNEL_OPEN, |m| m.short_str(""))?;
        session.expect(CHANNEL, ids::CHANNEL_OPEN_OK)?;
        Ok(session)
    }

    fn handshake(&mut self, login: &Login) -> Result<(), AmqpError> {
        let start = self.expect(0, ids::CONNECTION_START).map_err(|e| match e {
            // A broker that drops a client mid-handshake tells nothing more.
            AmqpError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                protocol("the server closed the connection before the handshake")
            }
            other => other,
        })?;
        let mechanisms = {
            let mut args = Args::new(&start);
            args.octet()?;
            args.octet()?;
            args.table()?;
            String::from_utf8_lossy(args.long_str()?).into_owned()
        };
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            return Err(protocol(format!(
                "the broker offers no PLAIN login ({mechanisms})"
            )));
        }
        let response = format!("\0{}\0{}", login.user, login.password);
        self.send_method(0, ids::CONNECTION_START_OK, |m| {
            start_ok_arguments(m, response.as_bytes())
        })?;
        let tune = match self.expect(0, ids::CONNECTION_TUNE) {
            // Brokers without authentication_failure_close just hang up on a bad login.
            Err(AmqpError::Io(e)) if is_hang_up(&e) => {
                return Err(AmqpError::LoginRefused(
                    "the broker closed the connection".into(),
                ))
            }
            Err(AmqpError::ConnectionClosed(why)) if why.starts_with("403") => {
                return Err(AmqpError::LoginRefused(why))
            }
            other => other?,
        };
        let frame_max = {
            let mut args = Args::new(&tune);
            args.short()?;
            args.long()?
        };
        let frame_max = match frame_max {
            0 => 128 * 1024,
            n => n.clamp(MIN_FRAME_MAX, MAX_FRAME_MAX),
        };
        self.frame_max = frame_max as usize;
        self.send_method(0, ids::CONNECTION_TUNE_OK, |m| {
            tune_ok_arguments(m, frame_max)
        })?;
        self.send_method(0, ids::CONNECTION_OPEN, |m| open_arguments(m, login.vhost))?;
        match self.expect(0, ids::CONNECTION_OPEN_OK) {
            Err(AmqpError::ConnectionClosed(why))
                if why.starts_with("530") || why.starts_with("403") =>
            {
                Err(AmqpError::VhostRefused(why))
            }
            other => other.map(drop),
        }
    }

    /// Declares (or, `passive`, only looks up) a durable queue.
    pub(crate) fn declare_queue(
        &mut self,
        name: &str,
        passive: bool,
    ) -> Result<QueueState, AmqpError> {
        self.send_method(CHANNEL, ids::QUEUE_DECLARE, |m| {
            declare_arguments(m, name, passive)
        })?;
        let ok = self.expect(CHANNEL, ids::QUEUE_DECLARE_OK)?;
        let mut args = Args::new(&ok);
        args.short_str()?;
        Ok(QueueState {
            messages: args.long()?,
            consumers: args.long()?,
        })
    }

    /// Turns publisher confirms on: from now on the broker acks every message.
    pub(crate) fn enable_confirms(&mut self) -> Result<(), AmqpError> {
        self.send_method(CHANNEL, ids::CONFIRM_SELECT, |m| m.octet(0))?;
        self.expect(CHANNEL, ids::CONFIRM_SELECT_OK).map(drop)
    }

    /// Splits the session into the writing half and the reading half, for two threads.
    /// Reads then block until the broker sends something (no timeout); writes keep one.
    pub(crate) fn split(self) -> Result<(Writer, Reader), AmqpError> {
        self.stream.set_read_timeout(None)?;
        let writer = Writer {
            stream: self.stream,
            buffer: Vec::with_capacity(64 * 1024),
            frame_max: self.frame_max,
        };
        Ok((
            writer,
            Reader {
                reader: self.reader,
                frame_max: self.frame_max,
                frame: Frame::default(),
                decoder: Decoder::default(),
            },
        ))
    }

    /// Closes the connection politely (used when the session is not split).
    pub(crate) fn close(mut self) {
        if self.send_close().is_ok() {
            let _ = self.expect(0, ids::CONNECTION_CLOSE_OK);
        }
    }

    fn send_close(&mut self) -> Result<(), AmqpError> {
        self.send_method(0, ids::CONNECTION_CLOSE, close_arguments)
    }

    fn send_method(
        &mut self,
        channel: u16,
        id: (u16, u16),
        args: impl FnOnce(&mut Encoder),
    ) -> Result<(), AmqpError> {
        let mut buffer = Vec::with_capacity(256);
        Encoder::method(&mut buffer, channel, id, args)?;
        self.stream.write_all(&buffer)?;
        Ok(())
    }

    /// Reads until the method `id` arrives on `channel`; a close of the connection or
    /// the channel is an error carrying the broker's reason.
    fn expect(&mut self, channel: u16, id: (u16, u16)) -> Result<Vec<u8>, AmqpError> {
        loop {
            if Instant::now() > self.ready_by {
                return Err(AmqpError::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the broker did not finish the set-up in time",
                )));
            }
            let frame = read_frame(&mut self.reader, self.frame_max)?;
            if frame.kind != FRAME_METHOD {
                continue;
            }
            let (got, args) = split_method(&frame.payload)?;
            if got == ids::CONNECTION_CLOSE {
                let why = close_reason(args)?;
                // Acknowledge, as the protocol asks; the broker hangs up either way.
                let mut buffer = Vec::new();
                if Encoder::method(&mut buffer, 0, ids::CONNECTION_CLOSE_OK, |_| {}).is_ok() {
                    let _ = self.stream.write_all(&buffer);
                }
                return Err(AmqpError::ConnectionClosed(why));
            }
            if got == ids::CHANNEL_CLOSE {
                return Err(AmqpError::ChannelClosed(close_reason(args)?));
            }
            if frame.channel == channel && got == id {
                return Ok(args.to_vec());
            }
        }
    }
}

fn is_hang_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

fn close_arguments(m: &mut Encoder) {
    m.short(200);
    m.short_str("pass done");
    m.short(0);
    m.short(0);
}

fn start_ok_arguments(m: &mut Encoder, response: &[u8]) {
    m.client_properties();
    m.short_str("PLAIN");
    m.long_str(response);
    m.short_str("en_US");
}

fn tune_ok_arguments(m: &mut Encoder, frame_max: u32) {
    // One channel is all a publisher uses.
    m.short(1);
    m.long(frame_max);
    // No heartbeats: a pass is shorter than any sensible heartbeat interval, and a silent
    // broker is caught by the confirm timeout.
    m.short(0);
}

fn open_arguments(m: &mut Encoder, vhost: &str) {
    m.short_str(vhost);
    m.short_str("");
    m.octet(0);
}

fn declare_arguments(m: &mut Encoder, name: &str, passive: bool) {
    m.short(0);
    m.short_str(name);
    // passive, durable, exclusive, auto-delete, no-wait
    m.octet(u8::from(passive) | 0b10);
    m.empty_table();
}

/// A persistent, mandatory `application/json` message: method, header and body frames,
/// all of them or, when one cannot be encoded, none.
fn encode_message(out: &mut Vec<u8>, message: &Message, frame_max: usize) -> Result<(), AmqpError> {
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
        m.short_str("");
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
    stream: WriteHalf,
    buffer: Vec<u8>,
    frame_max: usize,
}

/// What a published message carries besides its body.
pub(crate) struct Message<'a> {
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

/// What the broker tells a publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Messages up to `tag` (or only `tag`) are safely with the broker, or rejected.
    Confirm {
        tag: u64,
        multiple: bool,
        ack: bool,
    },
    /// A mandatory message could not be routed; its ack follows.
    Returned {
        message_id: Option<String>,
        routing_key: String,
        reason: String,
    },
    /// The broker is short of resources and stops reading from publishers.
    Blocked(String),
    Unblocked,
    /// The connection or channel ended; nothing more will come.
    Closed(String),
}

/// The reading half: turns frames into [`Event`]s.
pub(crate) struct Reader {
    reader: BufReader<ReadHalf>,
    frame_max: usize,
    /// The last frame read; its buffer is reused, so the acks of a pass allocate nothing.
    frame: Frame,
    decoder: Decoder,
}

/// Turns frames into events, whatever bytes they hold.
#[derive(Default)]
struct Decoder {
    /// A return whose header (with the message id) has not arrived yet.
    content: Option<PendingReturn>,
}

struct PendingReturn {
    routing_key: String,
    reason: String,
    message_id: Option<String>,
    body_left: u64,
    header_seen: bool,
}

impl Reader {
    /// Blocks until the next event. After `Closed` the reader is done.
    pub(crate) fn next_event(&mut self) -> Event {
        loop {
            match self.read_event() {
                Ok(Some(event)) => return event,
                Ok(None) => continue,
                Err(e) => return Event::Closed(e.to_string()),
            }
        }
    }

    /// Blocks until the next event, then also takes every event already received: the
    /// broker acks in bursts, and handing them over one by one would wake the publisher
    /// thread once per message. The batch ends with `Closed` if the connection ended.
    pub(crate) fn next_events(&mut self) -> Vec<Event> {
        let mut events = vec![self.next_event()];
        while !matches!(events.last(), Some(Event::Closed(_))) && !self.reader.buffer().is_empty() {
            events.push(self.next_event());
        }
        events
    }

    fn read_event(&mut self) -> Result<Option<Event>, AmqpError> {
        read_frame_into(&mut self.reader, self.frame_max, &mut self.frame)?;
        self.decoder.on_frame(&self.frame)
    }
}

impl Decoder {
    fn on_frame(&mut self, frame: &Frame) -> Result<Option<Event>, AmqpError> {
        match frame.kind {
            FRAME_METHOD => self.on_method(frame),
            FRAME_HEADER => Ok(self.on_header(&frame.payload)?),
            FRAME_BODY => Ok(self.on_body(frame.payload.len() as u64)),
            FRAME_HEARTBEAT => Ok(None),
            other => Err(protocol(format!("unknown frame type {other}"))),
        }
    }

    fn on_method(&mut self, frame: &Frame) -> Result<Option<Event>, AmqpError> {
        // A returned message's header and body follow its basic.return at once. A method
        // in between would leave the return unfinished and let its ack count as a
        // delivery: the connection is given up instead, so nothing pending counts.
        if self.content.is_some() {
            return Err(protocol("a method inside a returned message's content"));
        }
        let (id, args) = split_method(&frame.payload)?;
        let mut a = Args::new(args);
        let event = match id {
            ids::BASIC_ACK | ids::BASIC_NACK => Event::Confirm {
                tag: a.long_long()?,
                multiple: a.octet()? & 1 == 1,
                ack: id == ids::BASIC_ACK,
            },
            ids::BASIC_RETURN => {
                let code = a.short()?;
                let text = a.short_str()?;
                a.short_str()?;
                let routing_key = a.short_str()?;
                self.content = Some(PendingReturn {
                    routing_key,
                    reason: format!("{code} {text}"),
                    message_id: None,
                    body_left: 0,
                    header_seen: false,
                });
                return Ok(None);
            }
            ids::CONNECTION_BLOCKED => Event::Blocked(a.short_str()?),
            ids::CONNECTION_UNBLOCKED => Event::Unblocked,
            ids::CONNECTION_CLOSE => Event::Closed(format!(
                "the broker closed the connection: {}",
                close_reason(args)?
            )),
            ids::CONNECTION_CLOSE_OK => Event::Closed("closed".into()),
            ids::CHANNEL_CLOSE => Event::Closed(format!(
                "the broker closed the channel: {}",
                close_reason(args)?
            )),
            _ => return Ok(None),
        };
        Ok(Some(event))
    }

    fn on_header(&mut self, payload: &[u8]) -> Result<Option<Event>, AmqpError> {
        let Some(pending) = self.content.as_mut() else {
            return Ok(None);
        };
        let header = parse_header(payload)?;
        pending.message_id = header.message_id;
        pending.body_left = header.body_size;
        pending.header_seen = true;
        Ok(self.finish_return())
    }

    fn on_body(&mut self, size: u64) -> Option<Event> {
        if let Some(pending) = self.content.as_mut() {
            pending.body_left = pending.body_left.saturating_sub(size);
        }
        self.finish_return()
    }

    /// A return is complete once its header and whole body have arrived.
    fn finish_return(&mut self) -> Option<Event> {
        let done = self
            .content
            .as_ref()
            .is_some_and(|p| p.header_seen && p.body_left == 0);
        if !done {
            return None;
        }
        let p = self.content.take()?;
        Some(Event::Returned {
            message_id: p.message_id,
            routing_key: p.routing_key,
            reason: p.reason,
        })
    }
}

/// One frame off the wire.
#[derive(Default)]
struct Frame {
    kind: u8,
    channel: u16,
    payload: Vec<u8>,
}

/// Reads one frame; a frame announcing more than `frame_max` bytes is refused before
/// anything is allocated for it (the broker never sends one).
fn read_frame(reader: &mut impl Read, frame_max: usize) -> Result<Frame, AmqpError> {
    let mut frame = Frame::default();
    read_frame_into(reader, frame_max, &mut frame)?;
    Ok(frame)
}

/// Reads one frame into `frame`, reusing its payload's buffer (which grows to the largest
/// frame read so far, at most `frame_max`).
fn read_frame_into(
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

fn split_method(payload: &[u8]) -> Result<((u16, u16), &[u8]), AmqpError> {
    if payload.len() < 4 {
        return Err(protocol("method frame too short"));
    }
    let class = u16::from_be_bytes([payload[0], payload[1]]);
    let method = u16::from_be_bytes([payload[2], payload[3]]);
    Ok(((class, method), &payload[4..]))
}

fn close_reason(args: &[u8]) -> Result<String, AmqpError> {
    let mut a = Args::new(args);
    let code = a.short()?;
    let text = a.short_str()?;
    Ok(format!("{code} {text}"))
}

/// What the publisher needs from a content header.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    body_size: u64,
    message_id: Option<String>,
}

fn parse_header(payload: &[u8]) -> Result<Header, AmqpError> {
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
struct Args<'a> {
    data: &'a [u8],
}

impl<'a> Args<'a> {
    fn new(data: &'a [u8]) -> Args<'a> {
        Args { data }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], AmqpError> {
        if self.data.len() < n {
            return Err(protocol("arguments cut short"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn octet(&mut self) -> Result<u8, AmqpError> {
        Ok(self.take(1)?[0])
    }

    fn short(&mut self) -> Result<u16, AmqpError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn long(&mut self) -> Result<u32, AmqpError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn long_long(&mut self) -> Result<u64, AmqpError> {
        let b = self.take(8)?;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(b);
        Ok(u64::from_be_bytes(bytes))
    }

    fn short_str(&mut self) -> Result<String, AmqpError> {
        let len = usize::from(self.octet()?);
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn long_str(&mut self) -> Result<&'a [u8], AmqpError> {
        let len = self.long()? as usize;
        self.take(len)
    }

    /// Skips a field table (its contents are not needed here).
    fn table(&mut self) -> Result<(), AmqpError> {
        self.long_str().map(drop)
    }
}

/// Writes frames straight into an output buffer. A value the protocol cannot carry is
/// refused, never cut: the frame is then dropped whole and `frame` returns why.
struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// The first value that could not be encoded.
    refused: Option<String>,
}

impl Encoder<'_> {
    /// Appends one frame; the payload is written by `fill` and its size patched in.
    fn frame(
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

    fn method(
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

    fn refuse(&mut self, why: String) {
        self.refused.get_or_insert(why);
    }

    fn octet(&mut self, v: u8) {
        self.out.push(v);
    }
    fn short(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn long(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn long_long(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.out.extend_from_slice(v);
    }
    /// A short string: at most [`SHORT_STR_MAX`] bytes, refused beyond (cutting it would
    /// change its meaning, and could split a UTF-8 character).
    fn short_str(&mut self, v: &str) {
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
    fn long_str(&mut self, v: &[u8]) {
        match u32::try_from(v.len()) {
            Ok(len) => {
                self.long(len);
                self.bytes(v);
            }
            Err(_) => self.refuse(format!("a long string of {} bytes", v.len())),
        }
    }
    fn empty_table(&mut self) {
        self.long(0);
    }

    /// Encodes `fill` into a buffer of its own (a table's contents), keeping its refusal.
    fn nested(&mut self, fill: impl FnOnce(&mut Encoder)) -> Vec<u8> {
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
    fn client_properties(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_FRAME_MAX: usize = 128 * 1024;

    fn frames(mut bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            out.push(read_frame(&mut bytes, TEST_FRAME_MAX).expect("a whole frame"));
        }
        out
    }

    #[test]
    fn a_published_message_is_method_header_and_body_frames() {
        let (client, _server) = loopback_pair();
        let mut writer = Writer {
            stream: WriteHalf::Plain(client),
            buffer: Vec::new(),
            frame_max: 64,
        };
        let body = vec![b'x'; 100];
        writer
            .push(&Message {
                routing_key: "rk",
                message_id: "task@1.5",
                body: &body,
            })
            .expect("encodes");
        let frames = frames(&writer.buffer);
        let kinds: Vec<u8> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_BODY]);
        assert!(frames.iter().all(|f| f.channel == CHANNEL));
        let (id, args) = split_method(&frames[0].payload).expect("method");
        assert_eq!(id, ids::BASIC_PUBLISH);
        let mut a = Args::new(args);
        assert_eq!(a.short().expect("ticket"), 0);
        assert_eq!(a.short_str().expect("exchange"), "");
        assert_eq!(a.short_str().expect("routing key"), "rk");
        assert_eq!(a.octet().expect("bits"), 1, "mandatory");
        let header = parse_header(&frames[1].payload).expect("header");
        assert_eq!(
            header,
            Header {
                body_size: 100,
                message_id: Some("task@1.5".into())
            }
        );
        assert_eq!(frames[2].payload.len() + frames[3].payload.len(), 100);
        assert!(frames[2].payload.len() <= 64 - FRAME_OVERHEAD);
    }

    /// A basic.return of an unroutable message to "rk", without its content yet.
    fn push_no_route_return(wire: &mut Vec<u8>) {
        Encoder::method(wire, CHANNEL, ids::BASIC_RETURN, |m| {
            m.short(312);
            m.short_str("NO_ROUTE");
            m.short_str("");
            m.short_str("rk");
        })
        .expect("encodes");
    }

    #[test]
    fn acks_nacks_and_returns_become_events() {
        let mut wire = Vec::new();
        Encoder::method(&mut wire, CHANNEL, ids::BASIC_ACK, |m| {
            m.long_long(7);
            m.octet(1);
        })
        .expect("encodes");
        push_no_route_return(&mut wire);
        Encoder::frame(&mut wire, FRAME_HEADER, CHANNEL, |m| {
            m.short(60);
            m.short(0);
            m.long_long(3);
            m.short(
                PROPERTY_CONTENT_TYPE | (1 << 13) | PROPERTY_DELIVERY_MODE | PROPERTY_MESSAGE_ID,
            );
            m.short_str("application/json");
            m.long_str(b"\x01x");
            m.octet(2);
            m.short_str("t@2");
        })
        .expect("encodes");
        Encoder::frame(&mut wire, FRAME_BODY, CHANNEL, |m| m.bytes(b"{}\n")).expect("encodes");
        Encoder::method(&mut wire, CHANNEL, ids::BASIC_NACK, |m| {
            m.long_long(8);
            m.octet(0);
        })
        .expect("encodes");
        Encoder::method(&mut wire, 0, ids::CONNECTION_CLOSE, |m| {
            m.short(320);
            m.short_str("CONNECTION_FORCED - shutdown");
            m.short(0);
            m.short(0);
        })
        .expect("encodes");
        // Everything arrived together, so it is handed over together, up to the close.
        let batch = reader_of(&wire).next_events();
        assert_eq!(batch.len(), 4, "{batch:?}");
        assert!(matches!(batch.last(), Some(Event::Closed(_))));
        let mut reader = reader_of(&wire);
        assert_eq!(
            reader.next_event(),
            Event::Confirm {
                tag: 7,
                multiple: true,
                ack: true
            }
        );
        assert_eq!(
            reader.next_event(),
            Event::Returned {
                message_id: Some("t@2".into()),
                routing_key: "rk".into(),
                reason: "312 NO_ROUTE".into()
            }
        );
        assert_eq!(
            reader.next_event(),
            Event::Confirm {
                tag: 8,
                multiple: false,
                ack: false
            }
        );
        assert!(
            matches!(reader.next_event(), Event::Closed(why) if why.contains("320 CONNECTION_FORCED"))
        );
        assert!(
            matches!(reader.next_event(), Event::Closed(_)),
            "end of stream"
        );
    }

    #[test]
    fn an_ack_inside_a_returned_message_gives_the_connection_up() {
        let mut wire = Vec::new();
        push_no_route_return(&mut wire);
        Encoder::method(&mut wire, CHANNEL, ids::BASIC_ACK, |m| {
            m.long_long(1);
            m.octet(0);
        })
        .expect("encodes");
        let mut reader = reader_of(&wire);
        // Never a confirm of the returned message: the connection ends instead.
        assert!(
            matches!(reader.next_event(), Event::Closed(why) if why.contains("inside a returned message")),
            "the ack must not count"
        );
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        let mut wire = vec![FRAME_METHOD, 0, 1, 0, 0, 0, 2, 0, 60, 0x00];
        assert!(
            read_frame(&mut wire.as_slice(), TEST_FRAME_MAX).is_err(),
            "no end marker"
        );
        wire = vec![FRAME_METHOD, 0, 1, 0xff, 0xff, 0xff, 0xff];
        assert!(
            read_frame(&mut wire.as_slice(), TEST_FRAME_MAX).is_err(),
            "absurd size"
        );
        assert!(split_method(&[0, 60]).is_err());
        assert!(parse_header(&[0, 60, 0]).is_err());
        assert!(Args::new(&[5, b'a']).short_str().is_err());
    }

    fn reader_of(wire: &[u8]) -> Reader {
        let (mut server, client) = loopback_pair();
        server.write_all(wire).expect("write");
        drop(server);
        // Let every byte arrive before the first read, as a burst of acks would.
        std::thread::sleep(Duration::from_millis(50));
        Reader {
            reader: BufReader::new(ReadHalf::Plain(client)),
            frame_max: TEST_FRAME_MAX,
            frame: Frame::default(),
            decoder: Decoder::default(),
        }
    }

    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn a_broker_that_never_finishes_the_set_up_is_given_up() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Answers the protocol header with heartbeats only, for far longer than the set-up
        // may take, each within the read timeout.
        std::thread::spawn(move || {
            let (mut server, _) = listener.accept().expect("accept");
            let mut header = [0u8; 8];
            let _ = server.read_exact(&mut header);
            for _ in 0..100 {
                if server
                    .write_all(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END])
                    .is_err()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let timeout = Duration::from_millis(200);
        let link = super::transport::connect("127.0.0.1", port, None, timeout).expect("connects");
        let login = Login {
            user: "guest",
            password: "guest",
            vhost: "/",
        };
        match Session::open(link, &login) {
            Err(e) => assert!(
                e.to_string().contains("did not finish the set-up in time"),
                "{e}"
            ),
            Ok(_) => panic!("a broker sending only heartbeats cannot log us in"),
        }
    }

    fn loopback_pair() -> (TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }
}

/// Generated and mutated frames: the reader and decoder never panic, never allocate more
/// than the frame size limit, and every method the client sends or reads round-trips.
/// Runs proptest's default case count; `PROPTEST_CASES` raises it.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Any string, often over the 255 bytes of a short string, often not ASCII.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,150}",
            "[a-z._-]{0,300}",
            Just("é".repeat(128)),
            Just("k".repeat(255)),
            Just("k".repeat(256)),
        ]
    }

    /// Any string a short string can carry (63 characters are at most 252 bytes).
    fn short_text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,63}", Just("k".repeat(255)), Just("é".repeat(127))]
    }

    fn frame_max() -> impl Strategy<Value = usize> {
        prop_oneof![
            Just(MIN_FRAME_MAX as usize),
            9usize..600,
            4096usize..140_000
        ]
    }

    /// Frames and methods until the bytes run out or one is refused, as the reader
    /// thread does (it stops at the first error).
    fn decode_all(mut wire: &[u8], frame_max: usize) -> Vec<Event> {
        let mut decoder = Decoder::default();
        let mut events = Vec::new();
        while let Ok(frame) = read_frame(&mut wire, frame_max) {
            match decoder.on_frame(&frame) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        events
    }

    /// The payload of the only method frame in `wire`, after checking its id.
    fn method_args(wire: &[u8], id: (u16, u16)) -> Vec<u8> {
        let frame = read_frame(&mut &wire[..], MAX_FRAME_MAX as usize).expect("a frame");
        assert_eq!(frame.kind, FRAME_METHOD);
        let (got, args) = split_method(&frame.payload).expect("a method");
        assert_eq!(got, id);
        args.to_vec()
    }

    /// What the broker sends a publisher: acks, nacks, a return with its content,
    /// blocked and unblocked, and a close.
    fn broker_wire(tag: u64, reason: &str, id: &str, body: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        let encoded = [
            Encoder::method(&mut wire, CHANNEL, ids::BASIC_ACK, |m| {
                m.long_long(tag);
                m.octet(1);
            }),
            Encoder::method(&mut wire, CHANNEL, ids::BASIC_RETURN, |m| {
                m.short(312);
                m.short_str("NO_ROUTE");
                m.short_str("");
                m.short_str("rk");
            }),
            Encoder::frame(&mut wire, FRAME_HEADER, CHANNEL, |m| {
                m.short(60);
                m.short(0);
                m.long_long(body.len() as u64);
                m.short(PROPERTY_CONTENT_TYPE | PROPERTY_DELIVERY_MODE | PROPERTY_MESSAGE_ID);
                m.short_str("application/json");
                m.octet(2);
                m.short_str(id);
            }),
            Encoder::frame(&mut wire, FRAME_BODY, CHANNEL, |m| m.bytes(body)),
            Encoder::method(&mut wire, CHANNEL, ids::BASIC_NACK, |m| {
                m.long_long(tag.wrapping_add(1));
                m.octet(0);
            }),
            Encoder::method(&mut wire, 0, ids::CONNECTION_BLOCKED, |m| {
                m.short_str(reason)
            }),
            Encoder::method(&mut wire, 0, ids::CONNECTION_UNBLOCKED, |_| {}),
            Encoder::method(&mut wire, 0, ids::CONNECTION_CLOSE, |m| {
                m.short(320);
                m.short_str(reason);
                m.short(0);
                m.short(0);
            }),
        ];
        assert!(encoded.iter().all(Result::is_ok), "{encoded:?}");
        wire
    }

    proptest! {
        #![proptest_config(ProptestConfig::default())]

        #[test]
        fn any_bytes_never_panic_the_reader(
            bytes in vec(any::<u8>(), 0..2048),
            frame_max in frame_max(),
        ) {
            decode_all(&bytes, frame_max);
        }

        #[test]
        fn mutated_broker_frames_never_panic_the_reader(
            tag in any::<u64>(),
            reason in "[a-z ]{0,40}",
            id in "[a-z@.0-9]{0,60}",
            body in vec(any::<u8>(), 0..300),
            flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
            frame_max in frame_max(),
        ) {
            let mut wire = broker_wire(tag, &reason, &id, &body);
            for (at, byte) in flips {
                let at = at.index(wire.len());
                wire[at] = byte;
            }
            let keep = cut.index(wire.len() + 1);
            decode_all(&wire[..keep], frame_max);
        }

        #[test]
        fn a_frame_over_the_limit_is_refused_before_it_is_read(
            kind in any::<u8>(),
            channel in any::<u16>(),
            frame_max in frame_max(),
            over in 1u32..=u32::MAX,
        ) {
            let size = (frame_max as u32).saturating_add(over);
            prop_assume!(size as usize > frame_max);
            let mut wire = vec![kind];
            wire.extend_from_slice(&channel.to_be_bytes());
            wire.extend_from_slice(&size.to_be_bytes());
            wire.extend_from_slice(&[0; 64]);
            let mut rest = &wire[..];
            prop_assert!(read_frame(&mut rest, frame_max).is_err());
            prop_assert_eq!(rest.len(), 64, "only the header was read");
        }

        #[test]
        fn what_the_broker_sends_round_trips(
            tag in any::<u64>(),
            reason in short_text(),
            id in short_text(),
            body in vec(any::<u8>(), 0..300),
        ) {
            let events = decode_all(&broker_wire(tag, &reason, &id, &body), 4096);
            let expected = [
                Event::Confirm { tag, multiple: true, ack: true },
                Event::Returned {
                    message_id: Some(id.clone()),
                    routing_key: "rk".into(),
                    reason: "312 NO_ROUTE".into(),
                },
                Event::Confirm { tag: tag.wrapping_add(1), multiple: false, ack: false },
                Event::Blocked(reason.clone()),
                Event::Unblocked,
                Event::Closed(format!("the broker closed the connection: 320 {reason}")),
            ];
            prop_assert_eq!(events, expected);
        }

        #[test]
        fn a_published_message_round_trips_or_is_refused_whole(
            routing_key in text(),
            message_id in text(),
            body in vec(any::<u8>(), 0..5000),
            frame_max in frame_max(),
        ) {
            let mut wire = b"earlier".to_vec();
            let message = Message { routing_key: &routing_key, message_id: &message_id, body: &body };
            let encoded = encode_message(&mut wire, &message, frame_max);
            let fits = routing_key.len() <= SHORT_STR_MAX && message_id.len() <= SHORT_STR_MAX;
            prop_assert_eq!(encoded.is_ok(), fits);
            let mut rest = &wire[b"earlier".len()..];
            if !fits {
                prop_assert!(rest.is_empty(), "a refused message leaves nothing");
                return Ok(());
            }
            let publish = read_frame(&mut rest, usize::MAX).expect("method frame");
            let (id, args) = split_method(&publish.payload).expect("method");
            prop_assert_eq!(id, ids::BASIC_PUBLISH);
            let mut a = Args::new(args);
            prop_assert_eq!(a.short().expect("ticket"), 0);
            prop_assert_eq!(a.short_str().expect("exchange"), "");
            prop_assert_eq!(a.short_str().expect("routing key"), routing_key);
            prop_assert_eq!(a.octet().expect("bits"), 1);
            let header = read_frame(&mut rest, usize::MAX).expect("header frame");
            let header = parse_header(&header.payload).expect("header");
            prop_assert_eq!(header, Header { body_size: body.len() as u64, message_id: Some(message_id) });
            let mut received = Vec::new();
            while !rest.is_empty() {
                let frame = read_frame(&mut rest, usize::MAX).expect("body frame");
                prop_assert_eq!(frame.kind, FRAME_BODY);
                prop_assert!(frame.payload.len() + FRAME_OVERHEAD <= frame_max.max(FRAME_OVERHEAD + 1));
                received.extend_from_slice(&frame.payload);
            }
            prop_assert_eq!(received, body);
        }

        #[test]
        fn the_handshake_and_channel_methods_round_trip_or_are_refused(
            vhost in text(),
            queue in text(),
            passive in any::<bool>(),
            response in vec(any::<u8>(), 0..600),
            frame_max in any::<u32>(),
        ) {
            let mut wire = Vec::new();
            Encoder::method(&mut wire, 0, ids::CONNECTION_START_OK, |m| start_ok_arguments(m, &response))
                .expect("start-ok encodes");
            let args = method_args(&wire, ids::CONNECTION_START_OK);
            let mut a = Args::new(&args);
            a.table().expect("client properties");
            prop_assert_eq!(a.short_str().expect("mechanism"), "PLAIN");
            prop_assert_eq!(a.long_str().expect("response"), &response[..]);
            prop_assert_eq!(a.short_str().expect("locale"), "en_US");

            wire.clear();
            Encoder::method(&mut wire, 0, ids::CONNECTION_TUNE_OK, |m| tune_ok_arguments(m, frame_max))
                .expect("tune-ok encodes");
            let args = method_args(&wire, ids::CONNECTION_TUNE_OK);
            let mut a = Args::new(&args);
            prop_assert_eq!((a.short().ok(), a.long().ok(), a.short().ok()), (Some(1), Some(frame_max), Some(0)));

            wire.clear();
            let opened = Encoder::method(&mut wire, 0, ids::CONNECTION_OPEN, |m| open_arguments(m, &vhost));
            prop_assert_eq!(opened.is_ok(), vhost.len() <= SHORT_STR_MAX);
            if opened.is_ok() {
                let args = method_args(&wire, ids::CONNECTION_OPEN);
                prop_assert_eq!(Args::new(&args).short_str().expect("vhost"), vhost);
            } else {
                prop_assert!(wire.is_empty());
            }

            wire.clear();
            let declared = Encoder::method(&mut wire, CHANNEL, ids::QUEUE_DECLARE, |m| declare_arguments(m, &queue, passive));
            prop_assert_eq!(declared.is_ok(), queue.len() <= SHORT_STR_MAX);
            if declared.is_ok() {
                let args = method_args(&wire, ids::QUEUE_DECLARE);
                let mut a = Args::new(&args);
                prop_assert_eq!(a.short().expect("ticket"), 0);
                prop_assert_eq!(a.short_str().expect("queue"), queue);
                prop_assert_eq!(a.octet().expect("bits"), u8::from(passive) | 0b10);
                prop_assert_eq!(a.long().expect("empty table"), 0);
            } else {
                prop_assert!(wire.is_empty());
            }
        }
    }

    #[test]
    fn the_fixed_methods_encode_as_the_protocol_says() {
        let mut wire = Vec::new();
        Encoder::method(&mut wire, 0, ids::CONNECTION_CLOSE, close_arguments).expect("close");
        let args = method_args(&wire, ids::CONNECTION_CLOSE);
        assert_eq!(close_reason(&args).expect("reason"), "200 pass done");
        wire.clear();
        Encoder::method(&mut wire, CHANNEL, ids::CONFIRM_SELECT, |m| m.octet(0)).expect("select");
        assert_eq!(method_args(&wire, ids::CONFIRM_SELECT), [0]);
        wire.clear();
        Encoder::method(&mut wire, CHANNEL, ids::CHANNEL_OPEN, |m| m.short_str("")).expect("open");
        assert_eq!(method_args(&wire, ids::CHANNEL_OPEN), [0]);
    }
}

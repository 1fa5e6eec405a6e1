//! The connection's set-up: the PLAIN login, the virtual host, channel [`CHANNEL`] with
//! publisher confirms, exchange and queue declaration, bounded by the link's deadline; then the
//! split into a [`Writer`] and a [`Reader`].

use super::codec::{
    close_reason, read_frame, split_method, Args, Encoder, Frame, CHANNEL, FRAME_METHOD,
    MAX_FRAME_MAX, MIN_FRAME_MAX,
};
use super::error::{protocol, AmqpError};
use super::ids;
use super::reader::{Decoder, Reader};
use super::transport::{Link, ReadHalf, WriteHalf};
use super::writer::Writer;
use std::io::{self, BufReader, Write};
use std::time::Instant;

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
        offers_plain_login(&start)?;
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
        let frame_max = tuned_frame_max(&tune)?;
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

    /// Declares a durable exchange of type `kind` or, `passive`, only checks that it
    /// exists (a missing one is a `ChannelClosed` with the broker's 404, and so is one of
    /// another type when not passive: 406).
    pub(crate) fn declare_exchange(
        &mut self,
        name: &str,
        kind: &str,
        passive: bool,
    ) -> Result<(), AmqpError> {
        self.send_method(CHANNEL, ids::EXCHANGE_DECLARE, |m| {
            exchange_declare_arguments(m, name, kind, passive)
        })?;
        self.expect(CHANNEL, ids::EXCHANGE_DECLARE_OK).map(drop)
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

/// Refuses a `connection.start` (its arguments) that offers no PLAIN login.
pub(super) fn offers_plain_login(start: &[u8]) -> Result<(), AmqpError> {
    let mut args = Args::new(start);
    args.octet()?;
    args.octet()?;
    args.table()?;
    let mechanisms = String::from_utf8_lossy(args.long_str()?);
    if mechanisms.split(' ').any(|m| m == "PLAIN") {
        return Ok(());
    }
    Err(protocol(format!(
        "the broker offers no PLAIN login ({mechanisms})"
    )))
}

/// The frame size a `connection.tune` (its arguments) allows, within what this client
/// reads: the broker's 0 (no limit) is 128 KiB.
pub(super) fn tuned_frame_max(tune: &[u8]) -> Result<u32, AmqpError> {
    let mut args = Args::new(tune);
    args.short()?;
    Ok(match args.long()? {
        0 => 128 * 1024,
        n => n.clamp(MIN_FRAME_MAX, MAX_FRAME_MAX),
    })
}

fn is_hang_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

pub(super) fn close_arguments(m: &mut Encoder) {
    m.short(200);
    m.short_str("pass done");
    m.short(0);
    m.short(0);
}

pub(super) fn start_ok_arguments(m: &mut Encoder, response: &[u8]) {
    m.client_properties();
    m.short_str("PLAIN");
    m.long_str(response);
    m.short_str("en_US");
}

pub(super) fn tune_ok_arguments(m: &mut Encoder, frame_max: u32) {
    // One channel is all a publisher uses.
    m.short(1);
    m.long(frame_max);
    // No heartbeats: a pass is shorter than any sensible heartbeat interval, and a silent
    // broker is caught by the confirm timeout.
    m.short(0);
}

pub(super) fn open_arguments(m: &mut Encoder, vhost: &str) {
    m.short_str(vhost);
    m.short_str("");
    m.octet(0);
}

pub(super) fn declare_arguments(m: &mut Encoder, name: &str, passive: bool) {
    m.short(0);
    m.short_str(name);
    // passive, durable, exclusive, auto-delete, no-wait
    m.octet(u8::from(passive) | 0b10);
    m.empty_table();
}

pub(super) fn exchange_declare_arguments(m: &mut Encoder, name: &str, kind: &str, passive: bool) {
    m.short(0);
    m.short_str(name);
    m.short_str(kind);
    // passive, durable, auto-delete, internal, no-wait
    m.octet(u8::from(passive) | 0b10);
    m.empty_table();
}

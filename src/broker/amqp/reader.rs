//! The reading half: frames turned into [`Event`]s (acks, nacks, returns with their
//! message id, `connection.blocked`/`unblocked`, closes), the read buffer reused.

use super::codec::{
    close_reason, parse_header, read_frame_into, split_method, Args, Frame, FRAME_BODY,
    FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
};
use super::error::{protocol, AmqpError};
use super::ids;
use super::transport::ReadHalf;
use std::io::BufReader;

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
    pub(super) reader: BufReader<ReadHalf>,
    pub(super) frame_max: usize,
    /// The last frame read; its buffer is reused, so the acks of a pass allocate nothing.
    pub(super) frame: Frame,
    pub(super) decoder: Decoder,
}

/// Turns frames into events, whatever bytes they hold.
#[derive(Default)]
pub(super) struct Decoder {
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
    pub(super) fn on_frame(&mut self, frame: &Frame) -> Result<Option<Event>, AmqpError> {
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

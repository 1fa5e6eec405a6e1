//! Generated and mutated frames: the reader and decoder never panic, never allocate more
//! than the frame size limit, and every method the client sends or reads round-trips.
//! Runs proptest's default case count; `PROPTEST_CASES` raises it.

use super::codec::*;
use super::ids;
use super::reader::*;
use super::session::*;
use super::writer::*;
use crate::wire_limits::SHORT_STR_MAX;
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
        exchange in text(),
        routing_key in text(),
        message_id in text(),
        body in vec(any::<u8>(), 0..5000),
        frame_max in frame_max(),
    ) {
        let mut wire = b"earlier".to_vec();
        let message = Message { exchange: &exchange, routing_key: &routing_key, message_id: &message_id, body: &body };
        let encoded = encode_message(&mut wire, &message, frame_max);
        let fits = [&exchange, &routing_key, &message_id].iter().all(|s| s.len() <= SHORT_STR_MAX);
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
        prop_assert_eq!(a.short_str().expect("exchange"), exchange);
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
        exchange in text(),
        kind in text(),
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

        wire.clear();
        let declared = Encoder::method(&mut wire, CHANNEL, ids::EXCHANGE_DECLARE, |m| {
            exchange_declare_arguments(m, &exchange, &kind, passive)
        });
        prop_assert_eq!(declared.is_ok(), exchange.len() <= SHORT_STR_MAX && kind.len() <= SHORT_STR_MAX);
        if declared.is_ok() {
            let args = method_args(&wire, ids::EXCHANGE_DECLARE);
            let mut a = Args::new(&args);
            prop_assert_eq!(a.short().expect("ticket"), 0);
            prop_assert_eq!(a.short_str().expect("exchange"), exchange);
            prop_assert_eq!(a.short_str().expect("type"), kind);
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

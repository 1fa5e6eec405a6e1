//! Unit tests of the AMQP client: frames, events and the set-up against a scripted broker.

use super::codec::*;
use super::ids;
use super::reader::*;
use super::session::*;
use super::transport::*;
use super::writer::*;
use std::io::{BufReader, Read, Write};

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
            exchange: "stats",
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
    assert_eq!(a.short_str().expect("exchange"), "stats");
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

#[test]
fn an_exchange_is_declared_durable_or_only_looked_up() {
    for (passive, bits) in [(false, 0b10), (true, 0b11)] {
        let mut wire = Vec::new();
        Encoder::method(&mut wire, CHANNEL, ids::EXCHANGE_DECLARE, |m| {
            exchange_declare_arguments(m, "stats", "x-consistent-hash", passive)
        })
        .expect("encodes");
        let frames = frames(&wire);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].channel, CHANNEL);
        let (id, args) = split_method(&frames[0].payload).expect("method");
        assert_eq!(id, (40, 10), "exchange.declare");
        let mut a = Args::new(args);
        assert_eq!(a.short().expect("ticket"), 0);
        assert_eq!(a.short_str().expect("exchange"), "stats");
        assert_eq!(a.short_str().expect("type"), "x-consistent-hash");
        // passive (bit 0) only when looking up; always durable (bit 1); never
        // auto-delete, internal or no-wait (a declare-ok is awaited).
        assert_eq!(a.octet().expect("bits"), bits);
        assert_eq!(a.long().expect("arguments"), 0, "an empty table");
        assert!(a.octet().is_err(), "nothing after the arguments");
    }
    assert_eq!(ids::EXCHANGE_DECLARE_OK, (40, 11));
    let mut wire = Vec::new();
    let long = "x".repeat(256);
    let refused = Encoder::method(&mut wire, CHANNEL, ids::EXCHANGE_DECLARE, |m| {
        exchange_declare_arguments(m, &long, "topic", false)
    });
    assert!(
        refused.is_err(),
        "a name over 255 bytes is refused, not cut"
    );
    assert!(wire.is_empty());
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
        m.short(PROPERTY_CONTENT_TYPE | (1 << 13) | PROPERTY_DELIVERY_MODE | PROPERTY_MESSAGE_ID);
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

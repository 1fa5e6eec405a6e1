//! Raw-socket HTTP helpers for the simulator's tests: plain std TcpStream requests, so
//! the tests check the bytes on the wire rather than a client library's reading of them.

#![allow(dead_code)] // each test binary uses a different subset of the helpers

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// A parsed response.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// `"127.0.0.1:1234"` from `"http://127.0.0.1:1234"`.
pub fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// Sends a GET with extra header lines and reads the whole answer (the server closes).
pub fn get_with(address: &str, path: &str, headers: &[&str]) -> Reply {
    let raw = exchange(address, path, headers);
    parse(&raw)
}

pub fn get(address: &str, path: &str) -> Reply {
    get_with(address, path, &[])
}

/// Sends a GET and returns every byte received until the server closed.
pub fn exchange(address: &str, path: &str, headers: &[&str]) -> Vec<u8> {
    let mut stream = send_request(address, path, headers);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    raw
}

/// Connects and sends a GET without reading the answer.
pub fn send_request(address: &str, path: &str, headers: &[&str]) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .write_all(request_bytes(address, path, headers).as_bytes())
        .expect("send");
    stream
}

pub fn request_bytes(address: &str, path: &str, headers: &[&str]) -> String {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

pub fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8(raw.to_vec()).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The statistics entries of an agent.
pub fn statistics(address: &str) -> Vec<Value> {
    let reply = get(address, "/monitor/statistics");
    assert_eq!(reply.status, 200, "{}", reply.body);
    match reply.json() {
        Value::Array(entries) => entries,
        other => panic!("not an array: {other}"),
    }
}

/// Asserts that nothing arrives on `stream` within 300 ms.
pub fn assert_no_answer(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("set timeout");
    let mut buf = [0u8; 16];
    let err = stream.read(&mut buf).expect_err("no answer");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

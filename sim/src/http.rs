//! Just enough HTTP/1.1: read one request head, write one response with
//! `Connection: close`, and check basic auth.
//!
//! Hand-rolled because the simulator only ever answers GETs without bodies and must stay
//! dependency-light; closing after every response means no keep-alive bookkeeping.

use std::io::{self, Read, Write};
use std::time::Duration;

/// A request head larger than this is not from a Mesos client; answer 400.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The parts of a request the simulator looks at.
pub(crate) struct Request {
    pub method: String,
    /// The path without any query string.
    pub path: String,
    pub authorization: Option<String>,
}

/// How a response's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length`, the whole body.
    Length,
    /// `Content-Length` announced, half the body sent.
    Truncated,
    /// Chunks of at most this many bytes.
    Chunked(usize),
    /// No length: the connection's end ends the body.
    UntilClose,
}

/// A complete response; the body is sent as is.
pub(crate) struct Response {
    pub status: u16,
    content_type: &'static str,
    extra_header: Option<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "application/json",
            extra_header: None,
            body,
        }
    }

    /// A short text body naming the status, like Mesos' error pages.
    pub fn text(status: u16) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: format!("{}\n", reason(status)),
        }
    }

    pub fn redirect(location: String) -> Response {
        Response {
            status: 307,
            content_type: "text/plain; charset=utf-8",
            extra_header: Some(("Location", location)),
            body: String::new(),
        }
    }

    pub fn unauthorized() -> Response {
        Response {
            extra_header: Some(("WWW-Authenticate", String::from("Basic realm=\"mesos\""))),
            ..Response::text(401)
        }
    }

    /// Grows the body to at least `size` bytes with whitespace before its closing bracket,
    /// so a JSON array or object stays valid JSON.
    pub fn pad_to(&mut self, size: usize) {
        let missing = size.saturating_sub(self.body.len());
        let at = match self.body.chars().last() {
            Some(']' | '}') => self.body.len() - 1,
            _ => self.body.len(),
        };
        self.body.insert_str(at, &" ".repeat(missing));
    }

    /// Writes the head (announcing the whole body) and the first `body_bytes` of the body.
    pub fn write_to(&self, out: &mut impl Write, body_bytes: usize) -> io::Result<()> {
        out.write_all(self.head(Some(self.body.len())).as_bytes())?;
        out.write_all(&self.body.as_bytes()[..body_bytes.min(self.body.len())])?;
        out.flush()
    }

    /// Writes the head and the body in chunks of at most `size` bytes, with a chunk
    /// extension and a trailer that a client must skip.
    pub fn write_chunked(&self, out: &mut impl Write, size: usize) -> io::Result<()> {
        let mut head = self.head(None);
        head.insert_str(head.len() - 2, "Transfer-Encoding: chunked\r\n");
        out.write_all(head.as_bytes())?;
        for chunk in self.body.as_bytes().chunks(size.max(1)) {
            out.write_all(format!("{:x};sim=1\r\n", chunk.len()).as_bytes())?;
            out.write_all(chunk)?;
            out.write_all(b"\r\n")?;
        }
        out.write_all(b"0\r\nX-Sim-Trailer: 1\r\n\r\n")?;
        out.flush()
    }

    /// Writes the head without a length, then the body, which ends with the connection.
    pub fn write_until_close(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.head(None).as_bytes())?;
        out.write_all(self.body.as_bytes())?;
        out.flush()
    }

    /// Writes the response padded as `pad_to` would (without building the padding in
    /// memory), the padding in 64 KiB steps with `pause` of an even share of `over` after
    /// each; `pause` returns false to give up.
    pub fn write_padded_paced(
        &self,
        out: &mut impl Write,
        size: usize,
        over: Duration,
        pause: impl Fn(Duration) -> bool,
    ) -> io::Result<()> {
        const STEP: usize = 64 * 1024;
        static SPACES: [u8; STEP] = [b' '; STEP];
        let body = self.body.as_bytes();
        let at = match body.last() {
            Some(b']' | b'}') => body.len() - 1,
            _ => body.len(),
        };
        let mut padding = size.saturating_sub(body.len());
        let steps = u32::try_from(padding.div_ceil(STEP))
            .unwrap_or(u32::MAX)
            .max(1);
        out.write_all(self.head(Some(body.len() + padding)).as_bytes())?;
        out.write_all(&body[..at])?;
        while padding > 0 {
            let step = padding.min(STEP);
            out.write_all(&SPACES[..step])?;
            padding -= step;
            if !pause(over / steps) {
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        out.write_all(&body[at..])?;
        out.flush()
    }

    /// The status line and headers, announcing `length` bytes of body if given.
    fn head(&self, length: Option<usize>) -> String {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
        );
        if let Some(length) = length {
            head.push_str(&format!("Content-Length: {length}\r\n"));
        }
        if let Some((name, value)) = &self.extra_header {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// Reads one request head. `Ok(None)` means the bytes are not an HTTP request (answer
/// 400); errors mean the client went away or stayed silent past the read timeout.
pub(crate) fn read_request(conn: &mut impl Read) -> io::Result<Option<Request>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(parse_head(&head[..end]));
        }
        if head.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
    }
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (
        request_line.next()?,
        request_line.next()?,
        request_line.next()?,
    );
    if !version.starts_with("HTTP/1.") || request_line.next().is_some() {
        return None;
    }
    let authorization = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.trim().to_owned());
    Some(Request {
        method: method.to_owned(),
        path: target.split('?').next().unwrap_or_default().to_owned(),
        authorization,
    })
}

/// The token a basic `Authorization` header carries for these credentials.
pub(crate) fn basic_token(principal: &str, secret: &str) -> String {
    base64(format!("{principal}:{secret}").as_bytes())
}

/// Whether an `Authorization` header value carries `token` in the Basic scheme (the
/// scheme name is case-insensitive, as RFC 7617 says).
pub(crate) fn is_authorized(token: &str, header: Option<&str>) -> bool {
    header
        .and_then(|value| value.split_once(' '))
        .is_some_and(|(scheme, given)| {
            scheme.eq_ignore_ascii_case("basic") && given.trim() == token
        })
}

/// Standard padded base64, the only encoding basic auth needs.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(
            basic_token("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn basic_scheme_is_case_insensitive() {
        let token = basic_token("u", "p");
        assert!(is_authorized(&token, Some(&format!("basic {token}"))));
        assert!(!is_authorized(&token, Some(&format!("Bearer {token}"))));
        assert!(!is_authorized(&token, None));
    }

    #[test]
    fn parses_the_request_line_and_authorization() {
        let head = b"GET /monitor/statistics?jsonp=x HTTP/1.1\r\nHost: a\r\nauthorization:  Basic abc \r\nX: y";
        let request = parse_head(head).expect("a request");
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/monitor/statistics");
        assert_eq!(request.authorization.as_deref(), Some("Basic abc"));
        assert!(parse_head(b"hello").is_none());
    }

    #[test]
    fn padding_keeps_json_valid() {
        let mut response = Response::json(200, String::from("[1]"));
        response.pad_to(100);
        assert_eq!(response.body.len(), 100);
        assert!(response.body.starts_with("[1 ") && response.body.ends_with(" ]"));
    }

    #[test]
    fn paced_padding_writes_what_pad_to_builds() {
        let size = 200 * 1024;
        let mut padded = Response::json(200, String::from("[1]"));
        padded.pad_to(size);
        let mut expected = Vec::new();
        padded
            .write_to(&mut expected, size)
            .expect("write to a Vec");
        let mut out = Vec::new();
        let pauses = std::cell::Cell::new(0);
        Response::json(200, String::from("[1]"))
            .write_padded_paced(&mut out, size, Duration::from_millis(4), |pause| {
                assert_eq!(pause, Duration::from_millis(1));
                pauses.set(pauses.get() + 1);
                true
            })
            .expect("write to a Vec");
        assert!(out == expected, "the same bytes");
        assert_eq!(pauses.get(), 4, "a pause after each 64 KiB step");
    }

    #[test]
    fn truncated_writes_announce_the_full_length() {
        let mut out = Vec::new();
        Response::json(200, String::from("[1,2,3,4]"))
            .write_to(&mut out, 4)
            .expect("write to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("Content-Length: 9\r\n"));
        assert!(text.ends_with("\r\n\r\n[1,2"));
    }
}

//! Agents' `/monitor/statistics` over plain HTTP, without ureq: one `GET` per connection,
//! its answer's head read first (so the pass can reserve the body's size before reading
//! it), then its body read straight into the buffer it is parsed from.
//!
//! Every pass opens a connection to every agent and asks it one question. Through ureq,
//! building that request, its pool, middleware, buffers and timers cost about a tenth of
//! the collector's CPU, as much as the kernel's work for the connection itself
//! (BENCHMARKS.md, "fourth round"). This is HTTP/1.1 as agents speak it: a body framed by
//! `Content-Length` (what libprocess sends), chunked, or ending with the connection. No
//! compression is asked for: inflating 30 KB costs more CPU than sending it costs the
//! network. HTTPS agents and masters still go through ureq (`client.rs`): a TLS
//! handshake outweighs any client.

use crate::mesos::fetch_error::FetchError;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The first read of an answer: its head (~150 bytes from an agent) and the start of its
/// body; the rest of the body is read straight into its own buffer.
const HEAD_BUFFER_BYTES: usize = 4096;
/// An answer whose head is longer than this is refused.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// A chunk-size line or a trailer longer than this is refused.
const MAX_LINE_BYTES: u64 = 4096;
/// What a chunked body may spend on its framing (chunk-size lines with their extensions,
/// the line ends after each chunk, trailers) beyond as many bytes as its data: a body
/// of sensible chunks spends a few bytes per kilobyte, one that sends trailers or empty
/// extensions forever is refused here rather than at the request's end.
const MAX_FRAMING_BYTES: u64 = 64 * 1024;
/// How many times a head that holds an empty line may still parse as incomplete before
/// it is refused (httparse skips empty lines before the status line, which the search
/// for the head's end already skipped).
const MAX_HEAD_PARSES: usize = 4;
/// How far a read may end past the request's end before the socket's timeout is set
/// again: setting it before every read would be a system call per read.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);

/// One `GET`: the address it was listed under (for `Host`) and its path.
pub(crate) struct Request<'a> {
    pub(crate) address: &'a str,
    pub(crate) path: &'a str,
    pub(crate) authorization: Option<&'a str>,
}

/// An answer whose head was read; its body is still to be read by the request's end.
pub(crate) struct Answer {
    pub(crate) status: u16,
    framing: Framing,
    socket: TimedSocket,
    /// The head's buffer; the body's first bytes are `early[body_from..]`.
    early: Vec<u8>,
    body_from: usize,
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// Neither length nor chunks: the body ends with the connection.
    UntilClose,
}

/// Connects to the first of `addresses` that accepts, sends `request` and reads the
/// answer's head, all by `ends`.
pub(crate) fn get(
    addresses: &[SocketAddr],
    request: &Request,
    connect_timeout: Duration,
    ends: Instant,
) -> Result<Answer, FetchError> {
    let stream = connect(addresses, connect_timeout, ends)?;
    stream.set_nodelay(true).map_err(FetchError::from_io)?;
    // A request of a few hundred bytes fits the empty send buffer of a new connection, but
    // a peer that never reads must not hold the write past the request's end either.
    stream
        .set_write_timeout(Some(left_until(ends)?))
        .map_err(FetchError::from_io)?;
    (&stream)
        .write_all(request.to_bytes().as_slice())
        .map_err(FetchError::from_io)?;
    let mut socket = TimedSocket {
        stream,
        ends,
        timeout: None,
    };
    let (status, framing, early, body_from) = read_head(&mut socket)?;
    Ok(Answer {
        status,
        framing,
        socket,
        early,
        body_from,
    })
}

impl Request<'_> {
    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(256);
        for part in [
            "GET ",
            self.path,
            " HTTP/1.1\r\nHost: ",
            self.address,
            concat!(
                "\r\nUser-Agent: asgard-stats/",
                env!("CARGO_PKG_VERSION"),
                "\r\nAccept: application/json\r\nConnection: close\r\n"
            ),
        ] {
            bytes.extend_from_slice(part.as_bytes());
        }
        if let Some(authorization) = self.authorization {
            bytes.extend_from_slice(b"Authorization: ");
            bytes.extend_from_slice(authorization.as_bytes());
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }
}

impl Answer {
    /// The body's length, when the head gave one.
    pub(crate) fn content_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(length) => Some(length),
            Framing::Chunked | Framing::UntilClose => None,
        }
    }

    /// Reads the whole body, up to `limit` bytes, onto the end of `into`, asking `grow`
    /// before `into` grows when the body has no length.
    pub(crate) fn read_body(
        self,
        limit: u64,
        into: &mut Vec<u8>,
        grow: Grow,
    ) -> Result<(), FetchError> {
        let Answer {
            framing,
            mut socket,
            early,
            body_from,
            ..
        } = self;
        let early = early.get(body_from..).unwrap_or_default();
        read_framed_body(framing, early, &mut socket, limit, into, grow)
    }
}

/// Asked with how many bytes a body's buffer is about to hold, before it grows to them:
/// the pass grows the answer's share of the body budget (`budget.rs`), or refuses.
pub(crate) type Grow<'a> = &'a mut dyn FnMut(u64) -> Result<(), FetchError>;

/// The first room made for a body without a length; it doubles from there, each time
/// once [`Grow`] allows, so such an answer holds about what it has read.
pub(crate) const FIRST_STEP: u64 = 64 * 1024;

/// Reads a body framed as `framing`, whose first bytes `early` came with the head, from
/// `socket`, up to `limit` bytes, onto the end of `into`.
fn read_framed_body(
    framing: Framing,
    early: &[u8],
    socket: &mut impl Read,
    limit: u64,
    into: &mut Vec<u8>,
    grow: Grow,
) -> Result<(), FetchError> {
    match framing {
        Framing::Length(length) if length > limit => Err(FetchError::TooLarge(limit)),
        Framing::Length(length) => read_exactly(early, socket, length, into),
        Framing::UntilClose => {
            let mut body = early.chain(socket);
            read_until_close(&mut body, limit, into, grow, FetchError::from_io)
        }
        Framing::Chunked => {
            read_chunks(&mut BufReader::new(early.chain(socket)), limit, into, grow)
        }
    }
}

/// Reads a body that ends with its connection, up to `limit` bytes, onto `into`, which
/// grows only as `grow` allows; a failed read is an error as `read_error` says.
pub(crate) fn read_until_close(
    body: &mut impl Read,
    limit: u64,
    into: &mut Vec<u8>,
    grow: Grow,
    read_error: fn(io::Error) -> FetchError,
) -> Result<(), FetchError> {
    loop {
        make_room(into, 1, limit, grow)?;
        let room = (into.capacity() - into.len()) as u64;
        let read = body
            .by_ref()
            .take(room)
            .read_to_end(into)
            .map_err(read_error)?;
        within(limit, into)?;
        if (read as u64) < room {
            return Ok(());
        }
    }
}

/// Makes room in `into` for `more` bytes: its capacity doubles (from [`FIRST_STEP`], up
/// to one byte past `limit`, which tells a body too large) once `grow` allows it.
fn make_room(into: &mut Vec<u8>, more: usize, limit: u64, grow: Grow) -> Result<(), FetchError> {
    let needed = into.len().saturating_add(more);
    if needed <= into.capacity() {
        return Ok(());
    }
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let doubled = into.capacity().saturating_mul(2).max(FIRST_STEP as usize);
    let room = needed.max(doubled.min(cap));
    grow(room as u64)?;
    into.reserve_exact(room - into.len());
    Ok(())
}

/// A whole answer read from `socket` as from an agent's: its status and body, or why it
/// is refused. What the fuzz target (`fuzz/`) and the unit tests drive.
#[cfg(any(test, fuzzing))]
pub(crate) fn read_answer(mut socket: impl Read, limit: u64) -> Result<(u16, Vec<u8>), FetchError> {
    let (status, framing, early, body_from) = read_head(&mut socket)?;
    let mut body = Vec::new();
    let early = early.get(body_from..).unwrap_or_default();
    let mut any_growth = |_| Ok(());
    read_framed_body(
        framing,
        early,
        &mut socket,
        limit,
        &mut body,
        &mut any_growth,
    )?;
    Ok((status, body))
}

fn connect(
    addresses: &[SocketAddr],
    connect_timeout: Duration,
    ends: Instant,
) -> Result<TcpStream, FetchError> {
    let mut failed = FetchError::Connection("no address".into());
    for address in addresses {
        let timeout = connect_timeout.min(left_until(ends)?);
        match TcpStream::connect_timeout(address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => failed = FetchError::from_io(e),
        }
    }
    Err(failed)
}

/// The time left until `ends`; none left is a timeout.
pub(crate) fn left_until(ends: Instant) -> Result<Duration, FetchError> {
    Some(ends.saturating_duration_since(Instant::now()))
        .filter(|left| !left.is_zero())
        .ok_or(FetchError::Timeout)
}

/// Reads the head: the status and how the body is framed, and the buffer it was read
/// into with the offset where the body starts. Interim (1xx) answers are skipped.
///
/// The head is parsed only once an empty line (its end) has arrived, searched for in the
/// bytes each read adds: a head sent a byte at a time costs a search of each byte, not a
/// parse of all that came before.
fn read_head(socket: &mut impl Read) -> Result<(u16, Framing, Vec<u8>, usize), FetchError> {
    let mut buffer = vec![0; HEAD_BUFFER_BYTES];
    let mut start = 0;
    let mut filled = 0;
    let mut searched = 0;
    let mut parses = 0;
    loop {
        // Empty lines before the status line are no head's end (httparse skips them).
        while start < filled && matches!(buffer.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        searched = searched.max(start);
        let Some(end) = head_end(&buffer[..filled], start, searched) else {
            searched = filled;
            filled += read_more(socket, &mut buffer, filled)?;
            continue;
        };
        parses += 1;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut head = httparse::Response::new(&mut headers);
        let parsed = head.parse(buffer.get(start..filled).unwrap_or_default());
        match parsed.map_err(|e| FetchError::BadHttp(format!("not an HTTP answer: {e}")))? {
            httparse::Status::Complete(used) => {
                let status = head.code.unwrap_or_default();
                // httparse takes any three digits; "020" is no HTTP status (found by
                // fuzzing).
                if !(100..600).contains(&status) {
                    return Err(FetchError::BadHttp(format!(
                        "not an HTTP answer: status {status:03}"
                    )));
                }
                start += used;
                searched = start;
                if !(100..200).contains(&status) {
                    let framing = framing_of(status, head.headers)?;
                    buffer.truncate(filled);
                    return Ok((status, framing, buffer, start));
                }
            }
            httparse::Status::Partial if parses < MAX_HEAD_PARSES => searched = end,
            httparse::Status::Partial => {
                return Err(FetchError::BadHttp(
                    "not an HTTP answer: a head that does not end".into(),
                ))
            }
        }
    }
}

/// Where the first empty line at or after `from` (and after the head's `start`) ends in
/// `bytes`: a line feed right after a line feed, or after a line feed and a carriage
/// return. Looks back at most two bytes before `from`, so each byte is searched once.
fn head_end(bytes: &[u8], start: usize, from: usize) -> Option<usize> {
    let from = from.max(start + 1);
    (from..bytes.len()).find_map(|i| {
        let before = |back: usize| {
            i.checked_sub(back)
                .filter(|&j| j >= start)
                .map(|j| bytes[j])
        };
        let ends = bytes[i] == b'\n'
            && (before(1) == Some(b'\n') || (before(1) == Some(b'\r') && before(2) == Some(b'\n')));
        ends.then_some(i + 1)
    })
}

/// Reads more of a head into `buffer` after its first `filled` bytes, growing it up to
/// `MAX_HEAD_BYTES`; the connection's end is an answer cut short.
fn read_more(
    socket: &mut impl Read,
    buffer: &mut Vec<u8>,
    filled: usize,
) -> Result<usize, FetchError> {
    if filled == buffer.len() {
        if buffer.len() >= MAX_HEAD_BYTES {
            return Err(FetchError::BadHttp(format!(
                "an answer's head longer than {MAX_HEAD_BYTES} bytes"
            )));
        }
        buffer.resize(buffer.len() * 2, 0);
    }
    let read = socket
        .read(buffer.get_mut(filled..).unwrap_or_default())
        .map_err(FetchError::from_io)?;
    if read == 0 {
        return Err(FetchError::Truncated(
            "the connection closed before the answer's head ended".into(),
        ));
    }
    Ok(read)
}

/// How the body of an answer with this status and these headers ends (RFC 9112, 6.3).
fn framing_of(status: u16, headers: &[httparse::Header]) -> Result<Framing, FetchError> {
    if status == 204 || status == 304 {
        return Ok(Framing::Length(0));
    }
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value))
    };
    let codings: Vec<String> = named("transfer-encoding")
        .flat_map(|v| {
            v.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    if !codings.is_empty() {
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            _ => Err(FetchError::BadHttp(format!(
                "an answer in a transfer coding not asked for: {}",
                codings.join(", ")
            ))),
        };
    }
    // Repeated, a length must be the same each time.
    let lengths: Vec<Option<u64>> = named("content-length").map(|v| decimal(v.trim())).collect();
    match lengths.split_first() {
        None => Ok(Framing::UntilClose),
        Some((&Some(length), rest)) if rest.iter().all(|&other| other == Some(length)) => {
            Ok(Framing::Length(length))
        }
        Some(_) => Err(FetchError::BadHttp(
            "an answer with an unusable Content-Length".into(),
        )),
    }
}

/// Digits only (RFC 9110's `1*DIGIT`, not Rust's `+7`), within a u64.
fn decimal(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.parse().ok()).flatten()
}

/// Hexadecimal digits only (RFC 9112's chunk-size, `1*HEXDIG`), within a u64.
fn hexadecimal(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit());
    digits.then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

/// Reads a body of `length` bytes: what came with the head, then the rest straight from
/// the socket into `into`, which is made room for once.
fn read_exactly(
    early: &[u8],
    socket: &mut impl Read,
    length: u64,
    into: &mut Vec<u8>,
) -> Result<(), FetchError> {
    into.reserve_exact(usize::try_from(length).unwrap_or(0));
    let mut body = early.chain(socket).take(length);
    body.read_to_end(into).map_err(FetchError::from_io)?;
    if body.limit() > 0 {
        return Err(FetchError::Truncated(format!(
            "{} of {length} bytes",
            length - body.limit()
        )));
    }
    Ok(())
}

/// Reads a chunked body onto `into`, and the trailers after it. Its framing (size lines,
/// extensions, line ends, trailers) may take [`MAX_FRAMING_BYTES`] more than its data.
fn read_chunks(
    body: &mut impl BufRead,
    limit: u64,
    into: &mut Vec<u8>,
    grow: Grow,
) -> Result<(), FetchError> {
    let mut framing = 0u64;
    let mut line = |body: &mut dyn BufRead, data: u64| -> Result<Vec<u8>, FetchError> {
        let line = read_line(body)?;
        framing += line.len() as u64 + 2;
        if framing > data.saturating_add(MAX_FRAMING_BYTES) {
            return Err(FetchError::BadHttp(format!(
                "a chunked answer whose framing (chunk lines, trailers) passed {MAX_FRAMING_BYTES} bytes more than its data"
            )));
        }
        Ok(line)
    };
    let start = into.len() as u64;
    loop {
        let data = into.len() as u64 - start;
        let size_line = line(body, data)?;
        let size = size_line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size)
            .ok()
            .and_then(|s| hexadecimal(s.trim_matches([' ', '\t'])))
            .ok_or_else(|| FetchError::BadHttp("a bad chunk size".into()))?;
        if size == 0 {
            // Trailers, if any, up to the empty line that ends the answer.
            while !line(body, data)?.is_empty() {}
            return Ok(());
        }
        if (into.len() as u64).saturating_add(size) > limit {
            return Err(FetchError::TooLarge(limit));
        }
        // Within `limit`, so it fits a usize.
        make_room(into, size as usize, limit, grow)?;
        let read = body
            .by_ref()
            .take(size)
            .read_to_end(into)
            .map_err(FetchError::from_io)?;
        if (read as u64) < size || !line(body, data + size)?.is_empty() {
            return Err(FetchError::Truncated("a chunk cut short".into()));
        }
    }
}

/// One line without its line end; a line that does not end is cut short.
fn read_line(body: &mut dyn BufRead) -> Result<Vec<u8>, FetchError> {
    let mut line = Vec::new();
    Read::take(&mut *body, MAX_LINE_BYTES)
        .read_until(b'\n', &mut line)
        .map_err(FetchError::from_io)?;
    if line.pop() != Some(b'\n') {
        return Err(FetchError::Truncated("a chunk's line cut short".into()));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// A body read up to one byte past `limit`: that byte means too large.
fn within(limit: u64, body: &[u8]) -> Result<(), FetchError> {
    if body.len() as u64 > limit {
        return Err(FetchError::TooLarge(limit));
    }
    Ok(())
}

/// A connection whose reads all end by the request's end (give or take `DEADLINE_SLACK`).
struct TimedSocket {
    stream: TcpStream,
    ends: Instant,
    /// The read timeout the socket has now, if set.
    timeout: Option<Duration>,
}

impl Read for TimedSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let now = Instant::now();
        let left = self.ends.saturating_duration_since(now);
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // A read started now blocks until `now + timeout` at most.
        if self
            .timeout
            .is_none_or(|timeout| now + timeout > self.ends + DEADLINE_SLACK)
        {
            self.stream.set_read_timeout(Some(left))?;
            self.timeout = Some(left);
        }
        (&self.stream).read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(head: &str) -> Result<Framing, FetchError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        response.parse(head.as_bytes()).expect("a valid head");
        framing_of(response.code.unwrap_or_default(), response.headers)
    }

    #[test]
    fn bodies_are_framed_by_length_chunks_or_the_connection() {
        let ok = "HTTP/1.1 200 OK\r\n";
        assert_eq!(
            framing(&format!("{ok}Content-Length: 42\r\n\r\n")).ok(),
            Some(Framing::Length(42))
        );
        assert_eq!(
            framing(&format!(
                "{ok}Transfer-Encoding: Chunked\r\nContent-Length: 42\r\n\r\n"
            ))
            .ok(),
            Some(Framing::Chunked)
        );
        assert_eq!(
            framing(&format!("{ok}\r\n")).ok(),
            Some(Framing::UntilClose)
        );
        assert_eq!(
            framing("HTTP/1.1 204 No Content\r\n\r\n").ok(),
            Some(Framing::Length(0))
        );
        assert_eq!(
            framing(&format!(
                "{ok}Content-Length: 7\r\nContent-Length: 7\r\n\r\n"
            ))
            .ok(),
            Some(Framing::Length(7))
        );
        for bad in [
            "Content-Length: 7\r\nContent-Length: 8\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: 7x\r\n",
            "Transfer-Encoding: gzip, chunked\r\n",
        ] {
            assert!(
                matches!(
                    framing(&format!("{ok}{bad}\r\n")),
                    Err(FetchError::BadHttp(_))
                ),
                "{bad}"
            );
        }
    }

    fn chunks(body: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let mut into = b"kept".to_vec();
        read_chunks(&mut body.as_bytes(), limit, &mut into, &mut |_| Ok(()))?;
        Ok(into)
    }

    /// What a body without a length asks of `grow` as it is read: 64 KiB, then twice as
    /// much each time its buffer is full, never past one byte beyond the limit.
    fn growth(framing: Framing, body: &[u8], limit: u64) -> (Result<usize, FetchError>, Vec<u64>) {
        let mut asked = Vec::new();
        let mut into = Vec::new();
        let mut grow = |bytes| {
            asked.push(bytes);
            Ok(())
        };
        let read = read_framed_body(framing, b"", &mut &body[..], limit, &mut into, &mut grow);
        (read.map(|()| into.len()), asked)
    }

    #[test]
    fn a_body_without_a_length_holds_what_it_has_read() {
        let body = vec![b' '; 200_000];
        let (read, asked) = growth(Framing::UntilClose, &body, 1 << 20);
        assert_eq!(read.ok(), Some(200_000));
        assert_eq!(asked, [65_536, 131_072, 262_144]);
        let (read, asked) = growth(Framing::UntilClose, &body, 150_000);
        assert!(matches!(read, Err(FetchError::TooLarge(150_000))));
        assert_eq!(asked, [65_536, 131_072, 150_001]);
        let chunked = format!("30d40\r\n{}\r\n0\r\n\r\n", " ".repeat(200_000));
        let (read, asked) = growth(Framing::Chunked, chunked.as_bytes(), 1 << 20);
        assert_eq!(read.ok(), Some(200_000));
        assert_eq!(
            asked,
            [200_000],
            "a chunk's size is known before it is read"
        );
        let mut into = Vec::new();
        let refused = read_framed_body(
            Framing::UntilClose,
            b"",
            &mut &body[..],
            1 << 20,
            &mut into,
            &mut |_| Err(FetchError::BudgetHeld),
        );
        assert!(matches!(refused, Err(FetchError::BudgetHeld)));
        assert!(into.capacity() == 0, "nothing allocated without the budget");
    }

    #[test]
    fn chunked_bodies_are_joined_and_bounded() {
        let body = "5;ext=1\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        assert_eq!(
            chunks(body, 100).ok().as_deref(),
            Some(&b"kepthello, world"[..])
        );
        assert!(matches!(chunks(body, 10), Err(FetchError::TooLarge(10))));
        for cut in [
            "5\r\nhel",
            "5\r\nhelloX\r\n0\r\n\r\n",
            "5\r\nhello\r\n",
            "5\r\nhello\r\n0\r\n",
        ] {
            assert!(
                matches!(chunks(cut, 100), Err(FetchError::Truncated(_))),
                "{cut}"
            );
        }
        assert!(matches!(chunks("zz\r\n", 100), Err(FetchError::BadHttp(_))));
    }

    /// Reads from its parts one read each: a head sent a byte at a time, say.
    struct Parts<'a>(std::collections::VecDeque<&'a [u8]>);

    impl Read for Parts<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(part) = self.0.pop_front() else {
                return Ok(0);
            };
            let n = part.len().min(buf.len());
            buf[..n].copy_from_slice(&part[..n]);
            if n < part.len() {
                self.0.push_front(&part[n..]);
            }
            Ok(n)
        }
    }

    #[test]
    fn lengths_and_chunk_sizes_are_digits_only() {
        let ok = "HTTP/1.1 200 OK\r\n";
        for bad in ["+7", "-7", " ", "0x7", "7 7", "18446744073709551616"] {
            assert!(
                matches!(
                    framing(&format!("{ok}Content-Length: {bad}\r\n\r\n")),
                    Err(FetchError::BadHttp(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            framing(&format!("{ok}Content-Length: 18446744073709551615\r\n\r\n")).ok(),
            Some(Framing::Length(u64::MAX))
        );
        for bad in ["+5", "-5", "0x5", "10000000000000000", "", " ;x"] {
            let body = format!("{bad}\r\nhello\r\n0\r\n\r\n");
            assert!(
                matches!(chunks(&body, 100), Err(FetchError::BadHttp(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            chunks("5 ;a=b\r\nhello\r\n0\r\n\r\n", 100).ok().as_deref(),
            Some(&b"kepthello"[..]),
            "whitespace before an extension"
        );
    }

    #[test]
    fn chunk_lines_and_trailers_are_bounded_together() {
        let trailers = "X-Trailer: x\r\n".repeat(10_000);
        let endless = format!("2\r\n[]\r\n0\r\n{trailers}\r\n");
        assert!(matches!(
            chunks(&endless, 1 << 20),
            Err(FetchError::BadHttp(_))
        ));
        let extensions = format!("1;{}\r\nx\r\n", "e".repeat(4000)).repeat(20);
        let body = format!("{extensions}0\r\n\r\n");
        assert!(matches!(
            chunks(&body, 1 << 20),
            Err(FetchError::BadHttp(_))
        ));
        // Small chunks of a real body stay within: their framing is below their data
        // plus the allowance.
        let small = format!("{}0\r\n\r\n", "10\r\n0123456789abcdef\r\n".repeat(4000));
        assert_eq!(
            chunks(&small, 1 << 20).map(|b| b.len()).ok(),
            Some(4 + 64_000)
        );
    }

    #[test]
    fn a_head_a_byte_at_a_time_or_after_empty_lines_is_read() {
        let answer =
            b"\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]";
        let bytes: Vec<&[u8]> = answer.chunks(1).collect();
        let (status, framing, early, from) = read_head(&mut Parts(bytes.into())).expect("a head");
        assert_eq!((status, framing), (200, Framing::Length(2)));
        assert!(
            b"[]".starts_with(&early[from..]),
            "the body's start, if any"
        );
        assert_eq!(
            read_answer(&answer[..], 10).ok(),
            Some((200, b"[]".to_vec()))
        );
        let bare = b"HTTP/1.1 200 OK\nContent-Length: 2\n\n[]";
        assert_eq!(read_answer(&bare[..], 10).ok(), Some((200, b"[]".to_vec())));
    }

    #[test]
    fn a_status_outside_100_to_599_is_no_http_answer() {
        // Found by fuzzing (fuzz/artifacts, agent_http_answer): httparse reads "020".
        let bytes = b"HTTP/1.0 020 OK\nContent-Length: 1\n\n[]";
        assert!(matches!(
            read_answer(&bytes[..], 10),
            Err(FetchError::BadHttp(_))
        ));
        let last = b"HTTP/1.1 599 Odd\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(read_answer(&last[..], 10).ok(), Some((599, b"no".to_vec())));
    }

    #[test]
    fn a_head_past_its_bound_or_without_end_is_refused() {
        let long = format!("HTTP/1.1 200 OK\r\nX-Pad: {}\r\n\r\n[]", "a".repeat(70_000));
        assert!(matches!(
            read_answer(long.as_bytes(), 10),
            Err(FetchError::BadHttp(_))
        ));
        let newlines = "\n".repeat(70_000);
        assert!(matches!(
            read_answer(newlines.as_bytes(), 10),
            Err(FetchError::BadHttp(_) | FetchError::Truncated(_))
        ));
        assert!(matches!(
            read_answer(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"[..], 10),
            Err(FetchError::Truncated(_))
        ));
    }

    #[test]
    fn a_request_names_its_host_and_credentials() {
        let request = Request {
            address: "[::1]:5051",
            path: "/monitor/statistics",
            authorization: Some("Basic eDp5"),
        };
        let text = String::from_utf8(request.to_bytes()).unwrap_or_default();
        assert!(
            text.starts_with("GET /monitor/statistics HTTP/1.1\r\nHost: [::1]:5051\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(
            text.ends_with("\r\nAuthorization: Basic eDp5\r\n\r\n"),
            "{text}"
        );
    }

    /// Serves `answer` (written in the given pieces) to one connection on loopback; the
    /// connection closes once it is written, unless `hold` keeps it open that long after.
    fn serve(pieces: Vec<Vec<u8>>, hold: Duration) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        std::thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut request = [0; 1024];
            let _ = conn.read(&mut request);
            for piece in pieces {
                let _ = conn.write_all(&piece);
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(hold);
        });
        address
    }

    /// Fetches from a server that writes `pieces` and then keeps the connection open for
    /// `hold`.
    fn fetch(
        pieces: &[&str],
        limit: u64,
        within: Duration,
        hold: Duration,
    ) -> Result<(u16, Vec<u8>), FetchError> {
        let pieces = pieces.iter().map(|p| p.as_bytes().to_vec()).collect();
        let address = serve(pieces, hold);
        let request = Request {
            address: "agent:5051",
            path: "/monitor/statistics",
            authorization: None,
        };
        let ends = Instant::now() + within;
        let answer = get(&[address], &request, within, ends)?;
        let status = answer.status;
        let mut body = Vec::new();
        answer.read_body(limit, &mut body, &mut |_| Ok(()))?;
        Ok((status, body))
    }

    #[test]
    fn bodies_are_read_however_they_are_framed_and_sent() {
        let second = Duration::from_secs(5);
        let cases: [&[&str]; 5] = [
            &["HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n[1,2,3]"],
            &[
                "HTTP/1.1 200 OK\r\nCont",
                "ent-Length: 7\r\n\r",
                "\n[1,",
                "2,3]trailing",
            ],
            &["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n[1,2,3]"],
            &[
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n",
                "4\r\n2,3]\r\n0\r\n\r\n",
            ],
            &["HTTP/1.0 200 OK\r\n\r\n[1,2", ",3]"],
        ];
        for pieces in cases {
            let fetched = fetch(pieces, 100, second, Duration::ZERO);
            assert_eq!(fetched.ok(), Some((200, b"[1,2,3]".to_vec())), "{pieces:?}");
        }
        let long = "HTTP/1.1 200 OK\r\n\r\n12345678901";
        assert!(matches!(
            fetch(&[long], 10, second, Duration::ZERO),
            Err(FetchError::TooLarge(10))
        ));
        let cut = "HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n[1,2,3]";
        assert!(matches!(
            fetch(&[cut], 100, second, Duration::ZERO),
            Err(FetchError::Truncated(_))
        ));
        let headless = "HTTP/1.1 200 OK\r\nContent-Le";
        assert!(matches!(
            fetch(&[headless], 100, second, Duration::ZERO),
            Err(FetchError::Truncated(_))
        ));
        let garbage = "\x16\x03\x01 no HTTP here\r\n\r\n";
        assert!(matches!(
            fetch(&[garbage], 100, second, Duration::ZERO),
            Err(FetchError::BadHttp(_))
        ));
        let status = "HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(
            fetch(&[status], 100, second, Duration::ZERO).ok(),
            Some((500, b"no".to_vec()))
        );
    }

    #[test]
    fn silence_and_closed_ports_fail_by_the_request_end() {
        let short = Duration::from_millis(300);
        let started = Instant::now();
        let silent = fetch(
            &["HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n[1,"],
            100,
            short,
            short * 3,
        );
        assert!(matches!(silent, Err(FetchError::Timeout)), "{silent:?}");
        assert!(started.elapsed() >= short);
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a loopback port");
        let request = Request {
            address: "agent:5051",
            path: "/",
            authorization: None,
        };
        let refused = get(&[closed], &request, short, Instant::now() + short).map(|a| a.status);
        assert!(matches!(refused, Err(FetchError::Refused)), "{refused:?}");
    }
}

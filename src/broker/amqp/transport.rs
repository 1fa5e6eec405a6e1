//! The byte stream under the AMQP connection: plain TCP, or TLS through rustls for an
//! `amqps://` broker (its certificate checked against the CA file or the system's roots,
//! and its name against the host as written), in two
//! halves: one the publisher thread writes through, one the reader thread reads from.
//!
//! A TCP socket is simply cloned. A TLS connection is one state machine both directions
//! go through, so the halves share it behind a mutex and hold the lock only to seal or
//! open bytes in memory, never while waiting on the socket: the reader waits for
//! ciphertext on its own clone of the socket, and only the writer writes to the socket,
//! so records leave in the order they were sealed (anything the reader's side queues,
//! such as a key-update answer, leaves with the next write). A batch is still one
//! socket write.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What `check` shows of a TLS connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsPeer {
    /// `TLS 1.3`
    pub(crate) version: String,
    /// The certificate's subject, `CN=mq.example, O=Example`.
    pub(crate) subject: String,
}

/// A connected stream, before the AMQP handshake.
pub(crate) struct Link {
    pub(crate) writer: WriteHalf,
    pub(crate) reader: ReadHalf,
    /// Set for a TLS connection.
    pub(crate) peer: Option<TlsPeer>,
    /// When the connection must be ready: the TLS handshake and the AMQP login share it,
    /// so a server that keeps talking without ever finishing cannot hold a pass.
    pub(crate) ready_by: Instant,
}

/// Connecting, the TLS handshake and the AMQP login (a handful of round trips) together
/// get this many connect timeouts; each read and write keeps one of its own.
const SETUP_TIMEOUTS: u32 = 3;

/// Connects to `host`:`port` within `timeout`, and with `tls` (built by
/// [`client_config`]) completes a TLS handshake, checking the certificate against `host`.
/// Every read and write keeps `timeout` until the caller lifts it.
pub(crate) fn connect(
    host: &str,
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
    timeout: Duration,
) -> io::Result<Link> {
    let ready_by = Instant::now() + timeout * SETUP_TIMEOUTS;
    let socket = connect_any(host, port, timeout)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    socket.set_nodelay(true)?;
    match tls {
        None => plain(socket, ready_by),
        Some(config) => secure(socket, host, config, ready_by),
    }
}

/// Connects to the first address of `host` that accepts (a name may resolve to an IPv6
/// and an IPv4 address, and the broker listen on only one).
fn connect_any(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let targets = (host, port)
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve: {e}")))?;
    let mut last = io::Error::other("the host resolves to no address");
    for target in targets {
        match TcpStream::connect_timeout(&target, timeout) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = io::Error::new(e.kind(), format!("cannot connect: {e}")),
        }
    }
    Err(last)
}

/// The two halves of a plain TCP connection.
fn plain(socket: TcpStream, ready_by: Instant) -> io::Result<Link> {
    Ok(Link {
        reader: ReadHalf::Plain(socket.try_clone()?),
        writer: WriteHalf::Plain(socket),
        peer: None,
        ready_by,
    })
}

fn secure(
    mut socket: TcpStream,
    host: &str,
    config: &Arc<ClientConfig>,
    ready_by: Instant,
) -> io::Result<Link> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::other(format!("not a name a certificate can hold: {e}")))?;
    let mut conn = ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        if Instant::now() > ready_by {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake failed: not done in time",
            ));
        }
        conn.complete_io(&mut socket).map_err(handshake_error)?;
    }
    let peer = TlsPeer {
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".into(),
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".into(),
            other => format!("{other:?}"),
        },
        subject: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| {
                webpki::EndEntityCert::try_from(der)
                    .ok()
                    .map(|c| subject(c.subject()))
            })
            .unwrap_or_default(),
    };
    let shared = Arc::new(Mutex::new(conn));
    Ok(Link {
        reader: ReadHalf::Tls(Box::new(TlsReader {
            socket: socket.try_clone()?,
            conn: Arc::clone(&shared),
            sealed: vec![0; 64 * 1024],
            start: 0,
            end: 0,
        })),
        writer: WriteHalf::Tls {
            socket,
            conn: shared,
            sealed: Vec::with_capacity(64 * 1024),
        },
        peer: Some(peer),
        ready_by,
    })
}

/// A failed handshake in words; a refused certificate names the settings to check.
fn handshake_error(e: io::Error) -> io::Error {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)));
    let hint = if certificate {
        " (is its CA in STATS_COLLECTOR_RABBITMQ_CA_FILE, and the host as written a name \
         the certificate holds?)"
    } else {
        ""
    };
    io::Error::new(e.kind(), format!("TLS handshake failed: {e}{hint}"))
}

/// The TLS settings of a pass: the CA file's certificates, or the system's roots.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("the CA file {shown} holds no usable certificate"));
            }
        }
        None => {
            // Unreadable entries of the system store are skipped, as a browser would.
            let system = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(system.certs);
        }
    }
    // The ring provider is named rather than taken from the process default, which
    // would be ambiguous if another crate enabled a second provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn lock(conn: &Mutex<ClientConnection>) -> MutexGuard<'_, ClientConnection> {
    // A panicked half leaves a connection that fails its next I/O: carrying on is fine.
    conn.lock().unwrap_or_else(|e| e.into_inner())
}

fn invalid_data(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The half the publisher thread writes through.
pub(crate) enum WriteHalf {
    Plain(TcpStream),
    Tls {
        socket: TcpStream,
        conn: Arc<Mutex<ClientConnection>>,
        /// Sealed records of one write, sent with one system call.
        sealed: Vec<u8>,
    },
}

impl WriteHalf {
    fn socket(&self) -> &TcpStream {
        match self {
            WriteHalf::Plain(socket) | WriteHalf::Tls { socket, .. } => socket,
        }
    }

    /// Sets the read timeout of the connection (both halves share the socket).
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }

    /// Ends the connection at once, unblocking the reader.
    pub(crate) fn shutdown(&self) {
        let _ = self.socket().shutdown(Shutdown::Both);
    }
}

impl Write for WriteHalf {
    /// Plain: one write. TLS: seals all of `data` and sends the records together, so
    /// a batch stays one system call.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Plain(socket) => socket.write(data),
            WriteHalf::Tls {
                socket,
                conn,
                sealed,
            } => {
                sealed.clear();
                seal(&mut lock(conn), data, sealed)?;
                socket.write_all(sealed)?;
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Seals all of `data` into records appended to `sealed`.
fn seal(conn: &mut ClientConnection, mut data: &[u8], sealed: &mut Vec<u8>) -> io::Result<()> {
    loop {
        // rustls takes up to its buffer limit at a time; drain it and go on.
        let taken = conn.writer().write(data)?;
        data = &data[taken..];
        if taken == 0 && !conn.wants_write() && !data.is_empty() {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while conn.wants_write() {
            conn.write_tls(sealed)?;
        }
        if data.is_empty() {
            return Ok(());
        }
    }
}

/// The half the reader thread reads from.
pub(crate) enum ReadHalf {
    Plain(TcpStream),
    Tls(Box<TlsReader>),
}

pub(crate) struct TlsReader {
    socket: TcpStream,
    conn: Arc<Mutex<ClientConnection>>,
    /// Ciphertext read from the socket; `start..end` is not yet opened.
    sealed: Vec<u8>,
    start: usize,
    end: usize,
}

impl Read for ReadHalf {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(socket) => socket.read(out),
            ReadHalf::Tls(tls) => tls.read(out),
        }
    }
}

impl TlsReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let TlsReader {
            socket,
            conn,
            sealed,
            start,
            end,
        } = self;
        loop {
            {
                let mut conn = lock(conn);
                open_pending(&mut conn, &sealed[..*end], start)?;
                match conn.reader().read(out) {
                    // 0: the broker ended TLS; a socket closed without that is an
                    // UnexpectedEof error, which callers treat as a hang-up.
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if *start < *end {
                    continue;
                }
            }
            // Wait for the broker without holding the lock, so the writer can go on.
            let n = socket.read(sealed)?;
            (*start, *end) = (0, n);
            if n == 0 {
                let mut conn = lock(conn);
                conn.read_tls(&mut io::empty())?;
                conn.process_new_packets().map_err(invalid_data)?;
                return match conn.reader().read(out) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                    other => other,
                };
            }
        }
    }
}

/// rustls refuses more ciphertext while it holds over 16 KiB of plaintext.
const PLAINTEXT_ROOM: usize = 16 * 1024;

/// Opens the ciphertext in `sealed[*start..]` until that much plaintext is ready or none
/// is left: a burst of acks is handed over together, as it is over plain TCP.
fn open_pending(conn: &mut ClientConnection, sealed: &[u8], start: &mut usize) -> io::Result<()> {
    while *start < sealed.len() {
        let mut pending = &sealed[*start..];
        *start += conn.read_tls(&mut pending)?;
        let state = conn.process_new_packets().map_err(invalid_data)?;
        if state.plaintext_bytes_to_read() >= PLAINTEXT_ROOM {
            break;
        }
    }
    Ok(())
}

/// A certificate subject (DER, without its outer SEQUENCE) in words: the usual
/// attributes as `CN=…, O=…`, in the certificate's order; others left out.
pub(super) fn subject(der: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut names = der;
    while let Some((0x31, set, rest)) = tlv(names) {
        names = rest;
        let mut attributes = set;
        while let Some((0x30, attribute, rest)) = tlv(attributes) {
            attributes = rest;
            let Some((0x06, oid, value)) = tlv(attribute) else {
                continue;
            };
            let Some((_, text, _)) = tlv(value) else {
                continue;
            };
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN",
                [0x55, 0x04, 0x06] => "C",
                [0x55, 0x04, 0x07] => "L",
                [0x55, 0x04, 0x08] => "ST",
                [0x55, 0x04, 0x0a] => "O",
                [0x55, 0x04, 0x0b] => "OU",
                _ => continue,
            };
            parts.push(format!("{label}={}", String::from_utf8_lossy(text)));
        }
    }
    if parts.is_empty() {
        "(no subject names)".into()
    } else {
        parts.join(", ")
    }
}

/// One DER element: (tag, contents, what follows); None when cut short.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        (
            bytes.iter().fold(0usize, |n, &b| n << 8 | usize::from(b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A TLS echo server on loopback for one connection, with a certificate for
    /// `localhost` from a CA of its own; returns its port and the CA as PEM.
    fn echo_server() -> (u16, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let key = KeyPair::generate().expect("key");
        let params = CertificateParams::new(vec!["localhost".into()]).expect("params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("key"),
            )
            .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            let (socket, _) = listener.accept().expect("accept");
            let conn = rustls::ServerConnection::new(Arc::new(config)).expect("connection");
            let mut stream = rustls::StreamOwned::new(conn, socket);
            let mut buffer = vec![0; 100_000];
            while let Ok(n @ 1..) = stream.read(&mut buffer) {
                if stream.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        });
        (port, ca.pem())
    }

    #[test]
    fn both_halves_carry_large_writes_over_tls_at_once() {
        let (port, ca_pem) = echo_server();
        let ca_file = std::env::temp_dir().join(format!("transport-ca-{port}.pem"));
        std::fs::write(&ca_file, ca_pem).expect("write the CA");
        let config = client_config(Some(&ca_file)).expect("TLS config");
        let _ = std::fs::remove_file(&ca_file);
        let link = connect("localhost", port, Some(&config), Duration::from_secs(5))
            .expect("TLS connection");
        let peer = link.peer.expect("a TLS peer");
        assert!(peer.version.starts_with("TLS 1."), "{peer:?}");
        // Many records per write, written while the other half reads.
        let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut writer = link.writer;
        let to_send = sent.clone();
        let writing = std::thread::spawn(move || {
            for chunk in to_send.chunks(700_000) {
                writer.write_all(chunk).expect("write");
            }
            writer
        });
        let mut received = vec![0; sent.len()];
        let mut reader = link.reader;
        reader.read_exact(&mut received).expect("read the echo");
        assert!(received == sent, "the echo differs");
        let writer = writing.join().expect("the writer thread");
        writer.shutdown();
        assert_eq!(
            reader.read(&mut [0; 16]).map_err(|e| e.kind()),
            Err(io::ErrorKind::UnexpectedEof)
        );
    }

    #[test]
    fn a_plaintext_broker_fails_the_handshake_without_blaming_certificates() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            // What a plain AMQP port answers to bytes it does not understand.
            let (mut socket, _) = listener.accept().expect("accept");
            let _ = socket.write_all(b"AMQP\x00\x00\x09\x01");
        });
        let config = client_config(None).expect("system roots");
        let error = connect("localhost", port, Some(&config), Duration::from_secs(5))
            .err()
            .expect("refused");
        let why = error.to_string();
        assert!(why.starts_with("TLS handshake failed: "), "{why}");
        assert!(!why.contains("CA_FILE"), "{why}");
    }

    #[test]
    fn an_untrusted_certificate_fails_the_handshake() {
        let (port, _) = echo_server();
        let (_, other_ca) = echo_server();
        let ca_file = std::env::temp_dir().join(format!("transport-other-ca-{port}.pem"));
        std::fs::write(&ca_file, other_ca).expect("write the CA");
        let config = client_config(Some(&ca_file)).expect("TLS config");
        let _ = std::fs::remove_file(&ca_file);
        let error = connect("localhost", port, Some(&config), Duration::from_secs(5))
            .err()
            .expect("refused");
        assert!(
            error.to_string().contains("TLS handshake failed"),
            "{error}"
        );
    }

    #[test]
    fn subjects_read_as_attribute_lists() {
        // SET { SEQ { OID 2.5.4.3, UTF8 "mq" } }, SET { SEQ { OID 2.5.4.10, PRINTABLE "Ex" } }
        let der = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, b'm', b'q', 0x31,
            0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x13, 0x02, b'E', b'x',
        ];
        assert_eq!(subject(&der), "CN=mq, O=Ex");
        assert_eq!(subject(&[]), "(no subject names)");
        for cut in 0..der.len() {
            let _ = subject(&der[..cut]);
        }
        assert_eq!(
            subject(&[0x31, 0x84, 0xff, 0xff, 0xff, 0xff]),
            "(no subject names)"
        );
    }
}

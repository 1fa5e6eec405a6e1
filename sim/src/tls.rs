//! The connection type the servers talk through: plain TCP, or TLS via rustls when the
//! cluster has an identity. Kept apart so the HTTP and fault code never cares which.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::TlsIdentity;

/// Builds the server configuration once per cluster from PEM text.
///
/// The ring provider is named explicitly rather than taken from the process default,
/// which would panic if another crate in the build enabled a second provider.
pub(crate) fn server_config(identity: &TlsIdentity) -> io::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(identity.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("bad certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(String::from(
            "no certificate in the certificate PEM",
        )));
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| invalid(format!("bad private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(format!("unusable TLS identity: {e}")))?;
    Ok(Arc::new(config))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// One accepted connection.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    /// Wraps an accepted socket; `timeout` bounds every read and write so a silent or
    /// stalled client cannot hold a server thread forever.
    pub fn new(
        tcp: TcpStream,
        tls: Option<&Arc<ServerConfig>>,
        timeout: Duration,
    ) -> io::Result<Conn> {
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        // Head and body go out in separate writes; Nagle would hold the body back.
        tcp.set_nodelay(true)?;
        match tls {
            None => Ok(Conn::Plain(tcp)),
            Some(config) => {
                let session =
                    ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
                Ok(Conn::Tls(Box::new(StreamOwned::new(session, tcp))))
            }
        }
    }

    /// Ends the connection cleanly: TLS peers get a close_notify so they can tell a
    /// complete answer from a cut one. Dropping a Conn instead cuts it.
    pub fn finish(self) {
        if let Conn::Tls(mut stream) = self {
            stream.conn.send_close_notify();
            // The peer may already be gone; there is nobody left to tell.
            let _ = stream.flush();
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

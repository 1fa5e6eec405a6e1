//! https: masters and agents serve through rustls when the cluster has an identity, with
//! a certificate generated on the spot (no network, no files).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "an integration test crate: its helpers, like its tests, fail by panicking with a message"
)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use mesos_sim::{AgentFault, Cluster, ClusterSpec, TlsIdentity};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::{host_port, parse, request_bytes, Reply};

/// A cluster with a fresh self-signed "localhost" certificate, and a client trusting it.
fn start() -> (Cluster, Arc<ClientConfig>) {
    let generated = rcgen::generate_simple_self_signed(vec![String::from("localhost")])
        .expect("generate a certificate");
    let identity = TlsIdentity {
        cert_chain_pem: generated.cert.pem(),
        key_pem: generated.key_pair.serialize_pem(),
    };
    let cluster = Cluster::start(ClusterSpec {
        standby_masters: 1,
        first_ip: mesos_sim::fresh_first_ip(ClusterSpec::default().agents),
        tls: Some(identity),
        ..ClusterSpec::default()
    })
    .expect("start the cluster");
    (cluster, client_config(generated.cert.der().clone()))
}

fn client_config(trusted: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(trusted).expect("trust the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// GETs over TLS, returning the bytes read and how reading ended.
fn tls_exchange(
    config: &Arc<ClientConfig>,
    address: &str,
    path: &str,
) -> (Vec<u8>, std::io::Result<usize>) {
    let name = ServerName::try_from("localhost").expect("server name");
    let session = ClientConnection::new(Arc::clone(config), name).expect("client session");
    let tcp = TcpStream::connect(address).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    let mut stream = StreamOwned::new(session, tcp);
    stream
        .write_all(request_bytes(address, path, &[]).as_bytes())
        .expect("send");
    let mut raw = Vec::new();
    let ended = stream.read_to_end(&mut raw);
    (raw, ended)
}

fn tls_get(config: &Arc<ClientConfig>, address: &str, path: &str) -> Reply {
    let (raw, ended) = tls_exchange(config, address, path);
    ended.expect("a clean close_notify ending");
    parse(&raw)
}

#[test]
fn masters_and_agents_speak_https() {
    let (cluster, config) = start();
    let leader = cluster.leader_url();
    assert!(leader.starts_with("https://127.0.0.1:"), "{leader}");
    let listing = tls_get(&config, host_port(&leader), "/master/slaves");
    assert_eq!(listing.status, 200);
    assert_eq!(listing.json()["slaves"].as_array().map(Vec::len), Some(3));
    let standby = tls_get(
        &config,
        host_port(&cluster.standby_urls()[0]),
        "/master/slaves",
    );
    assert_eq!(standby.status, 307);
    let stats = tls_get(&config, &cluster.agents()[0].address, "/monitor/statistics");
    assert_eq!(stats.status, 200);
    assert_eq!(stats.json().as_array().map(Vec::len), Some(5));
}

#[test]
fn truncated_tls_answers_end_without_close_notify() {
    let (cluster, config) = start();
    cluster.set_agent_fault(0, AgentFault::Truncated);
    let (raw, ended) = tls_exchange(&config, &cluster.agents()[0].address, "/monitor/statistics");
    assert!(ended.is_err(), "a cut connection must not look complete");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
}

#[test]
fn plain_http_gets_no_answer_from_a_tls_agent() {
    let (cluster, _) = start();
    let raw = support::exchange(&cluster.agents()[1].address, "/monitor/statistics", &[]);
    assert!(!raw.starts_with(b"HTTP/1.1 200"));
}

#[test]
fn unusable_identities_are_rejected() {
    let spec = ClusterSpec {
        tls: Some(TlsIdentity {
            cert_chain_pem: String::from("not a certificate"),
            key_pem: String::new(),
        }),
        ..ClusterSpec::default()
    };
    let err = Cluster::start(spec).err().expect("a bad identity fails");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

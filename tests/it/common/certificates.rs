//! TLS certificates made for one test (`TestCertificates`): a CA and a server certificate.

use super::*;
use std::path::PathBuf;

/// A CA and a server certificate it signed, as PEM, made for one test.
#[derive(Clone, Debug)]
pub struct TestCertificates {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCertificates {
    /// A fresh CA, and a certificate it signed for these DNS names and IP addresses.
    pub fn new(names: &[&str], ips: &[std::net::IpAddr]) -> TestCertificates {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, unique_name("asgard test CA"));
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let key = KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("params");
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");
        TestCertificates {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the CA to a file of its own (for STATS_COLLECTOR_*_CA_FILE).
    pub fn ca_file(&self) -> PathBuf {
        let path = std::env::temp_dir().join(format!("{}-ca.pem", unique_name("asgard-ca")));
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }
}

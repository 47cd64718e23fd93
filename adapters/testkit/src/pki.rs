//! Certificates made in the test: a CA, server and client certificates it signs (one of them
//! expired), written to PEM files for configurations that name files.

use railgate_rail::tls::{self, ClientTls, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate authority of the test's own.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub pem: String,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        Ca { cert, key, pem }
    }

    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        usage: ExtendedKeyUsagePurpose,
        expired: bool,
    ) -> Issued {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self) -> Issued {
        self.issue(
            "rail",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    pub fn client(&self, name: &str) -> Issued {
        self.issue(name, &[], ExtendedKeyUsagePurpose::ClientAuth, false)
    }

    /// A client certificate that expired in 2001.
    pub fn expired_client(&self, name: &str) -> Issued {
        self.issue(name, &[], ExtendedKeyUsagePurpose::ClientAuth, true)
    }

    /// The CA certificate written to `dir/<file>`.
    pub fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, &self.pem).unwrap();
        p
    }
}

impl Issued {
    /// Writes `dir/<stem>.crt` and `dir/<stem>.key`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let c = dir.join(format!("{stem}.crt"));
        let k = dir.join(format!("{stem}.key"));
        std::fs::write(&c, &self.cert_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        (c, k)
    }

    /// The pin of the certificate (SHA-256 of its DER, hex).
    pub fn sha256(&self) -> String {
        let der = tls::certificates("cert", self.cert_pem.as_bytes()).unwrap();
        tls::sha256_pin(&der[0])
    }
}

/// A rail's TLS server: `server`'s certificate, and client certificates from `client_ca`
/// required when given.
pub fn server_config(server: &Issued, client_ca: Option<&Ca>) -> Arc<rustls::ServerConfig> {
    Arc::new(
        tls::server_config(
            server.cert_pem.as_bytes(),
            server.key_pem.as_bytes(),
            client_ca.map(|c| c.pem.as_bytes()),
            client_ca.is_some(),
        )
        .unwrap(),
    )
}

/// The `[rails.tls]` settings trusting only `ca` and presenting `client`, with the files
/// written to `dir`.
pub fn settings(dir: &Path, ca: &Ca, client: Option<&Issued>) -> TlsSettings {
    let stem = format!("client-{}", std::process::id());
    let (client_cert_file, client_key_file) = match client {
        Some(c) => {
            let (cert, key) = c.write(dir, &format!("{stem}-{}", rand_suffix()));
            (
                Some(cert.display().to_string()),
                Some(key.display().to_string()),
            )
        }
        None => (None, None),
    };
    TlsSettings {
        client_cert_file,
        client_key_file,
        ca_file: Some(
            ca.write(dir, &format!("ca-{}.pem", rand_suffix()))
                .display()
                .to_string(),
        ),
        public_roots: false,
        ..TlsSettings::default()
    }
}

/// The loaded client side of [`settings`].
pub fn client_tls(dir: &Path, ca: &Ca, client: Option<&Issued>) -> ClientTls {
    settings(dir, ca, client).load().unwrap()
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

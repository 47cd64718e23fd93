//! TLS with a rail: our client certificate, the rail's CA, an optional pin of its certificate
//! (outbound); and the server side that the gateway and the mock rails terminate (inbound).
//!
//! Everything is rustls with the `ring` provider, the same one the HTTP client is built on.
//! Certificates and keys are PEM, each read from a file or an environment variable; a key is
//! never printed (the `Debug` of everything here names files and counts, not contents).

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;

pub use rustls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why TLS material could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(pub String);

fn err(m: impl Into<String>) -> TlsError {
    TlsError(m.into())
}

/// The crypto every TLS configuration here is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where one piece of PEM comes from.
fn read_pem(
    what: &str,
    file: Option<&str>,
    env: Option<&str>,
) -> Result<Option<Vec<u8>>, TlsError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(err(format!(
            "give {what} as a file or an environment variable, not both"
        ))),
        (Some(path), None) => std::fs::read(path)
            .map(Some)
            .map_err(|e| err(format!("cannot read the {what} file {path}: {e}"))),
        (None, Some(var)) => std::env::var(var)
            .map(|v| Some(v.into_bytes()))
            .map_err(|_| err(format!("environment variable {var} ({what}) is not set"))),
        (None, None) => Ok(None),
    }
}

/// Every certificate in a PEM text, at least one.
pub fn certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("{what}: not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(err(format!("{what}: no certificate in it")));
    }
    Ok(certs)
}

/// The one private key in a PEM text (PKCS#8, PKCS#1 or SEC1). The error never quotes it.
pub fn private_key(what: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| err(format!("{what}: no PEM private key in it")))
}

/// A root store of the given CA certificates.
fn roots_of(what: &str, certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| err(format!("{what}: not a usable CA certificate ({e})")))?;
    }
    Ok(roots)
}

/// A certificate's pin: SHA-256 of its DER, lowercase hex.
pub fn sha256_pin(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}

fn parse_pin(text: &str) -> Result<[u8; 32], TlsError> {
    let hexed: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bytes =
        hex::decode(&hexed).map_err(|_| err(format!("pinned_sha256 '{text}' is not hex")))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        err(format!(
            "pinned_sha256 '{text}' is not 32 bytes (SHA-256 of the DER)"
        ))
    })
}

fn yes() -> bool {
    true
}

/// The `[rails.tls]` table (also `[notify.tls]`): how we connect to a rail over TLS.
///
/// Each PEM piece comes from `<name>_file` or `<name>_env` (the environment variable holds
/// the PEM text itself). All are optional: without any, the public web roots are trusted and
/// no client certificate is presented, as without the table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Our client certificate (chain), PEM, for rails that require mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    #[serde(default)]
    pub client_cert_env: Option<String>,
    /// Its private key, PEM.
    #[serde(default)]
    pub client_key_file: Option<String>,
    #[serde(default)]
    pub client_key_env: Option<String>,
    /// CA certificates to trust for the rail's server certificate (a scheme's private CA).
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default)]
    pub ca_env: Option<String>,
    /// Whether the public web roots are trusted too (default true); false trusts only the CA
    /// bundle above.
    #[serde(default = "yes")]
    pub public_roots: bool,
    /// SHA-256 of the DER of the rail's certificate, hex (colons allowed). When set, the
    /// certificate must also be one of these, besides being trusted.
    #[serde(default)]
    pub pinned_sha256: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            client_cert_file: None,
            client_cert_env: None,
            client_key_file: None,
            client_key_env: None,
            ca_file: None,
            ca_env: None,
            public_roots: true,
            pinned_sha256: Vec::new(),
        }
    }
}

impl TlsSettings {
    /// Reads and checks everything the settings name.
    pub fn load(&self) -> Result<ClientTls, TlsError> {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        if self.public_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let mut extra_cas = 0usize;
        if let Some(pem) = read_pem("CA bundle", self.ca_file.as_deref(), self.ca_env.as_deref())? {
            let cas = certificates("CA bundle", &pem)?;
            extra_cas = cas.len();
            for c in cas {
                roots
                    .add(c)
                    .map_err(|e| err(format!("CA bundle: not a usable CA certificate ({e})")))?;
            }
        }
        if roots.is_empty() {
            return Err(err(
                "public_roots = false needs a CA bundle (ca_file or ca_env)",
            ));
        }
        let pins = self
            .pinned_sha256
            .iter()
            .map(|p| parse_pin(p))
            .collect::<Result<Vec<_>, _>>()?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| err(format!("cannot build the certificate verifier: {e}")))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?;
        let builder = if pins.is_empty() {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    inner: webpki,
                    pins: pins.clone(),
                }))
        };
        let cert = read_pem(
            "client certificate",
            self.client_cert_file.as_deref(),
            self.client_cert_env.as_deref(),
        )?;
        let key = read_pem(
            "client key",
            self.client_key_file.as_deref(),
            self.client_key_env.as_deref(),
        )?;
        let (config, client_cert) = match (cert, key) {
            (None, None) => (builder.with_no_client_auth(), None),
            (Some(cert), Some(key)) => {
                let chain = certificates("client certificate", &cert)?;
                let pin = chain.first().map(sha256_pin);
                let key = private_key("client key", &key)?;
                let config = builder.with_client_auth_cert(chain, key).map_err(|e| {
                    err(format!(
                        "the client key does not go with the client certificate ({e})"
                    ))
                })?;
                (config, pin)
            }
            (Some(_), None) => {
                return Err(err(
                    "a client certificate needs its key (client_key_file or client_key_env)",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "a client key needs its certificate (client_cert_file or client_cert_env)",
                ))
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
            client_cert,
            extra_cas,
            pins: pins.len(),
            public_roots: self.public_roots,
        })
    }
}

/// Loaded client TLS: what an HTTP client to one rail is built with.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
    client_cert: Option<String>,
    extra_cas: usize,
    pins: usize,
    public_roots: bool,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("client_cert_sha256", &self.client_cert)
            .field("extra_cas", &self.extra_cas)
            .field("pins", &self.pins)
            .field("public_roots", &self.public_roots)
            .finish()
    }
}

impl ClientTls {
    /// A client configuration made elsewhere (tests, a caller with its own verifier).
    pub fn from_config(config: rustls::ClientConfig) -> ClientTls {
        ClientTls {
            client_cert: None,
            extra_cas: 0,
            pins: 0,
            public_roots: false,
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &Arc<rustls::ClientConfig> {
        &self.config
    }

    /// SHA-256 of our client certificate, when one is presented (to give the scheme).
    pub fn client_cert_sha256(&self) -> Option<&str> {
        self.client_cert.as_deref()
    }
}

/// An HTTP client builder with `tls` (or the defaults: public web roots, no client
/// certificate). Every adapter builds its client here.
pub fn client_builder(tls: Option<&ClientTls>) -> reqwest::ClientBuilder {
    // A kept-alive connection is let go after a few idle seconds, before the server closes it
    // (Node.js servers, as most of a Mojaloop hub is, close theirs after 5 s; ours after its
    // header timeout): a request written onto a connection the server is closing meets a
    // reset, and a callback or a payment request lost that way is a delivery failed for
    // nothing.
    let builder = reqwest::Client::builder().pool_idle_timeout(POOL_IDLE);
    match tls {
        Some(t) => builder.use_preconfigured_tls((*t.config).clone()),
        None => builder,
    }
}

/// How long an idle kept-alive connection is kept for the next request (see [`client_builder`]).
pub const POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(4);

/// The usual chain check, then the pin: the certificate must be trusted *and* pinned.
struct Pinned {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl fmt::Debug for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("pins", &self.pins.len())
            .finish()
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let digest: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if self.pins.contains(&digest) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server side: our certificate and key, and optionally the CA whose client certificates
/// we ask for (`require` refuses a connection without one; otherwise one is asked for but not
/// required, and a presented one must still chain to the CA).
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
    require: bool,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let chain = certificates("server certificate", cert_pem)?;
    let key = private_key("server key", key_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?;
    let builder = match client_ca_pem {
        None if require => return Err(err("requiring client certificates needs their CA")),
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let roots = roots_of("client CA", certificates("client CA", pem)?)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if require {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| err(format!("client CA: {e}")))?,
            )
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        err(format!(
            "the server key does not go with its certificate ({e})"
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks a client's certificate against one CA after the handshake (a route that trusts a
/// narrower CA than the listener: the gateway's `/rails/{id}/…` for a rail with its own).
#[derive(Clone)]
pub struct ClientCertCheck {
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

impl fmt::Debug for ClientCertCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientCertCheck")
    }
}

impl ClientCertCheck {
    pub fn new(ca_pem: &[u8]) -> Result<ClientCertCheck, TlsError> {
        let roots = roots_of("client CA", certificates("client CA", ca_pem)?)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| err(format!("client CA: {e}")))?;
        Ok(ClientCertCheck { verifier })
    }

    /// Whether `chain` (end entity first, as the peer presented it) chains to the CA now.
    pub fn check(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err("no client certificate was presented".into());
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| format!("the client certificate was refused: {e}"))
    }
}

/// PEM from a file or an environment variable, as the settings above read it (for callers
/// with settings of their own shape).
pub fn read_pem_source(
    what: &str,
    file: Option<&str>,
    env: Option<&str>,
) -> Result<Option<Vec<u8>>, TlsError> {
    read_pem(what, file, env)
}

#[cfg(feature = "serve")]
pub use listener::TlsListener;

#[cfg(feature = "serve")]
mod listener {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::server::TlsStream;
    use tokio_rustls::TlsAcceptor;

    /// A listener that hands `axum::serve` connections after their TLS handshake. A failed
    /// handshake (a client certificate refused, say) closes that connection only.
    pub struct TlsListener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl TlsListener {
        pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
            TlsListener {
                tcp,
                acceptor: TlsAcceptor::from(config),
            }
        }
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let (tcp, addr) = match self.tcp.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "Accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                // Bounded, so that a client that never finishes its handshake cannot hold the
                // listener (handshakes are taken one at a time here: fit for a mock).
                match tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => return (tls, addr),
                    Ok(Err(e)) => tracing::info!(error = %e, %addr, "TLS handshake refused"),
                    Err(_) => tracing::info!(%addr, "TLS handshake timed out"),
                }
            }
        }

        fn local_addr(&self) -> io::Result<Self::Addr> {
            self.tcp.local_addr()
        }
    }
}

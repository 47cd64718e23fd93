//! Outbound TLS against a server on loopback with certificates made here: mutual TLS accepted,
//! a server from another CA refused, an expired client certificate refused, pins, and how each
//! failure reads (could the request have reached the rail?).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use railgate_rail::tls::{client_builder, ClientTls, TlsListener, TlsSettings};
use railgate_rail::transport::{send_failure, Reach};
use railgate_testkit::pki::{self, Ca, Issued};
use std::net::SocketAddr;
use std::sync::Arc;

/// An HTTPS server answering `GET /` with "ok".
async fn serve(config: Arc<rustls::ServerConfig>) -> SocketAddr {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(TlsListener::new(tcp, config), app).await });
    addr
}

async fn get(tls: &ClientTls, addr: SocketAddr) -> Result<String, reqwest::Error> {
    let client = client_builder(Some(tls)).build().unwrap();
    client
        .get(format!("https://{addr}/"))
        .send()
        .await?
        .text()
        .await
}

struct World {
    ca: Ca,
    server: Issued,
    dir: tempfile::TempDir,
}

fn world() -> World {
    let ca = Ca::new("Scheme CA");
    let server = ca.server();
    World {
        ca,
        server,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[tokio::test]
async fn a_rail_that_requires_a_client_certificate_accepts_ours() {
    let w = world();
    let addr = serve(pki::server_config(&w.server, Some(&w.ca))).await;
    let ours = w.ca.client("railgate");
    let tls = pki::client_tls(w.dir.path(), &w.ca, Some(&ours));
    assert_eq!(get(&tls, addr).await.unwrap(), "ok");
    assert_eq!(tls.client_cert_sha256(), Some(ours.sha256().as_str()));
}

#[tokio::test]
async fn without_a_client_certificate_the_rail_refuses_and_nothing_was_sent() {
    let w = world();
    let addr = serve(pki::server_config(&w.server, Some(&w.ca))).await;
    let tls = pki::client_tls(w.dir.path(), &w.ca, None);
    let e = get(&tls, addr).await.unwrap_err();
    let f = send_failure(&e);
    assert!(f.tls, "{f:?}");
    assert_eq!(f.reach, Reach::NotSent, "{f:?}");
    assert!(
        f.cause.contains("requires a client certificate"),
        "{}",
        f.cause
    );
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let w = world();
    let impostor = Ca::new("Someone else").server();
    let addr = serve(pki::server_config(&impostor, None)).await;
    let tls = pki::client_tls(w.dir.path(), &w.ca, Some(&w.ca.client("railgate")));
    let e = get(&tls, addr).await.unwrap_err();
    let f = send_failure(&e);
    assert!(f.tls && f.reach == Reach::NotSent, "{f:?}");
    assert!(
        f.cause.contains("not signed by a trusted CA"),
        "{}",
        f.cause
    );
    let err = f.into_rail_error("rail mmapi-tz");
    assert!(
        matches!(&err, railgate_rail::RailError::Retryable(m) if m.starts_with("rail mmapi-tz: TLS:")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_with_a_clear_error() {
    let w = world();
    let addr = serve(pki::server_config(&w.server, Some(&w.ca))).await;
    let tls = pki::client_tls(w.dir.path(), &w.ca, Some(&w.ca.expired_client("railgate")));
    let e = get(&tls, addr).await.unwrap_err();
    let f = send_failure(&e);
    assert!(f.tls, "{f:?}");
    assert_eq!(f.reach, Reach::NotSent, "{f:?}");
    assert!(
        f.cause
            .contains("refused our client certificate: it has expired"),
        "{}",
        f.cause
    );
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let w = world();
    let addr = serve(pki::server_config(&w.server, Some(&w.ca))).await;
    let stranger = Ca::new("Someone else").client("railgate");
    let tls = pki::client_tls(w.dir.path(), &w.ca, Some(&stranger));
    let f = send_failure(&get(&tls, addr).await.unwrap_err());
    assert!(f.tls && f.reach == Reach::NotSent, "{f:?}");
    assert!(
        f.cause.contains("refused our client certificate"),
        "{}",
        f.cause
    );
}

#[tokio::test]
async fn a_pinned_certificate_must_also_match_the_pin() {
    let w = world();
    let addr = serve(pki::server_config(&w.server, None)).await;
    let mut settings = pki::settings(w.dir.path(), &w.ca, None);
    // Colons and upper case, as tools print fingerprints.
    let pin = w.server.sha256().to_uppercase();
    let colons: Vec<String> = pin
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    settings.pinned_sha256 = vec![colons.join(":")];
    assert_eq!(get(&settings.load().unwrap(), addr).await.unwrap(), "ok");
    // Another certificate from the same (trusted) CA does not pass the pin.
    settings.pinned_sha256 = vec![w.ca.server().sha256()];
    let f = send_failure(&get(&settings.load().unwrap(), addr).await.unwrap_err());
    assert!(f.tls && f.reach == Reach::NotSent, "{f:?}");
    assert!(f.cause.contains("pinned"), "{}", f.cause);
}

#[tokio::test]
async fn a_rail_that_is_not_there_was_not_sent_to() {
    let w = world();
    let tls = pki::client_tls(w.dir.path(), &w.ca, None);
    let f = send_failure(&get(&tls, "127.0.0.1:9".parse().unwrap()).await.unwrap_err());
    assert!(!f.tls);
    assert_eq!(f.reach, Reach::NotSent);
    assert!(f.cause.starts_with("could not connect"), "{}", f.cause);
    assert!(
        !f.cause.contains("127.0.0.1"),
        "no URL in the cause: {}",
        f.cause
    );
}

#[test]
fn settings_that_cannot_work_are_refused_and_never_print_the_key() {
    let w = world();
    let client = w.ca.client("railgate");
    let (cert, key) = client.write(w.dir.path(), "c");
    let key_only = TlsSettings {
        client_key_file: Some(key.display().to_string()),
        ..TlsSettings::default()
    };
    assert!(key_only
        .load()
        .unwrap_err()
        .to_string()
        .contains("needs its certificate"));
    let cert_only = TlsSettings {
        client_cert_file: Some(cert.display().to_string()),
        ..TlsSettings::default()
    };
    assert!(cert_only
        .load()
        .unwrap_err()
        .to_string()
        .contains("needs its key"));
    let other_key = w.ca.client("other");
    let (_, wrong_key) = other_key.write(w.dir.path(), "o");
    let mismatched = TlsSettings {
        client_cert_file: Some(cert.display().to_string()),
        client_key_file: Some(wrong_key.display().to_string()),
        ..TlsSettings::default()
    };
    let e = mismatched.load().unwrap_err().to_string();
    assert!(e.contains("does not go with"), "{e}");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    let no_roots = TlsSettings {
        public_roots: false,
        ..TlsSettings::default()
    };
    assert!(no_roots
        .load()
        .unwrap_err()
        .to_string()
        .contains("CA bundle"));
    let bad_pin = TlsSettings {
        pinned_sha256: vec!["abcd".into()],
        ..TlsSettings::default()
    };
    assert!(bad_pin.load().unwrap_err().to_string().contains("32 bytes"));
    let missing = TlsSettings {
        ca_env: Some("RAILGATE_TEST_NO_SUCH_VARIABLE".into()),
        ..TlsSettings::default()
    };
    assert!(missing
        .load()
        .unwrap_err()
        .to_string()
        .contains("RAILGATE_TEST_NO_SUCH_VARIABLE"));
    let ok = TlsSettings {
        client_cert_file: Some(cert.display().to_string()),
        client_key_file: Some(key.display().to_string()),
        ..TlsSettings::default()
    };
    let loaded = ok.load().unwrap();
    let shown = format!("{loaded:?} {ok:?}");
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains(&client.key_pem),
        "{shown}"
    );
}

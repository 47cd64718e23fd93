//! The hub's ingress over mutual TLS with an API gateway wanting OAuth2 in front: a
//! disbursement completes with our client certificate and a bearer token on every request;
//! a revoked token is answered 401, dropped once and replaced; an expired client certificate
//! or a hub certificate from another CA is refused before anything is sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Gateway, Options, Status};
use railgate_rail::{Direction, RailAdapter, RailError};
use railgate_testkit::pki::{self, Ca};

fn tls(ca: &Ca, dir: &std::path::Path, client: railgate_testkit::pki::Issued) -> Options {
    Options {
        tls: Some((
            pki::server_config(&ca.server(), Some(ca)),
            pki::client_tls(dir, ca, Some(&client)),
        )),
        ..Options::default()
    }
}

#[tokio::test]
async fn a_disbursement_completes_over_mutual_tls_with_a_bearer_token() {
    let ca = Ca::new("Hub CA");
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(Options {
        oauth: true,
        ..tls(&ca, dir.path(), ca.client("nhif"))
    })
    .await;
    assert!(g.hub.base_url().starts_with("https://"));
    let id = g.add_attempt(Direction::Disbursement, "255712345600", "1500", "CLM-1");
    g.start_attempt(id).await;
    assert!(
        matches!(g.wait_final(id).await, Status::Completed(_)),
        "{:?}",
        g.status(id)
    );
    let received = g.hub.received();
    assert!(
        received.len() >= 3,
        "lookup, quote and transfer: {received:?}"
    );
    for r in &received {
        let auth = r.headers.iter().find(|(k, _)| k == "authorization");
        assert_eq!(
            auth.map(|(_, v)| v.as_str()),
            Some("Bearer hub-token-1"),
            "{} {}",
            r.method,
            r.path
        );
    }
    assert_eq!(g.hub.tokens_issued(), 1, "one token for every request");

    // The gateway forgets its tokens: the next request is refused once (nothing moved), the
    // token is dropped, and the resend carries a fresh one.
    g.hub.revoke_tokens();
    let second = g.add_attempt(Direction::Disbursement, "255712345700", "1500", "CLM-2");
    let attempt = g.attempt(second);
    match g.core.adapter.submit(&attempt).await {
        Err(RailError::Retryable(m)) => assert!(m.contains("access token"), "{m}"),
        other => panic!("{other:?}"),
    }
    let before = g.hub.tokens_issued();
    g.start_attempt(second).await;
    let end = g.wait_final(second).await;
    assert!(matches!(end, Status::Completed(_)), "{end:?}");
    assert_eq!(
        g.hub.tokens_issued(),
        before + 1,
        "one new token, fetched once"
    );
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_and_nothing_is_sent() {
    let ca = Ca::new("Hub CA");
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(tls(&ca, dir.path(), ca.expired_client("nhif"))).await;
    let id = g.add_attempt(Direction::Disbursement, "255712345600", "1500", "CLM-1");
    let attempt = g.attempt(id);
    match g.core.adapter.submit(&attempt).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains("rail mojaloop") && m.contains("TLS"), "{m}");
            assert!(m.contains("client certificate: it has expired"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(g.hub.received().is_empty());
}

#[tokio::test]
async fn a_hub_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("Hub CA");
    let other = Ca::new("Someone else");
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(Options {
        tls: Some((
            pki::server_config(&other.server(), Some(&ca)),
            pki::client_tls(dir.path(), &ca, Some(&ca.client("nhif"))),
        )),
        ..Options::default()
    })
    .await;
    let id = g.add_attempt(Direction::Disbursement, "255712345600", "1500", "CLM-1");
    let attempt = g.attempt(id);
    match g.core.adapter.submit(&attempt).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains("not signed by a trusted CA"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert!(g.hub.received().is_empty());
}

//! Payment Hub EE behind Keycloak and mutual TLS, as deployments put it: the mock serves
//! HTTPS with a certificate from the scheme's CA, requires our client certificate from the
//! same CA, and answers only requests carrying a bearer token from its own token endpoint.
//! The adapter is built as the gateway builds it, from the rail's settings with `[rails.tls]`
//! and `[rails.oauth]` loaded. A good certificate and token pay; a PH-EE certificate from
//! another CA, or our certificate from another CA, is refused before anything is recorded; an
//! expired token is refreshed, whether PH-EE expired it first or its lifetime ran out.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use railgate_mifos::mock::keycloak::KeycloakConfig;
use railgate_mifos::mock::{PhEeMock, PhEeMockConfig};
use railgate_rail::oauth::OAuthConfig;
use railgate_rail::tls::ClientTls;
use railgate_rail::{
    Currency, Direction, RailAdapter, RailError, RailSetup, RailStatus, Secret, Submitted,
};
use railgate_testkit::pki::{self, Ca};
use std::sync::Arc;
use std::time::Duration;

const CLIENT_ID: &str = "railgate";
const CLIENT_SECRET: &str = "keycloak-client-secret";

/// PH-EE over HTTPS, its certificate from `server_ca`, client certificates from `client_ca`
/// required, Keycloak in front with tokens living `lifetime`.
async fn phee(server_ca: &Ca, client_ca: &Ca, lifetime: Duration) -> PhEeMock {
    PhEeMock::start(PhEeMockConfig {
        tls: Some(pki::server_config(&server_ca.server(), Some(client_ca))),
        keycloak: Some(KeycloakConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            token_lifetime: lifetime,
        }),
        ..PhEeMockConfig::default()
    })
    .await
    .unwrap()
}

/// The adapter from the rail's settings, as the gateway's registry builds it.
fn adapter(mock: &PhEeMock, tls: ClientTls) -> Arc<dyn RailAdapter> {
    let mut setup = RailSetup::new("phee", "http://127.0.0.1:9/rails/phee");
    setup.request_timeout = Duration::from_secs(5);
    setup.tls = Some(tls);
    setup.oauth = Some(OAuthConfig::client_credentials(
        mock.token_url(),
        CLIENT_ID,
        Secret::new(CLIENT_SECRET),
    ));
    setup.settings = toml::from_str(&format!(
        r#"
        channel_url = "{base}"
        operations_url = "{ops}"
        tenant = "gorilla"
        payer_identifier = "255700000001"
        currencies = "TZS"
        "#,
        base = mock.base_url(),
        ops = mock.operations_url(),
    ))
    .unwrap();
    railgate_mifos::settings::phee(setup).unwrap()
}

fn disbursement(digits: u8) -> railgate_rail::Attempt {
    attempt(
        Direction::Disbursement,
        msisdn(digits),
        150_000,
        Currency::Tzs,
    )
}

#[tokio::test]
async fn a_payment_completes_with_a_client_certificate_and_a_keycloak_token() {
    let ca = Ca::new("Scheme CA");
    let dir = tempfile::tempdir().unwrap();
    let mock = phee(&ca, &ca, Duration::from_secs(3600)).await;
    assert!(mock.base_url().starts_with("https://"));
    let tls = pki::client_tls(dir.path(), &ca, Some(&ca.client("railgate")));
    let adapter = adapter(&mock, tls);
    let t = drive(adapter.as_ref(), disbursement(0), is_final, 100).await;
    assert!(matches!(t.last(), Some(RailStatus::Completed(_))), "{t:?}");
    let kc = mock.keycloak().unwrap();
    assert_eq!(
        kc.issued(),
        1,
        "one token for the transfer and every inquiry"
    );
    assert_eq!(kc.refused(), 0);
    assert_eq!(mock.payouts().len(), 1);
}

#[tokio::test]
async fn a_phee_certificate_from_another_ca_is_refused_before_anything_is_sent() {
    let ours = Ca::new("Scheme CA");
    let other = Ca::new("Someone else");
    let dir = tempfile::tempdir().unwrap();
    let mock = phee(&other, &ours, Duration::from_secs(3600)).await;
    let tls = pki::client_tls(dir.path(), &ours, Some(&ours.client("railgate")));
    let adapter = adapter(&mock, tls);
    let a = disbursement(0);
    match adapter.submit(&a).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains("not signed by a trusted CA"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let kc = mock.keycloak().unwrap();
    assert_eq!(kc.issued(), 0, "not even the token endpoint was reached");
    assert_eq!(mock.channel_posts(&a.attempt_id.to_string()), 0);
}

#[tokio::test]
async fn our_certificate_from_another_ca_is_refused_by_phee() {
    let ca = Ca::new("Scheme CA");
    let other = Ca::new("Someone else");
    let dir = tempfile::tempdir().unwrap();
    let mock = phee(&ca, &ca, Duration::from_secs(3600)).await;
    // We trust PH-EE's CA, but present a certificate PH-EE does not.
    let tls = pki::client_tls(dir.path(), &ca, Some(&other.client("railgate")));
    let adapter = adapter(&mock, tls);
    let a = disbursement(0);
    // Refused at the first handshake, the token endpoint's: nothing could have moved.
    match adapter.submit(&a).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains("rail phee"), "{m}");
            assert!(m.contains("refused our client certificate"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.keycloak().unwrap().issued(), 0);
    assert_eq!(mock.channel_posts(&a.attempt_id.to_string()), 0);
    assert!(mock.payouts().is_empty());
}

#[tokio::test]
async fn a_token_phee_expired_is_refused_once_then_replaced() {
    let ca = Ca::new("Scheme CA");
    let dir = tempfile::tempdir().unwrap();
    let mock = phee(&ca, &ca, Duration::from_secs(3600)).await;
    let tls = pki::client_tls(dir.path(), &ca, Some(&ca.client("railgate")));
    let adapter = adapter(&mock, tls);
    let first = drive(adapter.as_ref(), disbursement(0), is_final, 100).await;
    assert!(
        matches!(first.last(), Some(RailStatus::Completed(_))),
        "{first:?}"
    );
    let kc = mock.keycloak().unwrap();
    assert_eq!(kc.issued(), 1);

    // Keycloak forgets the token before its time (a restart, a revoked session): the next
    // request is refused with nothing recorded, the token is dropped, and the resend of the
    // same attempt carries a new one.
    kc.expire_all();
    let a = disbursement(0);
    match adapter.submit(&a).await {
        Err(RailError::Retryable(m)) => assert!(m.contains("access token"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(kc.refused(), 1);
    assert_eq!(
        mock.channel_posts(&a.attempt_id.to_string()),
        0,
        "refused at the door"
    );
    let t = drive(adapter.as_ref(), a, is_final, 100).await;
    assert!(matches!(t.last(), Some(RailStatus::Completed(_))), "{t:?}");
    assert!(
        matches!(t.submits.first(), Some(Ok(Submitted::Accepted { .. }))),
        "{t:?}"
    );
    assert_eq!(kc.issued(), 2, "one new token, fetched once");
    assert_eq!(kc.refused(), 1);
    assert_eq!(mock.payouts().len(), 2, "each payment paid once");
}

#[tokio::test]
async fn a_token_at_the_end_of_its_lifetime_is_refreshed_before_use() {
    let ca = Ca::new("Scheme CA");
    let dir = tempfile::tempdir().unwrap();
    // Tokens live 2 s; the client refreshes half-way through a lifetime this short.
    let mock = phee(&ca, &ca, Duration::from_secs(2)).await;
    let tls = pki::client_tls(dir.path(), &ca, Some(&ca.client("railgate")));
    let adapter = adapter(&mock, tls);
    let a = disbursement(0);
    assert!(matches!(
        adapter.submit(&a).await,
        Ok(Submitted::Accepted { .. })
    ));
    let kc = mock.keycloak().unwrap();
    assert_eq!(kc.issued(), 1);
    // Past the refresh point, not waiting on any answer: the next request fetches a new
    // token first and is never refused.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let t = drive(adapter.as_ref(), a, is_final, 100).await;
    assert!(matches!(t.last(), Some(RailStatus::Completed(_))), "{t:?}");
    assert!(kc.issued() >= 2, "issued {}", kc.issued());
    assert_eq!(kc.refused(), 0, "no request went out with an expired token");
}

//! The MMAPI adapter against its mock served over mutual TLS, with OAuth2 in front: a payment
//! completes with our client certificate; an expired one, or a provider whose certificate
//! comes from another CA, is refused before anything is sent, and the error says so.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use railgate_mmapi::mock::{MmapiMock, MmapiMockConfig};
use railgate_mmapi::{Auth, CallbackAuth, MmapiAdapter, MmapiConfig, Secret};
use railgate_rail::oauth::OAuthConfig;
use railgate_rail::tls::ClientTls;
use railgate_rail::{Currency, Direction, PartyIdType, RailAdapter, RailError, Submitted};
use railgate_testkit::pki::{self, Ca};
use railgate_testkit::{attempt, drive, End, Receiver, Until};
use std::sync::Arc;
use std::time::Duration;

const RAIL: &str = "mmapi-tz";

struct World {
    ca: Ca,
    dir: tempfile::TempDir,
    mock: MmapiMock,
}

/// The provider: HTTPS with a certificate from the scheme's CA, client certificates from the
/// same CA required, OAuth2 client credentials on its `/token`.
async fn world() -> World {
    let ca = Ca::new("Provider CA");
    let mock = MmapiMock::start(MmapiMockConfig {
        oauth_client: Some(("client-1".into(), "client-secret".into())),
        tls: Some(pki::server_config(&ca.server(), Some(&ca))),
        ..MmapiMockConfig::default()
    })
    .await
    .unwrap();
    World {
        ca,
        dir: tempfile::tempdir().unwrap(),
        mock,
    }
}

fn adapter(w: &World, receiver: &Receiver, tls: ClientTls, oauth: bool) -> Arc<MmapiAdapter> {
    let auth = if oauth {
        Auth::OAuth2 {
            oauth: OAuthConfig::client_credentials(
                w.mock.token_url(),
                "client-1",
                Secret::new("client-secret"),
            ),
            api_key: None,
        }
    } else {
        Auth::None
    };
    let mut config = MmapiConfig::new(
        RAIL,
        w.mock.base_url(),
        receiver.base(RAIL),
        auth,
        CallbackAuth::PathSecret(Secret::new("a-long-unguessable-callback-secret")),
        vec![("accountid".into(), "2000023".into())],
        vec![Currency::Tzs],
    );
    config.request_timeout = Duration::from_secs(5);
    config.tls = Some(tls);
    Arc::new(MmapiAdapter::new(config).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_completes_over_mutual_tls_with_an_oauth_token() {
    let w = world().await;
    let mut receiver = Receiver::bind().await;
    let tls = pki::client_tls(w.dir.path(), &w.ca, Some(&w.ca.client("railgate")));
    let adapter = adapter(&w, &receiver, tls.clone(), true);
    receiver.serve(adapter.clone());
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        "255712345600",
        "1500",
        Currency::Tzs,
    );
    let run = drive(adapter.as_ref(), &receiver, a, Until::default()).await;
    assert!(matches!(run.end, End::Completed(_)), "{:?}", run.end);
    // The token came from the provider's endpoint over the same mutual TLS.
    let tokens: serde_json::Value = railgate_rail::tls::client_builder(Some(&tls))
        .build()
        .unwrap()
        .get(format!("{}/tokens", w.mock.control_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["issued"], 1);
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_and_nothing_is_sent() {
    let w = world().await;
    let receiver = Receiver::bind().await;
    let tls = pki::client_tls(w.dir.path(), &w.ca, Some(&w.ca.expired_client("railgate")));
    let adapter = adapter(&w, &receiver, tls, false);
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        "255712345600",
        "1500",
        Currency::Tzs,
    );
    match adapter.submit(&a).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains(RAIL), "{m}");
            assert!(m.contains("TLS"), "{m}");
            assert!(m.contains("client certificate: it has expired"), "{m}");
            assert!(m.contains("nothing was sent"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_provider_certificate_from_another_ca_is_refused() {
    let w = world().await;
    let receiver = Receiver::bind().await;
    let other = Ca::new("Someone else");
    let tls = pki::client_tls(w.dir.path(), &other, Some(&w.ca.client("railgate")));
    let adapter = adapter(&w, &receiver, tls, true);
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        "255712345600",
        "1500",
        Currency::Tzs,
    );
    // The token endpoint is refused first: a token moves no money, so it is retryable too.
    match adapter.submit(&a).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains(&format!("token endpoint of rail {RAIL}")), "{m}");
            assert!(m.contains("not signed by a trusted CA"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!matches!(
        adapter.submit(&a).await,
        Ok(Submitted::Accepted { .. })
    ));
}

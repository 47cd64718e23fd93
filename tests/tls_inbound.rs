//! `railgate serve` terminating TLS itself (`[http.tls]`): the API over HTTPS without a client
//! certificate, and a rail's callbacks bound to that rail's own CA on the same listener.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use common::*;
use railgate_testkit::pki::{self, Ca};
use std::collections::BTreeMap;

both_stores!(
    rail_routes_require_their_own_ca_over_tls,
    |store| async move {
        let Some(url) = database_url(store).await else {
            return;
        };
        let mock = railgate_mock::spawn(mock_config()).await.unwrap();
        let server_ca = Ca::new("Gateway CA");
        let rail_ca = Ca::new("Mock rail CA");
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = server_ca.server().write(dir.path(), "gateway");
        let rail_ca_file = rail_ca.write(dir.path(), "rail-ca.pem");
        let mut cfg = test_config(url, &mock.base_url());
        cfg.http.tls = Some(railgate::config::ServerTlsConfig {
            cert_file: Some(cert.display().to_string()),
            key_file: Some(key.display().to_string()),
            rail_client_ca_files: BTreeMap::from([(
                "mock".to_owned(),
                rail_ca_file.display().to_string(),
            )]),
            ..Default::default()
        });
        let gateway = railgate::app::start(cfg, None).await.unwrap();
        let base = format!("https://{}", gateway.addr);
        let client = |who: Option<&pki::Issued>| {
            railgate_rail::tls::client_builder(Some(&pki::client_tls(dir.path(), &server_ca, who)))
                .build()
                .unwrap()
        };
        // The API needs no client certificate.
        let anonymous = client(None);
        let r = anonymous
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        // The rail's routes do, from the rail's CA.
        let r = anonymous
            .post(format!("{base}/rails/mock/callback"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let problem: serde_json::Value = r.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("rail mock requires a client certificate from its own CA"),
            "{problem}"
        );
        // With one, the request reaches the rail's adapter (which refuses the unsigned body
        // itself: anything but the certificate's 403).
        let rail = client(Some(&rail_ca.client("mock-rail")));
        let r = rail
            .post(format!("{base}/rails/mock/callback"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 403);
        assert_eq!(
            rail.get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        gateway.shutdown().await;
    }
);

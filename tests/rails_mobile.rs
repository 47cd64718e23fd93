//! The mobile-money rails (GSMA Mobile Money API and M-Pesa Daraja) through the whole gateway:
//! the scenario table in each interface's own codes, both directions, on both stores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use serde_json::json;

fn msisdn(prefix: &'static str) -> impl Fn(&str) -> serde_json::Value {
    move |digits| json!({"id_type": "MSISDN", "id_value": format!("{prefix}{digits}")})
}

both_stores!(mmapi_scenarios_both_directions, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = app.mobile.as_ref().unwrap().0.control_url();
    app.run_scenario_table(
        "mmapi",
        "disbursement",
        "TZS",
        "1500.00",
        msisdn("2557123456"),
        &control,
    )
    .await;
    app.run_scenario_table(
        "mmapi",
        "collection",
        "TZS",
        "1500.00",
        msisdn("2557123457"),
        &control,
    )
    .await;
    app.stop().await;
});

both_stores!(mpesa_scenarios_both_directions, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = app.mobile.as_ref().unwrap().1.control_url();
    app.run_scenario_table(
        "mpesa",
        "disbursement",
        "KES",
        "1500",
        msisdn("2547123456"),
        &control,
    )
    .await;
    app.run_scenario_table(
        "mpesa",
        "collection",
        "KES",
        "1500",
        msisdn("2547123457"),
        &control,
    )
    .await;
    app.stop().await;
});

both_stores!(
    mpesa_refuses_cents_at_creation_and_kes_routes_to_mpesa,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let body = json!({"reference": "KES-CENTS", "amount": {"value": "100.50", "currency": "KES"},
        "payee": {"id_type": "MSISDN", "id_value": "254712345600"}});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 422, "{p}");
        assert!(
            p["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("whole units"),
            "{p}"
        );
        assert_eq!(app.count("payments").await, 0);
        let body = json!({"reference": "KES-WHOLE", "amount": {"value": "100", "currency": "KES"},
        "payee": {"id_type": "MSISDN", "id_value": "254712345600"}});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        assert_eq!(p["rail"], "mpesa");
        let p = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "completed");
        assert!(p["receipt"].is_string(), "an M-Pesa receipt: {p}");
        app.stop().await;
    }
);

// An MMAPI provider that requires mutual TLS and OAuth2, configured as an operator would:
// `[rails.tls]` with PEM files, `[rails.oauth]` with the client secret in a file. A payment
// completes over it; the same rail with an expired client certificate fails with nothing
// sent, and the failure names the rail and the TLS cause.
both_stores!(
    mmapi_over_mutual_tls_and_oauth_from_the_configuration,
    |store| async move {
        use railgate_mmapi::mock::{MmapiMock, MmapiMockConfig};
        use railgate_testkit::pki::Ca;
        let ca = Ca::new("Provider CA");
        let dir = tempfile::tempdir().unwrap();
        let provider = MmapiMock::start(MmapiMockConfig {
            oauth_client: Some(("railgate".into(), "client-secret".into())),
            tls: Some(railgate_testkit::pki::server_config(
                &ca.server(),
                Some(&ca),
            )),
            ..MmapiMockConfig::default()
        })
        .await
        .unwrap();
        let ca_file = ca.write(dir.path(), "ca.pem");
        let (cert, key) = ca.client("railgate").write(dir.path(), "ours");
        let (old_cert, old_key) = ca.expired_client("railgate").write(dir.path(), "expired");
        let secret_file = dir.path().join("client-secret");
        std::fs::write(&secret_file, "client-secret\n").unwrap();
        let rail = |id: &str, cert: &std::path::Path, key: &std::path::Path| {
            toml::from_str::<railgate::config::RailConfig>(&format!(
                r#"
                id = "{id}"
                kind = "mmapi"
                base_url = "{base}"
                callback_secret = "mmapi-tls-callback-secret-0123456789"
                scheme_party_value = "255700000001"
                request_timeout_ms = 2000
                callback_grace_ms = 400
                deadline_secs = 8
                [tls]
                client_cert_file = "{cert}"
                client_key_file = "{key}"
                ca_file = "{ca}"
                public_roots = false
                [oauth]
                token_url = "{token}"
                client_id = "railgate"
                client_secret_file = "{secret}"
                "#,
                base = provider.base_url(),
                cert = cert.display(),
                key = key.display(),
                ca = ca_file.display(),
                token = provider.token_url(),
                secret = secret_file.display(),
            ))
            .unwrap()
        };
        let Some(app) = spawn_app_all_rails_with(store, |cfg| {
            cfg.rails.push(rail("mmapi-tls", &cert, &key));
            cfg.rails.push(rail("mmapi-expired", &old_cert, &old_key));
            // A refusal with nothing sent is retried; two tries are enough here.
            cfg.dispatch.max_submit_tries = 2;
        })
        .await
        else {
            return;
        };
        let pay = |reference: &str, rail: &str| {
            json!({"reference": reference, "amount": {"value": "1500.00", "currency": "TZS"},
                "payee": {"id_type": "MSISDN", "id_value": "255712345600"}, "rail": rail})
        };
        let (s, p) = app
            .post(
                "/v1/disbursements",
                &app.key,
                &pay("TLS-OK", "mmapi-tls"),
                None,
            )
            .await;
        assert!(s == 201 || s == 202, "{s} {p}");
        let done = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "completed", "{done}");
        // Paid once, as the provider (over the same mutual TLS) tells it.
        let ours = railgate_testkit::pki::client_tls(dir.path(), &ca, Some(&ca.client("test")));
        let payouts: serde_json::Value = railgate_rail::tls::client_builder(Some(&ours))
            .build()
            .unwrap()
            .get(format!("{}/payouts", provider.control_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let paid: u64 = payouts
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["reference"] == "TLS-OK")
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(paid, 1, "{payouts}");

        let (s, p) = app
            .post(
                "/v1/disbursements",
                &app.key,
                &pay("TLS-EXPIRED", "mmapi-expired"),
                None,
            )
            .await;
        assert!(s == 201 || s == 202, "{s} {p}");
        let done = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "failed", "{done}");
        let text = done.to_string();
        assert!(text.contains("rail_unavailable"), "{text}");
        assert!(text.contains("rail mmapi-expired"), "{text}");
        assert!(
            text.contains("TLS: the rail refused our client certificate: it has expired"),
            "{text}"
        );
        app.stop().await;
    }
);

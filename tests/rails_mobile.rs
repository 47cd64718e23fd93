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

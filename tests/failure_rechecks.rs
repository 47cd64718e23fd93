//! Scenario 11 on Payment Hub EE and Fineract: "refused, then paid ~2 s later", on rails that
//! call nobody back. The gateway fails the payment on the refusal, asks the rail once more
//! after `confirm_failure_after_ms` (a durable `confirm_failure` job), finds it paid (PH-EE's
//! operations app now shows `COMPLETED`; the deposit is on the Fineract account) and records
//! the conflict: on the payment, and as a break in reconciliation. Scenario 01 stays failed,
//! with no conflict, once its re-check confirmed the failure. Nothing is ever paid twice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Times money moved for `reference` per a mock's `/payouts` (Fineract's rows carry the
/// reference at the end of the transaction note).
async fn paid(app: &TestApp, control: &str, reference: &str) -> u64 {
    let rows: Vec<Value> = app
        .http
        .get(format!("{control}/payouts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tail = format!(" {reference}");
    rows.iter()
        .filter(|r| {
            r["reference"]
                .as_str()
                .is_some_and(|s| s == reference || s.ends_with(&tail))
        })
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum()
}

/// The payment's pending re-check jobs.
async fn rechecks(app: &TestApp, payment: &str) -> Vec<(i64, Option<String>)> {
    railgate::store::sql::query_as(
        "SELECT run_at, payload FROM jobs WHERE kind = 'confirm_failure' AND payment_id = $1",
    )
    .bind(payment)
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

/// Waits (bounded) until the payment has no re-check job left: the rail was asked again.
async fn wait_rechecked(app: &TestApp, payment: &str) {
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    while !rechecks(app, payment).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < until,
            "{payment}: never re-checked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_case(
    app: &TestApp,
    rail: &str,
    currency: &str,
    amount: &str,
    party: impl Fn(&str) -> Value,
    control: &str,
) {
    let mut ids = Vec::new();
    for digits in ["11", "01"] {
        let reference = format!("RECHECK-{rail}-{digits}");
        let body = json!({"reference": reference, "amount": {"value": amount, "currency": currency},
            "payee": party(digits), "rail": rail});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        ids.push((digits, reference, p["id"].as_str().unwrap().to_owned()));
    }
    for (digits, reference, id) in &ids {
        let p = app
            .wait_for(id, Duration::from_secs(40), |p| p["state"] == "failed")
            .await;
        assert_eq!(p["state"], "failed", "{rail} {digits}: {p}");
        // The failure wrote its re-check job in the same transaction, due after the delay.
        let jobs = rechecks(app, id).await;
        if p["conflict"].is_null() && !jobs.is_empty() {
            assert_eq!(jobs.len(), 1, "{rail} {digits}: one re-check");
            let payload: Value = serde_json::from_str(jobs[0].1.as_deref().unwrap()).unwrap();
            assert!(payload["attempt_id"].is_string(), "{payload}");
        }
        wait_rechecked(app, id).await;
        let p = app.payment(id).await;
        assert_eq!(
            p["state"], "failed",
            "{rail} {digits}: the first answer stands: {p}"
        );
        match *digits {
            "11" => {
                assert!(
                    p["conflict"].as_str().unwrap().contains("completed"),
                    "{rail}: {p}"
                );
                let (source, held): (String, String) = railgate::store::sql::query_as(
                    "SELECT source, held_state FROM conflicts WHERE payment_id = $1",
                )
                .bind(id)
                .fetch_one(app.db.pool())
                .await
                .unwrap();
                assert!(source.contains("re-check"), "{source}");
                assert_eq!(held, "failed");
                // The rail moved the money once; the gateway never sent it again.
                assert_eq!(paid(app, control, reference).await, 1, "{rail} 11");
            }
            _ => {
                assert!(
                    p["conflict"].is_null(),
                    "{rail} 01: confirmed, nothing changed: {p}"
                );
                assert_eq!(paid(app, control, reference).await, 0, "{rail} 01");
            }
        }
        let attempts: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM attempts WHERE payment_id = $1",
        )
        .bind(id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(attempts, 1, "{rail} {digits}: asked, never resent");
        let posted: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND phase = 'posted'",
        )
        .bind(id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(posted, 0, "{rail} {digits}: a failed payment posts nothing");
    }
    // Reconciliation shows the contradiction as a break for 11, and none for 01.
    let today = chrono::Utc::now().date_naive().to_string();
    let (s, run) = app
        .post(
            "/v1/reconciliation/runs",
            &app.key,
            &json!({"from": today, "to": today}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{run}");
    let (s, v) = app
        .get("/v1/reconciliation/breaks?type=callback_conflict", &app.key)
        .await;
    assert_eq!(s, 200, "{v}");
    let breaks = v["data"].as_array().unwrap();
    let of = |id: &str| {
        breaks
            .iter()
            .filter(|b| b["payment_id"] == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    let b11 = of(&ids[0].2);
    assert_eq!(b11.len(), 1, "{rail}: {v}");
    assert_eq!(b11[0]["severity"], "critical", "{}", b11[0]);
    assert!(of(&ids[1].2).is_empty(), "{rail}: {v}");
}

both_stores!(
    phee_late_success_is_a_recorded_conflict,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let control = app.mifos_bank.as_ref().unwrap().phee_control_url();
        run_case(
            &app,
            "phee",
            "TZS",
            "2500.00",
            |d| json!({"id_type": "MSISDN", "id_value": format!("2557654321{d}")}),
            &control,
        )
        .await;
        app.stop().await;
    }
);

both_stores!(
    fineract_late_deposit_is_a_recorded_conflict,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let control = app.mifos_bank.as_ref().unwrap().fineract_control_url();
        run_case(
            &app,
            "fineract",
            "KES",
            "2500",
            |d| json!({"id_type": "ACCOUNT_ID", "id_value": format!("77{d}")}),
            &control,
        )
        .await;
        app.stop().await;
    }
);

// The re-check is a per-rail setting: off, a failure is final and no job is written.
both_stores!(rechecks_can_be_turned_off, |store| async move {
    let Some(app) = spawn_app_all_rails_with(store, |cfg| {
        for r in cfg.rails.iter_mut().filter(|r| r.id == "fineract") {
            r.confirm_failures = Some(false);
        }
    })
    .await
    else {
        return;
    };
    let body = json!({"reference": "NORECHECK-11", "amount": {"value": "10", "currency": "KES"},
        "payee": {"id_type": "ACCOUNT_ID", "id_value": "7711"}, "rail": "fineract"});
    let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let p = app.wait_final(&id).await;
    assert_eq!(p["state"], "failed", "{p}");
    assert!(rechecks(&app, &id).await.is_empty());
    let policies: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM failure_rechecks WHERE rail = 'fineract'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(policies, 0);
    app.stop().await;
});

//! What a rail's word may settle: only its own attempts, only for the payment's amount and
//! currency; a late final answer clears the deadline's exception; PH-EE's late success in the
//! sandbox is recorded as a conflict. On both stores, through the real gateway and mock rails.
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

const MOCK2_SECRET: &str = "a-secret-of-the-second-mock-rail";

async fn attempt_of(app: &TestApp, payment: &str) -> String {
    railgate::store::sql::query_scalar("SELECT id FROM attempts WHERE payment_id = $1")
        .bind(payment)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

fn mock_callback(event: &str, attempt: &str, amount: &str, currency: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": event, "request_id": attempt, "transaction_id": "MRX1", "status": "SUCCESS",
        "code": Value::Null, "receipt": "RCPT-CALLER", "amount": amount, "currency": currency,
        "occurred_at": chrono::Utc::now().to_rfc3339(),
    }))
    .unwrap()
}

async fn deliver(app: &TestApp, rail: &str, body: &[u8], secret: &str) -> u16 {
    let now = chrono::Utc::now().timestamp();
    app.http
        .post(app.url(&format!("/rails/{rail}/callback")))
        .header("content-type", "application/json")
        .header(
            railgate_mock::SIGNATURE_HEADER,
            railgate_mock::sign(secret, now, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `railgate_callbacks_refused_total{reason="…"}` as `/metrics` shows it (0 when absent).
async fn refused(app: &TestApp, reason: &str) -> u64 {
    let text = app.metrics().await;
    let label = format!("reason=\"{reason}\"");
    text.lines()
        .filter(|l| l.starts_with("railgate_callbacks_refused_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A pending disbursement the mock rail never calls back about (05), and its attempt.
async fn silent_payment(app: &TestApp, reference: &str, amount: &str) -> (String, String) {
    let p = app.disburse(reference, "255712345605", amount).await;
    let id = p["id"].as_str().unwrap().to_owned();
    let p = app
        .wait_for(&id, Duration::from_secs(10), |p| p["state"] == "pending")
        .await;
    assert_eq!(p["state"], "pending", "{p}");
    let attempt = attempt_of(app, &id).await;
    (id, attempt)
}

async fn conflicts_of(app: &TestApp, payment: &str) -> Vec<String> {
    railgate::store::sql::query_scalar(
        "SELECT detail FROM conflicts WHERE payment_id = $1 ORDER BY at",
    )
    .bind(payment)
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

both_stores!(
    a_rail_cannot_settle_another_rails_attempt,
    |store| async move {
        // A second mock rail with a secret of its own; a long grace keeps the dispatcher from
        // asking the rail during the test.
        let Some(app) = spawn_app_with(store, |c| {
            c.rails[0].callback_grace_ms = 120_000;
            let mut second = c.rails[0].clone();
            second.id = "mock2".into();
            second.settings.insert(
                "callback_secret".into(),
                toml::Value::String(MOCK2_SECRET.into()),
            );
            second.batch = Some(false);
            c.rails.push(second);
        })
        .await
        else {
            return;
        };
        let (id, attempt) = silent_payment(&app, "XRAIL-1", "1500.00").await;
        let before = refused(&app, "unknown_attempt").await;

        // Authentic for mock2 (its secret, its route), naming an attempt of rail `mock`.
        let b = mock_callback(
            "66666666-6666-4666-8666-666666666666",
            &attempt,
            "1500.00",
            "TZS",
        );
        assert_eq!(deliver(&app, "mock2", &b, MOCK2_SECRET).await, 404);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "pending", "{p}");
        assert!(p["receipt"].is_null(), "{p}");
        assert!(p["conflict"].is_null(), "{p}");
        assert!(refused(&app, "unknown_attempt").await > before);
        let verdict: String = railgate::store::sql::query_scalar(
            "SELECT verdict FROM callbacks WHERE rail = 'mock2'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(verdict, "unknown_attempt");

        // The same event on the attempt's own rail, with its own secret, settles it.
        assert_eq!(deliver(&app, "mock", &b, MOCK_SECRET).await, 200);
        assert_eq!(app.payment(&id).await["state"], "completed");
        app.stop().await;
    }
);

both_stores!(
    the_mmapi_route_cannot_settle_a_mock_rail_attempt,
    |store| async move {
        let Some(app) = spawn_app_all_rails_with(store, |c| {
            for r in c.rails.iter_mut().filter(|r| r.id == "mock") {
                r.callback_grace_ms = 120_000;
            }
        })
        .await
        else {
            return;
        };
        let (id, attempt) = silent_payment(&app, "XRAIL-MM", "1500.00").await;
        assert_eq!(app.payment(&id).await["rail"], "mock");
        let before = refused(&app, "unknown_attempt").await;
        let body = json!({
            "transactionReference": "MMT-FORGED-1", "transactionStatus": "completed",
            "transactionReceipt": "RCPT-OF-THE-CALLERS-CHOICE", "type": "disbursement",
            "amount": "1500.00", "currency": "TZS",
            "creditParty": [{"key": "msisdn", "value": "+255712345605"}],
            "debitParty": [{"key": "accountid", "value": "2000023"}],
        });
        let status = app
            .http
            .put(app.url(&format!(
                "/rails/mmapi/{}/transactions/{attempt}",
                rail_secrets().mmapi
            )))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, 404);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "pending", "{p}");
        assert!(p["receipt"].is_null(), "{p}");
        assert!(refused(&app, "unknown_attempt").await > before);
        app.stop().await;
    }
);

both_stores!(
    a_success_for_another_amount_or_currency_is_a_conflict,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| c.rails[0].callback_grace_ms = 120_000).await
        else {
            return;
        };
        let (id, attempt) = silent_payment(&app, "AMOUNT-1", "1500.00").await;

        let more = mock_callback(
            "77777777-7777-4777-8777-777777777777",
            &attempt,
            "999999.00",
            "TZS",
        );
        assert_eq!(deliver(&app, "mock", &more, MOCK_SECRET).await, 200);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "pending", "{p}");
        assert!(p["receipt"].is_null(), "{p}");
        let note = p["conflict"].as_str().unwrap();
        assert!(note.contains("999999.00 TZS"), "{p}");
        assert!(note.contains("1500.00 TZS"), "{p}");

        let kes = mock_callback(
            "88888888-8888-4888-8888-888888888888",
            &attempt,
            "1500.00",
            "KES",
        );
        assert_eq!(deliver(&app, "mock", &kes, MOCK_SECRET).await, 200);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "pending", "{p}");
        assert!(p["conflict"].as_str().unwrap().contains("KES"), "{p}");
        assert_eq!(conflicts_of(&app, &id).await.len(), 2);
        assert!(
            p["history"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["to"] != "completed"),
            "{p}"
        );
        // Nothing was posted as paid: the ledger has no posted transfer for it.
        let posted: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND phase = 'posted'",
        )
        .bind(&id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(posted, 0);

        // The rail's word for the payment's own amount completes it; the conflicts stay.
        let right = mock_callback(
            "99999999-9999-4999-8999-999999999999",
            &attempt,
            "1500.00",
            "TZS",
        );
        assert_eq!(deliver(&app, "mock", &right, MOCK_SECRET).await, 200);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed", "{p}");
        assert!(!p["conflict"].is_null(), "{p}");
        app.stop().await;
    }
);

both_stores!(
    an_inquiry_answer_for_another_amount_is_a_conflict,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        app.mock.misreport_amounts(true);
        // 05: no callback; the inquiry answers success, for ten times the amount.
        let p = app.disburse("AMOUNT-INQ", "255712345605", "1500.00").await;
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app
            .wait_for(&id, Duration::from_secs(20), |p| !p["conflict"].is_null())
            .await;
        let note = p["conflict"].as_str().unwrap_or_default();
        assert!(note.contains("15000.00 TZS"), "{p}");
        assert_ne!(p["state"], "completed", "{p}");
        assert!(p["receipt"].is_null(), "{p}");
        // It stays that way: the rail's answer is for an operator, not retried into a completion.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let p = app.payment(&id).await;
        assert_ne!(p["state"], "completed", "{p}");
        assert_eq!(app.paid("AMOUNT-INQ"), 1, "the rail paid once");
        app.stop().await;
    }
);

both_stores!(
    a_late_answer_after_the_exception_clears_it,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| c.rails[0].deadline_secs = 2).await else {
            return;
        };
        // 12: the inquiry never answers, so the deadline raises the exception.
        let p = app.disburse("LATE-1", "255712345612", "1500.00").await;
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app
            .wait_for(&id, Duration::from_secs(20), |p| !p["exception"].is_null())
            .await;
        let why = p["exception"].as_str().unwrap().to_owned();
        assert_eq!(p["state"], "unknown", "{p}");
        let attempt = attempt_of(&app, &id).await;

        let ok = mock_callback(
            "12121212-1212-4121-8121-121212121212",
            &attempt,
            "1500.00",
            "TZS",
        );
        assert_eq!(deliver(&app, "mock", &ok, MOCK_SECRET).await, 200);
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed", "{p}");
        assert!(p["exception"].is_null(), "{p}");
        let settled = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["to"] == "completed")
            .unwrap();
        assert!(
            settled["cause"].as_str().unwrap().contains(&why),
            "the exception stays in the history: {p}"
        );
        app.stop().await;
    }
);

// `railgate sandbox` itself (its own timings): PH-EE's 11 refuses, then pays later. The
// gateway's first inquiry must see the refusal, and its second look the contradiction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_phee_late_success_is_a_recorded_conflict() {
    let sb = railgate::sandbox::start(railgate::sandbox::SandboxOptions {
        port: 0,
        db: None,
        api_key: None,
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let base = sb.gateway.base_url();
    let (s, p): (u16, Value) = {
        let r = http
            .post(format!("{base}/v1/disbursements"))
            .bearer_auth(&sb.api_key)
            .json(&json!({"reference": "SB-PHEE-11", "amount": {"value": "1500.00", "currency": "TZS"},
                "payee": {"id_type": "MSISDN", "id_value": "255712345611"}, "rail": "phee"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    };
    assert_eq!(s, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let p = loop {
        let p: Value = http
            .get(format!("{base}/v1/payments/{id}"))
            .bearer_auth(&sb.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = !p["conflict"].is_null() || p["state"] == "completed";
        if done || tokio::time::Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(p["state"], "failed", "the first answer stands: {p}");
    assert!(!p["conflict"].is_null(), "{p}");
    sb.gateway.shutdown().await;
}

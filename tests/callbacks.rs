//! Forged, stale, replayed and unknown-attempt callbacks change nothing; a contradicting one
//! is recorded as a conflict. On both stores, over real HTTP.
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

async fn attempt_of(app: &TestApp, payment: &str) -> String {
    railgate::store::sql::query_scalar("SELECT id FROM attempts WHERE payment_id = $1")
        .bind(payment)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

fn body(event: &str, attempt: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": event, "request_id": attempt, "transaction_id": "MRX1", "status": status,
        "code": if status == "FAILED" { json!("DECLINED") } else { Value::Null },
        "receipt": if status == "SUCCESS" { json!("RCPT1") } else { Value::Null },
        "amount": "10.00", "currency": "TZS", "occurred_at": chrono::Utc::now().to_rfc3339(),
    }))
    .unwrap()
}

async fn deliver(app: &TestApp, body: &[u8], signature: &str) -> u16 {
    app.http
        .post(app.url("/rails/mock/callback"))
        .header("content-type", "application/json")
        .header(railgate_mock::SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both_stores!(
    forged_stale_and_replayed_callbacks_change_nothing,
    |store| async move {
        // A long callback grace keeps the dispatcher from asking the rail during the test.
        let Some(app) = spawn_app_with(store, |c| c.rails[0].callback_grace_ms = 120_000).await
        else {
            return;
        };
        let p = app.disburse("CB-1", "255712345605", "10.00").await; // 05: the rail never calls back
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app
            .wait_for(&id, std::time::Duration::from_secs(10), |p| {
                p["state"] == "pending"
            })
            .await;
        assert_eq!(p["state"], "pending");
        let attempt = attempt_of(&app, &id).await;
        let now = chrono::Utc::now().timestamp();

        // Forged: signed with the wrong secret.
        let b = body("11111111-1111-4111-8111-111111111111", &attempt, "FAILED");
        assert_eq!(
            deliver(&app, &b, &railgate_mock::sign("wrong-secret", now, &b)).await,
            401
        );
        // Unsigned.
        assert_eq!(deliver(&app, &b, "").await, 401);
        // Tampered: a valid signature over other bytes.
        let other = body("11111111-1111-4111-8111-111111111111", &attempt, "SUCCESS");
        assert_eq!(
            deliver(&app, &b, &railgate_mock::sign(MOCK_SECRET, now, &other)).await,
            401
        );
        // Stale: properly signed, ten minutes old.
        assert_eq!(
            deliver(&app, &b, &railgate_mock::sign(MOCK_SECRET, now - 600, &b)).await,
            401
        );
        assert_eq!(
            app.payment(&id).await["state"],
            "pending",
            "refused callbacks changed nothing"
        );

        // Unknown attempt: authentic, but names no attempt of ours.
        let u = body(
            "22222222-2222-4222-8222-222222222222",
            "33333333-3333-4333-8333-333333333333",
            "SUCCESS",
        );
        assert_eq!(
            deliver(&app, &u, &railgate_mock::sign(MOCK_SECRET, now, &u)).await,
            404
        );

        // Authentic success completes it.
        let ok = body("44444444-4444-4444-8444-444444444444", &attempt, "SUCCESS");
        assert_eq!(
            deliver(&app, &ok, &railgate_mock::sign(MOCK_SECRET, now, &ok)).await,
            200
        );
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed");
        assert_eq!(p["receipt"], "RCPT1");

        // Replayed: the same event id again, now claiming failure: nothing changes, no conflict.
        let replay = body("44444444-4444-4444-8444-444444444444", &attempt, "FAILED");
        assert_eq!(
            deliver(
                &app,
                &replay,
                &railgate_mock::sign(MOCK_SECRET, now, &replay)
            )
            .await,
            200
        );
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed");
        assert!(p["conflict"].is_null(), "{p}");

        // A new, authentic failure after completion contradicts a final state: a conflict.
        let contra = body("55555555-5555-4555-8555-555555555555", &attempt, "FAILED");
        assert_eq!(
            deliver(
                &app,
                &contra,
                &railgate_mock::sign(MOCK_SECRET, now, &contra)
            )
            .await,
            200
        );
        let p = app.payment(&id).await;
        assert_eq!(p["state"], "completed");
        assert!(p["conflict"].as_str().unwrap().contains("failed"), "{p}");
        let completions = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["to"] == "completed")
            .count();
        assert_eq!(completions, 1);

        // Every callback was stored raw, refused ones included.
        let verdicts: Vec<String> =
            railgate::store::sql::query_scalar("SELECT verdict FROM callbacks ORDER BY id")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        assert_eq!(
            verdicts.iter().filter(|v| *v == "refused").count(),
            4,
            "{verdicts:?}"
        );
        assert!(verdicts.iter().any(|v| v == "replayed"), "{verdicts:?}");
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("railgate_callbacks_refused_total"),
            "{metrics}"
        );
        app.stop().await;
    }
);

both_stores!(
    callbacks_for_unknown_rails_are_refused,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let r = app
            .http
            .post(app.url("/rails/nope/callback"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = app
            .http
            .post(app.url("/rails/mock/elsewhere"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        app.stop().await;
    }
);

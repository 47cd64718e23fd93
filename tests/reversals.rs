//! Reversals through the API (`POST /v1/payments/{id}/reversals`), on both stores, over real
//! HTTP to the mock rails: the GSMA MMAPI rail end to end (the ledger's reversal transfer names
//! the original, the books balance, `payment.reversed` is emitted once), refusals that change
//! nothing (not completed, already reversed, a rail that cannot reverse), the rail's own
//! refusal, and a lost answer settled by asking the rail, never by a second reversal.
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

fn on_rail(reference: &str, rail: &str, msisdn: &str, amount: &str, currency: &str) -> Value {
    json!({
        "reference": reference,
        "amount": {"value": amount, "currency": currency},
        "payee": {"id_type": "MSISDN", "id_value": msisdn},
        "rail": rail,
    })
}

async fn completed(app: &TestApp, body: &Value) -> String {
    let (s, p) = app.post("/v1/disbursements", &app.key, body, None).await;
    assert_eq!(s, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let p = app.wait_final(&id).await;
    assert_eq!(p["state"], "completed", "{p}");
    id
}

async fn reverse(app: &TestApp, id: &str, idem: Option<&str>) -> (u16, Value) {
    app.post(
        &format!("/v1/payments/{id}/reversals"),
        &app.key,
        &json!({"reason": "paid to the wrong beneficiary"}),
        idem,
    )
    .await
}

/// Polls until the payment's first reversal is final (completed or failed).
async fn reversal_settled(app: &TestApp, id: &str) -> Value {
    app.wait_for(id, Duration::from_secs(30), |p| {
        matches!(
            p["reversals"][0]["state"].as_str(),
            Some("completed" | "failed")
        ) || !p["reversals"][0]["exception"].is_null()
    })
    .await
}

async fn scalar(app: &TestApp, sql: &str, id: &str) -> i64 {
    railgate::store::sql::query_scalar(sql)
        .bind(id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

/// Reversal transfers of the payment, each checked to name its posted transfer.
async fn reversal_transfers(app: &TestApp, id: &str) -> i64 {
    let orphans = scalar(
        app,
        "SELECT COUNT(*) FROM ledger_transfers r WHERE r.payment_id = $1 \
                 AND r.phase = 'reversal' AND NOT EXISTS (SELECT 1 FROM ledger_transfers o \
                 WHERE o.id = r.reverses_id AND o.phase = 'posted' AND o.payment_id = r.payment_id \
                 AND o.amount_minor = r.amount_minor AND o.debit_account = r.credit_account \
                 AND o.credit_account = r.debit_account)",
        id,
    )
    .await;
    assert_eq!(orphans, 0, "a reversal transfer must undo the posted one");
    scalar(
        app,
        "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND phase = 'reversal'",
        id,
    )
    .await
}

/// Events of this type written for the payment (counted where they are written, with the
/// change they announce; the feed may serve a PostgreSQL event a moment later).
async fn events_of(app: &TestApp, id: &str, kind: &str) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM events WHERE payment_id = $1 AND type = $2",
    )
    .bind(id)
    .bind(kind)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

async fn balanced(app: &TestApp) {
    let (s, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(tb["balanced"], true, "{tb}");
}

/// Reversal lines in the MMAPI mock's statement for our reference.
async fn mmapi_reversals(app: &TestApp, reference: &str) -> usize {
    let control = app.mobile.as_ref().unwrap().0.control_url();
    let csv = app
        .http
        .get(format!("{control}/statement?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    csv.lines()
        .filter(|l| l.contains("reversal") && l.contains(reference))
        .count()
}

both_stores!(mmapi_reversal_end_to_end, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let id = completed(
        &app,
        &on_rail("RV-MM-1", "mmapi", "255712345600", "1500.00", "TZS"),
    )
    .await;
    let (s, r) = reverse(&app, &id, Some("rev-key-1")).await;
    assert_eq!(s, 202, "{r}");
    assert_eq!(r["payment_id"], id.as_str());
    assert_eq!(r["reason"], "paid to the wrong beneficiary");
    assert_eq!(r["state"], "requested");
    // The same key replays the first answer and asks nothing more of the rail.
    let (s, again) = reverse(&app, &id, Some("rev-key-1")).await;
    assert_eq!(s, 202, "{again}");
    assert_eq!(again["id"], r["id"]);

    let p = app
        .wait_for(&id, Duration::from_secs(30), |p| p["state"] == "reversed")
        .await;
    assert_eq!(p["state"], "reversed", "{p}");
    let revs = p["reversals"].as_array().unwrap();
    assert_eq!(revs.len(), 1, "{p}");
    assert_eq!(revs[0]["id"], r["id"]);
    assert_eq!(revs[0]["state"], "completed", "{p}");
    assert!(
        revs[0]["rail_reference"]
            .as_str()
            .is_some_and(|s| s.starts_with("MMR")),
        "{p}"
    );
    assert_eq!(
        p["history"].as_array().unwrap().last().unwrap()["to"],
        "reversed"
    );

    assert_eq!(reversal_transfers(&app, &id).await, 1);
    balanced(&app).await;
    assert_eq!(events_of(&app, &id, "payment.reversed").await, 1);
    assert_eq!(mmapi_reversals(&app, "RV-MM-1").await, 1);
    // The provider's callback on /reversals/{id} reached the reversal (applied, or a duplicate
    // when the inquiry was first), not refused as naming no attempt.
    let rid = r["id"].as_str().unwrap().to_owned();
    let mut verdict = String::new();
    for _ in 0..200 {
        let v: Option<String> = railgate::store::sql::query_scalar(
            "SELECT verdict FROM callbacks WHERE path LIKE '%/reversals/' || $1",
        )
        .bind(&rid)
        .fetch_optional(app.db.pool())
        .await
        .unwrap();
        if let Some(v) = v {
            verdict = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        verdict == "applied" || verdict == "duplicate",
        "callback verdict {verdict:?}"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM reversals WHERE payment_id = $1",
            &id
        )
        .await,
        1
    );

    // A second reversal is refused and changes nothing.
    let (s, prob) = reverse(&app, &id, None).await;
    assert_eq!(s, 409, "{prob}");
    assert_eq!(prob["type"], "/problems/already-reversed", "{prob}");
    assert_eq!(reversal_transfers(&app, &id).await, 1);
    assert_eq!(events_of(&app, &id, "payment.reversed").await, 1);
    assert_eq!(mmapi_reversals(&app, "RV-MM-1").await, 1);
    app.stop().await;
});

both_stores!(refusals_change_nothing, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    // A payment still pending: an expected collection waiting for its payer.
    let body = json!({"reference": "RV-PEND", "amount": {"value": "10.00", "currency": "TZS"},
        "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "expected"});
    let (s, pending) = app.post("/v1/collections", &app.key, &body, None).await;
    assert_eq!(s, 201, "{pending}");
    let pending_id = pending["id"].as_str().unwrap().to_owned();
    assert_eq!(pending["state"], "pending");
    // A failed payment.
    let (s, failed) = app
        .post(
            "/v1/disbursements",
            &app.key,
            &on_rail("RV-FAIL", "mmapi", "255712345601", "10.00", "TZS"),
            None,
        )
        .await;
    assert_eq!(s, 201, "{failed}");
    let failed_id = failed["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_final(&failed_id).await["state"], "failed");
    // A completed payment on a rail that cannot reverse (M-Pesa).
    let mpesa_id = completed(
        &app,
        &on_rail("RV-MPESA", "mpesa", "254712345600", "100", "KES"),
    )
    .await;

    for (id, status, kind) in [
        (&pending_id, 409, "not-reversible"),
        (&failed_id, 409, "not-reversible"),
        (&mpesa_id, 422, "rail-cannot-reverse"),
    ] {
        let (s, prob) = reverse(&app, id, Some(&format!("k-{id}"))).await;
        assert_eq!(s, status, "{prob}");
        assert_eq!(prob["type"], format!("/problems/{kind}"), "{prob}");
        assert!(prob["detail"].as_str().unwrap().len() > 10, "{prob}");
        // The refusal is the key's first result: replayed, still nothing stored.
        let (s2, again) = reverse(&app, id, Some(&format!("k-{id}"))).await;
        assert_eq!((s2, &again), (status, &prob));
    }
    let (s, prob) = reverse(&app, &mpesa_id, None).await;
    assert_eq!(s, 422);
    assert!(
        prob["detail"].as_str().unwrap().contains("mpesa"),
        "names the rail: {prob}"
    );
    assert_eq!(app.count("reversals").await, 0);
    assert_eq!(
        app.count("jobs WHERE kind = 'reversal'").await,
        0,
        "no reversal job was written"
    );
    assert_eq!(app.payment(&pending_id).await["state"], "pending");
    assert_eq!(app.payment(&mpesa_id).await["state"], "completed");
    assert!(app.payment(&mpesa_id).await.get("reversals").is_none());

    // Bad input and a missing scope are refused before anything is looked at.
    let (s, prob) = app
        .post(
            &format!("/v1/payments/{mpesa_id}/reversals"),
            &app.key,
            &json!({"reason": 7, "amount": "1"}),
            None,
        )
        .await;
    assert_eq!(s, 422, "{prob}");
    assert_eq!(prob["errors"].as_array().unwrap().len(), 2, "{prob}");
    let (s, _) = app
        .post(
            &format!("/v1/payments/{mpesa_id}/reversals"),
            &app.read_key,
            &json!({}),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .post(
            &format!("/v1/payments/{mpesa_id}/reversals"),
            &app.other_client_key,
            &json!({}),
            None,
        )
        .await;
    assert_eq!(s, 404, "another client's payment is not found");
    assert_eq!(app.count("reversals").await, 0);
    app.stop().await;
});

both_stores!(
    rail_refusal_leaves_the_payment_completed,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        // 14: the provider refuses to reverse (the beneficiary no longer holds the money).
        let id = completed(
            &app,
            &on_rail("RV-MM-14", "mmapi", "255712345614", "1500.00", "TZS"),
        )
        .await;
        let (s, r) = reverse(&app, &id, None).await;
        assert_eq!(s, 202, "{r}");
        let p = reversal_settled(&app, &id).await;
        assert_eq!(p["state"], "completed", "{p}");
        let rev = &p["reversals"][0];
        assert_eq!(rev["state"], "failed", "{p}");
        assert_eq!(rev["failure"]["code"], "insufficient_funds", "{p}");
        assert!(
            rev["failure"]["reason"]
                .as_str()
                .unwrap()
                .contains("no longer holds"),
            "{p}"
        );
        assert_eq!(
            rev["failure"]["rail_code"], "businessRule/insufficientFunds",
            "{p}"
        );
        assert_eq!(reversal_transfers(&app, &id).await, 0);
        assert_eq!(events_of(&app, &id, "payment.reversed").await, 0);
        balanced(&app).await;
        assert_eq!(mmapi_reversals(&app, "RV-MM-14").await, 0);
        // A failed reversal does not block another request; the rail refuses again.
        let (s, r2) = reverse(&app, &id, None).await;
        assert_eq!(s, 202, "{r2}");
        assert_ne!(r2["id"], r["id"]);
        let p = app
            .wait_for(&id, Duration::from_secs(30), |p| {
                p["reversals"][1]["state"] == "failed"
            })
            .await;
        assert_eq!(p["reversals"][1]["state"], "failed", "{p}");
        assert_eq!(p["state"], "completed");
        app.stop().await;
    }
);

both_stores!(lost_answer_is_asked_about_not_resent, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    // 15: the provider reverses, then the connection drops before its answer; no callback.
    let id = completed(
        &app,
        &on_rail("RV-MM-15", "mmapi", "255712345615", "1500.00", "TZS"),
    )
    .await;
    let (s, r) = reverse(&app, &id, None).await;
    assert_eq!(s, 202, "{r}");
    let p = app
        .wait_for(&id, Duration::from_secs(30), |p| p["state"] == "reversed")
        .await;
    assert_eq!(p["state"], "reversed", "{p}");
    assert_eq!(p["reversals"][0]["state"], "completed", "{p}");
    assert_eq!(p["reversals"].as_array().unwrap().len(), 1);
    // Settled by asking: the provider reversed once, under the one id we chose.
    assert_eq!(mmapi_reversals(&app, "RV-MM-15").await, 1);
    let cause_by_inquiry = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["to"] == "reversed" && t["cause"].as_str().unwrap().contains("inquiry"));
    assert!(cause_by_inquiry, "{p}");
    assert_eq!(reversal_transfers(&app, &id).await, 1);
    assert_eq!(events_of(&app, &id, "payment.reversed").await, 1);
    balanced(&app).await;
    app.stop().await;
});

both_stores!(mock_rail_reverses_once, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let ok = completed(&app, &disbursement("RV-MK-00", "255712345600", "20.00")).await;
    let lost = completed(&app, &disbursement("RV-MK-15", "255712345615", "20.00")).await;
    let refused = completed(&app, &disbursement("RV-MK-14", "255712345614", "20.00")).await;
    for id in [&ok, &lost, &refused] {
        let (s, r) = reverse(&app, id, None).await;
        assert_eq!(s, 202, "{r}");
    }
    for id in [&ok, &lost] {
        let p = app
            .wait_for(id, Duration::from_secs(30), |p| p["state"] == "reversed")
            .await;
        assert_eq!(p["state"], "reversed", "{p}");
        assert_eq!(reversal_transfers(&app, id).await, 1);
    }
    let p = reversal_settled(&app, &refused).await;
    assert_eq!(p["reversals"][0]["state"], "failed", "{p}");
    assert_eq!(p["state"], "completed");
    for (reference, want) in [("RV-MK-00", 1), ("RV-MK-15", 1), ("RV-MK-14", 0)] {
        let n: u32 = app
            .mock
            .payouts()
            .iter()
            .filter(|p| p.reference == reference)
            .map(|p| p.reversals)
            .sum();
        assert_eq!(n, want, "{reference}");
    }
    balanced(&app).await;
    app.stop().await;
});

both_stores!(
    a_send_cut_short_is_asked_about_then_resent_under_its_id,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let id = completed(&app, &disbursement("RV-CUT", "255712345600", "30.00")).await;
        // As a process that stored the reversal, marked it as being sent and died before the
        // request left: the rail never heard of it.
        let state = &app.gateway.state;
        let pid = uuid::Uuid::parse_str(&id).unwrap();
        let client: String =
            railgate::store::sql::query_scalar("SELECT client_id FROM payments WHERE id = $1")
                .bind(&id)
                .fetch_one(app.db.pool())
                .await
                .unwrap();
        let mut tx = state.db.begin().await.unwrap();
        let r = railgate::reversals::request(
            &mut tx,
            state.db.kind(),
            &state.rails,
            pid,
            uuid::Uuid::parse_str(&client).unwrap(),
            Some("mock"),
            None,
        )
        .await
        .unwrap();
        railgate::store::reversals::set_status(
            &mut tx,
            r.id,
            railgate::store::reversals::Status::Sending,
            None,
            None,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        state.wake.notify_one();

        let p = app
            .wait_for(&id, Duration::from_secs(30), |p| p["state"] == "reversed")
            .await;
        assert_eq!(p["state"], "reversed", "{p}");
        assert_eq!(p["reversals"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(p["reversals"][0]["id"], r.id.to_string());
        // The rail holds the reversal under the id stored before the crash: never a new one.
        let at_rail = app
            .http
            .get(format!("{}/v1/reversals/{}", app.mock.base_url(), r.id))
            .send()
            .await
            .unwrap();
        assert_eq!(at_rail.status().as_u16(), 200);
        let reversals: u32 = app
            .mock
            .payouts()
            .iter()
            .filter(|p| p.reference == "RV-CUT")
            .map(|p| p.reversals)
            .sum();
        assert_eq!(reversals, 1);
        assert_eq!(reversal_transfers(&app, &id).await, 1);
        balanced(&app).await;
        app.stop().await;
    }
);

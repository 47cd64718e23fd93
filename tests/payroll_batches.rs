//! Payrolls through the rails' batch APIs, on both stores, over real HTTP: the generic mock
//! rail's `POST /v1/batches` across the whole scenario table, a lost upload answer settled by
//! asking (never resent under new ids), GSMA MMAPI `POST /batchtransactions`, and 10,000
//! lines through Payment Hub EE's bulk API from `POST /v1/payrolls` on.
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

/// The scenario table's end states, by the party's last two digits.
const TABLE: [(&str, &str); 13] = [
    ("00", "completed"),
    ("01", "failed"),
    ("02", "failed"),
    ("03", "failed"),
    ("04", "completed"),
    ("05", "completed"),
    ("06", "failed"),
    ("07", "completed"),
    ("08", "completed"),
    ("09", "completed"),
    ("10", "completed"),
    ("11", "conflict"),
    ("12", "exception"),
];

fn item(reference: &str, msisdn: &str, amount: &str, rail: Option<&str>) -> Value {
    let mut v = json!({
        "reference": reference,
        "amount": {"value": amount, "currency": "TZS"},
        "payee": {"id_type": "MSISDN", "id_value": msisdn},
    });
    if let Some(r) = rail {
        v["rail"] = json!(r);
    }
    v
}

async fn post_payroll(app: &TestApp, name: &str, items: Vec<Value>) -> String {
    let (s, v) = app
        .post(
            "/v1/payrolls",
            &app.key,
            &json!({"name": name, "items": items}),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

async fn payment_ids(app: &TestApp, payroll: &str) -> Vec<(String, String)> {
    railgate::store::sql::query_as(
        "SELECT id, reference FROM payments WHERE payroll_id = $1 ORDER BY reference",
    )
    .bind(payroll)
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

async fn attempts_of(app: &TestApp, payment: &str) -> i64 {
    railgate::store::sql::query_scalar("SELECT COUNT(*) FROM attempts WHERE payment_id = $1")
        .bind(payment)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn batches_in(app: &TestApp, rail: &str, status: &str) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM rail_batches WHERE rail = $1 AND status = $2",
    )
    .bind(rail)
    .bind(status)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

/// Batches whose lines went `submitted` → `unknown` (their upload's answer was lost).
async fn lost_batches(app: &TestApp) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(DISTINCT a.batch_id) FROM attempts a \
         JOIN payment_transitions t ON t.payment_id = a.payment_id \
         WHERE t.from_state = 'submitted' AND t.to_state = 'unknown'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

fn reached(p: &Value, want: &str) -> bool {
    match want {
        "conflict" => !p["conflict"].is_null(),
        "exception" => !p["exception"].is_null(),
        w => p["state"] == w,
    }
}

fn via(p: &Value, words: &str) -> bool {
    p["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["cause"].as_str().is_some_and(|c| c.contains(words)))
}

async fn trial_balance_is_zero(app: &TestApp) {
    let (s, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(tb["balanced"], true, "{tb}");
    for c in tb["currencies"].as_array().unwrap() {
        assert_eq!(c["debits_posted"], c["credits_posted"], "{tb}");
        assert_eq!(c["debits_pending"], c["credits_pending"], "{tb}");
    }
}

// Every row of the scenario table, twice (row 10 once, so exactly one upload loses its
// answer), in batches of five through the mock rail's batch API: every line ends as the table
// says, is paid at most once (exactly once when completed), travels under one attempt id,
// and the ledger balances.
both_stores!(mock_batches_follow_the_scenario_table, |store| async move {
    let Some(app) = spawn_app_with(store, |cfg| {
        for r in cfg.rails.iter_mut().filter(|r| r.id == "mock") {
            r.batch_chunk = Some(5);
            r.batch_poll_ms = Some(200);
            // The batch results, not the lines' own inquiries, should settle most lines.
            r.callback_grace_ms = 3_000;
        }
    })
    .await
    else {
        return;
    };
    let mut items = Vec::new();
    let mut want = std::collections::HashMap::new();
    for copy in 0..2 {
        for (digits, end) in TABLE {
            if digits == "10" && copy == 1 {
                continue;
            }
            let reference = format!("MB-{copy}-{digits}");
            items.push(item(
                &reference,
                &format!("25571234{copy}0{digits}"),
                "1500.00",
                None,
            ));
            want.insert(reference, end);
        }
    }
    assert_eq!(items.len(), 25);
    let payroll = post_payroll(&app, "scenario table in batches", items).await;
    let rows = payment_ids(&app, &payroll).await;
    assert_eq!(rows.len(), 25);
    for (id, reference) in &rows {
        let end = want[reference];
        let p = app
            .wait_for(id, Duration::from_secs(60), |p| reached(p, end))
            .await;
        assert!(reached(&p, end), "{reference} should be {end}: {p}");
        if end == "exception" {
            assert_eq!(p["state"], "unknown", "{p}");
        }
        assert!(
            via(&p, "payroll: mock rail batch"),
            "{reference} travelled in a batch: {p}"
        );
        let paid = app.paid(reference);
        assert!(paid <= 1, "{reference} paid {paid} times");
        if end == "completed" {
            assert_eq!(paid, 1, "{reference} completed but paid {paid} times");
        }
        if ["01", "02", "03"].iter().any(|d| reference.ends_with(d)) {
            assert_eq!(paid, 0, "{reference}");
        }
        // One attempt per line: nothing was resent under a new id.
        assert_eq!(attempts_of(&app, id).await, 1, "{reference}");
    }
    // Five uploads of five: the one holding row 10 (and only it) lost its answer.
    assert_eq!(lost_batches(&app).await, 1);
    assert_eq!(app.count("rail_batches").await, 5);
    // Some lines were settled by a batch's results (not only by their own inquiries).
    let by_results: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM payment_transitions t JOIN payments p ON p.id = t.payment_id \
             WHERE p.payroll_id = $1 AND t.cause LIKE '%results of batch%'",
    )
    .bind(&payroll)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(by_results > 0, "no line was settled by batch results");
    // Each attempt id reached the rail once, as its own line.
    let payouts = app.mock.payouts();
    assert_eq!(payouts.len(), 25, "{payouts:?}");
    trial_balance_is_zero(&app).await;
    app.stop().await;
});

// Lines of a batch the rail is still working on wait for the batch's results while the
// gateway reads them: none is asked about on its own, though each is past its callback grace
// long before the rail settles the batch.
both_stores!(
    lines_of_an_open_batch_wait_for_its_reads,
    |store| async move {
        let Some(app) = spawn_app_with_mock(
            store,
            // The rail settles each line (scenario 04: pending, then paid) five seconds after
            // taking its batch.
            |rail| rail.pending_delay_ms = 5_000,
            |cfg| {
                for r in cfg.rails.iter_mut().filter(|r| r.id == "mock") {
                    r.batch_chunk = Some(5);
                    r.batch_poll_ms = Some(200);
                    r.callback_grace_ms = 1_000;
                    r.deadline_secs = 60;
                }
            },
        )
        .await
        else {
            return;
        };
        let items = (0..10)
            .map(|i| {
                item(
                    &format!("WAIT-{i}"),
                    &format!("2557123{i:02}04"),
                    "700.00",
                    None,
                )
            })
            .collect();
        let payroll = post_payroll(&app, "lines wait for their batch", items).await;
        let rows = payment_ids(&app, &payroll).await;
        assert_eq!(rows.len(), 10);
        for (id, reference) in &rows {
            let p = app
                .wait_for(id, Duration::from_secs(40), |p| p["state"] == "completed")
                .await;
            assert_eq!(p["state"], "completed", "{reference}: {p}");
            assert!(
                via(&p, "results of batch"),
                "{reference} was settled by its batch's results: {p}"
            );
            assert_eq!(app.paid(reference), 1, "{reference}");
        }
        assert_eq!(app.count("rail_batches").await, 2);
        assert_eq!(batches_in(&app, "mock", "open").await, 0);
        // Not one line was asked about on its own.
        assert_eq!(app.mock.inquiries(), 0, "lines were inquired one by one");
        trial_balance_is_zero(&app).await;
        app.stop().await;
    }
);

// An upload whose answer is lost (the rail took it, then the connection dropped) leaves every
// line `unknown`; each is asked about and settled as the rail recorded it, under its one
// attempt id, and paid at most once.
both_stores!(
    lost_upload_answer_is_settled_by_asking,
    |store| async move {
        let Some(app) = spawn_app(store).await else {
            return;
        };
        let lines = [
            ("LOST-10", "255712345610", "completed"),
            ("LOST-00", "255712345600", "completed"),
            ("LOST-01", "255712345601", "failed"),
            ("LOST-04", "255712345604", "completed"),
            ("LOST-06", "255712345606", "failed"),
        ];
        let items = lines
            .iter()
            .map(|(r, m, _)| item(r, m, "250.00", None))
            .collect();
        let payroll = post_payroll(&app, "lost answer", items).await;
        let rows = payment_ids(&app, &payroll).await;
        assert_eq!(rows.len(), lines.len());
        for (id, reference) in &rows {
            let (_, _, end) = lines.iter().find(|(r, _, _)| r == reference).unwrap();
            let p = app
                .wait_for(id, Duration::from_secs(40), |p| p["state"] == *end)
                .await;
            assert_eq!(p["state"], *end, "{reference}: {p}");
            let states: Vec<&str> = p["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t["to"].as_str().or(t["to_state"].as_str()))
                .collect();
            assert!(
                states.contains(&"unknown"),
                "{reference} was unknown first: {p}"
            );
            assert_eq!(attempts_of(&app, id).await, 1, "{reference}");
            let paid = app.paid(reference);
            assert_eq!(
                paid,
                u32::from(*end == "completed"),
                "{reference} paid {paid}"
            );
        }
        assert_eq!(lost_batches(&app).await, 1);
        // The rail holds each attempt once: the batch was never uploaded again.
        let payouts = app.mock.payouts();
        assert_eq!(payouts.len(), lines.len(), "{payouts:?}");
        trial_balance_is_zero(&app).await;
        app.stop().await;
    }
);

// A payroll routed to the MMAPI rail goes through `POST /batchtransactions`; each item's
// completion or rejection is applied to its payment, and paid items are paid once.
both_stores!(
    mmapi_payroll_through_batchtransactions,
    |store| async move {
        let Some(app) = spawn_app_all_rails_with(store, |cfg| {
            for r in cfg.rails.iter_mut().filter(|r| r.id == "mmapi") {
                r.batch_poll_ms = Some(200);
                // The batch's results, not the items' own inquiries, should settle them.
                r.callback_grace_ms = 5_000;
            }
        })
        .await
        else {
            return;
        };
        let rows = [
            ("00", "completed"),
            ("01", "failed"),
            ("02", "failed"),
            ("03", "failed"),
            ("05", "completed"),
            ("06", "failed"),
            ("07", "completed"),
            ("13", "completed"),
        ];
        let items = rows
            .iter()
            .map(|(d, _)| {
                item(
                    &format!("MM-B-{d}"),
                    &format!("2557654321{d}"),
                    "300.00",
                    Some("mmapi"),
                )
            })
            .collect();
        let payroll = post_payroll(&app, "MMAPI batch", items).await;
        let control = app.mobile.as_ref().unwrap().0.control_url();
        for (id, reference) in payment_ids(&app, &payroll).await {
            let digits = &reference[reference.len() - 2..];
            let (_, end) = rows.iter().find(|(d, _)| *d == digits).unwrap();
            let p = app
                .wait_for(&id, Duration::from_secs(40), |p| p["state"] == *end)
                .await;
            assert_eq!(p["state"], *end, "{reference}: {p}");
            assert!(via(&p, "payroll: MMAPI batch"), "{reference}: {p}");
            assert!(
                via(&p, "results of batch"),
                "{reference} settled by the batch: {p}"
            );
            let paid = app.paid_at(&control, &reference).await;
            assert_eq!(
                paid,
                u32::from(*end == "completed"),
                "{reference} paid {paid}"
            );
        }
        assert_eq!(batches_in(&app, "mmapi", "closed").await, 1);
        trial_balance_is_zero(&app).await;
        app.stop().await;
    }
);

// 10,000 lines through the gateway to Payment Hub EE's bulk API: the payroll is released,
// every line is completed or failed as the mock's scenario says, and the counts add up.
both_stores!(ten_thousand_lines_through_phee_bulk, |store| async move {
    let Some(app) = spawn_app_all_rails_with(store, |cfg| {
        for r in cfg.rails.iter_mut().filter(|r| r.id == "phee") {
            r.callback_grace_ms = 60_000;
            r.deadline_secs = 600;
        }
    })
    .await
    else {
        return;
    };
    let n = 10_000u32;
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let digits = if i % 10 == 1 { "01" } else { "00" };
            item(
                &format!("PH10K-{i:05}"),
                &format!("2557{i:06}{digits}"),
                "1000.00",
                Some("phee"),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let payroll = post_payroll(&app, "10k PH-EE", items).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    let v = loop {
        let (_, v) = app.get(&format!("/v1/payrolls/{payroll}"), &app.key).await;
        if v["status"] == "completed" || tokio::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("10,000 PH-EE lines settled in {:?}", started.elapsed());
    assert_eq!(v["status"], "completed", "{v}");
    let completed = v["states"]["completed"]["count"].as_i64().unwrap_or(0);
    let failed = v["states"]["failed"]["count"].as_i64().unwrap_or(0);
    assert_eq!(completed, 9_000, "{v}");
    assert_eq!(failed, 1_000, "{v}");
    assert_eq!(completed + failed, i64::from(n), "{v}");
    // Every line went in a file: one attempt each, in a batch.
    let in_batches: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM attempts a JOIN payments p ON p.id = a.payment_id \
         WHERE p.payroll_id = $1 AND a.batch_id IS NOT NULL",
    )
    .bind(&payroll)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(in_batches, i64::from(n));
    trial_balance_is_zero(&app).await;
    app.stop().await;
});

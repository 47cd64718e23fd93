//! Payrolls routed to the Mojaloop rail through FSPIOP bulk (`POST /bulkQuotes`,
//! `POST /bulkTransfers`), on both stores, over real HTTP to the mock hub: the bulk column of
//! the scenario table with one bulk's answer lost (settled by `GET /bulkTransfers/{id}`, never
//! sent again), and 10,000 lines from `POST /v1/payrolls` on.
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

fn hub(app: &TestApp) -> &railgate_mojaloop::MockHub {
    app.mojaloop.as_ref().unwrap()
}

fn setting(s: &str) -> toml::Value {
    toml::Value::String(s.to_owned())
}

/// The Mojaloop rail with its batches on.
fn bulk_on(cfg: &mut railgate::config::Config, chunk: usize, grace_ms: u64, deadline_secs: u64) {
    for r in cfg.rails.iter_mut().filter(|r| r.id == "mojaloop") {
        r.batch = Some(true);
        r.batch_chunk = Some(chunk);
        r.batch_poll_ms = Some(200);
        r.settings
            .insert("bulk_answer_wait_secs".into(), setting("1"));
        r.callback_grace_ms = grace_ms;
        r.deadline_secs = deadline_secs;
    }
}

fn item(reference: &str, msisdn: &str, amount: &str) -> Value {
    json!({
        "reference": reference,
        "amount": {"value": amount, "currency": "TZS"},
        "payee": {"id_type": "MSISDN", "id_value": msisdn},
        "rail": "mojaloop",
    })
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

async fn trial_balance_is_zero(app: &TestApp) {
    let (s, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(tb["balanced"], true, "{tb}");
    for c in tb["currencies"].as_array().unwrap() {
        assert_eq!(c["debits_posted"], c["credits_posted"], "{tb}");
        assert_eq!(c["debits_pending"], c["credits_pending"], "{tb}");
    }
}

fn via(p: &Value, words: &str) -> bool {
    p["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["cause"].as_str().is_some_and(|c| c.contains(words)))
}

/// Bulk transfers the hub received: (method, bulk transfer id).
fn bulk_transfer_requests(app: &TestApp) -> Vec<(String, String)> {
    hub(app)
        .received()
        .iter()
        .filter_map(|r| {
            if r.method == "POST" && r.path == "/bulkTransfers" {
                let v: Value = serde_json::from_slice(&r.body).unwrap();
                Some((
                    "POST".to_owned(),
                    v["bulkTransferId"].as_str().unwrap().to_owned(),
                ))
            } else {
                r.path
                    .strip_prefix("/bulkTransfers/")
                    .map(|id| (r.method.clone(), id.to_owned()))
            }
        })
        .collect()
}

/// The bulk column of the table (see the mock hub's `bulk` module).
const TABLE: [(&str, &str); 9] = [
    ("00", "completed"),
    ("01", "failed"),
    ("02", "failed"),
    ("03", "failed"),
    ("04", "completed"),
    ("06", "failed"),
    ("13", "completed"),
    ("14", "conflict"),
    ("15", "failed"),
];

// Every row of the bulk table twice, in bulks of five; the first bulk's answer is lost. Every
// line ends as the table says, is paid at most once (exactly once when completed), travels
// under one attempt id, and the ledger balances; the lost bulk is asked about, never resent.
both_stores!(
    mojaloop_payroll_follows_the_bulk_table,
    |store| async move {
        let Some(app) = spawn_app_all_rails_with(store, |cfg| bulk_on(cfg, 5, 5_000, 60)).await
        else {
            return;
        };
        hub(&app).drop_bulk_answers(1);
        let mut items = Vec::new();
        for copy in 0..2 {
            for (digits, _) in TABLE {
                items.push(item(
                    &format!("MLB-{copy}-{digits}"),
                    &format!("25571234{copy}0{digits}"),
                    "1500.50",
                ));
            }
        }
        let payroll = post_payroll(&app, "Mojaloop bulk table", items).await;
        let rows = payment_ids(&app, &payroll).await;
        assert_eq!(rows.len(), 18);
        let control = format!("{}/_control", hub(&app).base_url());
        for (id, reference) in &rows {
            let digits = &reference[reference.len() - 2..];
            let (_, end) = TABLE.iter().find(|(d, _)| *d == digits).unwrap();
            let reached = |p: &Value| match *end {
                "conflict" => !p["conflict"].is_null(),
                e => p["state"] == e,
            };
            let p = app.wait_for(id, Duration::from_secs(60), reached).await;
            assert!(reached(&p), "{reference} should be {end}: {p}");
            assert!(via(&p, "payroll: Mojaloop bulk"), "{reference}: {p}");
            assert_eq!(attempts_of(&app, id).await, 1, "{reference}");
            let paid = app.paid_at(&control, reference).await;
            assert_eq!(
                paid,
                u32::from(*end == "completed"),
                "{reference} paid {paid}"
            );
            if *end == "conflict" {
                assert_ne!(p["state"], "completed", "{reference}: {p}");
            }
        }
        // Four bulks, each POSTed once; the one whose answer was lost was asked about.
        let requests = bulk_transfer_requests(&app);
        let posted: Vec<&String> = requests
            .iter()
            .filter(|(m, _)| m == "POST")
            .map(|(_, id)| id)
            .collect();
        assert_eq!(posted.len(), 4, "{requests:?}");
        let mut distinct = posted.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "{requests:?}");
        let asked: Vec<&String> = requests
            .iter()
            .filter(|(m, _)| m == "GET")
            .map(|(_, id)| id)
            .collect();
        assert!(!asked.is_empty(), "the lost answer was asked for");
        assert!(asked.iter().all(|id| posted.contains(id)), "{requests:?}");
        assert!(
            hub(&app).rejections().is_empty(),
            "{:?}",
            hub(&app).rejections()
        );
        trial_balance_is_zero(&app).await;
        app.stop().await;
    }
);

// 10,000 lines through the gateway to the hub's bulk: ten bulks of 1,000, every line
// completed or failed as its digits say, each paid at most once, and the counts add up.
both_stores!(
    ten_thousand_lines_through_mojaloop_bulk,
    |store| async move {
        let Some(app) =
            spawn_app_all_rails_with(store, |cfg| bulk_on(cfg, 1000, 60_000, 600)).await
        else {
            return;
        };
        let n = 10_000u32;
        let items: Vec<Value> = (0..n)
            .map(|i| {
                let digits = match i % 20 {
                    1 | 11 => "01",
                    2 => "02",
                    _ => "00",
                };
                item(
                    &format!("ML10K-{i:05}"),
                    &format!("2557{i:06}{digits}"),
                    "1000.00",
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let payroll = post_payroll(&app, "10k Mojaloop bulk", items).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
        let (completed, failed) = loop {
            let counts: Vec<(String, i64)> = railgate::store::sql::query_as(
                "SELECT state, COUNT(*) FROM payments WHERE payroll_id = $1 GROUP BY state",
            )
            .bind(&payroll)
            .fetch_all(app.db.pool())
            .await
            .unwrap();
            let of = |s: &str| counts.iter().find(|(k, _)| k == s).map_or(0, |(_, c)| *c);
            let (c, f) = (of("completed"), of("failed"));
            if c + f == i64::from(n) || tokio::time::Instant::now() > deadline {
                break (c, f);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        eprintln!(
            "10,000 Mojaloop bulk lines settled in {:?}",
            started.elapsed()
        );
        // On a miss, why the failed lines failed.
        let why: Vec<(Option<String>, Option<String>, i64)> = if completed == 8_500 {
            Vec::new()
        } else {
            railgate::store::sql::query_as(
                "SELECT failure_code, failure_reason, COUNT(*) FROM payments WHERE payroll_id = $1 \
                 AND state = 'failed' GROUP BY failure_code, failure_reason",
            )
            .bind(&payroll)
            .fetch_all(app.db.pool())
            .await
            .unwrap()
        };
        assert_eq!(completed, 8_500, "failures: {why:?}");
        assert_eq!(failed, 1_500);
        // Every line went in a bulk, under one attempt.
        let (in_batches, attempts): (i64, i64) = railgate::store::sql::query_as(
        "SELECT COUNT(a.batch_id), COUNT(*) FROM attempts a JOIN payments p ON p.id = a.payment_id \
         WHERE p.payroll_id = $1",
    )
    .bind(&payroll)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
        assert_eq!(in_batches, i64::from(n));
        assert_eq!(attempts, i64::from(n));
        // Paid once each, never twice; ten bulks, each sent once.
        let payouts = hub(&app).payouts();
        assert_eq!(payouts.len(), 8_500);
        assert!(payouts.iter().all(|p| p.count == 1));
        let posted = bulk_transfer_requests(&app)
            .into_iter()
            .filter(|(m, _)| m == "POST")
            .count();
        assert_eq!(posted, 10);
        assert!(hub(&app).rejections().is_empty());
        // Every callback was taken, the bulk answers of 1,000 lines (over a megabyte) included.
        let deliveries = hub(&app).deliveries();
        assert!(deliveries
            .iter()
            .any(|d| d.path.starts_with("/bulkQuotes/")));
        assert!(
            deliveries.iter().all(|d| d.status == Some(200)),
            "{:?}",
            deliveries.iter().find(|d| d.status != Some(200))
        );
        trial_balance_is_zero(&app).await;
        app.stop().await;
    }
);

// An upload whose `POST /bulkTransfers` lost its HTTP answer (the hub took it, then the
// connection dropped) and whose result never came: every line goes `unknown`, and is then
// settled by `GET /bulkTransfers/{id}` under its one attempt id; the bulk is never resent.
both_stores!(
    lost_bulk_transfer_answer_is_settled_by_asking,
    |store| async move {
        let Some(app) = spawn_app_all_rails_with(store, |cfg| bulk_on(cfg, 10, 5_000, 60)).await
        else {
            return;
        };
        hub(&app).cut_bulk_connections(1);
        hub(&app).drop_bulk_answers(1);
        let lines = [
            ("MLL-00", "255712349000", "completed"),
            ("MLL-01", "255712349001", "failed"),
            ("MLL-03", "255712349003", "failed"),
            ("MLL-04", "255712349004", "completed"),
            ("MLL-13", "255712349013", "completed"),
        ];
        let items = lines.iter().map(|(r, m, _)| item(r, m, "250.00")).collect();
        let payroll = post_payroll(&app, "lost bulk answer", items).await;
        let control = format!("{}/_control", hub(&app).base_url());
        for (id, reference) in payment_ids(&app, &payroll).await {
            let (_, _, end) = lines.iter().find(|(r, _, _)| *r == reference).unwrap();
            let p = app
                .wait_for(&id, Duration::from_secs(60), |p| p["state"] == *end)
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
            assert_eq!(attempts_of(&app, &id).await, 1, "{reference}");
            let paid = app.paid_at(&control, &reference).await;
            assert_eq!(
                paid,
                u32::from(*end == "completed"),
                "{reference} paid {paid}"
            );
        }
        let requests = bulk_transfer_requests(&app);
        assert_eq!(
            requests.iter().filter(|(m, _)| m == "POST").count(),
            1,
            "{requests:?}"
        );
        assert!(requests.iter().any(|(m, _)| m == "GET"), "{requests:?}");
        trial_balance_is_zero(&app).await;
        app.stop().await;
    }
);

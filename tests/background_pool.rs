//! Background work cannot starve the API of database connections, on both stores: a small
//! pool with a short acquire timeout, many webhook endpoints whose receiver answers slowly, a
//! payroll through the mock rail; while all of it is delivered, the API keeps answering.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use axum::http::StatusCode;
use common::*;
use railgate::store::Db;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

const ENDPOINTS: usize = 8;
const LINES: usize = 100;

/// A receiver that takes its time (300 ms) and then says yes, counting what it got.
async fn slow_receiver(received: Arc<AtomicUsize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/hooks/{n}",
        axum::routing::post(move || {
            let received = received.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                received.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

async fn count(watch: &Db, sql: &str) -> i64 {
    railgate::store::sql::query_scalar(sql)
        .fetch_one(watch.pool())
        .await
        .unwrap()
}

both_stores!(
    webhook_deliveries_leave_the_api_its_connections,
    |store| async move {
        let Some(app) = spawn_app_with(store, |c| {
            c.db_connections = 4;
            c.db_acquire_timeout_ms = 2_000;
            c.notify.max_in_flight = 64;
            c.notify.timeout_ms = 5_000;
            c.notify.retry_min_ms = 200;
            c.notify.retry_max_ms = 1_000;
        })
        .await
        else {
            return;
        };
        // The test looks on through a connection of its own, not one of the gateway's.
        let watch = Db::connect(&app.database_url, 1).await.unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let port = slow_receiver(received.clone()).await;
        for n in 0..ENDPOINTS {
            let (s, hook) = app
            .post(
                "/v1/webhooks",
                &app.key,
                &json!({"url": format!("http://127.0.0.1:{port}/hooks/{n}"), "description": format!("core {n}")}),
                None,
            )
            .await;
            assert_eq!(s, 201, "{hook}");
        }

        // The API, asked all along by four clients at once.
        let done = Arc::new(AtomicBool::new(false));
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (http, url, key, done) = (
                app.http.clone(),
                app.url("/v1/payments?limit=50"),
                app.key.clone(),
                done.clone(),
            );
            readers.spawn(async move {
                let mut answers: Vec<(u16, String)> = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let r = http.get(&url).bearer_auth(&key).send().await.unwrap();
                    let status = r.status().as_u16();
                    let body = r.text().await.unwrap_or_default();
                    answers.push((status, body));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answers
            });
        }

        let items: Vec<Value> = (0..LINES)
            .map(|i| {
                json!({
                    "reference": format!("POOL-{i:04}"),
                    "amount": {"value": "1500.00", "currency": "TZS"},
                    "payee": {"id_type": "MSISDN", "id_value": format!("2557123{i:05}")},
                })
            })
            .collect();
        let (s, v) = app
            .post(
                "/v1/payrolls",
                &app.key,
                &json!({"name": "pool", "items": items}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");

        // Every line final and every delivery made (bounded generously).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let (mut open, mut undelivered);
        loop {
            open = count(
            &watch,
            "SELECT COUNT(*) FROM payments WHERE state NOT IN ('completed', 'failed', 'cancelled', 'reversed') AND exception IS NULL",
        )
        .await;
            undelivered = count(
                &watch,
                "SELECT COUNT(*) FROM webhook_deliveries WHERE status <> 'delivered'",
            )
            .await;
            if (open == 0 && undelivered == 0) || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        done.store(true, Ordering::SeqCst);

        // The API answered every request all along...
        let mut asked = 0;
        while let Some(answers) = readers.join_next().await {
            for (status, body) in answers.unwrap() {
                asked += 1;
                assert_eq!(status, 200, "GET /v1/payments answered {status}: {body}");
            }
        }
        assert!(asked > 0);
        // ...and the background work got done.
        assert_eq!(
            (open, undelivered),
            (0, 0),
            "payments still open, deliveries not delivered"
        );
        let delivered = count(
            &watch,
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'delivered'",
        )
        .await;
        // At least one event per line per endpoint, each received at least once.
        assert!(
            delivered >= i64::try_from(LINES * ENDPOINTS).unwrap(),
            "{delivered} delivered"
        );
        assert!(
            received.load(Ordering::SeqCst) >= usize::try_from(delivered).unwrap(),
            "{} received of {delivered}",
            received.load(Ordering::SeqCst)
        );
        watch.close().await;
        app.stop().await;
    }
);

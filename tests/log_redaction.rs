//! Secrets rails call us with never reach the logs or the stored callback rows: the M-Pesa and
//! MMAPI path secrets, PH-EE's batch callback token, a party id in a Mojaloop path. Every log
//! line of this test binary (debug and up, with the request span on each) is captured.
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
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

fn captured() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        captured().lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The gateway's log format (JSON, the current span and its parents on every line), at debug.
fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,sqlx=warn"))
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(|| Capture)
            .init();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&captured().lock().unwrap()).into_owned()
}

async fn payment_completed(app: &TestApp, path: &str, body: serde_json::Value) -> String {
    let (s, p) = app.post(path, &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let p = app
        .wait_for(&id, Duration::from_secs(30), |p| p["state"] == "completed")
        .await;
    assert_eq!(p["state"], "completed", "{p}");
    id
}

/// The stored callbacks of a rail whose path ends with `tail`, once one is there.
async fn stored(app: &TestApp, rail: &str, tail: &str) -> Vec<(String, Vec<u8>, String)> {
    for _ in 0..300 {
        let rows: Vec<(String, Vec<u8>, String)> = railgate::store::sql::query_as(
            "SELECT path, body, verdict FROM callbacks WHERE rail = $1 ORDER BY received_at",
        )
        .bind(rail)
        .fetch_all(app.db.pool())
        .await
        .unwrap();
        let rows: Vec<_> = rows.into_iter().filter(|r| r.0.ends_with(tail)).collect();
        if !rows.is_empty() {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {rail} callback on {tail} was stored");
}

both_stores!(callback_secrets_stay_out_of_logs, |store| async move {
    capture_logs();
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let secrets = rail_secrets();

    // M-Pesa: a B2C payment completed by its result callback on /{secret}/b2c/result.
    payment_completed(
        &app,
        "/v1/disbursements",
        json!({
            "reference": "LOG-MP-00",
            "amount": {"value": "1500", "currency": "KES"},
            "payee": {"id_type": "MSISDN", "id_value": "254712345600"},
            "rail": "mpesa",
        }),
    )
    .await;
    let rows = stored(&app, "mpesa", "/b2c/result").await;
    let (path, body, verdict) = rows[0].clone();
    assert_eq!(path, "/***/b2c/result", "the secret is stored hidden");
    assert_ne!(verdict, "refused", "the callback was processed");
    // The same result again: refused as a replay (the WARN line inside the request span).
    let resp = app
        .http
        .post(app.url(&format!("/rails/mpesa/{}/b2c/result", secrets.mpesa)))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let replays: Vec<String> = railgate::store::sql::query_scalar(
        "SELECT verdict FROM callbacks WHERE rail = 'mpesa' AND path = '/***/b2c/result' \
         ORDER BY received_at",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap();
    assert!(replays.iter().any(|v| v == "replayed"), "{replays:?}");

    // MMAPI: a disbursement completed by its callback on /{secret}/transactions/{attempt}.
    payment_completed(
        &app,
        "/v1/disbursements",
        json!({
            "reference": "LOG-MM-00",
            "amount": {"value": "1500.00", "currency": "TZS"},
            "payee": {"id_type": "MSISDN", "id_value": "255712345600"},
            "rail": "mmapi",
        }),
    )
    .await;
    let rows = stored(&app, "mmapi", "").await;
    assert!(
        rows.iter().all(|r| r.0.starts_with("/***/")),
        "{:?}",
        rows.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    assert!(rows.iter().any(|r| r.2 != "refused"));

    // PH-EE's batch callback carries its token in the query string.
    let resp = app
        .http
        .post(app.url(&format!(
            "/rails/phee/batch-callback?token={}",
            secrets.phee
        )))
        .json(&json!({"batchId": "b-1", "message": "50%"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // A Mojaloop party lookup answer names the person in its path.
    let _ = app
        .http
        .put(app.url("/rails/mojaloop/parties/MSISDN/255799887766"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    // A rail that is not configured: whatever follows it is hidden.
    let _ = app
        .http
        .post(app.url("/rails/mpesa-old/an-old-secret-segment/b2c/result"))
        .send()
        .await
        .unwrap();

    let logs = logs();
    assert!(
        logs.contains("/rails/mpesa/***/b2c/result"),
        "the request span records the redacted path"
    );
    assert!(logs.contains("Callback id seen before"));
    assert!(logs.contains("/rails/mmapi/***/"));
    assert!(logs.contains("/rails/phee/batch-callback"));
    assert!(logs.contains("/rails/mojaloop/parties/MSISDN/25********66"));
    assert!(logs.contains("/rails/mpesa-old/***"));
    for secret in [
        secrets.mpesa.as_str(),
        secrets.mmapi.as_str(),
        secrets.phee.as_str(),
        "255799887766",
        "an-old-secret-segment",
    ] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
    let leaked: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM callbacks WHERE path LIKE '%' || $1 || '%' \
         OR path LIKE '%' || $2 || '%'",
    )
    .bind(&secrets.mpesa)
    .bind(&secrets.mmapi)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    app.stop().await;
});

/// The sandbox gives every rail its own secret: the M-Pesa one (in callback URLs) does not
/// sign the mock rail's callbacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_rails_have_their_own_secrets() {
    let sb = railgate::sandbox::start(railgate::sandbox::SandboxOptions {
        port: 0,
        db: None,
        api_key: None,
    })
    .await
    .unwrap();
    let mut secrets = Vec::new();
    for r in &sb.gateway.state.cfg.rails {
        for key in ["callback_secret", "ilp_secret", "callback_token"] {
            if let Some(v) = r.setting(key) {
                secrets.push((r.id.clone(), v));
            }
        }
    }
    let rails: Vec<&str> = secrets.iter().map(|(r, _)| r.as_str()).collect();
    for rail in ["mock", "mmapi", "mpesa", "mojaloop", "phee"] {
        assert!(rails.contains(&rail), "{rail} has a secret: {rails:?}");
    }
    for (i, (a, x)) in secrets.iter().enumerate() {
        for (b, y) in secrets.iter().skip(i + 1) {
            assert_ne!(x, y, "{a} and {b} share a secret");
        }
    }

    let secret_of = |rail: &str| {
        secrets
            .iter()
            .find(|(r, _)| r == rail)
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    let body = serde_json::to_vec(&json!({
        "event_id": "22222222-2222-4222-8222-222222222222",
        "request_id": "33333333-3333-4333-8333-333333333333",
        "transaction_id": "MRX9", "status": "SUCCESS", "code": null, "receipt": "R9",
        "amount": "10.00", "currency": "TZS", "occurred_at": chrono::Utc::now().to_rfc3339(),
    }))
    .unwrap();
    let http = reqwest::Client::new();
    let deliver = |secret: String| {
        let http = http.clone();
        let body = body.clone();
        let url = format!("{}/rails/mock/callback", sb.gateway.base_url());
        async move {
            let sig = railgate_mock::sign(&secret, chrono::Utc::now().timestamp(), &body);
            http.post(url)
                .header("content-type", "application/json")
                .header(railgate_mock::SIGNATURE_HEADER, sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        deliver(secret_of("mpesa")).await,
        401,
        "the M-Pesa secret signs nothing"
    );
    // The mock rail's own secret is accepted (the attempt is unknown, so nothing changes).
    assert_eq!(deliver(secret_of("mock")).await, 404);
    sb.gateway.shutdown().await;
}

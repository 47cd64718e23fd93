//! The figures behind the console's pictures, read from a real store on both databases after
//! real payments and a payroll went through the gateway and the mock rail; and the pictures
//! drawn from them carry those exact figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use railgate::store::charts::{self, BreakAge, DAY_MICROS};
use serde_json::json;
use std::time::Duration;

async fn client_of(app: &TestApp, key: &str) -> uuid::Uuid {
    railgate::store::keys::lookup(&app.db, key)
        .await
        .unwrap()
        .unwrap()
        .client_id
}

async fn get_raw(app: &TestApp, path: &str, key: &str) -> (u16, String, String) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, resp.text().await.unwrap())
}

/// Writes the picture where `RAILGATE_CHARTS_OUT` says, to look at by eye.
fn keep(name: &str, svg: &str) {
    if let Ok(dir) = std::env::var("RAILGATE_CHARTS_OUT") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), svg).unwrap();
    }
}

async fn open_break(app: &TestApp, client: uuid::Uuid, age_micros: i64, critical: bool) {
    let now = railgate::store::now_micros();
    railgate::store::sql::query(
        "INSERT INTO recon_breaks (id, client_id, dedupe_key, kind, severity, status, note, \
         detail, amount_minor, currency, opened_at) \
         VALUES ($1, $2, $3, 'missing_from_statement', $4, 'open', 'n', '{}', 12550, 'TZS', $5)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(client.to_string())
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(if critical { "critical" } else { "normal" })
    .bind(now - age_micros)
    .execute(app.db.pool())
    .await
    .unwrap();
}

both_stores!(the_pictures_draw_what_the_store_holds, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let acme = client_of(&app, &app.key).await;
    let other = client_of(&app, &app.other_client_key).await;
    let body = json!({
        "name": "June",
        "items": [
            disbursement("CH-1", "255712345600", "1000.00"),
            disbursement("CH-2", "255712345600", "2500.50"),
            disbursement("CH-3", "255712345603", "200.00"),
        ]
    });
    let (s, v) = app.post("/v1/payrolls", &app.key, &body, None).await;
    assert_eq!(s, 201, "{v}");
    let payroll = v["id"].as_str().unwrap().to_owned();
    let single = app.disburse("CH-4", "255712345600", "500.00").await;
    let (s, theirs) = app
        .post(
            "/v1/disbursements",
            &app.other_client_key,
            &disbursement("CH-5", "255712345600", "700.00"),
            None,
        )
        .await;
    assert_eq!(s, 201, "{theirs}");
    app.wait_final(single["id"].as_str().unwrap()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, p) = app.get(&format!("/v1/payrolls/{payroll}"), &app.key).await;
        if p["status"] == "completed" || tokio::time::Instant::now() > deadline {
            assert_eq!(p["status"], "completed", "{p}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Daily flows: today's payments of this client only, exact sums in minor units.
    let today = chrono::Utc::now().date_naive();
    let rows = charts::daily_flows(&app.db, acme, today, today)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.day, today);
    assert_eq!(
        (
            r.rail.as_str(),
            r.programme.as_str(),
            r.direction.as_str(),
            r.currency.as_str()
        ),
        ("mock", "maternity", "disbursement", "TZS")
    );
    assert_eq!(r.instructed_count, 4);
    assert_eq!(r.instructed_minor, 420_050);
    assert_eq!(r.confirmed_minor, 400_050);
    assert_eq!(r.settled_minor, 0);
    let before = today.pred_opt().unwrap();
    let none = charts::daily_flows(&app.db, acme, before - chrono::Duration::days(3), before)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    let svg = railgate::charts::flows::daily_flows(&rows, today - chrono::Duration::days(6), today);
    assert!(svg.contains("instructed 4200.50, confirmed 4000.50, settled 0.00 TZS"));
    keep("flows.svg", &svg);

    // Payroll throughput: every line sent and finished, counted once; another client's
    // key reaches no payroll of this one.
    let id = uuid::Uuid::parse_str(&payroll).unwrap();
    let minutes = charts::payroll_throughput(&app.db, acme, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        minutes.iter().map(|m| m.sent).sum::<i64>(),
        3,
        "{minutes:?}"
    );
    assert_eq!(
        minutes.iter().map(|m| m.finished).sum::<i64>(),
        3,
        "{minutes:?}"
    );
    assert!(charts::payroll_throughput(&app.db, other, id)
        .await
        .unwrap()
        .is_none());
    let svg = railgate::charts::throughput::payroll_throughput("June", &minutes);
    assert!(svg.contains("Sent: 3 lines"));
    keep("throughput.svg", &svg);

    // Break ageing: the client's open breaks by age bucket and severity.
    open_break(&app, acme, DAY_MICROS / 2, true).await;
    open_break(&app, acme, DAY_MICROS / 2, false).await;
    open_break(&app, acme, 3 * DAY_MICROS, false).await;
    open_break(&app, acme, 40 * DAY_MICROS, true).await;
    open_break(&app, other, DAY_MICROS, true).await;
    let ages = charts::break_ageing(&app.db, acme, railgate::store::now_micros())
        .await
        .unwrap();
    let at = |bucket, critical| {
        ages.iter()
            .find(|a: &&BreakAge| a.bucket == bucket && a.critical == critical)
            .map(|a| (a.count, a.amount_minor))
    };
    assert_eq!(at(0, true), Some((1, 12_550)), "{ages:?}");
    assert_eq!(at(0, false), Some((1, 12_550)));
    assert_eq!(at(1, false), Some((1, 12_550)));
    assert_eq!(at(3, true), Some((1, 12_550)));
    assert_eq!(
        ages.iter().map(|a| a.count).sum::<i64>(),
        4,
        "only this client's"
    );
    let svg = railgate::charts::ageing::break_ageing(&ages, chrono::Utc::now());
    assert!(svg.contains("2 breaks, 1 critical") && svg.contains("TZS 251.00"));
    keep("ageing.svg", &svg);

    // The same pictures over the API, each behind its scope.
    let flows = format!("/v1/reports/charts/daily-flows?from={today}&to={today}&rail=mock");
    let (s, ct, body) = get_raw(&app, &flows, &app.key).await;
    assert_eq!((s, ct.as_str()), (200, "image/svg+xml"), "{body}");
    assert!(body.contains("instructed 4200.50, confirmed 4000.50, settled 0.00 TZS"));
    let (s, _, _) = get_raw(&app, &flows, &app.read_key).await;
    assert_eq!(s, 403, "reports:read is needed");
    let (s, _, body) = get_raw(
        &app,
        "/v1/reports/charts/daily-flows?from=2026-01-01&to=2026-06-01&direction=sideways",
        &app.key,
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body.contains("at most 92 days") && body.contains("\"direction\""),
        "{body}"
    );
    let (s, _, body) = get_raw(&app, "/v1/reports/charts/break-ageing", &app.key).await;
    assert_eq!(s, 200);
    assert!(body.contains("2 breaks, 1 critical"), "{body}");
    let throughput = format!("/v1/payrolls/{payroll}/throughput");
    let (s, _, body) = get_raw(&app, &throughput, &app.read_key).await;
    assert_eq!(s, 200);
    assert!(
        body.contains("Payroll June") && body.contains("Sent: 3 lines"),
        "{body}"
    );
    let (s, _, _) = get_raw(&app, &throughput, &app.other_client_key).await;
    assert_eq!(s, 404, "another client's payroll");
    app.stop().await;
});

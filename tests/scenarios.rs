//! Every row of the mock rail's scenario table reaches its end state, through the API and
//! the mock's paid count (at most one payout per payment, ever), on both stores.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use serde_json::Value;
use std::time::Duration;

fn state(p: &Value) -> &str {
    p["state"].as_str().unwrap_or("")
}

both_stores!(every_scenario_reaches_its_end_state, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let rows: Vec<(&str, &str)> = vec![
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
        ("11", "failed"),
        ("12", "unknown"),
        ("42", "completed"),
    ];
    let mut ids = Vec::new();
    for (digits, _) in &rows {
        let p = app
            .disburse(
                &format!("SC-{digits}"),
                &format!("2557123456{digits}"),
                "1000.00",
            )
            .await;
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    for ((digits, want), id) in rows.iter().zip(&ids) {
        let p = if *digits == "11" {
            // Failure first, then the contradicting success: a recorded conflict.
            app.wait_for(id, Duration::from_secs(30), |p| !p["conflict"].is_null())
                .await
        } else {
            app.wait_final(id).await
        };
        assert_eq!(state(&p), *want, "scenario {digits}: {p}");
        let paid = app.paid(&format!("SC-{digits}"));
        assert!(paid <= 1, "scenario {digits} paid {paid} times");
        match *want {
            "completed" => assert_eq!(paid, 1, "scenario {digits}"),
            "failed" if *digits != "06" && *digits != "11" => {
                assert_eq!(paid, 0, "scenario {digits}")
            }
            _ => {}
        }
    }
    let by = |d: &str| ids[rows.iter().position(|(x, _)| *x == d).unwrap()].clone();
    // 01 keeps the rail's code.
    let p = app.payment(&by("01")).await;
    assert_eq!(p["failure"]["code"], "insufficient_funds");
    assert_eq!(p["failure"]["rail_code"], "INSUFFICIENT_FUNDS");
    // 10 went through unknown before the inquiry settled it.
    let p = app.payment(&by("10")).await;
    let went: Vec<&str> = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert!(went.contains(&"unknown"), "{went:?}");
    // 11: failed, with the contradicting success recorded.
    let p = app.payment(&by("11")).await;
    assert!(p["conflict"].as_str().unwrap().contains("completed"), "{p}");
    // 12: unknown, then an operator exception after the deadline.
    let p = app
        .wait_for(&by("12"), Duration::from_secs(40), |p| {
            !p["exception"].is_null()
        })
        .await;
    assert_eq!(state(&p), "unknown");
    assert!(p["exception"].as_str().unwrap().contains("deadline"), "{p}");
    // 07: three deliveries, one completion in the history.
    let p = app.payment(&by("07")).await;
    let completions = p["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["to"] == "completed")
        .count();
    assert_eq!(completions, 1);
    // 08: the forged callback was refused and stored as such.
    let refused: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM callbacks WHERE verdict = 'refused'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(refused >= 1);
    app.stop().await;
});

both_stores!(collections_by_request_to_pay, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let body = serde_json::json!({
        "reference": "PREM-1", "amount": {"value": "500.00", "currency": "TZS"},
        "payer": {"id_type": "MSISDN", "id_value": "255712345600"}, "mode": "request_to_pay"
    });
    let (s, p) = app.post("/v1/collections", &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    let p = app.wait_final(p["id"].as_str().unwrap()).await;
    assert_eq!(state(&p), "completed");
    let body = serde_json::json!({
        "reference": "PREM-2", "amount": {"value": "500.00", "currency": "TZS"},
        "payer": {"id_type": "MSISDN", "id_value": "255712345603"}
    });
    let (_, p) = app.post("/v1/collections", &app.key, &body, None).await;
    let p = app.wait_final(p["id"].as_str().unwrap()).await;
    assert_eq!(state(&p), "failed");
    assert_eq!(p["failure"]["code"], "declined");
    app.stop().await;
});

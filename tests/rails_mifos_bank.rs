//! The Mifos rails (Payment Hub EE, Fineract) and the bank (ISO 20022 files) through the whole
//! gateway, on both stores: the scenario table in each rail's own terms, PH-EE bulk for
//! payrolls, a resend after a lost answer, a bank return reversing a completed payment, and
//! the pain.001 files the gateway dropped checked against the ISO schema.
//!
//! Where a rail's table differs from the generic one, the expectations are written out here:
//! - PH-EE pushes nothing for single transfers and Fineract calls nobody back, so 07 (a
//!   repeated callback) and 08 (a forged callback) are plain successes there.
//! - 11 on all three is "refused first, paid ~2 s later": the payment fails on the refusal,
//!   and the late success is recorded as a conflict. On the bank, the watcher finds the booked
//!   debit of a payment the bank rejected; on PH-EE and Fineract, which call nobody back, the
//!   failure is re-checked once after `confirm_failure_after_ms` and the rail now reports the
//!   payment paid (the operations app's `COMPLETED`, the deposit on the account). Everywhere it
//!   is never paid twice.
//! - 12 on the bank is `ACSC` that is never booked: accepted, never completed, an operator
//!   exception at the deadline.
//! - 12 on Fineract books the deposit and then hides it (the account lookup fails for ever):
//!   an operator exception, with the rail having paid once; the gateway never deposits again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
#[path = "../adapters/bank/tests/common/xmllint.rs"]
mod xmllint;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The generic table's end states, with the differences above.
fn expectations(_rail: &str) -> Vec<(&'static str, &'static str)> {
    vec![
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
        // The late success after the refusal: a recorded conflict on every one of these rails.
        ("11", "conflict"),
        ("12", "exception"),
    ]
}

fn reference(rail: &str, direction: &str, digits: &str) -> String {
    let r: String = rail.chars().take(6).collect();
    let d: String = direction.chars().take(1).collect();
    format!("{r}-{d}-{digits}")
}

/// Times money moved for `reference` per the mock's `/payouts` (Fineract's rows carry the
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

#[allow(clippy::too_many_arguments)]
async fn run_table(
    app: &TestApp,
    rail: &str,
    direction: &str,
    currency: &str,
    amount: &str,
    party: impl Fn(&str) -> Value,
    control: &str,
) {
    let rows = expectations(rail);
    let (path, party_key) = match direction {
        "disbursement" => ("/v1/disbursements", "payee"),
        _ => ("/v1/collections", "payer"),
    };
    let mut ids = Vec::new();
    for (digits, _) in &rows {
        let body = json!({
            "reference": reference(rail, direction, digits),
            "amount": {"value": amount, "currency": currency},
            party_key: party(digits),
            "rail": rail,
        });
        let (s, p) = app.post(path, &app.key, &body, None).await;
        assert_eq!(s, 201, "{rail} {digits}: {p}");
        assert_eq!(p["rail"], rail, "{p}");
        ids.push(p["id"].as_str().unwrap().to_owned());
    }
    for ((digits, want), id) in rows.iter().zip(&ids) {
        let p = app
            .wait_for(id, Duration::from_secs(40), |p| match *want {
                "exception" => !p["exception"].is_null(),
                "conflict" => !p["conflict"].is_null(),
                w => p["state"] == w,
            })
            .await;
        let what = format!("{rail} {direction} {digits}");
        match *want {
            "exception" => {
                assert!(!p["exception"].is_null(), "{what}: {p}");
                assert_eq!(p["state"], "unknown", "{what}: {p}");
            }
            "conflict" => {
                assert!(!p["conflict"].is_null(), "{what}: {p}");
                assert_eq!(p["state"], "failed", "{what}: the first answer stands: {p}");
            }
            w => assert_eq!(p["state"], w, "{what}: {p}"),
        }
        // 11 and 12 may pay late; give them the time to, so a second payment would show.
        if ["11", "12"].contains(digits) {
            tokio::time::sleep(Duration::from_millis(2_500)).await;
        }
        let n = paid(app, control, &reference(rail, direction, digits)).await;
        assert!(n <= 1, "{what}: paid {n} times");
        if *want == "completed" {
            assert_eq!(n, 1, "{what}: completed but the rail paid {n} times");
        }
        if ["01", "02", "03", "06"].contains(digits) {
            assert_eq!(n, 0, "{what}: failed but the rail paid");
        }
    }
}

fn msisdn(prefix: &'static str) -> impl Fn(&str) -> Value {
    move |digits| json!({"id_type": "MSISDN", "id_value": format!("{prefix}{digits}")})
}

fn savings_account(digits: &str) -> Value {
    json!({"id_type": "ACCOUNT_ID", "id_value": format!("40{digits}")})
}

/// A German IBAN whose account number ends in `digits` (check digits computed).
fn iban_ending(digits: &str, salt: u32) -> String {
    let bban = format!("37040044{salt:08}{digits}");
    let numeric = format!("{bban}131400");
    let mut rem: u32 = 0;
    for c in numeric.chars() {
        rem = (rem * 10 + c.to_digit(10).unwrap()) % 97;
    }
    format!("DE{:02}{bban}", 98 - rem)
}

fn iban(salt: u32) -> impl Fn(&str) -> Value {
    move |digits| json!({"id_type": "IBAN", "id_value": iban_ending(digits, salt), "name": "Zoë Ñandú"})
}

fn mocks(app: &TestApp) -> &railgate::sandbox::MifosBankMocks {
    app.mifos_bank.as_ref().unwrap()
}

both_stores!(phee_scenarios_both_directions, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = mocks(&app).phee_control_url();
    run_table(
        &app,
        "phee",
        "disbursement",
        "TZS",
        "1500.50",
        msisdn("2557123456"),
        &control,
    )
    .await;
    run_table(
        &app,
        "phee",
        "collection",
        "TZS",
        "1500.50",
        msisdn("2557123457"),
        &control,
    )
    .await;
    app.stop().await;
});

both_stores!(fineract_scenarios, |store| async move {
    // Fineract's 04 answers after ~3 s: the rail's request timeout must allow for it (a
    // Fineract that is cut off mid-request may never book, as the sandbox does).
    let Some(app) = spawn_app_all_rails_with(store, |cfg| {
        for r in cfg.rails.iter_mut().filter(|r| r.id == "fineract") {
            r.request_timeout_ms = 5_000;
        }
    })
    .await
    else {
        return;
    };
    let control = mocks(&app).fineract_control_url();
    run_table(
        &app,
        "fineract",
        "disbursement",
        "KES",
        "1500.25",
        savings_account,
        &control,
    )
    .await;
    app.stop().await;
});

both_stores!(bank_scenarios, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = mocks(&app).bank_control_url();
    run_table(
        &app,
        "bank",
        "disbursement",
        "EUR",
        "1500.00",
        iban(1234),
        &control,
    )
    .await;
    app.stop().await;
});

both_stores!(
    routes_iban_to_the_bank_and_accounts_to_fineract,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let body = json!({"reference": "ROUTE-IBAN", "amount": {"value": "10.00", "currency": "EUR"},
        "payee": iban(77)("00")});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        assert_eq!(p["rail"], "bank");
        let body = json!({"reference": "ROUTE-ACCT", "amount": {"value": "10", "currency": "KES"},
        "payee": savings_account("00")});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        assert_eq!(p["rail"], "fineract");
        let p = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "completed", "{p}");
        app.stop().await;
    }
);

// PH-EE drops the connection after recording the transfer (10), Fineract after booking the
// deposit (05): the gateway does not know, asks, and completes — paid once, and the attempt
// was never sent again under a new id.
both_stores!(
    resend_after_a_lost_response_never_pays_twice,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let cases = [
            (
                "phee",
                "LOST-PHEE",
                json!({"value": "700.00", "currency": "TZS"}),
                msisdn("2557000001")("10"),
                mocks(&app).phee_control_url(),
            ),
            (
                "fineract",
                "LOST-FINE",
                json!({"value": "700", "currency": "KES"}),
                savings_account("05"),
                mocks(&app).fineract_control_url(),
            ),
            (
                "fineract",
                "LOST-FIN2",
                json!({"value": "700", "currency": "KES"}),
                savings_account("10"),
                mocks(&app).fineract_control_url(),
            ),
        ];
        for (rail, reference, amount, payee, control) in cases {
            let body =
                json!({"reference": reference, "amount": amount, "payee": payee, "rail": rail});
            let (s, p) = app
                .post("/v1/disbursements", &app.key, &body, Some(reference))
                .await;
            assert_eq!(s, 201, "{p}");
            let id = p["id"].as_str().unwrap().to_owned();
            // The client's own resend of the request changes nothing.
            let (s2, p2) = app
                .post("/v1/disbursements", &app.key, &body, Some(reference))
                .await;
            assert!(s2 == 200 || s2 == 201, "{s2} {p2}");
            assert_eq!(p2["id"], id.as_str());
            let p = app.wait_final(&id).await;
            assert_eq!(p["state"], "completed", "{rail}: {p}");
            let states: Vec<&str> = p["history"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t["to"].as_str())
                .collect();
            assert!(
                states.contains(&"unknown"),
                "{rail}: the answer was lost, so the outcome was unknown first: {p}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(
                paid(&app, &control, reference).await,
                1,
                "{rail}: {reference}"
            );
            let attempts: i64 = railgate::store::sql::query_scalar(
                "SELECT COUNT(*) FROM attempts WHERE payment_id = $1",
            )
            .bind(&id)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
            assert_eq!(attempts, 1, "{rail}: one attempt id, never a new one");
        }
        app.stop().await;
    }
);

// The sandbox bank's 13: `ACSC`, then a camt.054 return entry (`RRTN`, AC04) carrying our
// end-to-end id. The gateway's returns watcher reverses the completed payment.
both_stores!(
    a_return_after_completion_reverses_the_payment,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let body = json!({"reference": "RETURN-13", "amount": {"value": "250.00", "currency": "EUR"},
        "payee": iban(4242)("13")});
        let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        assert_eq!(p["rail"], "bank");
        let id = p["id"].as_str().unwrap().to_owned();
        let p = app
            .wait_for(&id, Duration::from_secs(40), |p| p["state"] == "reversed")
            .await;
        assert_eq!(p["state"], "reversed", "{p}");
        let states: Vec<&str> = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["to"].as_str())
            .collect();
        let completed = states
            .iter()
            .position(|s| *s == "completed")
            .expect("completed first");
        let reversed = states.iter().position(|s| *s == "reversed").unwrap();
        assert!(completed < reversed, "{states:?}");
        let cause = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["to"] == "reversed")
            .unwrap()["cause"]
            .clone();
        assert!(cause.as_str().unwrap().contains("return"), "{cause}");
        assert!(p["conflict"].is_null(), "{p}");
        // The ledger posted the reversal: one transfer naming the posted one.
        let reversals: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND reverses_id IS NOT NULL",
    )
    .bind(&id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
        assert_eq!(reversals, 1, "one reversing ledger transfer");
        // Later sweeps see the same return again and change nothing.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let again = app.payment(&id).await;
        assert_eq!(again["state"], "reversed");
        assert_eq!(
            again["history"].as_array().unwrap().len(),
            p["history"].as_array().unwrap().len()
        );
        let reversals_after: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND reverses_id IS NOT NULL",
    )
    .bind(&id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
        assert_eq!(reversals_after, 1, "a return seen again posts nothing");
        // A payment the bank simply paid is not touched.
        let body = json!({"reference": "NORETURN-00", "amount": {"value": "250.00", "currency": "EUR"},
        "payee": iban(4243)("00")});
        let (_, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
        let p = app.wait_final(p["id"].as_str().unwrap()).await;
        assert_eq!(p["state"], "completed");
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            app.payment(p["id"].as_str().unwrap()).await["state"],
            "completed"
        );
        app.stop().await;
    }
);

// Every pain.001 the gateway dropped in the sandbox's outbound folder (kept by the sandbox
// bank in `out/archive/` after pickup) is valid against the ISO 20022 schema.
both_stores!(
    dropped_pain001_files_are_valid_against_the_xsd,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let mut ids = Vec::new();
        for (i, digits) in ["00", "04", "07"].iter().enumerate() {
            let body = json!({"reference": format!("XSD-{i}"), "amount": {"value": "99.99", "currency": "EUR"},
            "payee": iban(900 + u32::try_from(i).unwrap())(digits), "narrative": "Pension 2026-11 Zoë & Søren"});
            let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
            assert_eq!(s, 201, "{p}");
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
        for id in &ids {
            assert_eq!(app.wait_final(id).await["state"], "completed");
        }
        let archive = mocks(&app).archive_dir();
        let files: Vec<PathBuf> = std::fs::read_dir(&archive)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            .collect();
        assert_eq!(files.len(), 3, "one file per payment: {files:?}");
        let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/iso20022/xsd/pain.001.001.09.xsd");
        for f in &files {
            let xml = std::fs::read(f).unwrap();
            assert!(String::from_utf8_lossy(&xml).contains("pain.001.001.09"));
            xmllint::validate(&xml, &schema);
        }
        app.stop().await;
    }
);

// A payroll routed to PH-EE goes through the bulk API in rail-sized chunks; PH-EE's batch
// callback makes the gateway read the per-line results and apply them item by item. The
// dispatcher is off here, so nothing but the bulk path can settle these payments.
both_stores!(
    phee_bulk_payroll_through_the_batch_callback,
    |store| async move {
        let Some(app) = spawn_app_all_rails_with(store, |cfg| {
            cfg.dispatch.enabled = false;
            for r in cfg.rails.iter_mut().filter(|r| r.id == "phee") {
                r.batch_chunk = Some(7);
            }
        })
        .await
        else {
            return;
        };
        let mut ids = Vec::new();
        let mut want = Vec::new();
        for i in 0..20u32 {
            // Every fifth line fails (01); two pairs have the same payee and amount, which PH-EE
            // would silently merge in one file.
            let digits = if i % 5 == 1 { "01" } else { "00" };
            let who = if i == 3 || i == 13 {
                3
            } else if i == 8 || i == 18 {
                8
            } else {
                i
            };
            let body = json!({"reference": format!("PAYROLL-{i:02}"), "amount": {"value": "5000.00", "currency": "TZS"},
            "payee": {"id_type": "MSISDN", "id_value": format!("255710{who:04}{digits}")}, "rail": "phee"});
            let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
            assert_eq!(s, 201, "{p}");
            assert_eq!(p["state"], "queued");
            ids.push(uuid::Uuid::parse_str(p["id"].as_str().unwrap()).unwrap());
            want.push(if digits == "01" {
                "failed"
            } else {
                "completed"
            });
        }
        let cfg = app.gateway.state.cfg.clone();
        let sent = railgate::bulk::submit_phee_bulk(&app.db, &cfg, "phee", &ids)
            .await
            .unwrap();
        assert!(
            sent.single.is_empty() && sent.skipped.is_empty(),
            "{sent:?}"
        );
        assert!(sent.batches.len() >= 3, "chunks of 7 lines: {sent:?}");
        assert_eq!(sent.batches.iter().map(|b| b.lines).sum::<usize>(), 20);
        assert!(
            sent.batches.iter().all(|b| b.batch_id.is_some()),
            "{sent:?}"
        );
        // A second call takes nothing: every payment has its attempt already.
        let again = railgate::bulk::submit_phee_bulk(&app.db, &cfg, "phee", &ids)
            .await
            .unwrap();
        assert!(
            again.batches.is_empty() && again.skipped.len() == 20,
            "{again:?}"
        );
        let control = mocks(&app).phee_control_url();
        for (i, (id, w)) in ids.iter().zip(&want).enumerate() {
            let p = app
                .wait_for(&id.to_string(), Duration::from_secs(40), |p| {
                    p["state"] == *w
                })
                .await;
            assert_eq!(p["state"], *w, "line {i}: {p}");
            let n = paid(&app, &control, &format!("PAYROLL-{i:02}")).await;
            assert_eq!(n, u64::from(*w == "completed"), "line {i} paid {n} times");
        }
        app.stop().await;
    }
);

// PH-EE's batch callback is authenticated by the token in its URL; anything else posing as a
// callback on these rails is refused and changes nothing.
both_stores!(forged_callbacks_are_refused, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let body = json!({"batchId": "x", "message": "100"});
    let post = |path: String| {
        let app = &app;
        let body = body.clone();
        async move {
            app.http
                .post(app.url(&path))
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post("/rails/phee/batch-callback?token=wrong".into()).await,
        401
    );
    assert_eq!(post("/rails/phee/batch-callback".into()).await, 401);
    assert_eq!(post("/rails/phee/transfer-callback".into()).await, 404);
    assert_eq!(post("/rails/fineract/callback".into()).await, 404);
    assert_eq!(post("/rails/bank/callback".into()).await, 404);
    let good = format!(
        "/rails/phee/batch-callback?token={}",
        common::rail_secrets().phee
    );
    assert_eq!(post(good).await, 200);
    let refused: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM callbacks WHERE verdict = 'refused'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(refused, 5);
    app.stop().await;
});

// A payroll whose items are routed to PH-EE is released through the bulk API: every item's
// attempt travels as a line of a PH-EE file, is settled, and is paid once.
both_stores!(
    payroll_routed_to_phee_goes_through_the_bulk_api,
    |store| async move {
        let Some(app) = spawn_app_all_rails(store).await else {
            return;
        };
        let items: Vec<Value> = (0..12u32)
        .map(|i| {
            let digits = if i == 5 { "01" } else { "00" };
            json!({"reference": format!("PR-PHEE-{i:02}"), "amount": {"value": "750.00", "currency": "TZS"},
                "payee": {"id_type": "MSISDN", "id_value": format!("255711{i:04}{digits}")}, "rail": "phee"})
        })
        .collect();
        let (s, v) = app
            .post(
                "/v1/payrolls",
                &app.key,
                &json!({"name": "PH-EE bulk", "items": items}),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        let id = v["id"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let v = loop {
            let (_, v) = app.get(&format!("/v1/payrolls/{id}"), &app.key).await;
            if v["status"] == "completed" || tokio::time::Instant::now() > deadline {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(v["status"], "completed", "{v}");
        assert_eq!(v["states"]["completed"]["count"], 11, "{v}");
        assert_eq!(v["states"]["failed"]["count"], 1, "{v}");
        let control = mocks(&app).phee_control_url();
        let rows: Vec<(String,)> =
            railgate::store::sql::query_as("SELECT id FROM payments WHERE payroll_id = $1")
                .bind(&id)
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        assert_eq!(rows.len(), 12);
        for (pid,) in rows {
            let p = app.payment(&pid).await;
            let via_bulk = p["history"].as_array().unwrap().iter().any(|t| {
                t["cause"]
                    .as_str()
                    .is_some_and(|c| c.contains("Payment Hub bulk"))
            });
            assert!(via_bulk, "sent as a bulk line: {p}");
            let reference = p["reference"].as_str().unwrap();
            let n = paid(&app, &control, reference).await;
            assert_eq!(
                n,
                u64::from(p["state"] == "completed"),
                "{reference} paid {n} times"
            );
        }
        app.stop().await;
    }
);

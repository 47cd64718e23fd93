//! Reconciliation through the real gateway: statements uploaded over HTTP, runs, the break
//! queue and its resolutions, reports, and the finance page in headless Chromium.
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
use std::collections::BTreeMap;
use std::time::Duration;

const SCENARIOS: [&str; 13] = [
    "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
];

fn today() -> String {
    chrono::Utc::now().date_naive().to_string()
}

async fn upload(app: &TestApp, query: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url(&format!("/v1/statements{query}")))
        .bearer_auth(&app.key)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

async fn run(app: &TestApp, body: Value) -> Value {
    let (s, v) = app
        .post("/v1/reconciliation/runs", &app.key, &body, None)
        .await;
    assert_eq!(s, 201, "{v}");
    v
}

async fn breaks(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, v) = app
        .get(&format!("/v1/reconciliation/breaks{query}"), &app.key)
        .await;
    assert_eq!(s, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

async fn resolve(app: &TestApp, id: &str, resolution: &str, reason: &str) -> (u16, Value) {
    app.post(
        &format!("/v1/reconciliation/breaks/{id}/resolve"),
        &app.key,
        &json!({"resolution": resolution, "reason": reason}),
        None,
    )
    .await
}

/// Disburses 15000.00 TZS on the mock rail to a party whose number ends in `digits`.
async fn pay(app: &TestApp, reference: &str, digits: &str) -> String {
    let p = app
        .disburse(reference, &format!("2557123456{digits}"), "15000.00")
        .await;
    p["id"].as_str().unwrap().to_owned()
}

async fn settle_state(app: &TestApp, id: &str, digits: &str) -> Value {
    app.wait_for(id, Duration::from_secs(45), |p| match digits {
        "11" => !p["conflict"].is_null(),
        "12" => !p["exception"].is_null(),
        _ => matches!(p["state"].as_str(), Some("completed" | "failed")),
    })
    .await
}

fn mock_csv_line(
    date: &str,
    amount: &str,
    currency: &str,
    dir: &str,
    reference: &str,
    tx: &str,
) -> String {
    format!("{date},{date},{amount},{currency},{dir},{reference},255700000000,{tx},\n")
}

const MOCK_HEADER: &str =
    "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee\n";

// A day in the sandbox: the scenario table paid through the gateway, the mock rail's own
// statement uploaded, one run. What remains is what the table implies: the scenario-11 payment
// (failed by its first callback, then paid) is a critical conflict; the scenario-12 payment
// (unknown, the rail never answers inquiries) is completed by the statement if the rail paid it.
both_stores!(sandbox_day_reconciles, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let mut ids = BTreeMap::new();
    for d in SCENARIOS {
        ids.insert(d, pay(&app, &format!("DAY-{d}"), d).await);
    }
    for d in SCENARIOS {
        let p = settle_state(&app, &ids[d], d).await;
        match d {
            "11" => assert!(!p["conflict"].is_null(), "{p}"),
            "12" => assert_eq!(p["state"], "unknown", "{p}"),
            _ => {}
        }
    }
    let csv = app.mock.statement_csv();
    let paid_lines = csv.lines().count() - 1;
    let (s, stmt) = upload(
        &app,
        "?profile=mock-rail&rail=mock",
        "text/csv",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(s, 201, "{stmt}");
    assert_eq!(
        usize::try_from(stmt["line_count"].as_u64().unwrap()).unwrap(),
        paid_lines
    );
    assert_eq!(stmt["error_count"], 0, "{stmt}");

    let r = run(&app, json!({"statement_id": stmt["id"]})).await;
    let report = &r["report"];
    assert_eq!(
        usize::try_from(report["lines_seen"].as_u64().unwrap()).unwrap(),
        paid_lines
    );

    let paid12 = app.paid("DAY-12") > 0;
    let open = breaks(&app, "?status=open").await;
    let payment_of = |b: &Value| b["payment_id"].as_str().map(str::to_owned);
    // Exactly one open break: the scenario-11 conflict, critical.
    assert_eq!(
        open.len(),
        1,
        "{}",
        serde_json::to_string_pretty(&open).unwrap()
    );
    let b11 = &open[0];
    assert_eq!(payment_of(b11).as_deref(), Some(ids["11"].as_str()));
    assert_eq!(b11["severity"], "critical");
    assert!(
        ["status_conflict", "callback_conflict"].contains(&b11["type"].as_str().unwrap()),
        "{b11}"
    );
    if app.paid("DAY-11") > 0 {
        // The statement proves the money moved although we hold the payment failed.
        assert_eq!(b11["type"], "status_conflict", "{b11}");
    }
    let p12 = app.payment(&ids["12"]).await;
    if paid12 {
        assert_eq!(p12["state"], "completed", "{p12}");
        let done = breaks(&app, "?status=resolved&type=status_conflict").await;
        let auto = done
            .iter()
            .find(|b| payment_of(b).as_deref() == Some(ids["12"].as_str()))
            .unwrap_or_else(|| panic!("no resolved break for scenario 12: {done:?}"));
        assert_eq!(auto["resolution"]["resolution"], "completed_from_statement");
        assert!(report["completed_by_run"]
            .as_array()
            .unwrap()
            .contains(&json!(ids["12"])));
    } else {
        assert_eq!(p12["state"], "unknown");
    }
    // Matched lines are settled once: a second run looks again only at the line still in a
    // break, and raises nothing new.
    let again = run(&app, json!({"statement_id": stmt["id"]})).await;
    assert_eq!(again["report"]["lines_matched"], 0, "{again}");
    assert!(
        again["report"]["lines_seen"].as_u64().unwrap() <= 1,
        "{again}"
    );
    assert_eq!(again["report"]["breaks"]["new"], 0, "{again}");
    app.stop().await;
});

// Re-uploads: the same bytes, and the same bank statement re-delivered with other bytes
// (new message id, CpyDplctInd=DUPL), are recognised and not counted twice.
both_stores!(idempotent_reupload, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let fixture = |name: &str| {
        std::fs::read(format!(
            "{}/fixtures/statements/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let csv = fixture("mock_rail.csv");
    let (s1, a) = upload(&app, "?profile=mock-rail", "text/csv", csv.clone()).await;
    assert_eq!(s1, 201, "{a}");
    assert_eq!(a["line_count"], 7);
    let (s2, b) = upload(&app, "?profile=mock-rail", "text/csv", csv).await;
    assert_eq!(s2, 200, "{b}");
    assert_eq!(b["id"], a["id"]);
    assert_eq!(b["duplicate"], true);
    assert_eq!(b["recognised_by"], "content_hash");
    assert_eq!(app.count("statement_lines").await, 7);

    let (s3, c) = upload(&app, "", "application/xml", fixture("camt053_v02.xml")).await;
    assert_eq!(s3, 201, "{c}");
    let lines = app.count("statement_lines").await;
    let (s4, d) = upload(
        &app,
        "",
        "application/xml",
        fixture("camt053_v02_duplicate.xml"),
    )
    .await;
    assert_eq!(s4, 200, "{d}");
    assert_eq!(d["id"], c["id"]);
    assert_eq!(d["recognised_by"], "statement_identity");
    assert_eq!(app.count("statement_lines").await, lines);
    assert_eq!(app.count("statements").await, 2);
    // Every stored line says where it came from.
    let located: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM statement_lines WHERE entry > 0 AND source_line > 0 AND byte_offset > 0",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(located, lines);

    // A file that is not a statement is refused and leaves nothing behind.
    let (s5, e) = upload(&app, "", "application/xml", b"<Document><oops".to_vec()).await;
    assert_eq!(s5, 422, "{e}");
    let (s6, e) = upload(&app, "", "text/csv", b"a,b\n1,2\n".to_vec()).await;
    assert_eq!(s6, 422, "{e}");
    let (s7, e) = upload(
        &app,
        "?profile=mock-rail",
        "text/csv",
        b"a,b\n1,2\n".to_vec(),
    )
    .await;
    assert_eq!(s7, 422, "{e}");
    assert_eq!(app.count("statements").await, 2);
    // Only recon:write may upload.
    let resp = app
        .http
        .post(app.url("/v1/statements?profile=mock-rail"))
        .bearer_auth(&app.read_key)
        .header("Content-Type", "text/csv")
        .body(MOCK_HEADER)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    app.stop().await;
});

async fn expected_collection(app: &TestApp, reference: &str, amount: &str) -> (String, String) {
    let (s, v) = app
        .post(
            "/v1/collections",
            &app.key,
            &json!({
                "reference": reference,
                "amount": {"value": amount, "currency": "TZS"},
                "payer": {"id_type": "MSISDN", "id_value": "255712345600"},
                "mode": "expected",
                "metadata": {"programme": "premiums"}
            }),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_owned(),
        v["payment_reference"].as_str().unwrap().to_owned(),
    )
}

// Every break type is produced by one statement and the callbacks, and each is resolved with
// the entries its resolution posts; N:1 (two instalments of one premium) matches.
both_stores!(every_break_type_produced_and_resolved, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let ok = pay(&app, "BT-OK", "00").await;
    let amt = pay(&app, "BT-AMT", "00").await;
    let cur = pay(&app, "BT-CUR", "00").await;
    let miss = pay(&app, "BT-MISS", "00").await;
    let fail = pay(&app, "BT-FAIL", "01").await;
    let dup = pay(&app, "BT-DUP", "00").await;
    let conflict = pay(&app, "BT-CONF", "11").await;
    for (id, d) in [
        (&ok, "00"),
        (&amt, "00"),
        (&cur, "00"),
        (&miss, "00"),
        (&fail, "01"),
        (&dup, "00"),
        (&conflict, "11"),
    ] {
        settle_state(&app, id, d).await;
    }
    // Scenario 12: the rail accepted, then never answers; we hold the outcome unknown.
    let unk = pay(&app, "BT-UNK", "12").await;
    let p = app
        .wait_for(&unk, Duration::from_secs(30), |p| p["state"] == "unknown")
        .await;
    assert_eq!(p["state"], "unknown", "{p}");
    let (partial, partial_ref) = expected_collection(&app, "PREM-PART", "10000.00").await;
    let (over, over_ref) = expected_collection(&app, "PREM-OVER", "5000.00").await;
    let (split, split_ref) = expected_collection(&app, "PREM-SPLIT", "6000.00").await;

    let t = today();
    let mut csv = String::from(MOCK_HEADER);
    csv += &mock_csv_line(&t, "15000.00", "TZS", "DEBIT", "BT-OK", "TX-1");
    csv += &mock_csv_line(&t, "14000.00", "TZS", "DEBIT", "BT-AMT", "TX-2");
    csv += &mock_csv_line(&t, "15000.00", "KES", "DEBIT", "BT-CUR", "TX-3");
    csv += &mock_csv_line(&t, "15000.00", "TZS", "DEBIT", "BT-FAIL", "TX-4");
    csv += &mock_csv_line(&t, "15000.00", "TZS", "DEBIT", "BT-DUP", "TX-5");
    csv += &mock_csv_line(&t, "15000.00", "TZS", "DEBIT", "BT-DUP", "TX-6");
    csv += &mock_csv_line(&t, "3100.00", "TZS", "CREDIT", "NOBODY-1", "TX-7");
    csv += &mock_csv_line(&t, "4000.00", "TZS", "CREDIT", &partial_ref, "TX-8");
    csv += &mock_csv_line(&t, "3000.00", "TZS", "CREDIT", &over_ref, "TX-9");
    csv += &mock_csv_line(&t, "2500.00", "TZS", "CREDIT", &over_ref, "TX-10");
    csv += &mock_csv_line(&t, "2500.00", "TZS", "CREDIT", &split_ref, "TX-11");
    csv += &mock_csv_line(&t, "3500.00", "TZS", "CREDIT", &split_ref, "TX-12");
    csv += &mock_csv_line(&t, "15000.00", "TZS", "DEBIT", "BT-UNK", "TX-13");
    let (s, stmt) = upload(
        &app,
        "?profile=mock-rail&rail=mock",
        "text/csv",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(s, 201, "{stmt}");

    // A dry run reports the breaks and stores none of them.
    let dry = run(&app, json!({"statement_id": stmt["id"], "dry_run": true})).await;
    assert_eq!(dry["dry_run"], true);
    assert!(
        dry["report"]["breaks"]["total"].as_u64().unwrap() >= 9,
        "{dry}"
    );
    assert_eq!(app.count("recon_breaks").await, 0);
    assert_eq!(app.count("recon_settlements").await, 0);

    let r = run(
        &app,
        json!({"statement_id": stmt["id"], "rules": {"date_window_days": 2}}),
    )
    .await;
    assert_eq!(
        r["rules"]["date_window_days"], 2,
        "the run records its rule set"
    );
    assert_eq!(r["report"]["matches"]["by_shape"]["many_to_one"], 1, "{r}");
    // The unknown payment the statement shows paid is completed by the run, which says so.
    assert_eq!(r["report"]["completed_by_run"], json!([unk]), "{r}");
    assert_eq!(app.payment(&unk).await["state"], "completed");
    let auto = breaks(&app, "?status=resolved").await;
    assert_eq!(auto.len(), 1, "{auto:?}");
    assert_eq!(auto[0]["type"], "status_conflict");
    assert_eq!(auto[0]["payment_id"], unk.as_str());
    assert_eq!(
        auto[0]["resolution"]["resolution"],
        "completed_from_statement"
    );
    assert!(auto[0]["resolution"]["resolved_by"]
        .as_str()
        .unwrap()
        .starts_with("reconciliation run"));
    let open = breaks(&app, "?status=open").await;
    let of_type =
        |t: &str| -> Vec<Value> { open.iter().filter(|b| b["type"] == t).cloned().collect() };
    let one = |t: &str, payment: Option<&str>| -> Value {
        let list = of_type(t);
        assert_eq!(
            list.len(),
            1,
            "{t}: {}",
            serde_json::to_string_pretty(&open).unwrap()
        );
        if let Some(p) = payment {
            assert_eq!(list[0]["payment_id"], p, "{t}");
        }
        list[0].clone()
    };
    let b_amt = one("amount_mismatch", Some(&amt));
    let b_cur = one("currency_mismatch", Some(&cur));
    let b_miss = one("missing_from_statement", Some(&miss));
    let b_fail = one("status_conflict", Some(&fail));
    let b_dup = one("duplicate", Some(&dup));
    let b_unm = one("unmatched_statement_line", None);
    let b_part = one("partial_payment", Some(&partial));
    let b_over = one("over_payment", Some(&over));
    let b_conf = one("callback_conflict", Some(&conflict));
    assert_eq!(
        open.len(),
        9,
        "{}",
        serde_json::to_string_pretty(&open).unwrap()
    );
    // Each break opened is announced to the core (the feed shows an event once every older
    // transaction has ended, so wait for it, bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, feed) = app.get("/v1/events?limit=500", &app.key).await;
        let announced = feed["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "reconciliation.break_opened")
            .count();
        if announced == 9 || tokio::time::Instant::now() > deadline {
            assert_eq!(announced, 9, "{feed}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b_fail["severity"], "critical");
    assert_eq!(b_conf["severity"], "critical");
    assert!(
        b_unm["statement_line"]["line_no"].as_i64().unwrap() == 7,
        "{b_unm}"
    );
    for b in &open {
        assert!(b["owner"].is_string(), "{b}");
        assert_eq!(b["age_days"], 0);
    }
    // The split premium is settled (N:1) and so is the payment that agreed.
    let settled: Vec<String> =
        railgate::store::sql::query_scalar("SELECT payment_id FROM recon_settlements")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    assert!(
        settled.contains(&split) && settled.contains(&ok),
        "{settled:?}"
    );

    // A resolution the type does not take is refused; a reason is required.
    let (s, v) = resolve(
        &app,
        b_amt["id"].as_str().unwrap(),
        "suspense_to_premiums",
        "x",
    )
    .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app
        .post(
            &format!(
                "/v1/reconciliation/breaks/{}/resolve",
                b_amt["id"].as_str().unwrap()
            ),
            &app.key,
            &json!({"resolution": "write_off_difference"}),
            None,
        )
        .await;
    assert_eq!(s, 422, "{v}");

    let cases = [
        (&b_amt, "write_off_difference", 1),
        (&b_cur, "no_action", 0),
        (&b_miss, "confirmed_not_paid", 0),
        (&b_fail, "confirmed_paid", 1),
        (&b_dup, "no_action", 0),
        (&b_unm, "suspense_to_premiums", 2),
        (&b_part, "suspense_to_premiums", 2),
        (&b_over, "refund_requested", 0),
        (&b_conf, "no_action", 0),
    ];
    for (b, resolution, entries) in cases {
        let id = b["id"].as_str().unwrap();
        let (s, v) = resolve(&app, id, resolution, "checked with the operator").await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["status"], "resolved");
        let res = &v["resolution"];
        assert_eq!(res["resolution"], resolution);
        assert_eq!(res["reason"], "checked with the operator");
        assert!(
            res["resolved_by"].as_str().unwrap().starts_with("acme"),
            "{res}"
        );
        assert!(res["resolved_at"].is_string());
        assert_eq!(res["entries"].as_array().unwrap().len(), entries, "{v}");
        // Resolved once: a second resolution is refused.
        let (s, _) = resolve(&app, id, resolution, "again").await;
        assert_eq!(s, 409);
    }
    let (_, v) = app
        .get(
            "/v1/reconciliation/breaks?status=resolved&type=amount_mismatch",
            &app.key,
        )
        .await;
    let e = &v["data"][0]["resolution"]["entries"][0];
    assert_eq!(e["amount_minor"], 100_000, "{v}");
    assert!(e["debit"].as_str().unwrap().contains(":fees:"), "{e}");
    let (_, v) = app
        .get(
            "/v1/reconciliation/breaks?status=resolved&type=unmatched_statement_line",
            &app.key,
        )
        .await;
    let entries = &v["data"][0]["resolution"]["entries"];
    assert!(
        entries[1]["credit"]
            .as_str()
            .unwrap()
            .contains(":premiums_receivable:"),
        "{entries}"
    );
    assert_eq!(entries[1]["amount_minor"], 310_000);
    assert!(breaks(&app, "?status=open").await.is_empty());
    // Another client sees none of it.
    let (_, v) = app
        .get("/v1/reconciliation/breaks", &app.other_client_key)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    app.stop().await;
});

// One camt.053 entry books two benefits together (batch booking, 1:N).
both_stores!(batch_booking_one_to_many, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let a = pay(&app, "BATCH-A", "00").await;
    let b = pay(&app, "BATCH-B", "00").await;
    settle_state(&app, &a, "00").await;
    settle_state(&app, &b, "00").await;
    let t = today();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
 <BkToCstmrStmt>
  <GrpHdr><MsgId>BATCH-TEST-1</MsgId><CreDtTm>{t}T18:00:00Z</CreDtTm></GrpHdr>
  <Stmt>
   <Id>BATCH-TEST-1-TZS</Id><ElctrncSeqNb>1</ElctrncSeqNb><CreDtTm>{t}T18:00:00Z</CreDtTm>
   <Acct><Id><Othr><Id>0150012345678</Id></Othr></Id><Ccy>TZS</Ccy></Acct>
   <Ntry>
    <Amt Ccy="TZS">30000.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>{t}</Dt></BookgDt><ValDt><Dt>{t}</Dt></ValDt>
    <AcctSvcrRef>BANK-BATCH-77</AcctSvcrRef>
    <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
    <NtryDtls>
     <Btch><PmtInfId>PAYROLL-77</PmtInfId><NbOfTxs>2</NbOfTxs><TtlAmt Ccy="TZS">30000.00</TtlAmt></Btch>
     <TxDtls><Refs><EndToEndId>BATCH-A</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy="TZS">15000.00</Amt></TxAmt></AmtDtls></TxDtls>
     <TxDtls><Refs><EndToEndId>BATCH-B</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy="TZS">15000.00</Amt></TxAmt></AmtDtls></TxDtls>
    </NtryDtls>
   </Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>
"#
    );
    let (s, stmt) = upload(&app, "?rail=mock", "application/xml", xml.into_bytes()).await;
    assert_eq!(s, 201, "{stmt}");
    assert_eq!(stmt["line_count"], 1);
    let r = run(&app, json!({"statement_id": stmt["id"]})).await;
    assert_eq!(r["report"]["matches"]["by_shape"]["one_to_many"], 1, "{r}");
    assert_eq!(r["report"]["payments_matched"], 2, "{r}");
    assert_eq!(r["report"]["breaks"]["total"], 0, "{r}");
    assert_eq!(app.count("recon_settlements").await, 2);
    app.stop().await;
});

// The report: JSON totals, a CSV a spreadsheet opens, HTML; the run by period.
both_stores!(report_formats, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let a = pay(&app, "REP-A", "00").await;
    let b = pay(&app, "REP-B", "00").await;
    let c = pay(&app, "REP-C", "01").await;
    for (id, d) in [(&a, "00"), (&b, "00"), (&c, "01")] {
        settle_state(&app, id, d).await;
    }
    let t = today();
    let mut csv = String::from(MOCK_HEADER);
    csv += &format!("{t},{t},15000.00,TZS,DEBIT,REP-A,255700000000,TX-A,75.00\n");
    let (s, _) = upload(
        &app,
        "?profile=mock-rail&rail=mock",
        "text/csv",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(s, 201);
    let r = run(&app, json!({"from": t, "to": t})).await;
    assert_eq!(r["from"], t.as_str());
    // The matched line settled the ledger: clearing to settlement, the fee to fees.
    let (s, accounts) = app.get("/v1/ledger/accounts", &app.key).await;
    assert_eq!(s, 200, "{accounts}");
    let posted = |kind: &str| -> String {
        accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} account: {accounts}"))["balance"]["posted"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(posted("rail_clearing"), "15000.00", "{accounts}");
    assert_eq!(posted("rail_settlement"), "-15075.00", "{accounts}");
    assert_eq!(posted("fees"), "75.00", "{accounts}");
    let (_, tb) = app.get("/v1/ledger/trial-balance", &app.key).await;
    assert_eq!(tb["balanced"], true, "{tb}");
    let (s, v) = app
        .get(
            &format!("/v1/reports/reconciliation?from={t}&to={t}"),
            &app.key,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let total = v["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["direction"] == "disbursement" && x["currency"] == "TZS")
        .unwrap()
        .clone();
    assert_eq!(total["instructed"]["count"], 3, "{total}");
    assert_eq!(total["instructed"]["amount"], "45000.00");
    assert_eq!(total["confirmed"]["count"], 2);
    assert_eq!(total["confirmed"]["amount"], "30000.00");
    assert_eq!(total["settled"]["count"], 1);
    assert_eq!(total["settled"]["amount"], "15000.00");
    assert_eq!(total["fees"], "75.00");
    assert_eq!(total["failed_count"], 1);
    // REP-B is completed but not on the statement: an open break in the youngest bucket.
    assert_eq!(v["open_breaks"]["count"], 1, "{v}");
    assert_eq!(v["open_breaks"]["aging"][0]["bucket"], "0-1d");

    let resp = app
        .http
        .get(app.url(&format!(
            "/v1/reports/reconciliation?from={t}&to={t}&format=csv"
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = resp.text().await.unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let headers = rd.headers().unwrap().clone();
    assert_eq!(&headers[0], "date");
    assert_eq!(&headers[4], "currency");
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert_eq!(&rows[0][0], t.as_str());
    assert_eq!(&rows[0][4], "TZS");
    assert_eq!(&rows[0][6], "45000.00");
    let resp = app
        .http
        .get(app.url(&format!(
            "/v1/reports/reconciliation?from={t}&to={t}&format=csv&section=breaks"
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("id,type,severity"), "{text}");
    assert!(text.contains("missing_from_statement"), "{text}");
    let resp = app
        .http
        .get(app.url(&format!(
            "/v1/reports/reconciliation?from={t}&to={t}&format=html"
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("data-figure=\"disbursement-TZS-instructed\">45000.00<"),
        "{html}"
    );
    // The same report from the command line, reading the database from the configuration.
    let dir =
        std::env::temp_dir().join(format!("railgate-report-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("railgate.toml");
    std::fs::write(&config, format!("database_url = {:?}\n", app.database_url)).unwrap();
    for (format, file) in [("csv", "report.csv"), ("html", "report.html")] {
        let out = dir.join(file);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_railgate"))
            .args(["report", "--config"])
            .arg(&config)
            .args([
                "--from", &t, "--to", &t, "--format", format, "--client", "acme", "--out",
            ])
            .arg(&out)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        match format {
            "csv" => assert!(text.contains(&format!("{t},mock,maternity,disbursement,TZS,3,45000.00,2,30000.00,1,15000.00,75.00,1,0")), "{text}"),
            _ => assert!(text.contains("data-figure=\"disbursement-TZS-confirmed\">30000.00<"), "{text}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Scopes and bad queries.
    let (s, _) = app.get("/v1/reports/reconciliation", &app.read_key).await;
    assert_eq!(s, 403);
    let (s, _) = app
        .get("/v1/reports/reconciliation?from=2025-13-01", &app.key)
        .await;
    assert_eq!(s, 400);
    app.stop().await;
});

fn chromium() -> Option<std::path::PathBuf> {
    let find = || {
        ["chromium", "chromium-browser"].iter().find_map(|b| {
            std::process::Command::new("which")
                .arg(b)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        })
    };
    let found = find();
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("chromium is not installed under CI=true (scripts/test-setup.sh installs it)");
        }
        eprintln!(
            "\n!!! SKIPPING the Chromium test: no chromium (run scripts/test-setup.sh) !!!\n"
        );
    }
    found
}

fn headless(
    browser: &std::path::Path,
    profile: &std::path::Path,
    extra: &[&str],
    url: &str,
) -> std::process::Output {
    std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--user-data-dir={}", profile.display()),
        ])
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

// The finance page in a real browser: signed in with HTTP Basic (the API key as password), the
// totals shown are the store's, and a screenshot is kept.
both_stores!(finance_page_in_chromium, |store| async move {
    let Some(browser) = chromium() else {
        return;
    };
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let a = pay(&app, "WEB-A", "00").await;
    let b = pay(&app, "WEB-B", "00").await;
    for id in [&a, &b] {
        settle_state(&app, id, "00").await;
    }
    let t = today();
    let mut csv = String::from(MOCK_HEADER);
    csv += &format!("{t},{t},15000.00,TZS,DEBIT,WEB-A,255700000000,TX-W1,75.00\n");
    csv += &format!("{t},{t},999.00,TZS,CREDIT,UNKNOWN-PAYER,255700000000,TX-W2,\n");
    let (s, stmt) = upload(
        &app,
        "?profile=mock-rail&rail=mock",
        "text/csv",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(s, 201);
    run(&app, json!({"statement_id": stmt["id"]})).await;

    let dir = std::env::temp_dir().join(format!(
        "railgate-chromium-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = app.gateway.addr.port();
    let url = format!(
        "http://officer:{}@127.0.0.1:{port}/reports?from={t}&to={t}&login=basic",
        app.key
    );
    let b1 = browser.clone();
    let d1 = dir.clone();
    let u1 = url.clone();
    let out =
        tokio::task::spawn_blocking(move || headless(&b1, &d1.join("p1"), &["--dump-dom"], &u1))
            .await
            .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("data-figure=\"disbursement-TZS-instructed\">30000.00<"),
        "status {:?}\nstderr: {}\ndom: {dom}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-figure=\"disbursement-TZS-settled\">15000.00<"),
        "{dom}"
    );
    assert!(
        dom.contains("data-figure=\"disbursement-TZS-fees\">75.00<"),
        "{dom}"
    );
    assert!(dom.contains("id=\"open-break-count\">2<"), "{dom}");
    assert!(
        dom.contains("action=\"/reports/breaks/"),
        "resolve forms: {dom}"
    );
    assert!(dom.contains("id=\"runs\""), "{dom}");
    let shot = dir.join("finance-page.png");
    let arg = format!("--screenshot={}", shot.display());
    let b2 = browser.clone();
    let d2 = dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        headless(
            &b2,
            &d2.join("p2"),
            &[&arg, "--window-size=1280,1600"],
            &url,
        )
    })
    .await
    .unwrap();
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // The browser profiles are large; the screenshot stays.
    let _ = std::fs::remove_dir_all(dir.join("p1"));
    let _ = std::fs::remove_dir_all(dir.join("p2"));
    eprintln!("finance page screenshot: {}", shot.display());

    // The form flow without a browser: sign in (cookie), resolve a break by form, sign out.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // A sign-in post that did not come from our form (no nonce, or another one) is refused.
    let resp = http
        .post(app.url("/reports/login"))
        .form(&[("api_key", app.key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let (signin_cookie, nonce) = sign_in_form(&http, &app).await;
    let (_, other_nonce) = sign_in_form(&http, &app).await;
    let resp = http
        .post(app.url("/reports/login"))
        .header("Cookie", &signin_cookie)
        .form(&[
            ("api_key", app.key.as_str()),
            ("signin", other_nonce.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let resp = http
        .post(app.url("/reports/login"))
        .header("Cookie", &signin_cookie)
        .form(&[("api_key", app.key.as_str()), ("signin", nonce.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let open = breaks(&app, "?status=open&type=unmatched_statement_line").await;
    let id = open[0]["id"].as_str().unwrap();
    // Without the page's form token the form is refused, cookie or not.
    let resp = http
        .post(app.url(&format!("/reports/breaks/{id}/resolve")))
        .header("Cookie", &cookie)
        .form(&[
            ("resolution", "book_to_suspense"),
            ("reason", "payer unknown; parked"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let page = http
        .get(app.url("/reports"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    let csrf = &page[at..at + 64];
    let resp = http
        .post(app.url(&format!("/reports/breaks/{id}/resolve")))
        .header("Cookie", &cookie)
        .form(&[
            ("csrf", csrf),
            ("resolution", "book_to_suspense"),
            ("reason", "payer unknown; parked"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let done = breaks(&app, "?status=resolved").await;
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["resolution"]["reason"], "payer unknown; parked");
    let (signin_cookie, nonce) = sign_in_form(&http, &app).await;
    let resp = http
        .post(app.url("/reports/login"))
        .header("Cookie", &signin_cookie)
        .form(&[("api_key", "rg_not_a_key"), ("signin", nonce.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let page = http
        .get(app.url("/reports"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("name=\"api_key\""),
        "unsigned: the login form"
    );
    app.stop().await;
});

// An M-Pesa day: disbursements and collections through the Daraja mock, its statement export
// (the rail-family format) uploaded for the mpesa rail and reconciled.
both_stores!(mpesa_day_reconciles, |store| async move {
    let Some(app) = spawn_app_all_rails(store).await else {
        return;
    };
    let control = app.mobile.as_ref().unwrap().1.control_url();
    let mut ids = Vec::new();
    for (path, key, d) in [
        ("/v1/disbursements", "payee", "00"),
        ("/v1/disbursements", "payee", "01"),
        ("/v1/disbursements", "payee", "07"),
        ("/v1/collections", "payer", "00"),
    ] {
        let body = json!({
            "reference": format!("MP-{}-{d}", &path[4..5]),
            "amount": {"value": "1500", "currency": "KES"},
            key: {"id_type": "MSISDN", "id_value": format!("2547123456{d}")},
        });
        let (s, p) = app.post(path, &app.key, &body, None).await;
        assert_eq!(s, 201, "{p}");
        ids.push((p["id"].as_str().unwrap().to_owned(), d));
    }
    for (id, d) in &ids {
        let p = settle_state(&app, id, d).await;
        assert!(
            matches!(p["state"].as_str(), Some("completed" | "failed")),
            "{p}"
        );
    }
    let csv = app
        .http
        .get(format!("{control}/statement?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (s, stmt) = upload(
        &app,
        "?profile=rail-export&rail=mpesa",
        "text/csv",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(s, 201, "{stmt}\n{csv}");
    assert_eq!(stmt["error_count"], 0, "{stmt}");
    let r = run(&app, json!({"statement_id": stmt["id"]})).await;
    assert_eq!(r["report"]["breaks"]["total"], 0, "{r}\n{csv}");
    assert_eq!(r["report"]["payments_matched"], 3, "{r}");
    app.stop().await;
});

// Two runs over one statement at once: every payment is settled, and posted, once.
both_stores!(concurrent_runs_settle_once, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let t = today();
    let mut csv = String::from(MOCK_HEADER);
    for i in 0..3 {
        let id = pay(&app, &format!("CC-{i}"), "00").await;
        settle_state(&app, &id, "00").await;
        csv += &mock_csv_line(
            &t,
            "15000.00",
            "TZS",
            "DEBIT",
            &format!("CC-{i}"),
            &format!("TX-C{i}"),
        );
    }
    let (s, stmt) = upload(
        &app,
        "?profile=mock-rail&rail=mock",
        "text/csv",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(s, 201, "{stmt}");
    let body = json!({"statement_id": stmt["id"]});
    let (a, b) = tokio::join!(run(&app, body.clone()), run(&app, body.clone()));
    let matched = a["report"]["payments_matched"].as_u64().unwrap()
        + b["report"]["payments_matched"].as_u64().unwrap();
    assert!(matched >= 3, "{a}\n{b}");
    assert_eq!(app.count("recon_settlements").await, 3);
    let (_, accounts) = app.get("/v1/ledger/accounts", &app.key).await;
    let settlement = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "rail_settlement")
        .unwrap()
        .clone();
    assert_eq!(settlement["balance"]["posted"], "-45000.00", "{accounts}");
    app.stop().await;
});

// A statement whose lines are matched in one long run is marked as a range, not line by line:
// one row in `statement_line_matches`, no line rewritten, and a second run sees none of them.
both_stores!(long_runs_of_lines_are_matched_once, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let t = today();
    const N: usize = 40;
    let paid = futures_util::future::join_all((0..N).map(|i| {
        let app = &app;
        async move {
            let id = pay(app, &format!("LR-{i}"), "00").await;
            settle_state(app, &id, "00").await
        }
    }))
    .await;
    assert!(paid.iter().all(|p| p["state"] == "completed"), "{paid:?}");
    let mut csv = String::from(MOCK_HEADER);
    for i in 0..N {
        csv += &mock_csv_line(
            &t,
            "15000.00",
            "TZS",
            "DEBIT",
            &format!("LR-{i}"),
            &format!("TX-LR{i}"),
        );
    }
    let (s, stmt) = upload(
        &app,
        "?profile=mock-rail&rail=mock",
        "text/csv",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(s, 201, "{stmt}");
    let body = json!({"statement_id": stmt["id"]});
    let first = run(&app, body.clone()).await;
    assert_eq!(first["report"]["lines_matched"], N, "{first}");
    assert_eq!(app.count("statement_line_matches").await, 1);
    assert_eq!(
        app.count("recon_settlements").await,
        i64::try_from(N).unwrap()
    );
    let again = run(&app, body).await;
    assert_eq!(again["report"]["lines_seen"], 0, "{again}");
    assert_eq!(again["report"]["lines_matched"], 0, "{again}");
    assert_eq!(again["report"]["breaks"]["new"], 0, "{again}");
    app.stop().await;
});

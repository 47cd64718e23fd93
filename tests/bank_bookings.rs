//! The bank rail completes a payment on its booked statement entry, not on a pain.002 status:
//! through the whole gateway, on both stores, over real files in the sandbox bank's folders.
//!
//! - `ACSC` alone leaves the payment pending (the status is recorded on the attempt); a booked
//!   camt.054 debit with our end-to-end id and the same amount completes it and posts once,
//!   and the same entry read again (a copy of the file, the day's camt.053) posts nothing;
//! - a booking of another amount is a conflict, never a completion;
//! - the sandbox bank's 04 books "two days later" (only in a later camt.053): the payment
//!   completes when that statement arrives;
//! - a block rejected without transaction lines fails its payment with the bank's reason.
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

/// The gateway with every rail; the bank's deadline is long, so nothing here becomes an
/// exception while the test writes its files.
async fn app(store: Store) -> Option<TestApp> {
    spawn_app_all_rails_with(store, |cfg| {
        for r in cfg.rails.iter_mut().filter(|r| r.id == "bank") {
            r.deadline_secs = 120;
        }
    })
    .await
}

async fn pay(app: &TestApp, reference: &str, amount: &str, digits: &str, salt: u32) -> String {
    let body = json!({"reference": reference, "amount": {"value": amount, "currency": "EUR"},
        "payee": {"id_type": "IBAN", "id_value": iban_ending(digits, salt)}});
    let (s, p) = app.post("/v1/disbursements", &app.key, &body, None).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["rail"], "bank", "{p}");
    p["id"].as_str().unwrap().to_owned()
}

/// The payment's attempt: (id, rail_status, rail_status_reason).
async fn attempt(app: &TestApp, payment: &str) -> (String, Option<String>, Option<String>) {
    railgate::store::sql::query_as(
        "SELECT id, rail_status, rail_status_reason FROM attempts WHERE payment_id = $1",
    )
    .bind(payment)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

/// Waits (bounded) until the bank's status for the payment's attempt is recorded as `code`.
async fn wait_status(app: &TestApp, payment: &str, code: &str) {
    let until = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        // The attempt is stored when the dispatcher takes the payment up.
        let row: Option<(Option<String>,)> = railgate::store::sql::query_as(
            "SELECT rail_status FROM attempts WHERE payment_id = $1",
        )
        .bind(payment)
        .fetch_optional(app.db.pool())
        .await
        .unwrap();
        let status = row.and_then(|r| r.0);
        if status.as_deref() == Some(code) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{payment}: no {code} recorded, last {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn posted(app: &TestApp, payment: &str) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM ledger_transfers WHERE payment_id = $1 AND phase = 'posted'",
    )
    .bind(payment)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
}

/// A booked debit entry as a bank writes it.
struct Entry<'a> {
    attempt: &'a str,
    amount: &'a str,
    bank_ref: &'a str,
}

/// A camt.053 or camt.054 document with these booked debits.
fn camt(kind: &str, id: &str, entries: &[Entry<'_>]) -> String {
    let (ns, root, report) = match kind {
        "053" => ("camt.053.001.02", "BkToCstmrStmt", "Stmt"),
        _ => ("camt.054.001.02", "BkToCstmrDbtCdtNtfctn", "Ntfctn"),
    };
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:{ns}\">\
         <{root}><GrpHdr><MsgId>{id}</MsgId><CreDtTm>2026-11-25T10:00:00</CreDtTm></GrpHdr>\
         <{report}><Id>{id}</Id><CreDtTm>2026-11-25T10:00:00</CreDtTm>\
         <Acct><Id><IBAN>{}</IBAN></Id></Acct>",
        railgate::sandbox::SANDBOX_DEBTOR_IBAN
    );
    for e in entries {
        let e2e = railgate_bank::ids::end_to_end_id(uuid::Uuid::parse_str(e.attempt).unwrap());
        x.push_str(&format!(
            "<Ntry><Amt Ccy=\"EUR\">{}</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>false</RvslInd>\
             <Sts>BOOK</Sts><BookgDt><Dt>2026-11-25</Dt></BookgDt><ValDt><Dt>2026-11-25</Dt></ValDt>\
             <AcctSvcrRef>{}</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd>\
             <SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd><NtryDtls><TxDtls><Refs>\
             <EndToEndId>{e2e}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>",
            e.amount, e.bank_ref
        ));
    }
    x.push_str(&format!("</{report}></{root}></Document>"));
    x
}

/// Drops a file into the bank's inbound folder as the bank does: whole, under its final name.
fn drop_inbound(app: &TestApp, name: &str, xml: &str) {
    let dir = app.mifos_bank.as_ref().unwrap().inbound_dir();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, xml).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// Times the sandbox bank paid the payment with this reference (its remittance text ends in it).
async fn paid(app: &TestApp, reference: &str) -> u64 {
    let control = app.mifos_bank.as_ref().unwrap().bank_control_url();
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

fn history_to(p: &Value, state: &str) -> Vec<Value> {
    p["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["to"] == state)
        .cloned()
        .collect()
}

both_stores!(
    acsc_alone_is_not_completion_and_a_booking_completes_once,
    |store| async move {
        let Some(app) = app(store).await else {
            return;
        };
        // The sandbox bank's 12 says ACSC and never books the debit.
        let a = pay(&app, "BOOK-A", "321.09", "12", 501).await;
        let b = pay(&app, "BOOK-B", "45.00", "12", 502).await;
        wait_status(&app, &a, "ACSC").await;
        wait_status(&app, &b, "ACSC").await;
        let p = app.payment(&a).await;
        assert_eq!(
            p["state"], "pending",
            "accepted by the bank, awaiting booking: {p}"
        );
        assert!(history_to(&p, "completed").is_empty(), "{p}");
        assert_eq!(posted(&app, &a).await, 0, "nothing posted on ACSC");

        // The booking arrives in a camt.054: completed, posted once.
        let (attempt_a, _, _) = attempt(&app, &a).await;
        let (attempt_b, _, _) = attempt(&app, &b).await;
        let entry_a = Entry {
            attempt: &attempt_a,
            amount: "321.09",
            bank_ref: "BKTEST-A-1",
        };
        drop_inbound(
            &app,
            "camt054-test-a.xml",
            &camt("054", "NTF-A", &[entry_a]),
        );
        let p = app
            .wait_for(&a, Duration::from_secs(40), |p| p["state"] == "completed")
            .await;
        assert_eq!(p["state"], "completed", "{p}");
        let done = history_to(&p, "completed");
        assert_eq!(done.len(), 1, "{p}");
        let cause = done[0]["cause"].as_str().unwrap();
        assert!(
            cause.contains("booked debit") && cause.contains("camt054-test-a.xml"),
            "{cause}"
        );
        assert_eq!(p["receipt"], "BKTEST-A-1", "{p}");
        assert_eq!(posted(&app, &a).await, 1);
        assert!(p["conflict"].is_null(), "{p}");

        // The same entry again: a copy of the notification, and the day's camt.053 repeating
        // it beside B's booking. Once B completes, the watcher has read them both.
        let again = |r| Entry {
            attempt: &attempt_a,
            amount: "321.09",
            bank_ref: r,
        };
        drop_inbound(
            &app,
            "camt054-test-a-copy.xml",
            &camt("054", "NTF-A", &[again("BKTEST-A-1")]),
        );
        let entry_b = Entry {
            attempt: &attempt_b,
            amount: "45.00",
            bank_ref: "BKTEST-B-1",
        };
        drop_inbound(
            &app,
            "camt053-test-day.xml",
            &camt("053", "STMT-1", &[again("BKTEST-A-1"), entry_b]),
        );
        let pb = app
            .wait_for(&b, Duration::from_secs(40), |p| p["state"] == "completed")
            .await;
        assert_eq!(pb["state"], "completed", "{pb}");
        let p2 = app.payment(&a).await;
        assert_eq!(p2["state"], "completed");
        assert_eq!(
            p2["history"].as_array().unwrap().len(),
            p["history"].as_array().unwrap().len(),
            "a booking read again changes nothing: {p2}"
        );
        assert!(p2["conflict"].is_null(), "{p2}");
        assert_eq!(
            posted(&app, &a).await,
            1,
            "posted once, however often it is read"
        );
        assert_eq!(posted(&app, &b).await, 1);
        let claims: i64 = railgate::store::sql::query_scalar(
            "SELECT COUNT(*) FROM rail_entries WHERE payment_id = $1",
        )
        .bind(&a)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(claims, 1, "one entry, applied once");
        // The sandbox bank paid neither (its 12 never books): the files above were the only
        // proof of payment, and the ledger followed them.
        assert_eq!(paid(&app, "BOOK-A").await, 0);
        app.stop().await;
    }
);

both_stores!(
    a_booking_of_another_amount_is_a_conflict_not_a_completion,
    |store| async move {
        let Some(app) = app(store).await else {
            return;
        };
        let c = pay(&app, "BOOK-C", "100.00", "12", 503).await;
        wait_status(&app, &c, "ACSC").await;
        let (attempt_c, _, _) = attempt(&app, &c).await;
        let short = Entry {
            attempt: &attempt_c,
            amount: "99.00",
            bank_ref: "BKTEST-C-1",
        };
        drop_inbound(&app, "camt054-test-c.xml", &camt("054", "NTF-C", &[short]));
        let p = app
            .wait_for(&c, Duration::from_secs(40), |p| !p["conflict"].is_null())
            .await;
        assert!(!p["conflict"].is_null(), "{p}");
        assert_eq!(
            p["state"], "pending",
            "never completed on another amount: {p}"
        );
        assert_eq!(posted(&app, &c).await, 0);
        let (detail,): (Option<String>,) =
            railgate::store::sql::query_as("SELECT detail FROM conflicts WHERE payment_id = $1")
                .bind(&c)
                .fetch_one(app.db.pool())
                .await
                .unwrap();
        let detail = detail.unwrap();
        assert!(
            detail.contains("99.00") && detail.contains("100.00"),
            "{detail}"
        );
        app.stop().await;
    }
);

both_stores!(
    a_booking_days_later_completes_when_the_statement_arrives,
    |store| async move {
        let Some(app) = app(store).await else {
            return;
        };
        // The sandbox bank's 04: ACSP, ACSC ~3 s later, and the debit booked two days after
        // the execution date, so it is only in a later camt.053.
        let d = pay(&app, "BOOK-D", "77.70", "04", 504).await;
        let p = app
            .wait_for(&d, Duration::from_secs(40), |p| p["state"] == "completed")
            .await;
        assert_eq!(p["state"], "completed", "{p}");
        let done = history_to(&p, "completed");
        assert_eq!(done.len(), 1);
        let cause = done[0]["cause"].as_str().unwrap();
        assert!(
            cause.contains("booked debit") && cause.contains("camt053"),
            "completed by the statement, not by a status: {cause}"
        );
        // The bank's ACSC was read (and recorded) before the statement completed it.
        let (_, status, _) = attempt(&app, &d).await;
        assert_eq!(status.as_deref(), Some("ACSC"));
        let (status_at,): (i64,) = railgate::store::sql::query_as(
            "SELECT rail_status_at FROM attempts WHERE payment_id = $1",
        )
        .bind(&d)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        let (completed_at,): (i64,) = railgate::store::sql::query_as(
            "SELECT at FROM payment_transitions WHERE payment_id = $1 AND to_state = 'completed'",
        )
        .bind(&d)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert!(status_at <= completed_at, "{status_at} > {completed_at}");
        assert_eq!(posted(&app, &d).await, 1);
        assert_eq!(paid(&app, "BOOK-D").await, 1);
        app.stop().await;
    }
);

both_stores!(
    a_block_rejection_fails_the_payment_with_the_banks_reason,
    |store| async move {
        let Some(app) = app(store).await else {
            return;
        };
        // The sandbox bank's 06 rejects the whole block (PmtInfSts RJCT AM04), no lines.
        let f = pay(&app, "BOOK-F", "10.00", "06", 506).await;
        let p = app.wait_final(&f).await;
        assert_eq!(p["state"], "failed", "{p}");
        assert_eq!(p["failure"]["code"], "insufficient_funds", "{p}");
        assert_eq!(p["failure"]["rail_code"], "AM04", "{p}");
        assert_eq!(posted(&app, &f).await, 0);
        assert_eq!(paid(&app, "BOOK-F").await, 0);
        app.stop().await;
    }
);

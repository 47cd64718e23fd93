//! Every scenario of the table against the sandbox bank, over real files.
//!
//! The adapter's side of the bank's answers: pain.002 statuses (which never complete a
//! payment: `inquire` stays pending on `ACSC`) and the booked debits in the camt.053/054
//! files, read here with the statements reader the gateway uses.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use railgate_bank::mock::{BankMock, BankMockConfig};
use railgate_bank::{ids, BankAdapter, Pain001Version};
use railgate_rail::{Attempt, FailureCode, RailAdapter, RailStatus, Submitted};
use std::time::Duration;

async fn bank(dir: &std::path::Path, version: Pain001Version) -> (BankAdapter, BankMock) {
    let adapter = adapter(dir, version);
    let mock = BankMock::start(BankMockConfig {
        outbound_dir: dir.join("out"),
        inbound_dir: dir.join("in"),
        account_iban: iban_ending(99, 1),
        poll_every: Duration::from_millis(50),
        late_booking: Duration::from_millis(3_500),
    })
    .await
    .unwrap();
    (adapter, mock)
}

/// Submits and records the rail reference as the gateway would.
async fn submit(adapter: &BankAdapter, a: &mut Attempt) {
    match adapter.submit(a).await.unwrap() {
        Submitted::Accepted { rail_reference } => {
            assert_eq!(
                rail_reference.as_deref(),
                Some(ids::msg_id(a.attempt_id).as_str())
            );
            a.rail_reference = rail_reference;
        }
        other => panic!("{other:?}"),
    }
}

/// Inquires until `done` holds (bounded), returning the last status.
async fn wait_for(
    adapter: &BankAdapter,
    a: &Attempt,
    done: impl Fn(&RailStatus) -> bool,
) -> RailStatus {
    let mut last = RailStatus::Pending;
    for _ in 0..200 {
        last = adapter.inquire(a).await.unwrap();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no final status for scenario {:02}: {last:?}",
        a.party.scenario_digits()
    );
}

fn is_final(s: &RailStatus) -> bool {
    matches!(s, RailStatus::Completed(_) | RailStatus::Failed(_))
}

/// The bank's latest pain.002 status for the attempt.
async fn latest(adapter: &BankAdapter, a: &Attempt) -> Option<String> {
    let inbound = adapter.read_inbound().await.unwrap();
    inbound
        .latest_status(a)
        .map(|s| s.status.as_str().to_owned())
}

/// Waits (bounded) until the bank's latest status for the attempt is `code`.
async fn wait_status(adapter: &BankAdapter, a: &Attempt, code: &str) {
    for _ in 0..200 {
        if latest(adapter, a).await.as_deref() == Some(code) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "scenario {:02}: no {code}, last {:?}",
        a.party.scenario_digits(),
        latest(adapter, a).await
    );
}

/// The booked debits carrying the attempt's end-to-end id in the inbound camt files, as
/// (file name, amount in minor units, booking date).
fn bookings(dir: &std::path::Path, a: &Attempt) -> Vec<(String, i64, Option<chrono::NaiveDate>)> {
    use railgate_statements::{read_all, Direction, EntryStatus, InputFormat};
    let e2e = ids::end_to_end_id(a.attempt_id);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("in")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("camt") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for st in read_all(bytes.as_slice(), InputFormat::Camt).unwrap() {
            for l in st.lines {
                if l.status == EntryStatus::Booked
                    && l.direction == Direction::Debit
                    && l.reference.as_deref() == Some(e2e.as_str())
                {
                    out.push((name.clone(), l.amount.minor(), l.booking_date));
                }
            }
        }
    }
    out
}

/// Waits (bounded) until the attempt's debit is booked in some camt file.
async fn wait_booked(
    dir: &std::path::Path,
    a: &Attempt,
) -> Vec<(String, i64, Option<chrono::NaiveDate>)> {
    for _ in 0..200 {
        let b = bookings(dir, a);
        if !b.is_empty() {
            return b;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("scenario {:02}: never booked", a.party.scenario_digits());
}

fn failed_with(s: &RailStatus, code: FailureCode, rail: &str) -> bool {
    matches!(s, RailStatus::Failed(f) if f.code == code && f.rail_code.as_deref() == Some(rail))
}

#[tokio::test]
async fn every_scenario_ends_as_the_table_says() {
    for version in [Pain001Version::V03, Pain001Version::V09] {
        let dir = tempfile::tempdir().unwrap();
        let (adapter, mock) = bank(dir.path(), version).await;
        let mut attempts: Vec<Attempt> = (0..=13u8)
            .map(|d| iban_attempt(d, 10_000 + i64::from(d)))
            .collect();
        for a in attempts.iter_mut() {
            submit(&adapter, a).await;
        }
        for a in &attempts {
            let d = a.party.scenario_digits();
            match d {
                0 | 5 | 7 | 8 | 9 | 10 => {
                    wait_status(&adapter, a, "ACSC").await;
                    // Settled by the bank's word, yet only the booking completes it.
                    assert_eq!(adapter.inquire(a).await.unwrap(), RailStatus::Pending);
                    let b = wait_booked(dir.path(), a).await;
                    assert_eq!(b[0].1, a.amount.minor(), "{d:02}");
                    // Notified at once (a later camt.053 repeats it).
                    assert!(
                        b.iter().any(|x| x.0.starts_with("camt054")),
                        "{d:02}: {b:?}"
                    );
                }
                1 => assert!(failed_with(
                    &wait_for(&adapter, a, is_final).await,
                    FailureCode::InsufficientFunds,
                    "AM04"
                )),
                2 => assert!(failed_with(
                    &wait_for(&adapter, a, is_final).await,
                    FailureCode::PartyNotFound,
                    "AC01"
                )),
                3 => assert!(failed_with(
                    &wait_for(&adapter, a, is_final).await,
                    FailureCode::Declined,
                    "AC04"
                )),
                4 => {
                    wait_status(&adapter, a, "ACSC").await;
                    // Accepted for execution came first, then settled; neither is a booking.
                    assert_eq!(history(&adapter, a).await, vec!["ACSP", "ACSC"]);
                    assert_eq!(adapter.inquire(a).await.unwrap(), RailStatus::Pending);
                    // Booked two days after its execution date: only the later camt.053 has it.
                    let b = wait_booked(dir.path(), a).await;
                    assert!(b[0].0.starts_with("camt053"), "{b:?}");
                    let later = chrono::Utc::now().date_naive() + chrono::Days::new(2);
                    assert_eq!(b[0].2, Some(later), "{b:?}");
                }
                6 => assert!(failed_with(
                    &wait_for(&adapter, a, is_final).await,
                    FailureCode::InsufficientFunds,
                    "AM04"
                )),
                11 => {
                    wait_status(&adapter, a, "ACSC").await;
                    // Both contradicting reports are there, the rejection first, and the money
                    // left after all: the gateway, having failed the payment, records the
                    // booking as a conflict.
                    assert_eq!(history(&adapter, a).await, vec!["RJCT", "ACSC"]);
                    wait_booked(dir.path(), a).await;
                }
                12 => wait_status(&adapter, a, "ACSC").await,
                13 => {
                    wait_status(&adapter, a, "ACSC").await;
                    wait_booked(dir.path(), a).await;
                    let mut found = None;
                    for _ in 0..100 {
                        found = adapter
                            .returns()
                            .await
                            .unwrap()
                            .into_iter()
                            .find(|r| r.attempt_id == Some(a.attempt_id));
                        if found.is_some() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    let r = found.expect("the late return arrives");
                    assert_eq!(r.reason_code.as_deref(), Some("AC04"));
                    assert_eq!(r.amount, Some(a.amount));
                }
                _ => unreachable!(),
            }
        }
        // 12: the bank says ACSC and never books it; the attempt stays pending for the
        // gateway's deadline.
        let silent = &attempts[12];
        assert_eq!(adapter.inquire(silent).await.unwrap(), RailStatus::Pending);
        assert!(bookings(dir.path(), silent).is_empty());

        // Paid once each, rejected ones not at all; 07's three reports post once.
        let payouts = mock.payouts();
        for a in &attempts {
            let row = payouts
                .iter()
                .find(|p| p.attempt_id == a.attempt_id.to_string());
            match a.party.scenario_digits() {
                1 | 2 | 3 | 6 | 12 => {
                    assert!(row.is_none(), "{:02} paid", a.party.scenario_digits())
                }
                _ => assert_eq!(
                    row.map(|r| r.count),
                    Some(1),
                    "{:02}",
                    a.party.scenario_digits()
                ),
            }
        }
        // A camt.053 with every booking lands in the inbound folder.
        let name = mock.write_camt053().unwrap();
        let stmt = std::fs::read(dir.path().join("in").join(name)).unwrap();
        assert!(railgate_bank::camt::is_statement(&stmt));
        // The statement carries the late return (13) with our end-to-end id, and 04's debit
        // is booked two days after its execution date.
        let returns = railgate_bank::camt::parse_returns(&stmt).unwrap();
        assert_eq!(returns.len(), 1);
        assert_eq!(returns[0].attempt_id, Some(attempts[13].attempt_id));
        let text = String::from_utf8(stmt).unwrap();
        let later = (chrono::Utc::now().date_naive() + chrono::Days::new(2))
            .format("%Y-%m-%d")
            .to_string();
        let e2e = ids::end_to_end_id(attempts[4].attempt_id);
        let entry = text.split("<Ntry>").find(|e| e.contains(&e2e)).unwrap();
        assert!(entry.contains(&format!("<Dt>{later}</Dt>")), "{entry}");
        // The forged-callback scenario (08): a file rail takes no HTTP callbacks at all.
        let req = railgate_rail::InboundRequest {
            method: http_method(),
            path: "/pain002".into(),
            query: None,
            headers: Default::default(),
            body: Default::default(),
            received_at: chrono::Utc::now(),
            peer: None,
        };
        assert!(adapter.callback(&req).is_err());
    }
}

async fn history(adapter: &BankAdapter, a: &Attempt) -> Vec<String> {
    let payments = [(a.attempt_id, ids::end_to_end_id(a.attempt_id))];
    let msg_id = ids::msg_id(a.attempt_id);
    let pmt = ids::pmt_inf_id(a.attempt_id);
    let statuses = adapter
        .statuses_for_batch(&msg_id, &pmt, &payments)
        .await
        .unwrap();
    statuses
        .iter()
        .filter(|s| s.level == "transaction")
        .map(|s| s.status.as_str().to_owned())
        .collect()
}

fn http_method() -> axum::http::Method {
    axum::http::Method::POST
}

#[tokio::test]
async fn a_resend_after_a_lost_answer_never_pays_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (adapter, mock) = bank(dir.path(), Pain001Version::V09).await;
    let a = iban_attempt(10, 5_000);
    // The gateway lost the answer: it resends the same attempt without a rail reference,
    // once while the file is still in the folder and once after the bank took it.
    assert!(matches!(
        adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
    assert!(matches!(
        adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
    wait_status(&adapter, &a, "ACSC").await;
    wait_booked(dir.path(), &a).await;
    assert!(matches!(
        adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
    // Wait until the bank has taken every file we dropped.
    for _ in 0..200 {
        let left = std::fs::read_dir(dir.path().join("out")).unwrap().count();
        if left == 0 && mock.files_seen() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every copy after the first was refused as a duplicate MsgId; that refusal does not
    // fail the original.
    assert!(mock.files_seen() >= 2);
    assert_eq!(mock.duplicate_files(), mock.files_seen() - 1);
    let payouts = mock.payouts();
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0].count, 1);
    assert_eq!(bookings(dir.path(), &a).len(), 1, "booked once");
    assert_eq!(adapter.inquire(&a).await.unwrap(), RailStatus::Pending);
}

#[tokio::test]
async fn a_payroll_file_with_a_rejected_block_fails_every_payment_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let (adapter, mock) = bank(dir.path(), Pain001Version::V03).await;
    let attempts: Vec<Attempt> = [0u8, 4, 6, 0]
        .iter()
        .map(|d| iban_attempt(*d, 700))
        .collect();
    let batch_id = uuid::Uuid::new_v4();
    let file = adapter
        .build_batch(batch_id, &attempts, chrono::Utc::now())
        .unwrap();
    let state = BankAdapter::batch_rail_state(&file);
    adapter.write_batch(&file).await.unwrap();
    for a in &attempts {
        let mut a = a.clone();
        a.rail_state = Some(state.clone());
        let s = wait_for(&adapter, &a, is_final).await;
        assert!(
            failed_with(&s, FailureCode::InsufficientFunds, "AM04"),
            "{s:?}"
        );
    }
    let statuses = adapter
        .statuses_for_batch(&file.msg_id, &file.pmt_inf_id, &file.payments)
        .await
        .unwrap();
    assert_eq!(statuses.len(), 4);
    assert!(statuses.iter().all(|s| s.level == "block"));
    assert!(mock.payouts().is_empty());
}

#[tokio::test]
async fn control_endpoints_answer_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (adapter, mock) = bank(dir.path(), Pain001Version::V09).await;
    let mut a = iban_attempt(0, 1_234);
    submit(&adapter, &mut a).await;
    wait_status(&adapter, &a, "ACSC").await;
    let base = format!("http://{}", mock.control_addr);
    let http = reqwest::Client::new();
    let rows: serde_json::Value = http
        .get(format!("{base}/_control/payouts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rows[0]["attempt_id"], a.attempt_id.to_string());
    assert_eq!(rows[0]["amount"], "12.34");
    assert_eq!(rows[0]["count"], 1);
    let csv = http
        .get(format!("{base}/_control/statement?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with(
        "date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee"
    ));
    assert!(csv.contains(&format!(
        "12.34,EUR,debit,{}",
        ids::end_to_end_id(a.attempt_id)
    )));
    let r = http
        .post(format!("{base}/_control/faults"))
        .json(
            &serde_json::json!({"latency_ms": 0, "drop_callbacks": true, "error_rate_percent": 0}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // With reports dropped the bank still pays, and the attempt stays pending.
    let mut b = iban_attempt(0, 99);
    submit(&adapter, &mut b).await;
    for _ in 0..100 {
        if mock.payouts().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.payouts().len(), 2);
    assert_eq!(adapter.inquire(&b).await.unwrap(), RailStatus::Pending);
}

//! The wire structs read the sample payloads in fixtures/mifos, exactly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use railgate_mifos::bulk::COLUMNS;
use railgate_mifos::fineract_wire::{ApiError, SavingsAccount};
use railgate_mifos::wire::{BatchSummary, OpsTransfer, Page, PhError, TRANSACTION_EXISTS};
use railgate_rail::{Currency, FailureCode, Money, RailStatus};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/mifos")
            .join(name),
    )
    .unwrap()
}

#[test]
fn operations_app_payloads() {
    let page: Page<OpsTransfer> =
        serde_json::from_slice(&fixture("ops-transfers-page.json")).unwrap();
    let t = &page.content[0];
    assert_eq!(
        t.money(),
        Some(Money::parse("1500.50", Currency::Tzs).unwrap())
    );
    match t.status() {
        RailStatus::Failed(f) => {
            assert_eq!(f.code, FailureCode::InsufficientFunds);
            assert_eq!(f.rail_code.as_deref(), Some("4001"));
        }
        other => panic!("{other:?}"),
    }
    let e: PhError = serde_json::from_slice(&fixture("channel-transaction-exists.json")).unwrap();
    assert_eq!(e.error_code.as_deref(), Some(TRANSACTION_EXISTS));
    let b: BatchSummary = serde_json::from_slice(&fixture("batch-summary.json")).unwrap();
    assert_eq!((b.total, b.successful, b.failed), (2, 1, 1));
}

#[test]
fn bulk_file_layout() {
    let csv = String::from_utf8(fixture("bulk-payroll.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
    assert!(lines.all(|l| l.split(',').count() == COLUMNS.len()));
}

#[test]
fn fineract_payloads() {
    let acct: SavingsAccount =
        serde_json::from_slice(&fixture("fineract-savings-account.json")).unwrap();
    let ours = acct
        .transactions
        .iter()
        .find(|t| t.is_attempt("6a1f3e2d-9c8b-4a7d-8e6f-5d4c3b2a1f0e"))
        .unwrap();
    // "2500.750000" as Fineract writes it: exact, no float on the way.
    assert_eq!(
        ours.money(Currency::Kes),
        Some(Money::parse("2500.75", Currency::Kes).unwrap())
    );
    assert!(acct.transactions[1].reversed);
    let e: ApiError =
        serde_json::from_slice(&fixture("fineract-insufficient-balance.json")).unwrap();
    let f = e.failure(403);
    assert_eq!(f.code, FailureCode::InsufficientFunds);
    assert_eq!(
        f.rail_code.as_deref(),
        Some("error.msg.savingsaccount.transaction.insufficient.account.balance")
    );
    assert!(!e.is_concurrency_conflict());
}

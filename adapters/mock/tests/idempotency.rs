//! A resend of the same attempt never moves money again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{attempt, attempt_in, Harness};
use railgate_rail::{Direction, FailureCode, RailAdapter, RailError, Submitted};

#[tokio::test]
async fn resends_of_a_paid_attempt_never_pay_again() {
    let h = Harness::start().await;
    let a = attempt("00");
    assert!(matches!(
        h.adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
    for _ in 0..5 {
        match h.adapter.submit(&a).await.unwrap() {
            Submitted::Completed(s) => assert!(s.receipt.is_some()),
            other => panic!("a resend answers with the original's state, got {other:?}"),
        }
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
    assert_eq!(h.rail.payouts().len(), 1);
}

#[tokio::test]
async fn concurrent_resends_pay_once() {
    let h = Harness::start().await;
    let a = attempt("00");
    let sends = (0..16).map(|_| h.adapter.submit(&a));
    let results = futures_util::future::join_all(sends).await;
    let references: Vec<_> = results
        .into_iter()
        .map(|r| match r.unwrap() {
            Submitted::Accepted { rail_reference } => rail_reference,
            Submitted::Completed(s) => s.rail_reference,
            other => panic!("{other:?}"),
        })
        .collect();
    // Every answer names the same rail transaction.
    assert!(references
        .iter()
        .all(|r| r.is_some() && *r == references[0]));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn a_rejected_attempt_stays_rejected_on_resend() {
    let h = Harness::start().await;
    let a = attempt("02");
    for _ in 0..3 {
        assert!(matches!(
            h.adapter.submit(&a).await.unwrap(),
            Submitted::Rejected(f) if f.code == FailureCode::PartyNotFound
        ));
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
    assert_eq!(h.rail.payouts().len(), 1);
}

#[tokio::test]
async fn a_failed_attempt_reports_its_failure_on_resend() {
    let h = Harness::start().await;
    let a = attempt("01");
    h.adapter.submit(&a).await.unwrap();
    assert!(matches!(
        h.adapter.submit(&a).await.unwrap(),
        Submitted::Rejected(f) if f.code == FailureCode::InsufficientFunds
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
}

#[tokio::test]
async fn resends_after_503s_and_a_drop_pay_once() {
    let h = Harness::start().await;
    let unavailable = attempt("09");
    let dropped = attempt("10");
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        outcomes.push(h.adapter.submit(&unavailable).await);
        outcomes.push(h.adapter.submit(&dropped).await);
    }
    let retryable = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RailError::Retryable(_))))
        .count();
    let unknown = outcomes
        .iter()
        .filter(|o| matches!(o, Err(RailError::Unknown(_))))
        .count();
    assert_eq!(retryable, 2, "{outcomes:?}");
    assert_eq!(
        unknown, 1,
        "only the first answer of scenario 10 is dropped: {outcomes:?}"
    );
    assert_eq!(h.rail.paid_count(unavailable.attempt_id), 1);
    assert_eq!(h.rail.paid_count(dropped.attempt_id), 1);
    assert!(h.rail.payouts().iter().all(|p| p.count == 1));
}

#[tokio::test]
async fn the_same_party_paid_under_two_attempts_is_paid_twice() {
    // The count is per attempt id: two attempts are two payments (the gateway decides when a
    // new attempt is allowed; the rail only dedupes ids).
    let h = Harness::start().await;
    let first = attempt("00");
    let mut second = attempt_in("00", Direction::Disbursement);
    second.reference = first.reference.clone();
    h.adapter.submit(&first).await.unwrap();
    h.adapter.submit(&second).await.unwrap();
    assert_eq!(h.rail.paid_count(first.attempt_id), 1);
    assert_eq!(h.rail.paid_count(second.attempt_id), 1);
    assert_eq!(h.rail.payouts().len(), 2);
}

//! Every row of the scenario table, at the adapter level, over real HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{attempt, attempt_in, is_completed, rail_config, Harness};
use railgate_mock::{DeliveryResult, MockRailConfig};
use railgate_rail::{
    CallbackError, CallbackOutcome, Direction, Failure, FailureCode, RailAdapter, RailError,
    RailStatus, Settled, Submitted,
};
use std::collections::HashSet;
use std::time::Duration;

fn assert_failed(outcome: &CallbackOutcome, code: FailureCode, rail_code: &str) {
    match outcome {
        CallbackOutcome::Failed(Failure {
            code: c,
            rail_code: r,
            ..
        }) => {
            assert_eq!(*c, code);
            assert_eq!(r.as_deref(), Some(rail_code));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn accepted_reference(submitted: &Submitted) -> String {
    match submitted {
        Submitted::Accepted {
            rail_reference: Some(r),
        } => r.clone(),
        other => panic!("expected accepted, got {other:?}"),
    }
}

#[tokio::test]
async fn s00_success_callback_completes() {
    let h = Harness::start().await;
    let a = attempt("00");
    let reference = accepted_reference(&h.adapter.submit(&a).await.unwrap());
    assert!(reference.starts_with("MR"));
    let events = h.wait_events(&a, 1).await;
    match &events[0].outcome {
        CallbackOutcome::Completed(Settled {
            rail_reference,
            receipt,
            ..
        }) => {
            assert_eq!(rail_reference.as_deref(), Some(reference.as_str()));
            assert!(receipt.as_deref().is_some_and(|r| r.starts_with('R')));
        }
        other => panic!("expected completed, got {other:?}"),
    }
    assert!(matches!(
        h.adapter.inquire(&a).await.unwrap(),
        RailStatus::Completed(_)
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s01_insufficient_funds_fails_with_the_rail_code() {
    let h = Harness::start().await;
    let a = attempt("01");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let events = h.wait_events(&a, 1).await;
    assert_failed(
        &events[0].outcome,
        FailureCode::InsufficientFunds,
        "INSUFFICIENT_FUNDS",
    );
    match h.adapter.inquire(&a).await.unwrap() {
        RailStatus::Failed(f) => assert_eq!(f.code, FailureCode::InsufficientFunds),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
}

#[tokio::test]
async fn s02_party_not_found_is_rejected_synchronously() {
    let h = Harness::start().await;
    let a = attempt("02");
    match h.adapter.submit(&a).await.unwrap() {
        Submitted::Rejected(f) => {
            assert_eq!(f.code, FailureCode::PartyNotFound);
            assert_eq!(f.rail_code.as_deref(), Some("PARTY_NOT_FOUND"));
        }
        other => panic!("expected rejected, got {other:?}"),
    }
    match h.adapter.inquire(&a).await.unwrap() {
        RailStatus::Failed(f) => assert_eq!(f.code, FailureCode::PartyNotFound),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
    // No callback is planned; a later payment's callback fences the check.
    let fence = attempt("00");
    h.adapter.submit(&fence).await.unwrap();
    h.wait_events(&fence, 1).await;
    assert!(h
        .rail
        .callbacks()
        .iter()
        .all(|c| c.request_id != a.attempt_id));
}

#[tokio::test]
async fn s03_declined_by_the_party() {
    let h = Harness::start().await;
    // A request-to-pay: the payer is prompted and refuses.
    let a = attempt_in("03", Direction::Collection);
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let events = h.wait_events(&a, 1).await;
    assert_failed(&events[0].outcome, FailureCode::Declined, "DECLINED");
    assert!(
        matches!(h.adapter.inquire(&a).await.unwrap(), RailStatus::Failed(f) if f.code == FailureCode::Declined)
    );
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
}

#[tokio::test]
async fn s04_pending_then_success() {
    let h = Harness::start().await;
    let a = attempt("04");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let events = h.wait_events(&a, 2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].outcome, CallbackOutcome::Pending);
    assert!(is_completed(&events[1]));
    assert!(matches!(
        h.adapter.inquire(&a).await.unwrap(),
        RailStatus::Completed(_)
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s04_inquiry_shows_pending_until_the_delay_has_passed() {
    let config = MockRailConfig {
        pending_delay_ms: 600_000,
        ..rail_config()
    };
    let h = Harness::with(config, Duration::from_secs(5)).await;
    let a = attempt("04");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let events = h.wait_events(&a, 1).await;
    assert_eq!(events[0].outcome, CallbackOutcome::Pending);
    assert_eq!(h.adapter.inquire(&a).await.unwrap(), RailStatus::Pending);
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
    // A resend answers with the current state, pending.
    assert!(matches!(
        h.adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
}

#[tokio::test]
async fn s05_no_callback_inquiry_shows_success() {
    let h = Harness::start().await;
    let a = attempt("05");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let fence = attempt("00");
    h.adapter.submit(&fence).await.unwrap();
    h.wait_events(&fence, 1).await;
    assert!(h.events_for(&a).is_empty());
    assert!(h
        .rail
        .callbacks()
        .iter()
        .all(|c| c.request_id != a.attempt_id));
    match h.adapter.inquire(&a).await.unwrap() {
        RailStatus::Completed(s) => assert!(s.receipt.is_some() && s.rail_reference.is_some()),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s06_no_callback_inquiry_shows_failure() {
    let h = Harness::start().await;
    let a = attempt("06");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let fence = attempt("00");
    h.adapter.submit(&fence).await.unwrap();
    h.wait_events(&fence, 1).await;
    assert!(h.events_for(&a).is_empty());
    match h.adapter.inquire(&a).await.unwrap() {
        RailStatus::Failed(f) => {
            assert_eq!(f.code, FailureCode::Expired);
            assert_eq!(f.rail_code.as_deref(), Some("EXPIRED"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
}

#[tokio::test]
async fn s07_success_callback_arrives_three_times_with_distinct_ids() {
    let h = Harness::start().await;
    let a = attempt("07");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    h.wait_deliveries(&a, 3).await;
    let events = h.events_for(&a);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(is_completed));
    let ids: HashSet<_> = events.iter().map(|e| e.callback_id.clone()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s08_forged_callback_is_refused_and_inquiry_shows_success() {
    let h = Harness::start().await;
    let a = attempt("08");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    h.wait_deliveries(&a, 1).await;
    let record = h
        .rail
        .callbacks()
        .into_iter()
        .find(|c| c.request_id == a.attempt_id)
        .unwrap();
    assert!(record.forged);
    // Refused with 401, which the rail does not retry.
    assert_eq!(record.result, DeliveryResult::Answered { status: 401 });
    assert!(h.events_for(&a).is_empty());
    assert!(matches!(
        h.refusals().as_slice(),
        [CallbackError::Unauthenticated(_)]
    ));
    assert!(matches!(
        h.adapter.inquire(&a).await.unwrap(),
        RailStatus::Completed(_)
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s09_unavailable_twice_then_accepted_and_paid_once() {
    let h = Harness::start().await;
    let a = attempt("09");
    for _ in 0..2 {
        assert!(matches!(
            h.adapter.submit(&a).await,
            Err(RailError::Retryable(_))
        ));
        // Nothing recorded: the rail does not know the attempt.
        assert_eq!(h.adapter.inquire(&a).await.unwrap(), RailStatus::NotFound);
        assert!(h.rail.payouts().is_empty());
    }
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let events = h.wait_events(&a, 1).await;
    assert!(is_completed(&events[0]));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
    // Further resends report the outcome and pay nothing more.
    assert!(matches!(
        h.adapter.submit(&a).await.unwrap(),
        Submitted::Completed(_)
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
    assert_eq!(h.rail.payouts().len(), 1);
}

#[tokio::test]
async fn s10_dropped_connection_is_unknown_then_inquiry_completes_paid_once() {
    let h = Harness::start().await;
    let a = attempt("10");
    match h.adapter.submit(&a).await {
        // The 202 arrived; its body did not.
        Err(RailError::Unknown(m)) => assert!(m.contains("could not be read"), "{m}"),
        other => panic!("expected unknown, got {other:?}"),
    }
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
    match h.adapter.inquire(&a).await.unwrap() {
        RailStatus::Completed(s) => assert!(s.rail_reference.is_some_and(|r| r.starts_with("MR"))),
        other => panic!("{other:?}"),
    }
    // A resend of the same attempt learns the outcome and pays nothing more.
    assert!(matches!(
        h.adapter.submit(&a).await.unwrap(),
        Submitted::Completed(_)
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s11_failure_then_success_callback() {
    let h = Harness::start().await;
    let a = attempt("11");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    let events = h.wait_events(&a, 2).await;
    assert_eq!(events.len(), 2);
    assert!(matches!(events[0].outcome, CallbackOutcome::Failed(_)));
    assert!(is_completed(&events[1]));
    assert_ne!(events[0].callback_id, events[1].callback_id);
    assert!(matches!(
        h.adapter.inquire(&a).await.unwrap(),
        RailStatus::Completed(_)
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn s12_inquiry_never_answers() {
    let h = Harness::with(rail_config(), Duration::from_millis(300)).await;
    let a = attempt("12");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    match h.adapter.inquire(&a).await {
        Err(RailError::Unknown(_)) => {}
        other => panic!("expected unknown, got {other:?}"),
    }
    // The rail never settles it: nothing moved, and no callback is planned.
    assert_eq!(h.rail.paid_count(a.attempt_id), 0);
    assert!(h.rail.callbacks().is_empty());
    h.rail.shutdown().await.unwrap();
}

#[tokio::test]
async fn unlisted_digits_behave_as_success() {
    let h = Harness::start().await;
    let a = attempt("57");
    accepted_reference(&h.adapter.submit(&a).await.unwrap());
    assert!(is_completed(&h.wait_events(&a, 1).await[0]));
}

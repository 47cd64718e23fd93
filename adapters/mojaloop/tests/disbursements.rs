//! Disbursements over real HTTP against the mock hub: every scenario of the table.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Gateway, Options, Status};
use railgate_rail::{CallbackOutcome, Direction, FailureCode, RailAdapter, RailStatus};
use std::time::Duration;

const MSISDN: &str = "2557123456";

async fn pay(g: &Gateway, suffix: &str) -> uuid::Uuid {
    let id = g.add_attempt(
        Direction::Disbursement,
        &format!("{MSISDN}{suffix}"),
        "15000.50",
        &format!("CLM-{suffix}"),
    );
    g.start_attempt(id).await;
    id
}

/// The transfer went out and the hub accepted it (`rail_reference` = the transfer id).
fn transfer_sent(g: &Gateway, id: uuid::Uuid) -> bool {
    let transfer_id =
        railgate_mojaloop::wire::derive_id(id, railgate_mojaloop::wire::IdPurpose::Transaction)
            .unwrap()
            .to_string();
    g.attempt(id).rail_reference.as_deref() == Some(transfer_id.as_str())
}

fn paid_count(g: &Gateway, id: uuid::Uuid) -> u32 {
    g.hub
        .payouts()
        .iter()
        .filter(|p| p.attempt_id == id.to_string())
        .map(|p| p.count)
        .sum()
}

fn assert_clean(g: &Gateway) {
    assert!(
        g.hub.rejections().is_empty(),
        "the mock refused a request: {:?}",
        g.hub.rejections()
    );
}

#[tokio::test]
async fn s00_success_completes_with_a_verified_fulfilment() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "00").await;
    let Status::Completed(settled) = g.wait_final(id).await else {
        panic!("not completed: {:?}", g.status(id))
    };
    let transfer_id = settled.rail_reference.unwrap();
    assert_eq!(settled.receipt.as_ref().map(String::len), Some(43));
    assert_eq!(paid_count(&g, id), 1);
    let payout = g
        .hub
        .payouts()
        .into_iter()
        .find(|p| p.transfer_id == transfer_id)
        .unwrap();
    assert_eq!(
        (
            payout.amount.as_str(),
            payout.currency.as_str(),
            payout.reference.as_str()
        ),
        ("15000.5", "TZS", "CLM-00")
    );
    // transferId = the quote's transactionId, both derived from the attempt id.
    let quote: serde_json::Value =
        serde_json::from_slice(&g.attempt(id).request.unwrap().body).unwrap();
    assert_eq!(quote["transferId"], transfer_id.as_str());
    assert_clean(&g);
    assert!(g.refused().is_empty(), "{:?}", g.refused());
}

#[tokio::test]
async fn s01_insufficient_funds_fails_with_4001() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "01").await;
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(
        (f.code, f.rail_code.as_deref()),
        (FailureCode::InsufficientFunds, Some("4001"))
    );
    assert_eq!(paid_count(&g, id), 0);
    assert_clean(&g);
}

#[tokio::test]
async fn s02_party_not_found_fails_at_lookup_with_3204() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "02").await;
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(
        (f.code, f.rail_code.as_deref()),
        (FailureCode::PartyNotFound, Some("3204"))
    );
    assert!(g.attempt(id).request.is_none(), "nothing was quoted");
    assert_clean(&g);
}

#[tokio::test]
async fn s03_declined_fails_with_5105() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "03").await;
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(
        (f.code, f.rail_code.as_deref()),
        (FailureCode::Declined, Some("5105"))
    );
    assert_clean(&g);
}

#[tokio::test]
async fn s04_pending_then_success() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "04").await;
    g.wait_for("the transfer to be sent", |g| transfer_sent(g, id))
        .await;
    assert_eq!(g.status(id), Status::InFlight);
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    assert_eq!(paid_count(&g, id), 1);
}

#[tokio::test]
async fn s05_lost_callback_is_resolved_by_get_transfers() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "05").await;
    g.wait_for("the transfer to be accepted", |g| transfer_sent(g, id))
        .await;
    assert_eq!(paid_count(&g, id), 1);
    assert_eq!(g.status(id), Status::InFlight, "no callback came");
    // The answer to GET /transfers arrives as a callback.
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    assert_clean(&g);
}

#[tokio::test]
async fn s06_lost_callback_and_get_shows_aborted() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "06").await;
    g.wait_for("the transfer to be accepted", |g| transfer_sent(g, id))
        .await;
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(f.rail_code.as_deref(), Some("ABORTED"));
    assert_eq!(paid_count(&g, id), 0);
}

#[tokio::test]
async fn s07_triple_callback_completes_once() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "07").await;
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    g.wait_for("the two duplicates", |g| g.store().duplicate_callbacks >= 2)
        .await;
    let completed = g.store().rows[&id]
        .applied
        .iter()
        .filter(|o| matches!(o, CallbackOutcome::Completed(_)))
        .count();
    assert_eq!(completed, 1, "applied once");
    assert_eq!(paid_count(&g, id), 1);
    // Every duplicate was answered 200.
    g.wait_for("three logged deliveries", |g| {
        g.hub
            .deliveries()
            .iter()
            .filter(|d| d.path.starts_with("/transfers/"))
            .count()
            == 3
    })
    .await;
    let deliveries = g.hub.deliveries();
    let puts: Vec<_> = deliveries
        .iter()
        .filter(|d| d.path.starts_with("/transfers/"))
        .collect();
    assert_eq!(puts.len(), 3);
    assert!(puts.iter().all(|d| d.status == Some(200)));
}

async fn forged_then_inquiry(jws: bool) {
    let g = Gateway::start(Options {
        jws,
        ..Options::default()
    })
    .await;
    let id = pay(&g, "08").await;
    g.wait_for("the forged callback to be refused", |g| {
        g.refused()
            .iter()
            .any(|(p, _)| p.starts_with("/transfers/"))
    })
    .await;
    assert_eq!(
        g.status(id),
        Status::InFlight,
        "a forged callback changes nothing"
    );
    g.wait_for("the mock to log the refusal", |g| {
        g.hub
            .deliveries()
            .iter()
            .any(|d| d.path.starts_with("/transfers/"))
    })
    .await;
    let forged = g
        .hub
        .deliveries()
        .into_iter()
        .find(|d| d.path.starts_with("/transfers/"))
        .unwrap();
    assert_eq!(forged.status, Some(400));
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    assert_eq!(paid_count(&g, id), 1);
    assert_clean(&g);
}

#[tokio::test]
async fn s08_wrong_source_is_refused_and_inquiry_completes() {
    forged_then_inquiry(false).await;
}

#[tokio::test]
async fn s08_bad_signature_is_refused_and_inquiry_completes_with_jws() {
    forged_then_inquiry(true).await;
}

#[tokio::test]
async fn s09_two_503s_then_accepted_pays_once() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "09").await;
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    assert_eq!(paid_count(&g, id), 1);
    assert_eq!(g.hub.payouts().len(), 1);
    assert_clean(&g);
}

#[tokio::test]
async fn s10_dropped_connection_is_unknown_then_inquiry_completes_paid_once() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "10").await;
    g.wait_for("the unknown outcome", |g| {
        matches!(g.status(id), Status::Unknown(_))
    })
    .await;
    assert_eq!(
        paid_count(&g, id),
        1,
        "the hub committed before the connection dropped"
    );
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    assert_eq!(paid_count(&g, id), 1);
    assert_clean(&g);
}

#[tokio::test]
async fn s11_expired_then_late_commit_is_a_conflict() {
    let g = Gateway::start(Options {
        late_success_delay: Duration::from_millis(800),
        ..Options::default()
    })
    .await;
    let id = pay(&g, "11").await;
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(
        (f.code, f.rail_code.as_deref()),
        (FailureCode::Expired, Some("3303"))
    );
    g.wait_for("the late COMMITTED", |g| g.status(id) == Status::Conflict)
        .await;
}

#[tokio::test]
async fn s12_inquiry_never_answers() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "12").await;
    g.wait_for("the transfer to be accepted", |g| transfer_sent(g, id))
        .await;
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        g.status(id),
        Status::InFlight,
        "still no answer: the gateway's deadline decides"
    );
    let finals = g.store().rows[&id]
        .applied
        .iter()
        .filter(|o| {
            matches!(
                o,
                CallbackOutcome::Completed(_) | CallbackOutcome::Failed(_)
            )
        })
        .count();
    assert_eq!(finals, 0);
}

#[tokio::test]
async fn resends_are_byte_identical_and_pay_once() {
    let g = Gateway::start(Options::default()).await;
    let id = pay(&g, "00").await;
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    let attempt = g.attempt(id);
    let stored = attempt.request.clone().unwrap();
    assert_eq!(stored.step, "transfer");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // prepare gives the stored bytes back, not fresh ones (whose expiration would differ).
    assert_eq!(
        g.core.adapter.prepare(&attempt).unwrap(),
        Some(stored.clone())
    );
    // A resend of the same bytes: the hub sees a duplicate and answers with the current result.
    assert!(matches!(
        g.core.adapter.submit(&attempt).await,
        Ok(railgate_rail::Submitted::Accepted { .. })
    ));
    g.wait_for("the resent result", |g| {
        g.store().rows[&id]
            .applied
            .iter()
            .filter(|o| matches!(o, CallbackOutcome::Completed(_)))
            .count()
            >= 2
    })
    .await;
    assert_eq!(paid_count(&g, id), 1);
    assert!(
        g.hub
            .deliveries()
            .iter()
            .all(|d| !d.path.ends_with("/error")),
        "no 3106"
    );

    // Submitting a step whose bytes were not stored first is refused.
    let mut unstored = attempt.clone();
    unstored.request = None;
    assert!(matches!(
        g.core.adapter.submit(&unstored).await,
        Err(railgate_rail::RailError::Permanent(_))
    ));

    // Different bytes under the same transfer id: the hub answers 3106, nothing more is paid.
    let mut modified = attempt;
    let mut body: serde_json::Value = serde_json::from_slice(&stored.body).unwrap();
    body["expiration"] = serde_json::json!(railgate_mojaloop::wire::fspiop_datetime(
        chrono::Utc::now() + chrono::Duration::seconds(90)
    ));
    modified.request = Some(railgate_rail::PreparedRequest {
        step: "transfer".to_owned(),
        body: serde_json::to_vec(&body).unwrap(),
    });
    assert!(g.core.adapter.submit(&modified).await.is_ok());
    g.wait_for("the 3106 error", |g| {
        g.hub
            .deliveries()
            .iter()
            .any(|d| d.path.ends_with("/error"))
    })
    .await;
    assert_eq!(
        g.status(id),
        Status::Conflict,
        "a 3106 after COMMITTED contradicts it"
    );
    assert_eq!(paid_count(&g, id), 1);
}

#[tokio::test]
async fn transfer_not_found_is_pending_before_expiry_and_failed_after() {
    let g = Gateway::start(Options::default()).await;
    // Quoted, transfer prepared and stored, but never sent: the switch has no record of it.
    let id = g.add_attempt(
        Direction::Disbursement,
        &format!("{MSISDN}00"),
        "700",
        "CLM-NF",
    );
    g.store().hold_transfers = true;
    g.start_attempt(id).await;
    g.wait_step(id, "quoted").await;
    let mut attempt = g.attempt(id);
    let prepared = g.core.adapter.prepare(&attempt).unwrap().unwrap();
    assert_eq!(prepared.step, "transfer");
    attempt.request = Some(prepared.clone());
    g.set_attempt(attempt.clone());
    // Before expiry: 3208 is "not found yet", not a failure.
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    g.wait_for("the 3208 answer", |g| {
        g.store().rows[&id]
            .applied
            .iter()
            .any(|o| matches!(o, CallbackOutcome::Pending))
    })
    .await;
    assert_eq!(g.status(id), Status::InFlight);
    // Past expiry plus grace: the same answer is final.
    let mut body: serde_json::Value = serde_json::from_slice(&prepared.body).unwrap();
    body["expiration"] = serde_json::json!(railgate_mojaloop::wire::fspiop_datetime(
        chrono::Utc::now() - chrono::Duration::seconds(120)
    ));
    attempt.request = Some(railgate_rail::PreparedRequest {
        step: "transfer".to_owned(),
        body: serde_json::to_vec(&body).unwrap(),
    });
    g.set_attempt(attempt);
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(
        (f.code, f.rail_code.as_deref()),
        (FailureCode::Expired, Some("3208"))
    );
    assert_eq!(paid_count(&g, id), 0);
}

#[tokio::test]
async fn inquiry_before_any_transfer_is_not_found() {
    let g = Gateway::start(Options::default()).await;
    let id = g.add_attempt(
        Direction::Disbursement,
        &format!("{MSISDN}00"),
        "700",
        "CLM-X",
    );
    assert_eq!(g.inquire(id).await, Ok(RailStatus::NotFound));
}

#[tokio::test]
async fn jws_signed_disbursement_round_trip() {
    let g = Gateway::start(Options {
        jws: true,
        ..Options::default()
    })
    .await;
    let id = pay(&g, "00").await;
    assert!(
        matches!(g.wait_final(id).await, Status::Completed(_)),
        "{:?} {:?}",
        g.status(id),
        g.refused()
    );
    assert_clean(&g);
    assert!(g.refused().is_empty());
}

#[tokio::test]
async fn adapter_id_and_capabilities() {
    let g = Gateway::start(Options::default()).await;
    assert_eq!(g.core.adapter.id(), "mojaloop");
    let c = g.core.adapter.capabilities();
    assert!(c.disbursement && c.request_to_pay && c.inquiry && c.bulk);
    let bulk = g.core.adapter.batch_support().unwrap();
    assert_eq!((bulk.name, bulk.max_lines), ("Mojaloop bulk", 1000));
}

//! Fineract savings accounts, every scenario, over real HTTP.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use futures_util::future::join_all;
use railgate_mifos::mock::{FineractMock, FineractMockConfig};
use railgate_mifos::{FineractAdapter, FineractConfig, Secret};
use railgate_rail::{
    CallbackError, Currency, Direction, FailureCode, Party, PartyIdType, RailAdapter, RailError,
    RailStatus, Submitted,
};

async fn setup() -> (FineractMock, FineractAdapter) {
    let mock = FineractMock::start(FineractMockConfig::default())
        .await
        .unwrap();
    let adapter = FineractAdapter::new(FineractConfig {
        rail_id: "fineract".into(),
        base_url: mock.base_url(),
        tenant: "default".into(),
        username: "mifos".into(),
        password: Secret::new("password"),
        payment_type_id: Some(1),
        currencies: vec![Currency::Kes],
        timeout_ms: 8_000,
        tls: None,
    })
    .unwrap();
    (mock, adapter)
}

fn savings(digits: u8) -> Party {
    Party::new(PartyIdType::AccountId, &format!("10{digits:02}"), None).unwrap()
}

fn failed_with(s: Option<&RailStatus>, code: FailureCode) -> bool {
    matches!(s, Some(RailStatus::Failed(f)) if f.code == code)
}

#[tokio::test]
async fn every_scenario_ends_as_the_table_says() {
    let (mock, adapter) = setup().await;
    let attempts: Vec<_> = (0..=12u8)
        .map(|d| attempt(Direction::Disbursement, savings(d), 250_075, Currency::Kes))
        .collect();
    let traces = join_all(attempts.iter().map(|a| {
        let d = a.party.scenario_digits();
        let adapter = &adapter;
        async move {
            match d {
                11 => drive(adapter, a.clone(), completed, 200).await,
                12 => drive(adapter, a.clone(), is_final, 10).await,
                _ => drive(adapter, a.clone(), is_final, 100).await,
            }
        }
    }))
    .await;
    for (a, t) in attempts.iter().zip(&traces) {
        let d = a.party.scenario_digits();
        let id = a.attempt_id.to_string();
        match d {
            0 | 4 | 7 | 8 => {
                assert!(
                    matches!(t.submits[0], Ok(Submitted::Completed(_))),
                    "{d:02}: {t:?}"
                );
            }
            1 => assert!(
                failed_with(t.last(), FailureCode::InsufficientFunds),
                "{t:?}"
            ),
            2 => assert!(failed_with(t.last(), FailureCode::PartyNotFound), "{t:?}"),
            3 => assert!(failed_with(t.last(), FailureCode::Declined), "{t:?}"),
            5 | 10 => {
                assert!(matches!(t.submits[0], Err(RailError::Unknown(_))), "{t:?}");
                assert!(t.last().is_some_and(completed), "{t:?}");
            }
            6 => {
                assert!(matches!(t.submits[0], Err(RailError::Unknown(_))), "{t:?}");
                assert!(failed_with(t.last(), FailureCode::RailRejected), "{t:?}");
            }
            9 => {
                assert_eq!(t.submits.len(), 3, "{t:?}");
                assert!(matches!(t.submits[2], Ok(Submitted::Completed(_))), "{t:?}");
            }
            11 => {
                // Refused, then the deposit appears on the account: both facts reach the gateway.
                assert!(matches!(t.submits[0], Ok(Submitted::Rejected(_))), "{t:?}");
                assert!(t.last().is_some_and(completed), "{t:?}");
            }
            12 => {
                // Unknown, and the account never answers: no status at all, no resend.
                assert_eq!(t.submits.len(), 1);
                assert!(matches!(t.submits[0], Err(RailError::Unknown(_))));
                assert!(t.statuses.is_empty(), "{t:?}");
                assert!(matches!(
                    adapter.inquire(a).await,
                    Err(RailError::Unknown(_))
                ));
            }
            _ => unreachable!(),
        }
        let booked = mock.bookings_for(&id);
        let expected = match d {
            1..=3 => 0,
            _ => 1,
        };
        assert_eq!(booked, expected, "{d:02}");
    }
}

#[tokio::test]
async fn a_resend_after_a_lost_answer_replays_and_never_deposits_twice() {
    let (mock, adapter) = setup().await;
    let a = attempt(Direction::Disbursement, savings(10), 99_950, Currency::Kes);
    assert!(matches!(
        adapter.submit(&a).await,
        Err(RailError::Unknown(_))
    ));
    // The gateway inquires: the deposit is on the account under our attempt id.
    let first = match adapter.inquire(&a).await.unwrap() {
        RailStatus::Completed(s) => s,
        other => panic!("{other:?}"),
    };
    // Even a resend (same Idempotency-Key) only replays Fineract's stored answer.
    match adapter.submit(&a).await.unwrap() {
        Submitted::Completed(s) => assert_eq!(s.rail_reference, first.rail_reference),
        other => panic!("{other:?}"),
    }
    // 07: the same answer three times posts once.
    let b = attempt(Direction::Disbursement, savings(7), 1_000, Currency::Kes);
    let mut refs = Vec::new();
    for _ in 0..3 {
        match adapter.submit(&b).await.unwrap() {
            Submitted::Completed(s) => refs.push(s.rail_reference),
            other => panic!("{other:?}"),
        }
    }
    assert!(refs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(mock.bookings_for(&a.attempt_id.to_string()), 1);
    assert_eq!(mock.bookings_for(&b.attempt_id.to_string()), 1);
    let payouts = mock.payouts();
    assert_eq!(payouts.iter().map(|p| p.count).sum::<u32>(), 2);
    assert!(payouts
        .iter()
        .any(|p| p.attempt_id == a.attempt_id.to_string() && p.amount == "999.50"));
}

#[tokio::test]
async fn an_outcome_not_on_the_account_stays_pending_never_not_found() {
    let (_mock, adapter) = setup().await;
    let a = attempt(Direction::Disbursement, savings(0), 1_000, Currency::Kes);
    assert_eq!(adapter.inquire(&a).await.unwrap(), RailStatus::Pending);
}

#[tokio::test]
async fn collections_are_withdrawals_and_callbacks_are_refused() {
    let (mock, adapter) = setup().await;
    let a = attempt(Direction::Collection, savings(0), 50_000, Currency::Kes);
    assert!(matches!(
        adapter.submit(&a).await.unwrap(),
        Submitted::Completed(_)
    ));
    assert!(matches!(
        adapter.inquire(&a).await.unwrap(),
        RailStatus::Completed(_)
    ));
    let csv = reqwest::get(format!(
        "http://{}/_control/statement?format=csv",
        mock.addr
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        csv.contains(&format!("500.00,KES,credit,{}", a.attempt_id)),
        "{csv}"
    );
    let req = railgate_rail::InboundRequest {
        method: http::Method::POST,
        path: "/deposit".into(),
        query: None,
        headers: Default::default(),
        body: Default::default(),
        received_at: chrono::Utc::now(),
        peer: None,
    };
    assert_eq!(
        adapter.callback(&req).unwrap_err(),
        CallbackError::UnknownRoute
    );
}

#[tokio::test]
async fn wrong_credentials_are_a_permanent_error() {
    let mock = FineractMock::start(FineractMockConfig::default())
        .await
        .unwrap();
    let adapter = FineractAdapter::new(FineractConfig {
        rail_id: "fineract".into(),
        base_url: mock.base_url(),
        tenant: "default".into(),
        username: "mifos".into(),
        password: Secret::new("wrong"),
        payment_type_id: None,
        currencies: vec![Currency::Kes],
        timeout_ms: 5_000,
        tls: None,
    })
    .unwrap();
    let a = attempt(Direction::Disbursement, savings(0), 1_000, Currency::Kes);
    assert!(matches!(
        adapter.submit(&a).await,
        Err(RailError::Permanent(_))
    ));
    assert_eq!(mock.bookings_for(&a.attempt_id.to_string()), 0);
}

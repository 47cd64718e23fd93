//! Payment Hub EE's channel and operations app, every scenario, over real HTTP.
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
use railgate_mifos::adapter::{batch_callback_url, BATCH_CALLBACK_PATH};
use railgate_mifos::mock::{PhEeMock, PhEeMockConfig};
use railgate_mifos::{PhEeAdapter, PhEeConfig, Secret};
use railgate_rail::{
    CallbackError, Currency, Direction, FailureCode, InboundRequest, RailAdapter, RailError,
    RailStatus, Submitted,
};

fn config(mock: &PhEeMock) -> PhEeConfig {
    PhEeConfig {
        rail_id: "mifos".into(),
        channel_url: mock.base_url(),
        operations_url: mock.operations_url(),
        bulk_url: mock.base_url(),
        tenant: "gorilla".into(),
        payer_id_type: "MSISDN".into(),
        payer_identifier: "255700000001".into(),
        payee_dfsp: None,
        collection_scheme: "mpesa".into(),
        operations_token: None,
        callback_token: Some(Secret::new("cb-secret-token")),
        currencies: vec![Currency::Tzs],
        timeout_ms: 5_000,
        tls: None,
        oauth: None,
    }
}

async fn setup() -> (PhEeMock, PhEeAdapter) {
    let mock = PhEeMock::start(PhEeMockConfig::default()).await.unwrap();
    let adapter = PhEeAdapter::new(config(&mock)).unwrap();
    (mock, adapter)
}

fn failed_with(s: Option<&RailStatus>, code: FailureCode, rail: &str) -> bool {
    matches!(s, Some(RailStatus::Failed(f)) if f.code == code && f.rail_code.as_deref() == Some(rail))
}

#[tokio::test]
async fn every_disbursement_scenario_ends_as_the_table_says() {
    let (mock, adapter) = setup().await;
    let attempts: Vec<_> = (0..=12u8)
        .map(|d| {
            attempt(
                Direction::Disbursement,
                msisdn(d),
                150_050 + i64::from(d),
                Currency::Tzs,
            )
        })
        .collect();
    let traces = join_all(attempts.iter().map(|a| {
        let d = a.party.scenario_digits();
        let adapter = &adapter;
        async move {
            match d {
                // 11: keep asking until the late success shows; 12: ask for a while.
                11 => drive(adapter, a.clone(), completed, 200).await,
                12 => drive(adapter, a.clone(), is_final, 20).await,
                _ => drive(adapter, a.clone(), is_final, 200).await,
            }
        }
    }))
    .await;
    for (a, t) in attempts.iter().zip(&traces) {
        let d = a.party.scenario_digits();
        match d {
            0 | 4 | 5 | 7 | 8 => assert!(t.last().is_some_and(completed), "{d:02}: {t:?}"),
            1 => assert!(
                failed_with(t.last(), FailureCode::InsufficientFunds, "4001"),
                "{t:?}"
            ),
            2 => assert!(
                failed_with(t.last(), FailureCode::PartyNotFound, "3204"),
                "{t:?}"
            ),
            3 => assert!(
                failed_with(t.last(), FailureCode::Declined, "5101"),
                "{t:?}"
            ),
            6 => assert!(
                failed_with(t.last(), FailureCode::RailRejected, "5000"),
                "{t:?}"
            ),
            9 => {
                // Two 503s (nothing moved), resent under the same id, accepted.
                assert!(matches!(t.submits[0], Err(RailError::Retryable(_))));
                assert!(matches!(t.submits[1], Err(RailError::Retryable(_))));
                assert!(matches!(t.submits[2], Ok(Submitted::Accepted { .. })));
                assert!(t.last().is_some_and(completed), "{t:?}");
            }
            10 => {
                // The answer was lost: unknown, never resent, settled by inquiry.
                assert_eq!(t.submits.len(), 1);
                assert!(matches!(t.submits[0], Err(RailError::Unknown(_))), "{t:?}");
                assert!(t.last().is_some_and(completed), "{t:?}");
            }
            11 => {
                // A failure first, then a success: the gateway records the conflict.
                assert!(t.saw_failed(), "{t:?}");
                assert!(t.last().is_some_and(completed), "{t:?}");
            }
            12 => {
                // PH-EE's UNKNOWN is no answer: pending until the gateway's deadline.
                assert_eq!(t.last(), Some(&RailStatus::Pending), "{t:?}");
            }
            _ => unreachable!(),
        }
    }
    // Paid once each; refused ones never.
    let payouts = mock.payouts();
    for (a, t) in attempts.iter().zip(&traces) {
        let row = payouts
            .iter()
            .find(|p| p.attempt_id == a.attempt_id.to_string());
        if t.last().is_some_and(completed) {
            assert_eq!(
                row.map(|r| r.count),
                Some(1),
                "{:02}",
                a.party.scenario_digits()
            );
            assert_eq!(
                row.map(|r| r.amount.clone()),
                Some(a.amount.to_decimal_string())
            );
        } else {
            assert!(row.is_none(), "{:02} paid", a.party.scenario_digits());
        }
    }
}

#[tokio::test]
async fn a_resend_after_a_lost_answer_is_resolved_by_lookup_and_never_pays_twice() {
    let (mock, adapter) = setup().await;
    let a = attempt(Direction::Disbursement, msisdn(10), 5_000, Currency::Tzs);
    assert!(matches!(
        adapter.submit(&a).await,
        Err(RailError::Unknown(_))
    ));
    // The gateway resends the same attempt: PH-EE answers TransactionExists, and the adapter
    // looks the original up instead of sending it under a new id.
    let mut resolved = None;
    for _ in 0..100 {
        match adapter.submit(&a).await.unwrap() {
            Submitted::Completed(s) => {
                resolved = Some(s);
                break;
            }
            Submitted::Accepted { rail_reference } => assert!(rail_reference.is_some()),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(resolved.is_some());
    assert!(mock.channel_posts(&a.attempt_id.to_string()) >= 2);
    let payouts = mock.payouts();
    assert_eq!(payouts.len(), 1);
    assert_eq!(payouts[0].count, 1);
}

#[tokio::test]
async fn the_channel_status_hides_failures_the_operations_app_shows() {
    let (mock, adapter) = setup().await;
    let a = attempt(Direction::Disbursement, msisdn(1), 1_000, Currency::Tzs);
    let t = drive(&adapter, a.clone(), is_final, 100).await;
    assert!(t.saw_failed());
    let state: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/channel/txnState/{}",
            mock.base_url(),
            a.attempt_id
        ))
        .header("Platform-TenantId", "gorilla")
        .header("requestType", "transfers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["transferState"], "RECEIVED");
}

#[tokio::test]
async fn collections_read_the_request_to_pay_state() {
    let (mock, adapter) = setup().await;
    let ok = attempt(Direction::Collection, msisdn(0), 20_000, Currency::Tzs);
    let poor = attempt(Direction::Collection, msisdn(1), 20_000, Currency::Tzs);
    let refused = attempt(Direction::Collection, msisdn(3), 20_000, Currency::Tzs);
    let t = drive(&adapter, ok.clone(), is_final, 100).await;
    assert!(t.last().is_some_and(completed), "{t:?}");
    let t = drive(&adapter, poor, is_final, 100).await;
    assert!(
        failed_with(t.last(), FailureCode::InsufficientFunds, "4001"),
        "{t:?}"
    );
    let t = drive(&adapter, refused, is_final, 100).await;
    assert!(
        failed_with(t.last(), FailureCode::Declined, "4101"),
        "{t:?}"
    );
    let csv = reqwest::get(format!("{}/_control/statement?format=csv", mock.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.contains(&format!("200.00,TZS,credit,{}", ok.attempt_id)),
        "{csv}"
    );
}

#[tokio::test]
async fn an_attempt_payment_hub_never_saw_is_not_found_and_one_it_accepted_is_pending() {
    let (_mock, adapter) = setup().await;
    let mut a = attempt(Direction::Disbursement, msisdn(0), 1_000, Currency::Tzs);
    assert_eq!(adapter.inquire(&a).await.unwrap(), RailStatus::NotFound);
    a.rail_reference = Some("a-transaction-id".into());
    assert_eq!(adapter.inquire(&a).await.unwrap(), RailStatus::Pending);
}

fn request(path: &str, query: Option<&str>) -> InboundRequest {
    InboundRequest {
        method: http::Method::POST,
        path: path.into(),
        query: query.map(str::to_owned),
        headers: Default::default(),
        body: bytes::Bytes::from_static(br#"{"clientCorrelationId":"x","batchId":"b","message":"The Batch Aggregation API was complete with : 100"}"#),
        received_at: chrono::Utc::now(),
        peer: None,
    }
}

#[tokio::test]
async fn forged_callbacks_are_refused() {
    let (_mock, adapter) = setup().await;
    // Single transfers have no callbacks at all; anything posing as one is refused.
    assert_eq!(
        adapter
            .callback(&request("/transfers/x", None))
            .unwrap_err(),
        CallbackError::UnknownRoute
    );
    assert!(matches!(
        adapter.callback(&request(BATCH_CALLBACK_PATH, Some("token=guess"))),
        Err(CallbackError::Unauthenticated(_))
    ));
    assert!(matches!(
        adapter.callback(&request(BATCH_CALLBACK_PATH, None)),
        Err(CallbackError::Unauthenticated(_))
    ));
    let ok = adapter
        .callback(&request(BATCH_CALLBACK_PATH, Some("token=cb-secret-token")))
        .unwrap();
    assert!(ok.events.is_empty());
    assert_eq!(ok.status, 200);
    let url = batch_callback_url("http://gw", "mifos", &Secret::new("t"));
    assert_eq!(url, "http://gw/rails/mifos/batch-callback?token=t");
}

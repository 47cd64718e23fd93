//! The MMAPI adapter against its mock over real HTTP: every scenario of the table in both
//! directions, batches, reversals, OAuth token refresh, polling mode and forged callbacks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use railgate_testkit as harness;

use harness::{attempt, drive, eventually, paid, set_faults, End, Receiver, Until};
use railgate_mmapi::mock::{MmapiMock, MmapiMockConfig};
use railgate_mmapi::{
    Auth, BatchProgress, BatchSubmitted, CallbackAuth, MmapiAdapter, MmapiConfig, Notification,
    Secret,
};
use railgate_rail::oauth::OAuthConfig;
use railgate_rail::{
    CallbackError, CallbackOutcome, Currency, Direction, FailureCode, InboundRequest, PartyIdType,
    RailAdapter, RailStatus, Submitted,
};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const RAIL: &str = "mmapi-tz";

struct Setup {
    mock: MmapiMock,
    receiver: Receiver,
    adapter: Arc<MmapiAdapter>,
}

impl Setup {
    fn control(&self) -> String {
        self.mock.control_url()
    }
}

fn mock_config() -> MmapiMockConfig {
    MmapiMockConfig {
        api_key: Some("test-api-key".into()),
        callback_credentials: Some(("operator".into(), "callback-pass".into())),
        ..MmapiMockConfig::default()
    }
}

async fn setup_with(
    mock_cfg: MmapiMockConfig,
    tweak: impl FnOnce(&mut MmapiConfig, &MmapiMock),
) -> Setup {
    let mock = MmapiMock::start(mock_cfg).await.unwrap();
    let mut receiver = Receiver::bind().await;
    let mut config = MmapiConfig::new(
        RAIL,
        mock.base_url(),
        receiver.base(RAIL),
        Auth::ApiKey {
            api_key: Secret::new("test-api-key"),
        },
        CallbackAuth::Basic {
            username: "operator".into(),
            password: Secret::new("callback-pass"),
        },
        vec![("accountid".into(), "2000023".into())],
        vec![Currency::Tzs, Currency::Ugx],
    );
    config.request_timeout = Duration::from_secs(5);
    tweak(&mut config, &mock);
    let adapter = Arc::new(MmapiAdapter::new(config).unwrap());
    receiver.serve(adapter.clone());
    Setup {
        mock,
        receiver,
        adapter,
    }
}

async fn setup() -> Setup {
    setup_with(mock_config(), |_, _| {}).await
}

fn msisdn(digits: u8) -> String {
    format!("2557123456{digits:02}")
}

/// Runs one scenario of the table and checks the end the gateway must reach.
async fn scenario(direction: Direction, digits: u8) {
    let s = setup().await;
    let a = attempt(
        direction,
        PartyIdType::Msisdn,
        &msisdn(digits),
        "1500.50",
        Currency::Tzs,
    );
    let id = a.attempt_id;
    let until = match digits {
        7 => Until {
            events: 3,
            ..Until::default()
        },
        8 => Until {
            refused: 1,
            ..Until::default()
        },
        11 => Until {
            conflict: true,
            ..Until::default()
        },
        12 => Until {
            limit: Duration::from_secs(3),
            ..Until::default()
        },
        _ => Until::default(),
    };
    let run = drive(s.adapter.as_ref(), &s.receiver, a, until).await;
    let paid_count = paid(&s.control(), id).await;
    match digits {
        0 => {
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert!(!run.by_inquiry, "completed by the callback");
            assert_eq!(paid_count, 1);
        }
        1..=3 => {
            let End::Failed(f) = &run.end else {
                panic!("{run:?}")
            };
            let expected = match digits {
                1 => (
                    FailureCode::InsufficientFunds,
                    "businessRule/insufficientFunds",
                ),
                2 => (FailureCode::PartyNotFound, "identification/identifierError"),
                _ => (FailureCode::Declined, "authorisation/requestDeclined"),
            };
            assert_eq!(
                (f.code, f.rail_code.as_deref()),
                (expected.0, Some(expected.1))
            );
            assert_eq!(paid_count, 0);
        }
        4 => {
            assert!(matches!(run.submitted, Some(Submitted::Accepted { .. })));
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert_eq!(paid_count, 1);
        }
        5 => {
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert!(run.by_inquiry);
            assert!(s.receiver.events_for(id).is_empty());
            assert_eq!(paid_count, 1);
        }
        6 => {
            let End::Failed(f) = &run.end else {
                panic!("{run:?}")
            };
            assert!(run.by_inquiry);
            assert_eq!(f.rail_code.as_deref(), Some("businessRule/incorrectState"));
            assert_eq!(paid_count, 0);
        }
        7 => {
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            let events = s.receiver.events_for(id);
            assert_eq!(events.len(), 3);
            assert!(
                events
                    .iter()
                    .all(|e| e.callback_id == events[0].callback_id),
                "one delivery id"
            );
            assert_eq!(run.duplicates, 2);
            assert_eq!(paid_count, 1);
        }
        8 => {
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert!(run.by_inquiry);
            assert!(
                s.receiver.events_for(id).is_empty(),
                "the forged callback changed nothing"
            );
            assert!(matches!(
                s.receiver.seen.lock().unwrap().refused[0],
                CallbackError::Unauthenticated(_)
            ));
            assert_eq!(paid_count, 1);
        }
        9 => {
            assert_eq!(run.retryable_errors, 2);
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert_eq!(paid_count, 1);
        }
        10 => {
            assert!(run.submit_unknown);
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert!(run.by_inquiry);
            // A resend of the same attempt is recognised as one and recovered, not paid again.
            let again = s.adapter.submit(&run.attempt).await.unwrap();
            assert!(matches!(again, Submitted::Completed(_)), "{again:?}");
            assert_eq!(paid(&s.control(), id).await, 1);
        }
        11 => {
            assert!(run.conflict, "{run:?}");
            assert_eq!(paid_count, 1);
        }
        12 => {
            assert!(run.submit_unknown);
            assert_eq!(run.end, End::Unknown);
            assert!(run.inquiries >= 2);
            assert_eq!(paid_count, 0);
        }
        _ => unreachable!(),
    }
}

macro_rules! scenarios {
    ($($name:ident: $dir:ident, $digits:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenario(Direction::$dir, $digits).await
        }
    )*};
}

scenarios! {
    disbursement_00_success: Disbursement, 0;
    disbursement_01_insufficient_funds: Disbursement, 1;
    disbursement_02_party_not_found: Disbursement, 2;
    disbursement_03_declined: Disbursement, 3;
    disbursement_04_pending_then_success: Disbursement, 4;
    disbursement_05_no_callback_inquiry_success: Disbursement, 5;
    disbursement_06_no_callback_inquiry_failure: Disbursement, 6;
    disbursement_07_triple_callback_posted_once: Disbursement, 7;
    disbursement_08_forged_callback_refused: Disbursement, 8;
    disbursement_09_unavailable_twice_then_paid_once: Disbursement, 9;
    disbursement_10_dropped_connection_settled_by_inquiry: Disbursement, 10;
    disbursement_11_failure_then_success_is_a_conflict: Disbursement, 11;
    disbursement_12_inquiry_never_answers: Disbursement, 12;
    collection_00_success: Collection, 0;
    collection_01_insufficient_funds: Collection, 1;
    collection_02_party_not_found: Collection, 2;
    collection_03_declined: Collection, 3;
    collection_04_pending_then_success: Collection, 4;
    collection_05_no_callback_inquiry_success: Collection, 5;
    collection_06_no_callback_inquiry_failure: Collection, 6;
    collection_07_triple_callback_posted_once: Collection, 7;
    collection_08_forged_callback_refused: Collection, 8;
    collection_09_unavailable_twice_then_paid_once: Collection, 9;
    collection_10_dropped_connection_settled_by_inquiry: Collection, 10;
    collection_11_failure_then_success_is_a_conflict: Collection, 11;
    collection_12_inquiry_never_answers: Collection, 12;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_disbursement_reports_each_item_and_is_not_paid_twice() {
    let s = setup().await;
    let attempts: Vec<_> = [0u8, 1, 2, 5, 7]
        .iter()
        .map(|d| {
            attempt(
                Direction::Disbursement,
                PartyIdType::Msisdn,
                &msisdn(*d),
                "2500",
                Currency::Tzs,
            )
        })
        .collect();
    let batch_id = Uuid::new_v4();
    let BatchSubmitted::Accepted {
        server_correlation_id,
    } = s
        .adapter
        .submit_batch(batch_id, "November payroll", &attempts)
        .await
        .unwrap()
    else {
        panic!("batch refused")
    };
    // The batch callback arrives on /batches/{id} and is answered without events.
    assert!(
        eventually(
            || s.receiver
                .seen
                .lock()
                .unwrap()
                .paths
                .iter()
                .any(|p| p.ends_with(&format!("/batches/{batch_id}"))),
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(s.receiver.refused(), 0);
    let mut progress = BatchProgress::Pending;
    for _ in 0..100 {
        progress = s
            .adapter
            .batch_progress(&server_correlation_id)
            .await
            .unwrap();
        if matches!(progress, BatchProgress::Completed { .. }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let BatchProgress::Completed {
        batch_ref,
        completed,
        rejected,
    } = progress
    else {
        panic!("{progress:?}")
    };
    assert_eq!((completed, rejected), (Some(3), Some(2)));
    let results = s.adapter.batch_results(&batch_ref).await.unwrap();
    assert_eq!(results.len(), 5);
    for (a, d) in attempts.iter().zip([0u8, 1, 2, 5, 7]) {
        let r = results
            .iter()
            .find(|r| r.attempt_id == a.attempt_id)
            .unwrap();
        match d {
            1 => assert!(
                matches!(&r.status, RailStatus::Failed(f) if f.code == FailureCode::InsufficientFunds)
            ),
            2 => assert!(
                matches!(&r.status, RailStatus::Failed(f) if f.code == FailureCode::PartyNotFound)
            ),
            _ => assert!(matches!(r.status, RailStatus::Completed(_))),
        }
    }
    // Resending the same batch is recognised by its correlation id and executes nothing.
    let again = s
        .adapter
        .submit_batch(batch_id, "November payroll", &attempts)
        .await
        .unwrap();
    assert!(
        matches!(again, BatchSubmitted::Accepted { .. }),
        "{again:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (a, d) in attempts.iter().zip([0u8, 1, 2, 5, 7]) {
        let expected = if d == 1 || d == 2 { 0 } else { 1 };
        assert_eq!(paid(&s.control(), a.attempt_id).await, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversal_of_a_completed_payment() {
    let s = setup().await;
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "1000",
        Currency::Tzs,
    );
    let run = drive(s.adapter.as_ref(), &s.receiver, a, Until::default()).await;
    let End::Completed(settled) = run.end else {
        panic!("{run:?}")
    };
    let reference = settled.rail_reference.unwrap();
    let reversal_id = Uuid::new_v4();
    let first = s
        .adapter
        .reverse(reversal_id, &reference, None)
        .await
        .unwrap();
    assert!(matches!(first, Submitted::Accepted { .. }), "{first:?}");
    assert!(
        eventually(
            || s.receiver
                .events_for(reversal_id)
                .iter()
                .any(|e| matches!(e.outcome, CallbackOutcome::Completed(_))),
            Duration::from_secs(10)
        )
        .await
    );
    assert!(matches!(
        s.adapter.inquire_reversal(reversal_id).await.unwrap(),
        RailStatus::Completed(_)
    ));
    // The same reversal id again is a duplicate, recovered; a new id is refused (already reversed).
    let again = s
        .adapter
        .reverse(reversal_id, &reference, None)
        .await
        .unwrap();
    assert!(matches!(again, Submitted::Completed(_)), "{again:?}");
    let other = s
        .adapter
        .reverse(Uuid::new_v4(), &reference, None)
        .await
        .unwrap();
    assert!(matches!(other, Submitted::Rejected(_)), "{other:?}");
    let csv = reqwest::get(format!("{}/statement?format=csv", s.control()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv.lines().filter(|l| l.contains(",reversal,")).count(),
        1,
        "{csv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_token_is_cached_and_refreshed_before_expiry() {
    let cfg = MmapiMockConfig {
        api_key: None,
        oauth_client: Some(("client-1".into(), "client-secret".into())),
        token_lifetime: Duration::from_secs(4),
        ..mock_config()
    };
    let s = setup_with(cfg, |c, mock| {
        c.auth = Auth::OAuth2 {
            oauth: OAuthConfig::client_credentials(
                mock.token_url(),
                "client-1",
                Secret::new("client-secret"),
            ),
            api_key: None,
        };
    })
    .await;
    let issued = |url: String| async move {
        let v: serde_json::Value = reqwest::get(format!("{url}/tokens"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["issued"].as_u64().unwrap()
    };
    for _ in 0..3 {
        let a = attempt(
            Direction::Disbursement,
            PartyIdType::Msisdn,
            &msisdn(0),
            "10",
            Currency::Tzs,
        );
        assert!(matches!(
            s.adapter.submit(&a).await.unwrap(),
            Submitted::Accepted { .. }
        ));
    }
    assert_eq!(issued(s.control()).await, 1, "one token for three calls");
    // The 4 s token is refreshed two seconds before it expires (the margin never takes more
    // than half a token's life).
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "10",
        Currency::Tzs,
    );
    assert!(matches!(
        s.adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
    assert_eq!(issued(s.control()).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_mode_settles_by_inquiry() {
    let s = setup_with(mock_config(), |c, _| c.notification = Notification::Polling).await;
    let a = attempt(
        Direction::Collection,
        PartyIdType::Msisdn,
        &msisdn(0),
        "700",
        Currency::Ugx,
    );
    let id = a.attempt_id;
    let run = drive(s.adapter.as_ref(), &s.receiver, a, Until::default()).await;
    assert!(
        matches!(run.end, End::Completed(_)) && run.by_inquiry,
        "{run:?}"
    );
    assert!(
        s.receiver.seen.lock().unwrap().paths.is_empty(),
        "no callback in polling mode"
    );
    assert_eq!(paid(&s.control(), id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_secret_callbacks_and_forgery() {
    let s = setup_with(
        MmapiMockConfig {
            callback_credentials: None,
            ..mock_config()
        },
        |c, _| c.callback_auth = CallbackAuth::PathSecret(Secret::new("s3cr3t-path-token")),
    )
    .await;
    let ok = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "10",
        Currency::Tzs,
    );
    let run = drive(s.adapter.as_ref(), &s.receiver, ok, Until::default()).await;
    assert!(
        matches!(run.end, End::Completed(_)) && !run.by_inquiry,
        "{run:?}"
    );
    let forged = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(8),
        "10",
        Currency::Tzs,
    );
    let run = drive(
        s.adapter.as_ref(),
        &s.receiver,
        forged,
        Until {
            refused: 1,
            ..Until::default()
        },
    )
    .await;
    assert!(
        matches!(run.end, End::Completed(_)) && run.by_inquiry,
        "{run:?}"
    );
    assert!(s.receiver.events_for(run.attempt.attempt_id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_callbacks_are_refused() {
    let s = setup().await;
    let id = Uuid::new_v4();
    let body = bytes::Bytes::from_static(
        br#"{"transactionReference":"MMT1","transactionStatus":"completed","amount":"10.00","currency":"TZS"}"#,
    );
    let request = |auth: Option<&str>, hash: Option<String>, corr: Option<String>| {
        let mut headers = http::HeaderMap::new();
        if let Some(a) = auth {
            headers.insert("Authorization", a.parse().unwrap());
        }
        if let Some(h) = hash {
            headers.insert("X-Content-Hash", h.parse().unwrap());
        }
        if let Some(c) = corr {
            headers.insert("X-CorrelationID", c.parse().unwrap());
        }
        InboundRequest {
            method: http::Method::PUT,
            path: format!("/transactions/{id}"),
            query: None,
            headers,
            body: body.clone(),
            received_at: chrono::Utc::now(),
            peer: None,
        }
    };
    use base64::Engine as _;
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("operator:callback-pass")
    );
    let bad = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("operator:guess")
    );
    let hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&body))
    };
    assert!(matches!(
        s.adapter.callback(&request(None, None, None)),
        Err(CallbackError::Unauthenticated(_))
    ));
    assert!(matches!(
        s.adapter
            .callback(&request(Some(&bad), Some(hash.clone()), None)),
        Err(CallbackError::Unauthenticated(_))
    ));
    assert!(matches!(
        s.adapter
            .callback(&request(Some(&good), Some("00".repeat(32)), None)),
        Err(CallbackError::Unauthenticated(_))
    ));
    assert!(matches!(
        s.adapter.callback(&request(
            Some(&good),
            Some(hash.clone()),
            Some(Uuid::new_v4().to_string())
        )),
        Err(CallbackError::Malformed(_))
    ));
    let reply = s
        .adapter
        .callback(&request(Some(&good), Some(hash), Some(id.to_string())))
        .unwrap();
    assert_eq!(reply.status, 204);
    assert!(matches!(
        reply.events[0].outcome,
        CallbackOutcome::Completed(_)
    ));
    // Providers may PUT a request state or an error object instead of the transaction.
    let with_body = |body: &'static str| {
        let hash = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(body.as_bytes()))
        };
        let mut r = request(Some(&good), Some(hash), None);
        r.body = bytes::Bytes::from_static(body.as_bytes());
        r
    };
    let state = s
        .adapter
        .callback(&with_body(
            r#"{"serverCorrelationId":"0b9c2a7e-1d3f-4e4a-9a7c-2f1e0d3c4b5a","status":"completed","notificationMethod":"callback","objectReference":"MMT9"}"#,
        ))
        .unwrap();
    assert!(
        matches!(&state.events[0].outcome, CallbackOutcome::Completed(s) if s.rail_reference.as_deref() == Some("MMT9"))
    );
    let error = s
        .adapter
        .callback(&with_body(
            r#"{"errorCategory":"BusinessRule","errorCode":"DailyValueLimitExceeded","errordescription":"limit"}"#,
        ))
        .unwrap();
    assert!(
        matches!(&error.events[0].outcome, CallbackOutcome::Failed(f) if f.code == FailureCode::LimitExceeded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_provider_callback_before_ack_duplicates_and_lost_callbacks() {
    let s = setup().await;
    set_faults(
        &s.control(),
        serde_json::json!({"callback_before_ack": true, "duplicate_callbacks": true}),
    )
    .await;
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "10",
        Currency::Tzs,
    );
    let id = a.attempt_id;
    let submitted = s.adapter.submit(&a).await.unwrap();
    // The result arrived (twice) before the acknowledgement did.
    assert_eq!(s.receiver.events_for(id).len(), 2);
    assert!(matches!(submitted, Submitted::Accepted { .. }));
    set_faults(&s.control(), serde_json::json!({"drop_callbacks": true})).await;
    let lost = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "10",
        Currency::Tzs,
    );
    let run = drive(s.adapter.as_ref(), &s.receiver, lost, Until::default()).await;
    assert!(
        matches!(run.end, End::Completed(_)) && run.by_inquiry,
        "{run:?}"
    );
    set_faults(&s.control(), serde_json::json!({"error_rate_percent": 100})).await;
    let refused = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "10",
        Currency::Tzs,
    );
    assert!(matches!(
        s.adapter.submit(&refused).await,
        Err(railgate_rail::RailError::Retryable(_))
    ));
    assert_eq!(paid(&s.control(), refused.attempt_id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_lists_what_was_paid() {
    let s = setup().await;
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "1500.50",
        Currency::Tzs,
    );
    let reference = a.reference.clone();
    let run = drive(s.adapter.as_ref(), &s.receiver, a, Until::default()).await;
    assert!(matches!(run.end, End::Completed(_)));
    let csv = reqwest::get(format!("{}/statement?format=csv", s.control()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee")
    );
    let line = lines.next().unwrap();
    assert!(
        line.contains(&format!(
            ",1500.50,TZS,disbursement,{reference},255712345600,MMT"
        )),
        "{line}"
    );
}

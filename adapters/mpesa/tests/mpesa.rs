//! The M-Pesa adapter against its mock over real HTTP: every scenario of the table for B2C
//! disbursements and STK push collections, token expiry and refresh, whole shillings,
//! forged callbacks, and unknown outcomes settled by query without paying twice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use railgate_testkit as harness;

use harness::{attempt, drive, eventually, paid, set_faults, End, Receiver, Until};
use railgate_mpesa::mock::{MpesaMock, MpesaMockConfig};
use railgate_mpesa::{
    B2cConfig, CommandId, MpesaAdapter, MpesaConfig, Secret, StkConfig, StkTransactionType,
};
use railgate_rail::{
    CallbackError, CallbackOutcome, Currency, Direction, FailureCode, InboundRequest, PartyIdType,
    RailAdapter, RailError, RailStatus, Submitted,
};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const RAIL: &str = "mpesa-ke";
const SECRET: &str = "k3Jd9sP2qLx7Vb4NcR8tYw1Zm6Hf5GaE";

struct Setup {
    mock: MpesaMock,
    receiver: Receiver,
    adapter: Arc<MpesaAdapter>,
}

impl Setup {
    fn control(&self) -> String {
        self.mock.control_url()
    }
}

async fn setup_with(mock_cfg: MpesaMockConfig, tweak: impl FnOnce(&mut MpesaConfig)) -> Setup {
    let mock = MpesaMock::start(mock_cfg.clone()).await.unwrap();
    let mut receiver = Receiver::bind().await;
    let mut config = MpesaConfig::new(
        RAIL,
        mock.base_url(),
        receiver.base(RAIL),
        Secret::new(SECRET),
        mock_cfg.consumer_key.clone(),
        Secret::new(mock_cfg.consumer_secret.clone()),
    );
    config.b2c = Some(B2cConfig {
        initiator_name: "railgate_api".into(),
        security_credential: Secret::new("c2VjdXJpdHktY3JlZGVudGlhbA=="),
        shortcode: "600997".into(),
        command_id: CommandId::SalaryPayment,
    });
    config.stk = Some(StkConfig {
        shortcode: mock_cfg.stk_shortcode.clone(),
        passkey: Secret::new(mock_cfg.passkey.clone()),
        transaction_type: StkTransactionType::CustomerPayBillOnline,
        party_b: mock_cfg.stk_shortcode.clone(),
    });
    config.request_timeout = Duration::from_secs(5);
    tweak(&mut config);
    let adapter = Arc::new(MpesaAdapter::new(config).unwrap());
    receiver.serve(adapter.clone());
    Setup {
        mock,
        receiver,
        adapter,
    }
}

async fn setup() -> Setup {
    setup_with(MpesaMockConfig::default(), |_| {}).await
}

fn msisdn(digits: u8) -> String {
    format!("2547123456{digits:02}")
}

fn status_result_seen(s: &Setup, id: Uuid) -> bool {
    let path = format!("/status/{id}/result");
    s.receiver
        .seen
        .lock()
        .unwrap()
        .paths
        .iter()
        .any(|p| p.ends_with(&path))
}

async fn scenario(direction: Direction, digits: u8) {
    let s = setup().await;
    let a = attempt(
        direction,
        PartyIdType::Msisdn,
        &msisdn(digits),
        "1500",
        Currency::Kes,
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
    let b2c = direction == Direction::Disbursement;
    // B2C inquiries answer by callback on the status route; STK Query answers at once.
    let settled_by_query = |run: &harness::Run| {
        if b2c {
            run.inquiries >= 1 && status_result_seen(&s, id)
        } else {
            run.by_inquiry
        }
    };
    match digits {
        0 => {
            let End::Completed(settled) = &run.end else {
                panic!("{run:?}")
            };
            assert!(
                settled.receipt.as_deref().is_some_and(|r| r.len() == 10),
                "{settled:?}"
            );
            assert!(!run.by_inquiry);
            assert_eq!(paid_count, 1);
        }
        1..=3 => {
            let End::Failed(f) = &run.end else {
                panic!("{run:?}")
            };
            let expected = match (digits, b2c) {
                (1, _) => (FailureCode::InsufficientFunds, "1"),
                (2, true) => (FailureCode::PartyNotFound, "2040"),
                (2, false) => (FailureCode::PartyNotFound, "1037"),
                (_, true) => (FailureCode::RailRejected, "2028"),
                (_, false) => (FailureCode::Declined, "1032"),
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
            assert!(settled_by_query(&run), "{run:?}");
            assert_eq!(paid_count, 1);
        }
        6 => {
            let End::Failed(f) = &run.end else {
                panic!("{run:?}")
            };
            assert!(settled_by_query(&run), "{run:?}");
            if !b2c {
                assert_eq!(
                    (f.code, f.rail_code.as_deref()),
                    (FailureCode::Declined, Some("1032"))
                );
            }
            assert_eq!(paid_count, 0);
        }
        7 => {
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            let events = s.receiver.events_for(id);
            assert_eq!(events.len(), 3);
            assert!(events
                .iter()
                .all(|e| e.callback_id == events[0].callback_id));
            assert_eq!(run.duplicates, 2);
            assert_eq!(paid_count, 1);
        }
        8 => {
            assert!(matches!(run.end, End::Completed(_)), "{run:?}");
            assert!(settled_by_query(&run), "{run:?}");
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
            if b2c {
                assert!(settled_by_query(&run), "{run:?}");
            } else {
                // STK push has no client key: the callback, which names the attempt in its
                // path, settles it; STK Query cannot be asked without the CheckoutRequestID.
                assert!(matches!(
                    s.adapter.inquire(&run.attempt).await,
                    Err(RailError::Unknown(_))
                ));
            }
            let again = s.adapter.submit(&run.attempt).await.unwrap();
            assert!(matches!(again, Submitted::Accepted { .. }), "{again:?}");
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(paid(&s.control(), id).await, 1, "never paid twice");
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
    b2c_00_success: Disbursement, 0;
    b2c_01_insufficient_funds: Disbursement, 1;
    b2c_02_party_not_found: Disbursement, 2;
    b2c_03_refused: Disbursement, 3;
    b2c_04_pending_then_success: Disbursement, 4;
    b2c_05_no_callback_status_query_success: Disbursement, 5;
    b2c_06_no_callback_status_query_failure: Disbursement, 6;
    b2c_07_triple_result_posted_once: Disbursement, 7;
    b2c_08_forged_result_refused: Disbursement, 8;
    b2c_09_unavailable_twice_then_paid_once: Disbursement, 9;
    b2c_10_dropped_connection_settled_by_status_query: Disbursement, 10;
    b2c_11_failure_then_success_is_a_conflict: Disbursement, 11;
    b2c_12_status_query_never_answers: Disbursement, 12;
    stk_00_success: Collection, 0;
    stk_01_insufficient_funds: Collection, 1;
    stk_02_party_unreachable: Collection, 2;
    stk_03_cancelled_by_payer: Collection, 3;
    stk_04_pending_then_success: Collection, 4;
    stk_05_no_callback_query_success: Collection, 5;
    stk_06_no_callback_query_failure: Collection, 6;
    stk_07_triple_callback_posted_once: Collection, 7;
    stk_08_forged_callback_refused: Collection, 8;
    stk_09_unavailable_twice_then_paid_once: Collection, 9;
    stk_10_dropped_connection_settled_by_callback: Collection, 10;
    stk_11_failure_then_success_is_a_conflict: Collection, 11;
    stk_12_never_answers: Collection, 12;
}

async fn tokens_issued(control: &str) -> u64 {
    let v: serde_json::Value = reqwest::get(format!("{control}/tokens"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["issued"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_shared_cached_and_refreshed_before_expiry() {
    let s = setup_with(
        MpesaMockConfig {
            token_lifetime: Duration::from_secs(4),
            ..MpesaMockConfig::default()
        },
        |c| c.token_refresh_margin = Duration::from_millis(1500),
    )
    .await;
    // Concurrent first calls share one token fetch.
    let calls = (0..6).map(|_| {
        let adapter = s.adapter.clone();
        tokio::spawn(async move {
            let a = attempt(
                Direction::Disbursement,
                PartyIdType::Msisdn,
                &msisdn(5),
                "100",
                Currency::Kes,
            );
            adapter.submit(&a).await
        })
    });
    for c in calls {
        assert!(matches!(c.await.unwrap(), Ok(Submitted::Accepted { .. })));
    }
    assert_eq!(tokens_issued(&s.control()).await, 1);
    // Refreshed 1.5 s before the 4 s lifetime ends, so no call ever meets an expired token.
    tokio::time::sleep(Duration::from_millis(2800)).await;
    let a = attempt(
        Direction::Collection,
        PartyIdType::Msisdn,
        &msisdn(5),
        "100",
        Currency::Kes,
    );
    assert!(matches!(
        s.adapter.submit(&a).await,
        Ok(Submitted::Accepted { .. })
    ));
    assert_eq!(tokens_issued(&s.control()).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_renewed_and_nothing_is_paid_twice() {
    let s = setup().await;
    let first = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(5),
        "100",
        Currency::Kes,
    );
    assert!(matches!(
        s.adapter.submit(&first).await,
        Ok(Submitted::Accepted { .. })
    ));
    let resp = reqwest::Client::new()
        .post(format!("{}/revoke_tokens", s.control()))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "100",
        Currency::Kes,
    );
    let id = a.attempt_id;
    assert!(matches!(
        s.adapter.submit(&a).await,
        Err(RailError::Retryable(_))
    ));
    assert!(matches!(
        s.adapter.submit(&a).await,
        Ok(Submitted::Accepted { .. })
    ));
    assert_eq!(tokens_issued(&s.control()).await, 2);
    assert!(
        eventually(
            || !s.receiver.events_for(id).is_empty(),
            Duration::from_secs(10)
        )
        .await
    );
    assert_eq!(paid(&s.control(), id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_with_cents_are_refused_before_sending() {
    let s = setup().await;
    assert!(s.adapter.capabilities().whole_units_only);
    for direction in [Direction::Disbursement, Direction::Collection] {
        let a = attempt(
            direction,
            PartyIdType::Msisdn,
            &msisdn(0),
            "1500.50",
            Currency::Kes,
        );
        match s.adapter.submit(&a).await {
            Err(RailError::Permanent(m)) => assert!(m.contains("whole shillings"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(tokens_issued(&s.control()).await, 0, "nothing was sent");
}

fn inbound(path: String, body: &'static str, peer: Option<std::net::SocketAddr>) -> InboundRequest {
    InboundRequest {
        method: http::Method::POST,
        path,
        query: None,
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from_static(body.as_bytes()),
        received_at: chrono::Utc::now(),
        peer,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_callbacks_are_refused() {
    let body = include_str!("../../../fixtures/mpesa/b2c-result-success.json");
    let peer: std::net::SocketAddr = "196.201.214.200:443".parse().unwrap();
    let s = setup_with(MpesaMockConfig::default(), |c| {
        c.allowed_peers = vec![peer.ip()]
    })
    .await;
    let good = s
        .adapter
        .callback(&inbound(format!("/{SECRET}/b2c/result"), body, Some(peer)))
        .unwrap();
    assert_eq!(good.status, 200);
    assert!(matches!(
        good.events[0].outcome,
        CallbackOutcome::Completed(_)
    ));
    let wrong_secret = inbound(
        "/k3Jd9sP2qLx7Vb4NcR8tYw1Zm6Hf5GaF/b2c/result".into(),
        body,
        Some(peer),
    );
    assert!(matches!(
        s.adapter.callback(&wrong_secret),
        Err(CallbackError::Unauthenticated(_))
    ));
    let no_secret = inbound("/b2c/result".into(), body, Some(peer));
    assert!(matches!(
        s.adapter.callback(&no_secret),
        Err(CallbackError::Unauthenticated(_))
    ));
    let wrong_peer = inbound(
        format!("/{SECRET}/b2c/result"),
        body,
        Some("10.1.2.3:5000".parse().unwrap()),
    );
    assert!(matches!(
        s.adapter.callback(&wrong_peer),
        Err(CallbackError::Unauthenticated(_))
    ));
    let garbage = inbound(
        format!("/{SECRET}/b2c/result"),
        "{\"Result\":{}}",
        Some(peer),
    );
    assert!(matches!(
        s.adapter.callback(&garbage),
        Err(CallbackError::Malformed(_))
    ));
    let stk_no_receipt = inbound(
        format!("/{SECRET}/stk/{}", Uuid::new_v4()),
        r#"{"Body":{"stkCallback":{"MerchantRequestID":"1","CheckoutRequestID":"ws_CO_1","ResultCode":0,"ResultDesc":"ok"}}}"#,
        Some(peer),
    );
    assert!(matches!(
        s.adapter.callback(&stk_no_receipt),
        Err(CallbackError::Malformed(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_keeps_the_attempt_pending() {
    let s = setup().await;
    let id = Uuid::new_v4();
    let body: &'static str = Box::leak(
        format!(r#"{{"Result":{{"ResultType":1,"ResultCode":1,"ResultDesc":"Request timed out in the queue","OriginatorConversationID":"{id}","ConversationID":"AG_1"}}}}"#)
            .into_boxed_str(),
    );
    let reply = s
        .adapter
        .callback(&inbound(format!("/{SECRET}/b2c/timeout"), body, None))
        .unwrap();
    assert_eq!(
        reply.events[0].attempt,
        railgate_rail::AttemptRef::Attempt(id)
    );
    assert_eq!(reply.events[0].outcome, CallbackOutcome::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_stk_query_answer_about_another_checkout_settles_nothing() {
    let s = setup().await;
    // 05: no callback ever; the query shows success.
    let mut a = attempt(
        Direction::Collection,
        PartyIdType::Msisdn,
        &msisdn(5),
        "1500",
        Currency::Kes,
    );
    let Submitted::Accepted {
        rail_reference: Some(checkout),
    } = s.adapter.submit(&a).await.unwrap()
    else {
        panic!("STK push not accepted")
    };
    a.rail_reference = Some(checkout);
    let mut completed = false;
    for _ in 0..100 {
        if matches!(s.adapter.inquire(&a).await, Ok(RailStatus::Completed(_))) {
            completed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(completed, "the rail never completed the collection");
    set_faults(
        &s.control(),
        serde_json::json!({"stk_query_other_checkout": true}),
    )
    .await;
    let answer = s.adapter.inquire(&a).await;
    assert!(
        matches!(answer, Err(RailError::Unknown(_))),
        "an answer about another checkout must settle nothing: {answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_daraja_result_before_ack_duplicates_and_lost_callbacks() {
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
        "100",
        Currency::Kes,
    );
    let id = a.attempt_id;
    assert!(matches!(
        s.adapter.submit(&a).await,
        Ok(Submitted::Accepted { .. })
    ));
    assert_eq!(
        s.receiver.events_for(id).len(),
        2,
        "the result came twice, before the ack"
    );
    set_faults(&s.control(), serde_json::json!({"drop_callbacks": true})).await;
    let lost = attempt(
        Direction::Collection,
        PartyIdType::Msisdn,
        &msisdn(0),
        "100",
        Currency::Kes,
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
        "100",
        Currency::Kes,
    );
    assert!(matches!(
        s.adapter.submit(&refused).await,
        Err(RailError::Retryable(_))
    ));
    assert_eq!(paid(&s.control(), refused.attempt_id).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_lists_both_directions() {
    let s = setup().await;
    let out = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "1500",
        Currency::Kes,
    );
    let inn = attempt(
        Direction::Collection,
        PartyIdType::Msisdn,
        &msisdn(0),
        "700",
        Currency::Kes,
    );
    for a in [out.clone(), inn.clone()] {
        let run = drive(s.adapter.as_ref(), &s.receiver, a, Until::default()).await;
        assert!(matches!(run.end, End::Completed(_)), "{run:?}");
    }
    let csv = reqwest::get(format!("{}/statement?format=csv", s.control()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.contains(&format!(
            ",1500.00,KES,disbursement,{},254712345600,SK",
            out.reference
        )),
        "{csv}"
    );
    assert!(csv.contains(",700.00,KES,collection,"), "{csv}");
    let _ = RailStatus::Pending;
}

/// Daraja over mutual TLS: the token and the payment go out with our client certificate; an
/// expired one is refused before anything is sent, and the error names the rail and TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mutual_tls_with_our_client_certificate() {
    use railgate_testkit::pki::{self, Ca};
    let ca = Ca::new("Daraja CA");
    let dir = tempfile::tempdir().unwrap();
    let mock_cfg = MpesaMockConfig {
        tls: Some(pki::server_config(&ca.server(), Some(&ca))),
        ..MpesaMockConfig::default()
    };
    let ours = pki::client_tls(dir.path(), &ca, Some(&ca.client("railgate")));
    let s = setup_with(mock_cfg.clone(), |c| c.tls = Some(ours.clone())).await;
    assert!(s.mock.base_url().starts_with("https://"));
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "100",
        Currency::Kes,
    );
    let run = drive(s.adapter.as_ref(), &s.receiver, a, Until::default()).await;
    assert!(matches!(run.end, End::Completed(_)), "{:?}", run.end);

    let expired = pki::client_tls(dir.path(), &ca, Some(&ca.expired_client("railgate")));
    let s = setup_with(mock_cfg, |c| c.tls = Some(expired)).await;
    let a = attempt(
        Direction::Disbursement,
        PartyIdType::Msisdn,
        &msisdn(0),
        "100",
        Currency::Kes,
    );
    match s.adapter.submit(&a).await {
        Err(RailError::Retryable(m)) => {
            assert!(m.contains(RAIL) && m.contains("TLS"), "{m}");
            assert!(m.contains("client certificate: it has expired"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

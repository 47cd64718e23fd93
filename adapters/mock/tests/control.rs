//! The control endpoints: paid counts, faults, reset, the statement; and malformed input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{adapter_for, attempt, attempt_in, wait_until, Harness};
use railgate_mock::{DeliveryResult, Faults, PayoutCount};
use railgate_rail::{Direction, RailAdapter, RailError, RailStatus, Submitted};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn payouts_endpoint_lists_what_was_paid() {
    let h = Harness::start().await;
    let paid = attempt("00");
    let failed = attempt("01");
    h.adapter.submit(&paid).await.unwrap();
    h.adapter.submit(&failed).await.unwrap();
    let listed: Vec<PayoutCount> = reqwest::get(format!("{}/_control/payouts", h.rail.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, h.rail.payouts());
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].attempt_id, paid.attempt_id);
    assert_eq!(listed[0].reference, paid.reference);
    assert_eq!(
        (listed[0].amount.as_str(), listed[0].currency.as_str()),
        ("1500.00", "TZS")
    );
    assert_eq!(listed[0].count, 1);
    assert_eq!(listed[1].count, 0);
}

async fn set_faults(h: &Harness, faults: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/_control/faults", h.rail.base_url()))
        .json(&faults)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn error_rate_answers_503_before_recording_anything() {
    let h = Harness::start().await;
    assert!(set_faults(&h, json!({"error_rate_percent": 100}))
        .await
        .status()
        .is_success());
    let a = attempt("00");
    for _ in 0..3 {
        assert!(matches!(
            h.adapter.submit(&a).await,
            Err(RailError::Retryable(_))
        ));
    }
    assert!(h.rail.payouts().is_empty());
    assert!(set_faults(&h, json!({"error_rate_percent": 0}))
        .await
        .status()
        .is_success());
    assert!(matches!(
        h.adapter.submit(&a).await.unwrap(),
        Submitted::Accepted { .. }
    ));
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn faults_are_validated_and_readable() {
    let h = Harness::start().await;
    assert_eq!(
        set_faults(&h, json!({"error_rate_percent": 101}))
            .await
            .status(),
        400
    );
    assert_eq!(
        set_faults(&h, json!({"latency_ms": "slow"})).await.status(),
        400
    );
    let set: Faults = set_faults(&h, json!({"drop_callbacks": true}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        set,
        Faults {
            latency_ms: 0,
            drop_callbacks: true,
            error_rate_percent: 0
        }
    );
    let read: Faults = reqwest::get(format!("{}/_control/faults", h.rail.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, set);
}

#[tokio::test]
async fn latency_beyond_the_timeout_is_unknown_and_a_resend_pays_once() {
    let h = Harness::with(common::rail_config(), Duration::from_millis(200)).await;
    h.rail.set_faults(Faults {
        latency_ms: 2_000,
        ..Faults::default()
    });
    let a = attempt("00");
    assert!(matches!(
        h.adapter.submit(&a).await,
        Err(RailError::Unknown(_))
    ));
    assert!(matches!(
        h.adapter.inquire(&a).await,
        Err(RailError::Unknown(_))
    ));
    h.rail.set_faults(Faults::default());
    // Whatever the rail did with the timed-out request, the same attempt pays at most once.
    let status = h.adapter.inquire(&a).await.unwrap();
    assert!(
        matches!(status, RailStatus::NotFound | RailStatus::Completed(_)),
        "{status:?}"
    );
    h.adapter.submit(&a).await.unwrap();
    assert_eq!(h.rail.paid_count(a.attempt_id), 1);
}

#[tokio::test]
async fn dropped_callbacks_never_arrive_and_inquiry_still_answers() {
    let h = Harness::start().await;
    h.rail.set_faults(Faults {
        drop_callbacks: true,
        ..Faults::default()
    });
    let a = attempt("00");
    h.adapter.submit(&a).await.unwrap();
    h.wait_deliveries(&a, 1).await;
    let record = h
        .rail
        .callbacks()
        .into_iter()
        .find(|c| c.request_id == a.attempt_id)
        .unwrap();
    assert_eq!(record.result, DeliveryResult::Dropped);
    assert!(h.events_for(&a).is_empty());
    assert!(matches!(
        h.adapter.inquire(&a).await.unwrap(),
        RailStatus::Completed(_)
    ));
}

#[tokio::test]
async fn unreachable_receiver_is_retried_then_given_up() {
    let h = Harness::start().await;
    // An adapter whose callback URL nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let adapter = adapter_for(&h.rail.base_url(), &dead_url, Duration::from_secs(5));
    let a = attempt("00");
    adapter.submit(&a).await.unwrap();
    h.wait_deliveries(&a, 1).await;
    let record = h
        .rail
        .callbacks()
        .into_iter()
        .find(|c| c.request_id == a.attempt_id)
        .unwrap();
    assert_eq!(record.result, DeliveryResult::Unreachable);
}

#[tokio::test]
async fn reset_forgets_everything() {
    let h = Harness::start().await;
    let a = attempt("00");
    h.adapter.submit(&a).await.unwrap();
    h.rail.set_faults(Faults {
        latency_ms: 1,
        ..Faults::default()
    });
    let response = reqwest::Client::new()
        .post(format!("{}/_control/reset", h.rail.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert!(h.rail.payouts().is_empty());
    assert_eq!(h.adapter.inquire(&a).await.unwrap(), RailStatus::NotFound);
    assert!(h.rail.statement_csv().lines().count() == 1);
}

#[tokio::test]
async fn statement_lists_each_money_movement() {
    let h = Harness::start().await;
    let payout = attempt("00");
    let collection = attempt_in("00", Direction::Collection);
    let failed = attempt("01");
    let pending = attempt("12");
    for a in [&payout, &collection, &failed, &pending] {
        h.adapter.submit(a).await.unwrap();
    }
    let response = reqwest::get(format!(
        "{}/_control/statement?format=csv",
        h.rail.base_url()
    ))
    .await
    .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "booking_date,value_date,amount,currency,direction,reference,counterparty,rail_transaction_id,fee"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for (line, a, direction) in [
        (lines[1], &payout, "DEBIT"),
        (lines[2], &collection, "CREDIT"),
    ] {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 9);
        // The date is the rail's booking day; a run across midnight may see yesterday.
        assert!(fields[0] == today || fields[0] < today.as_str(), "{line}");
        assert_eq!(fields[1], fields[0]);
        assert_eq!(
            &fields[2..6],
            &["1500.00", "TZS", direction, a.reference.as_str()]
        );
        assert_eq!(fields[6], "25********00");
        assert!(fields[7].starts_with("MR"));
        // 0.5% of 1500.00, in integers.
        assert_eq!(fields[8], "7.50");
    }
    assert!(!csv.contains("255712345600"));
    let bad = reqwest::get(format!(
        "{}/_control/statement?format=xml",
        h.rail.base_url()
    ))
    .await
    .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn malformed_submissions_get_400_and_record_nothing() {
    let h = Harness::start().await;
    let good = json!({
        "request_id": uuid::Uuid::new_v4(),
        "amount": "1500.00",
        "currency": "TZS",
        "party": {"id_type": "MSISDN", "id_value": "255712345600"},
        "reference": "BEN-1",
        "callback_url": "http://127.0.0.1:9/callback"
    });
    let cases = [
        ("amount", json!("1500.005")),
        ("amount", json!(1500.0)),
        ("amount", json!("1,500.00")),
        ("amount", json!("0.00")),
        ("currency", json!("XYZ")),
        (
            "party",
            json!({"id_type": "MSISDN", "id_value": "0712345600"}),
        ),
        (
            "party",
            json!({"id_type": "PHONE", "id_value": "255712345600"}),
        ),
        ("reference", json!("")),
        ("callback_url", json!("not a url")),
        ("request_id", json!("BEN-1")),
    ];
    let client = reqwest::Client::new();
    for (field, value) in cases {
        let mut body = good.clone();
        body[field] = value.clone();
        let response = client
            .post(format!("{}/v1/payouts", h.rail.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{field} = {value}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    // Whole units only for a currency without minor units.
    let mut ugx = good.clone();
    ugx["currency"] = json!("UGX");
    ugx["amount"] = json!("1500.5");
    let response = client
        .post(format!("{}/v1/collections", h.rail.base_url()))
        .json(&ugx)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(h.rail.payouts().is_empty());
    let response = client
        .post(format!("{}/v1/payouts", h.rail.base_url()))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn adapter_classifies_refusals_and_unreachable_rails() {
    let h = Harness::start().await;
    // A callback URL the rail refuses: a 400 can never succeed as it is.
    let misconfigured = adapter_for(&h.rail.base_url(), "not a url", Duration::from_secs(5));
    assert!(matches!(
        misconfigured.submit(&attempt("00")).await,
        Err(RailError::Permanent(_))
    ));
    // A base URL that is not the rail's: 404 without the rail's body is not "not found".
    let wrong_path = adapter_for(
        &format!("{}/nowhere", h.rail.base_url()),
        &h.receiver_url,
        Duration::from_secs(5),
    );
    assert!(matches!(
        wrong_path.inquire(&attempt("00")).await,
        Err(RailError::Permanent(_))
    ));
    assert!(matches!(
        wrong_path.submit(&attempt("00")).await,
        Err(RailError::Permanent(_))
    ));
    // Nobody listening: nothing can have been sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = adapter_for(&dead, &h.receiver_url, Duration::from_secs(5));
    assert!(matches!(
        unreachable.submit(&attempt("00")).await,
        Err(RailError::Retryable(_))
    ));
    assert!(matches!(
        unreachable.inquire(&attempt("00")).await,
        Err(RailError::Retryable(_))
    ));
    // An attempt the rail never saw.
    assert_eq!(
        h.adapter.inquire(&attempt("00")).await.unwrap(),
        RailStatus::NotFound
    );
    assert!(h.rail.payouts().is_empty());
}

#[tokio::test]
async fn capabilities_and_identity() {
    let h = Harness::start().await;
    let caps = h.adapter.capabilities();
    assert!(caps.disbursement && caps.request_to_pay && caps.inquiry);
    assert!(caps.bulk);
    assert_eq!(
        h.adapter.batch_support().map(|b| b.max_lines),
        Some(railgate_mock::MAX_BATCH_LINES)
    );
    assert!(caps.currencies.contains(&railgate_rail::Currency::Tzs));
    assert_eq!(h.adapter.id(), "mock");
}

#[tokio::test]
async fn shutdown_stops_the_rail() {
    let h = Harness::start().await;
    let base = h.rail.base_url();
    let a = attempt("12");
    h.adapter.submit(&a).await.unwrap();
    h.rail.shutdown().await.unwrap();
    let stopped =
        wait_until(|| std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err())
            .await;
    assert!(stopped);
}

// The batch API follows the scenario table per line: 09 refuses the whole upload twice with
// nothing recorded, 07 is listed twice, 11 fails then succeeds, 04 settles after its delay; a
// resend of the same batch id records nothing new, and every line is also answered on its own.
#[tokio::test]
async fn batches_follow_the_scenario_table_per_line() {
    use railgate_rail::{BatchAck, BatchState};
    let h = Harness::start().await;
    let lines: Vec<_> = ["00", "01", "02", "04", "07", "09", "11"]
        .iter()
        .map(|d| attempt(d))
        .collect();
    let batch_id = uuid::Uuid::now_v7();
    for _ in 0..2 {
        assert!(matches!(
            h.adapter.submit_batch(batch_id, &lines).await,
            Err(RailError::Retryable(_))
        ));
    }
    assert!(h.rail.payouts().is_empty());
    let ack = h.adapter.submit_batch(batch_id, &lines).await.unwrap();
    let BatchAck::Accepted { batch_ref } = ack else {
        panic!("{ack:?}")
    };
    assert!(matches!(
        h.adapter.submit_batch(batch_id, &lines).await,
        Ok(BatchAck::Accepted { .. })
    ));
    assert_eq!(h.rail.payouts().len(), lines.len());
    // Every line comes back, page after page.
    let page = h.adapter.batch_results(&batch_ref, None).await.unwrap();
    assert_eq!(page.state, BatchState::Open, "04 is still pending");
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = h
            .adapter
            .batch_results(&batch_ref, cursor.as_deref())
            .await
            .unwrap();
        seen.extend(page.lines);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    let of = |a: &railgate_rail::Attempt| {
        seen.iter()
            .filter(|r| r.attempt_id == a.attempt_id)
            .map(|r| r.status.clone())
            .collect::<Vec<_>>()
    };
    assert!(matches!(of(&lines[0])[..], [RailStatus::Completed(_)]));
    assert!(matches!(of(&lines[1])[..], [RailStatus::Failed(_)]));
    assert!(matches!(of(&lines[2])[..], [RailStatus::Failed(_)]));
    assert!(matches!(of(&lines[3])[..], [RailStatus::Pending]));
    assert!(matches!(
        of(&lines[4])[..],
        [RailStatus::Completed(_), RailStatus::Completed(_)]
    ));
    assert!(matches!(of(&lines[5])[..], [RailStatus::Completed(_)]));
    assert!(matches!(
        of(&lines[6])[..],
        [RailStatus::Failed(_), RailStatus::Completed(_)]
    ));
    // Each line answers on its own too; 04 settles once its delay is past.
    assert!(matches!(
        h.adapter.inquire(&lines[0]).await.unwrap(),
        RailStatus::Completed(_)
    ));
    assert!(
        common::wait_until_async(|| async {
            matches!(
                h.adapter.inquire(&lines[3]).await,
                Ok(RailStatus::Completed(_))
            )
        })
        .await
    );
    for (a, paid) in lines.iter().zip([1, 0, 0, 1, 1, 1, 1]) {
        assert_eq!(h.rail.paid_count(a.attempt_id), paid, "{:?}", a.party);
    }
}

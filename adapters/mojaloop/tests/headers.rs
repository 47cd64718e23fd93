//! The full header set of every kind of FSPIOP message Railgate sends, as the hub receives it
//! over loopback: requests carry the resource's versioned `Accept`, and no message is left
//! with the HTTP client's default `Accept: */*`, which the switch refuses on callbacks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::Utc;
use common::{Gateway, Options, Status, OUR_FSP, SCHEME_ID};
use railgate_mojaloop::jws::Protected;
use railgate_mojaloop::mock::{PushRequest, Received};
use railgate_mojaloop::wire;
use railgate_rail::{Direction, InboundRequest, RailAdapter};
use serde_json::json;
use std::collections::BTreeMap;

const MOCK_DFSP: &str = "mockdfsp";

/// Header names to values, as compared.
type Headers = BTreeMap<String, String>;

/// The kind of a message: its method and path with ids replaced by `{id}`.
fn kind(r: &Received) -> String {
    let segments: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let shape = match segments.as_slice() {
        ["parties", t, _, ..] if r.path.ends_with("/error") => format!("parties/{t}/{{id}}/error"),
        ["parties", t, ..] => format!("parties/{t}/{{id}}"),
        [resource] => (*resource).to_owned(),
        [resource, _] => format!("{resource}/{{id}}"),
        [resource, _, "error"] => format!("{resource}/{{id}}/error"),
        _ => r.path.clone(),
    };
    format!("{} /{shape}", r.method)
}

/// Header names and values, except the ones whose value changes per message (or per run).
fn header_set(r: &Received) -> BTreeMap<String, String> {
    r.headers
        .iter()
        .filter(|(k, _)| k != "host")
        .map(|(k, v)| {
            let v = match k.as_str() {
                "date" | "content-length" | "fspiop-signature" => "*".to_owned(),
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// With JWS on, a message with a body also carries its signature, URI and method.
fn signed(mut h: BTreeMap<String, String>, r: &Received) -> BTreeMap<String, String> {
    if h.contains_key("content-length") {
        h.insert("fspiop-signature".to_owned(), "*".to_owned());
        h.insert("fspiop-uri".to_owned(), r.path.clone());
        h.insert("fspiop-http-method".to_owned(), r.method.clone());
    }
    h
}

fn expected(resource: &str, destination: Option<&str>, body: bool) -> BTreeMap<String, String> {
    let media = format!("application/vnd.interoperability.{resource}+json;version=1.1");
    let mut h = BTreeMap::from([
        ("accept".to_owned(), media.clone()),
        ("content-type".to_owned(), media),
        ("date".to_owned(), "*".to_owned()),
        ("fspiop-source".to_owned(), OUR_FSP.to_owned()),
    ]);
    if let Some(d) = destination {
        h.insert("fspiop-destination".to_owned(), d.to_owned());
    }
    if body {
        h.insert("content-length".to_owned(), "*".to_owned());
    }
    h
}

fn inbound(method: http::Method, path: &str, body: serde_json::Value, jws: bool) -> InboundRequest {
    let date = wire::http_date(Utc::now());
    let body = serde_json::to_vec(&body).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("FSPIOP-Source", MOCK_DFSP.parse().unwrap());
    headers.insert("FSPIOP-Destination", OUR_FSP.parse().unwrap());
    headers.insert("Date", date.parse().unwrap());
    if jws {
        let protected = Protected {
            method: method.as_str(),
            uri: path,
            source: MOCK_DFSP,
            destination: Some(OUR_FSP),
            date: Some(&date),
        };
        let sig = common::keys().mock.sign(&protected, &body).unwrap();
        headers.insert("FSPIOP-Signature", sig.parse().unwrap());
    }
    InboundRequest {
        method,
        path: path.to_owned(),
        query: None,
        headers,
        body: bytes::Bytes::from(body),
        received_at: Utc::now(),
        peer: None,
    }
}

fn push(id_value: &str, reference: &str, currency: &str) -> PushRequest {
    PushRequest {
        id_type: "BUSINESS".to_owned(),
        id_value: id_value.to_owned(),
        reference: reference.to_owned(),
        amount: "100".to_owned(),
        currency: currency.to_owned(),
        payer_msisdn: "255754000111".to_owned(),
    }
}

#[tokio::test]
async fn every_message_kind_carries_exactly_its_fspiop_headers() {
    every_message_kind(false).await;
}

#[tokio::test]
async fn every_message_kind_carries_exactly_its_fspiop_headers_with_jws() {
    every_message_kind(true).await;
}

async fn every_message_kind(jws: bool) {
    let g = Gateway::start(Options {
        jws,
        ..Options::default()
    })
    .await;

    // Disbursement: GET /parties, POST /quotes, POST /transfers, then GET /transfers.
    let paid = g.add_attempt(Direction::Disbursement, "255712345699", "15000.5", "CLM-H");
    g.start_attempt(paid).await;
    assert!(matches!(g.wait_final(paid).await, Status::Completed(_)));
    g.inquire(paid).await.unwrap();

    // Request-to-pay: POST /transactionRequests, GET /transactionRequests, and our answers to
    // the payer FSP's quote and transfer (PUT /quotes, PUT /transfers).
    let asked = g.add_attempt(Direction::Collection, "255712345600", "30000", "POL-H");
    g.start_attempt(asked).await;
    assert!(
        matches!(g.wait_final(asked).await, Status::Completed(_)),
        "{:?}",
        g.hub.rejections()
    );
    g.inquire(asked).await.unwrap();

    // Pushed payments: PUT /parties; PUT /parties/.../error; PUT /quotes/{id}/error.
    g.hub.push_payment(push(SCHEME_ID, "CN-H-1", "TZS")).await;
    g.hub.push_payment(push("SOMEONE-ELSE", "X-H", "TZS")).await;
    g.hub.push_payment(push(SCHEME_ID, "CN-H-2", "XXX")).await;

    // PUT /transfers/{id}/error: a transfer for another payee FSP, refused.
    let transfer_id = wire::id_string(uuid::Uuid::new_v4());
    let refused = g
        .core
        .adapter
        .callback(&inbound(
            http::Method::POST,
            "/transfers",
            json!({
                "transferId": transfer_id,
                "payerFsp": MOCK_DFSP,
                "payeeFsp": "someone-else",
                "amount": { "amount": "100", "currency": "TZS" },
                "ilpPacket": "AYIBgQAAAAAAAASwNGxldmVsb25lLmRmc3AxLm1lci45T2RTOF81MDdqUUZERmZlakgyOVc4bXFmNEpLMHlGTFGCAUBQU0svMS4wCk5vbmNlOiB1SXlweUYzY3pYSXBFdzVVc05TYWh3CkVuY3J5cHRpb246IG5vbmUKUGF5bWVudC1JZDogMTMyMzZhM2ItOGZhOC00MTYzLTg0NDctNGMzZWQzZGE5OGE3CgpDb250ZW50LUxlbmd0aDogMTM1CkNvbnRlbnQtVHlwZTogYXBwbGljYXRpb24vanNvbgpTZW5kZXItSWRlbnRpZmllcjogOTI4MDYzOTEKCiJ7XCJmZWVcIjowLFwidHJhbnNmZXJDb2RlXCI6XCJpbnZvaWNlXCIsXCJkZWJpdE5hbWVcIjpcImFsaWNlIGNvb3BlclwiLFwiY3JlZGl0TmFtZVwiOlwibWVyIGNoYW50XCIsXCJkZWJpdElkZW50aWZpZXJcIjpcIjkyODA2MzkxXCJ9IgA",
                "condition": "p-W1LZ4iX6fA5wUZoTOULaRIvlTzFjTQXFFDn7CuXmM",
                "expiration": wire::fspiop_datetime(Utc::now() + chrono::Duration::minutes(5)),
            }),
            jws,
        ))
        .unwrap();
    assert_eq!(refused.follow_ups.len(), 1);
    g.core
        .adapter
        .send_follow_up(&refused.follow_ups[0])
        .await
        .unwrap();

    g.wait_for("every callback to reach the hub", |g| {
        let kinds: Vec<String> = g.hub.received().iter().map(kind).collect();
        ["PUT /parties/BUSINESS/{id}/error", "PUT /quotes/{id}/error"]
            .iter()
            .all(|k| kinds.iter().any(|s| s == k))
            && kinds.iter().filter(|k| *k == "PUT /quotes/{id}").count() >= 2
            && kinds.iter().filter(|k| *k == "PUT /transfers/{id}").count() >= 2
    })
    .await;

    let mut by_kind: BTreeMap<String, Vec<(Received, Headers)>> = BTreeMap::new();
    for r in g.hub.received() {
        let h = header_set(&r);
        by_kind.entry(kind(&r)).or_default().push((r, h));
    }
    let want = [
        ("GET /parties/MSISDN/{id}", expected("parties", None, false)),
        ("POST /quotes", expected("quotes", Some(MOCK_DFSP), true)),
        (
            "POST /transfers",
            expected("transfers", Some(MOCK_DFSP), true),
        ),
        ("GET /transfers/{id}", expected("transfers", None, false)),
        (
            "POST /transactionRequests",
            expected("transactionRequests", Some(MOCK_DFSP), true),
        ),
        (
            "GET /transactionRequests/{id}",
            expected("transactionRequests", None, false),
        ),
        (
            "PUT /parties/BUSINESS/{id}",
            expected("parties", Some(MOCK_DFSP), true),
        ),
        (
            "PUT /parties/BUSINESS/{id}/error",
            expected("parties", Some(MOCK_DFSP), true),
        ),
        (
            "PUT /quotes/{id}",
            expected("quotes", Some(MOCK_DFSP), true),
        ),
        (
            "PUT /quotes/{id}/error",
            expected("quotes", Some(MOCK_DFSP), true),
        ),
        (
            "PUT /transfers/{id}",
            expected("transfers", Some(MOCK_DFSP), true),
        ),
        (
            "PUT /transfers/{id}/error",
            expected("transfers", Some(MOCK_DFSP), true),
        ),
    ];
    for (k, headers) in &want {
        let got = by_kind
            .get(*k)
            .unwrap_or_else(|| panic!("no {k} reached the hub: {by_kind:#?}"));
        for (r, h) in got {
            let want = if jws {
                signed(headers.clone(), r)
            } else {
                headers.clone()
            };
            assert_eq!(h, &want, "{k}");
        }
    }
    assert_eq!(
        by_kind.keys().collect::<Vec<_>>(),
        {
            let mut k: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
            k.sort_unstable();
            k
        },
        "every kind sent is pinned"
    );
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());
}

#[tokio::test]
async fn bulk_messages_carry_exactly_their_fspiop_headers() {
    bulk_messages(false).await;
}

#[tokio::test]
async fn bulk_messages_carry_exactly_their_fspiop_headers_with_jws() {
    bulk_messages(true).await;
}

/// A payroll through bulk whose answer is withheld: the lookups, `POST /bulkQuotes`,
/// `POST /bulkTransfers` and `GET /bulkTransfers/{id}`, each with its own versioned types.
async fn bulk_messages(jws: bool) {
    let g = Gateway::start(Options {
        jws,
        bulk_answer_wait: std::time::Duration::from_millis(200),
        ..Options::default()
    })
    .await;
    g.hub.drop_bulk_answers(1);
    let lines: Vec<railgate_rail::Attempt> = ["255712345800", "255712345801"]
        .iter()
        .map(|m| {
            let id = g.add_attempt(Direction::Disbursement, m, "1200", "PAYROLL-H");
            g.attempt(id)
        })
        .collect();
    let batch_id = uuid::Uuid::now_v7();
    let ack = g.core.adapter.submit_batch(batch_id, &lines).await.unwrap();
    let railgate_rail::BatchAck::Accepted { batch_ref } = ack else {
        panic!("{ack:?}")
    };
    let mut done = false;
    for _ in 0..400 {
        let page = g
            .core
            .adapter
            .batch_results(&batch_ref, None)
            .await
            .unwrap();
        if page.state == railgate_rail::BatchState::Done {
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(done, "the bulk was settled by asking");
    let mut by_kind: BTreeMap<String, Vec<(Received, Headers)>> = BTreeMap::new();
    for r in g.hub.received() {
        assert!(
            r.headers.iter().all(|(k, v)| k != "accept" || v != "*/*"),
            "{} {} carries Accept: */*",
            r.method,
            r.path
        );
        let h = header_set(&r);
        by_kind.entry(kind(&r)).or_default().push((r, h));
    }
    let want = [
        ("GET /parties/MSISDN/{id}", expected("parties", None, false)),
        (
            "POST /bulkQuotes",
            expected("bulkQuotes", Some(MOCK_DFSP), true),
        ),
        (
            "POST /bulkTransfers",
            expected("bulkTransfers", Some(MOCK_DFSP), true),
        ),
        (
            "GET /bulkTransfers/{id}",
            expected("bulkTransfers", None, false),
        ),
    ];
    for (k, headers) in &want {
        let got = by_kind
            .get(*k)
            .unwrap_or_else(|| panic!("no {k} reached the hub: {by_kind:#?}"));
        for (r, h) in got {
            let want = if jws {
                signed(headers.clone(), r)
            } else {
                headers.clone()
            };
            assert_eq!(h, &want, "{k}");
        }
    }
    assert_eq!(
        by_kind.keys().collect::<Vec<_>>(),
        {
            let mut k: Vec<&str> = want.iter().map(|(k, _)| *k).collect();
            k.sort_unstable();
            k
        },
        "every kind sent is pinned"
    );
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());
}

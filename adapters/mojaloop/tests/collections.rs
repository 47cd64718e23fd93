//! Collections over real HTTP: request-to-pay and payments pushed to the scheme, inbound POST
//! idempotency, and the authentication of callbacks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use chrono::Utc;
use common::{Gateway, Options, Status, OUR_FSP, SCHEME_ID};
use railgate_mojaloop::jws::Protected;
use railgate_mojaloop::mock::PushRequest;
use railgate_mojaloop::state::RailState;
use railgate_mojaloop::wire::{self, FspiopMoney};
use railgate_rail::{
    Attempt, AttemptRef, CallbackError, CallbackOutcome, Currency, Direction, FailureCode,
    InboundRequest, Money, Party, PartyIdType, RailAdapter, RailStatus, Settled,
};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn request_to_pay_is_paid_by_the_payer_fsp() {
    let g = Gateway::start(Options::default()).await;
    let id = g.add_attempt(
        Direction::Collection,
        "255712345600",
        "30000",
        "POL-2025-000777",
    );
    g.start_attempt(id).await;
    let Status::Completed(settled) = g.wait_final(id).await else {
        panic!("{:?} {:?}", g.status(id), g.refused())
    };
    // The R2P went out under the attempt id; the money came as an inbound transfer.
    let request: serde_json::Value =
        serde_json::from_slice(&g.attempt(id).request.unwrap().body).unwrap();
    assert_eq!(request["transactionRequestId"], id.to_string());
    assert_eq!(
        request["payee"]["partyIdInfo"]["partySubIdOrType"],
        "POL-2025-000777"
    );
    assert_eq!(request["payer"]["partyIdentifier"], "255712345600");
    g.wait_for("the mock to record the collection", |g| {
        !g.hub.collected().is_empty()
    })
    .await;
    let collected = g.hub.collected();
    assert_eq!(collected.len(), 1);
    assert!(
        collected[0].committed,
        "our fulfilment matched our condition"
    );
    assert_eq!(
        collected[0].transaction_request_id.as_deref(),
        Some(id.to_string().as_str())
    );
    assert_eq!(
        settled.rail_reference.as_deref(),
        Some(collected[0].transfer_id.as_str())
    );
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());
    assert!(g.refused().is_empty(), "{:?}", g.refused());
}

#[tokio::test]
async fn request_to_pay_declined_fails_with_4101() {
    let g = Gateway::start(Options::default()).await;
    let id = g.add_attempt(Direction::Collection, "255712345603", "30000", "POL-3");
    g.start_attempt(id).await;
    let Status::Failed(f) = g.wait_final(id).await else {
        panic!()
    };
    assert_eq!(
        (f.code, f.rail_code.as_deref()),
        (FailureCode::Declined, Some("4101"))
    );
    assert!(g.hub.collected().is_empty());
}

#[tokio::test]
async fn request_to_pay_with_a_dropped_answer_is_unknown_until_asked() {
    let g = Gateway::start(Options::default()).await;
    let id = g.add_attempt(Direction::Collection, "255712345610", "30000", "POL-10");
    g.start_attempt(id).await;
    // The payer's FSP recorded the request, then the connection dropped: not resent blind.
    g.wait_for("the unknown outcome", |g| {
        matches!(g.status(id), Status::Unknown(_))
    })
    .await;
    assert!(g.hub.collected().is_empty(), "silent until asked");
    assert_eq!(g.inquire(id).await, Ok(RailStatus::Pending));
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    let posts = g
        .hub
        .received()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/transactionRequests")
        .count();
    assert_eq!(posts, 1);
    g.wait_for("the mock to record the collection", |g| {
        g.hub.collected().iter().any(|c| c.committed)
    })
    .await;
    assert_eq!(g.hub.collected().len(), 1);
}

#[tokio::test]
async fn pushed_premium_is_received_against_its_payment_reference() {
    let g = Gateway::start(Options {
        jws: true,
        ..Options::default()
    })
    .await;
    let transfer_id = g
        .hub
        .push_payment(PushRequest {
            id_type: "BUSINESS".to_owned(),
            id_value: SCHEME_ID.to_owned(),
            reference: "CN-2025-000123".to_owned(),
            amount: "45000.5".to_owned(),
            currency: "TZS".to_owned(),
            payer_msisdn: "255754000111".to_owned(),
        })
        .await;
    g.wait_for("the received payment", |g| !g.store().received.is_empty())
        .await;
    let event = g.store().received[0].clone();
    assert_eq!(
        event.attempt,
        AttemptRef::PaymentReference("CN-2025-000123".to_owned())
    );
    let CallbackOutcome::Received {
        amount,
        payer,
        settled,
    } = event.outcome
    else {
        panic!()
    };
    assert_eq!(amount, Money::parse("45000.50", Currency::Tzs).unwrap());
    assert_eq!(
        payer.map(|p| p.id_value().to_owned()).as_deref(),
        Some("255754000111")
    );
    assert_eq!(
        settled.rail_reference.as_deref(),
        Some(transfer_id.as_str())
    );
    g.wait_for("the mock to record the collection", |g| {
        !g.hub.collected().is_empty()
    })
    .await;
    assert!(g.hub.collected()[0].committed);
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());
    assert!(g.refused().is_empty(), "{:?}", g.refused());
}

#[tokio::test]
async fn lookup_of_an_unknown_scheme_identifier_is_3204() {
    let g = Gateway::start(Options::default()).await;
    g.hub
        .push_payment(PushRequest {
            id_type: "BUSINESS".to_owned(),
            id_value: "SOMEONE-ELSE".to_owned(),
            reference: "X-1".to_owned(),
            amount: "100".to_owned(),
            currency: "TZS".to_owned(),
            payer_msisdn: "255754000111".to_owned(),
        })
        .await;
    g.wait_for("the mock to record the refusal", |g| {
        !g.hub.collected().is_empty()
    })
    .await;
    assert_eq!(g.hub.collected()[0].error_code.as_deref(), Some("3204"));
    assert!(g.store().received.is_empty());
}

fn signed_request(
    method: http::Method,
    path: &str,
    source: &str,
    body: &[u8],
    sign_body: &[u8],
) -> InboundRequest {
    let date = wire::http_date(Utc::now());
    let mut headers = http::HeaderMap::new();
    headers.insert("FSPIOP-Source", source.parse().unwrap());
    headers.insert("FSPIOP-Destination", OUR_FSP.parse().unwrap());
    headers.insert("Date", date.parse().unwrap());
    headers.insert(
        "Content-Type",
        "application/vnd.interoperability.transfers+json;version=1.1"
            .parse()
            .unwrap(),
    );
    let protected = Protected {
        method: method.as_str(),
        uri: path,
        source,
        destination: Some(OUR_FSP),
        date: Some(&date),
    };
    let sig = common::keys().mock.sign(&protected, sign_body).unwrap();
    headers.insert("FSPIOP-Signature", sig.parse().unwrap());
    InboundRequest {
        method,
        path: path.to_owned(),
        query: None,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
        received_at: Utc::now(),
        peer: None,
    }
}

fn quoted_attempt(fsp: &str, condition: &str) -> Attempt {
    Attempt {
        attempt_id: uuid::Uuid::new_v4(),
        payment_id: uuid::Uuid::now_v7(),
        direction: Direction::Disbursement,
        amount: Money::parse("100", Currency::Tzs).unwrap(),
        party: Party::new(PartyIdType::Msisdn, "255712345600", None).unwrap(),
        reference: "CLM-1".to_owned(),
        narrative: None,
        rail_reference: None,
        rail_state: Some(
            RailState::Quoted {
                fsp_id: fsp.to_owned(),
                transfer_amount: FspiopMoney {
                    amount: "100".to_owned(),
                    currency: "TZS".to_owned(),
                },
                expiration: wire::fspiop_datetime(Utc::now()),
                ilp_packet: "AA".to_owned(),
                condition: condition.to_owned(),
            }
            .to_value(),
        ),
        request: None,
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn tampered_body_wrong_fulfilment_and_wrong_source_are_refused() {
    let g = Gateway::start(Options {
        jws: true,
        ..Options::default()
    })
    .await;
    let adapter = &g.core.adapter;
    // The golden A.3 pair.
    let fulfilment = "e9QV_WChvXQY36eIAahjNeXRFZEhsP7qnKHHfhKI_RM";
    let condition = "p-W1LZ4iX6fA5wUZoTOULaRIvlTzFjTQXFFDn7CuXmM";
    let attempt = quoted_attempt("mockdfsp", condition);
    let transfer_id =
        wire::id_string(wire::derive_id(attempt.attempt_id, wire::IdPurpose::Transaction).unwrap());
    let path = format!("/transfers/{transfer_id}");
    let body = serde_json::to_vec(&json!({ "fulfilment": fulfilment, "completedTimestamp": wire::fspiop_datetime(Utc::now()), "transferState": "COMMITTED" })).unwrap();

    // Genuine: accepted, then the fulfilment is checked against the attempt's condition.
    let genuine = signed_request(http::Method::PUT, &path, "mockdfsp", &body, &body);
    let reply = adapter.callback(&genuine).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.events.len(), 1);
    assert_eq!(
        reply.events[0].attempt,
        AttemptRef::Attempt(attempt.attempt_id)
    );
    let reviewed = adapter
        .review_callback(&attempt, &genuine, reply.events[0].outcome.clone())
        .unwrap();
    assert_eq!(
        reviewed,
        CallbackOutcome::Completed(Settled {
            rail_reference: Some(transfer_id.clone()),
            receipt: Some(fulfilment.to_owned()),
            amount: None
        })
    );

    // Same signature, body changed after signing.
    let tampered_body = String::from_utf8(body.clone())
        .unwrap()
        .replace("COMMITTED", "ABORTED");
    let tampered = signed_request(
        http::Method::PUT,
        &path,
        "mockdfsp",
        tampered_body.as_bytes(),
        &body,
    );
    assert!(matches!(
        adapter.callback(&tampered),
        Err(CallbackError::Unauthenticated(_))
    ));

    // Unsigned.
    let mut unsigned = genuine.clone();
    unsigned.headers.remove("FSPIOP-Signature");
    assert!(matches!(
        adapter.callback(&unsigned),
        Err(CallbackError::Unauthenticated(_))
    ));

    // A fulfilment that does not hash to the condition.
    let other = quoted_attempt("mockdfsp", "6lId9LqFZoG0WnfI9pWHGdsDf5TLUxJ7GK1fgvGQ1GI");
    let other_path = format!(
        "/transfers/{}",
        wire::id_string(wire::derive_id(other.attempt_id, wire::IdPurpose::Transaction).unwrap())
    );
    let wrong = signed_request(http::Method::PUT, &other_path, "mockdfsp", &body, &body);
    let reply = adapter.callback(&wrong).unwrap();
    assert!(matches!(
        adapter.review_callback(&other, &wrong, reply.events[0].outcome.clone()),
        Err(CallbackError::Unauthenticated(_))
    ));

    // Signed by the switch's key but from an FSP the attempt never dealt with.
    let elsewhere = quoted_attempt("anotherfsp", condition);
    let elsewhere_path = format!(
        "/transfers/{}",
        wire::id_string(
            wire::derive_id(elsewhere.attempt_id, wire::IdPurpose::Transaction).unwrap()
        )
    );
    let from_peer = signed_request(http::Method::PUT, &elsewhere_path, "mockdfsp", &body, &body);
    let reply = adapter.callback(&from_peer).unwrap();
    assert!(matches!(
        adapter.review_callback(&elsewhere, &from_peer, reply.events[0].outcome.clone()),
        Err(CallbackError::Unauthenticated(_))
    ));

    // Not addressed to us, from an unknown FSP, or stale.
    let mut misaddressed = genuine.clone();
    misaddressed
        .headers
        .insert("FSPIOP-Destination", "someoneelse".parse().unwrap());
    assert!(matches!(
        adapter.callback(&misaddressed),
        Err(CallbackError::Unauthenticated(_))
    ));
    let stranger = signed_request(http::Method::PUT, &path, "roguefsp", &body, &body);
    assert!(matches!(
        adapter.callback(&stranger),
        Err(CallbackError::Unauthenticated(_))
    ));
    let mut stale = genuine;
    stale.received_at = Utc::now() + chrono::Duration::minutes(30);
    assert!(matches!(
        adapter.callback(&stale),
        Err(CallbackError::Stale(_))
    ));
    // Unknown routes (FSPIOP v2.0's FX resources are not spoken here).
    let mut unknown = signed_request(
        http::Method::PUT,
        "/fxTransfers/x",
        "mockdfsp",
        &body,
        &body,
    );
    assert_eq!(
        adapter.callback(&unknown).unwrap_err(),
        CallbackError::UnknownRoute
    );
    unknown.path = "/participants/MSISDN/1".to_owned();
    assert_eq!(
        adapter.callback(&unknown).unwrap_err(),
        CallbackError::UnknownRoute
    );
}

#[tokio::test]
async fn inbound_quote_posts_are_idempotent_and_a_modified_one_gets_3106() {
    let g = Gateway::start(Options::default()).await;
    let quote_id = uuid::Uuid::new_v4().to_string();
    let quote = |amount: &str| {
        json!({
            "quoteId": quote_id,
            "transactionId": uuid::Uuid::new_v4().to_string(),
            "payee": { "partyIdInfo": { "partyIdType": "BUSINESS", "partyIdentifier": SCHEME_ID, "partySubIdOrType": "CN-9", "fspId": OUR_FSP } },
            "payer": { "partyIdInfo": { "partyIdType": "MSISDN", "partyIdentifier": "255754000111", "fspId": "mockdfsp" } },
            "amountType": "SEND",
            "amount": { "amount": amount, "currency": "TZS" },
            "transactionType": { "scenario": "PAYMENT", "initiator": "PAYER", "initiatorType": "CONSUMER" },
            "note": "CN-9",
            "expiration": wire::fspiop_datetime(Utc::now() + chrono::Duration::seconds(60)),
        })
    };
    let first = serde_json::to_vec(&quote("100")).unwrap();
    let modified = serde_json::to_vec(&quote("200")).unwrap();
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(format!("{}/rails/mojaloop/quotes", g.base))
            .header(
                "Content-Type",
                "application/vnd.interoperability.quotes+json;version=1.1",
            )
            .header(
                "Accept",
                "application/vnd.interoperability.quotes+json;version=1.1",
            )
            .header("Date", wire::http_date(Utc::now()))
            .header("FSPIOP-Source", "mockdfsp")
            .header("FSPIOP-Destination", OUR_FSP)
            .body(body)
            .send()
    };
    assert_eq!(post(first.clone()).await.unwrap().status(), 202);
    g.wait_for("the first quote", |g| g.store().follow_ups_sent.len() == 1)
        .await;
    assert_eq!(post(first).await.unwrap().status(), 202);
    g.wait_for("the resent quote", |g| g.store().follow_ups_sent.len() == 2)
        .await;
    assert_eq!(post(modified).await.unwrap().status(), 202);
    g.wait_for("the 3106", |g| g.store().follow_ups_sent.len() == 3)
        .await;
    let sent = g.store().follow_ups_sent.clone();
    assert_eq!(sent[0], sent[1], "the duplicate got the same answer again");
    assert!(sent[0].0.ends_with(&format!("/quotes/{quote_id}")));
    let put: serde_json::Value = serde_json::from_slice(&sent[0].1).unwrap();
    assert_eq!(
        put["transferAmount"],
        json!({ "amount": "100", "currency": "TZS" })
    );
    assert_eq!(put["condition"].as_str().map(str::len), Some(43));
    assert!(sent[2].0.ends_with(&format!("/quotes/{quote_id}/error")));
    let error: serde_json::Value = serde_json::from_slice(&sent[2].1).unwrap();
    assert_eq!(error["errorInformation"]["errorCode"], "3106");
    // The mock validated every follow-up it received.
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());
}

#[tokio::test]
async fn the_mock_refuses_malformed_requests_with_fspiop_errors() {
    let g = Gateway::start(Options::default()).await;
    let client = reqwest::Client::new();
    let valid = json!({
        "quoteId": "7c23e80c-d078-4077-8263-2c047876fcf6",
        "transactionId": "85feac2f-39b2-491b-817e-4a03203d4f14",
        "payee": { "partyIdInfo": { "partyIdType": "MSISDN", "partyIdentifier": "255712345600", "fspId": "mockdfsp" } },
        "payer": { "partyIdInfo": { "partyIdType": "BUSINESS", "partyIdentifier": SCHEME_ID, "fspId": OUR_FSP } },
        "amountType": "SEND",
        "amount": { "amount": "100", "currency": "TZS" },
        "transactionType": { "scenario": "TRANSFER", "initiator": "PAYER", "initiatorType": "BUSINESS" },
        "expiration": wire::fspiop_datetime(Utc::now() + chrono::Duration::seconds(60)),
    });
    let send =
        |body: serde_json::Value, content_type: &'static str, source: Option<&'static str>| {
            let mut rb = client
                .post(format!("{}/quotes", g.hub.base_url()))
                .header("Content-Type", content_type)
                .header(
                    "Accept",
                    "application/vnd.interoperability.quotes+json;version=1.1",
                )
                .header("Date", wire::http_date(Utc::now()))
                .header("FSPIOP-Destination", "mockdfsp")
                .body(serde_json::to_vec(&body).unwrap());
            if let Some(s) = source {
                rb = rb.header("FSPIOP-Source", s);
            }
            rb.send()
        };
    const CT: &str = "application/vnd.interoperability.quotes+json;version=1.1";
    let code = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        (
            status,
            v["errorInformation"]["errorCode"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    };
    assert_eq!(
        send(valid.clone(), CT, Some(OUR_FSP))
            .await
            .unwrap()
            .status(),
        202
    );
    let mut trailing_zero = valid.clone();
    trailing_zero["amount"]["amount"] = json!("100.50");
    assert_eq!(
        code(send(trailing_zero, CT, Some(OUR_FSP)).await.unwrap()).await,
        (400, "3101".to_owned())
    );
    let mut no_type = valid.clone();
    no_type.as_object_mut().unwrap().remove("transactionType");
    assert_eq!(
        code(send(no_type, CT, Some(OUR_FSP)).await.unwrap()).await,
        (400, "3102".to_owned())
    );
    assert_eq!(
        code(send(valid.clone(), CT, None).await.unwrap()).await,
        (400, "3102".to_owned())
    );
    let v2 = "application/vnd.interoperability.quotes+json;version=2.0";
    assert_eq!(
        code(send(valid, v2, Some(OUR_FSP)).await.unwrap()).await,
        (400, "3001".to_owned())
    );
    assert_eq!(g.hub.rejections().len(), 4);
}

#[tokio::test]
async fn control_endpoints_speak_json_and_csv() {
    let g = Gateway::start(Options::default()).await;
    let id = g.add_attempt(
        Direction::Disbursement,
        "255712345600",
        "1200.25",
        "CLM-CSV",
    );
    g.start_attempt(id).await;
    assert!(matches!(g.wait_final(id).await, Status::Completed(_)));
    let client = reqwest::Client::new();
    let payouts: serde_json::Value = client
        .get(format!("{}/_control/payouts", g.hub.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(payouts[0]["attempt_id"], id.to_string());
    assert_eq!(payouts[0]["count"], 1);
    let csv = client
        .get(format!(
            "{}/_control/statement?format=csv",
            g.hub.base_url()
        ))
        .send()
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
    let row = lines.next().unwrap();
    assert!(
        row.contains(",1200.25,TZS,disbursement,CLM-CSV,mockdfsp,"),
        "{row}"
    );
    // Faults: dropped callbacks leave the attempt waiting.
    let r = client
        .post(format!("{}/_control/faults", g.hub.base_url()))
        .json(&json!({ "latency_ms": 0, "drop_callbacks": true, "error_rate_percent": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = g.add_attempt(Direction::Disbursement, "255712345600", "10", "CLM-DROP");
    g.start_attempt(id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(g.status(id), Status::InFlight);
    assert_eq!(g.attempt(id).rail_state.unwrap()["step"], "looking_up");
    // An error rate of 100 %: every POST is refused with 503 before anything is recorded.
    let r = client
        .post(format!("{}/_control/faults", g.hub.base_url()))
        .json(&json!({ "error_rate_percent": 100 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("{}/transfers", g.hub.base_url()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

fn inbound(
    method: http::Method,
    path: &str,
    source: &str,
    body: serde_json::Value,
) -> InboundRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert("FSPIOP-Source", source.parse().unwrap());
    headers.insert("FSPIOP-Destination", OUR_FSP.parse().unwrap());
    headers.insert("Date", wire::http_date(Utc::now()).parse().unwrap());
    InboundRequest {
        method,
        path: path.to_owned(),
        query: None,
        headers,
        body: bytes::Bytes::from(serde_json::to_vec(&body).unwrap()),
        received_at: Utc::now(),
        peer: None,
    }
}

/// Quote then transfer, statelessly, for both ILP versions; and the transfers we refuse.
#[tokio::test]
async fn payee_side_is_stateless_for_ilp_v1_and_v4() {
    use railgate_mojaloop::ilp::IlpVersion;
    for version in [IlpVersion::V1, IlpVersion::V4] {
        let mut config = common::adapter_config(
            "http://127.0.0.1:9",
            "http://127.0.0.1:9/rails/mojaloop",
            false,
        );
        config.ilp_version = version;
        config.peers.push("otherfsp".to_owned());
        let adapter = railgate_mojaloop::MojaloopAdapter::new(config).unwrap();
        let quote_id = uuid::Uuid::new_v4().to_string();
        let transfer_id = uuid::Uuid::new_v4().to_string();
        let quote = json!({
            "quoteId": quote_id, "transactionId": transfer_id,
            "payee": { "partyIdInfo": { "partyIdType": "BUSINESS", "partyIdentifier": SCHEME_ID, "partySubIdOrType": "CN-77", "fspId": OUR_FSP } },
            "payer": { "partyIdInfo": { "partyIdType": "MSISDN", "partyIdentifier": "255754000111", "fspId": "mockdfsp" } },
            "amountType": "SEND", "amount": { "amount": "2500", "currency": "TZS" },
            "transactionType": { "scenario": "PAYMENT", "initiator": "PAYER", "initiatorType": "CONSUMER" },
        });
        let reply = adapter
            .callback(&inbound(http::Method::POST, "/quotes", "mockdfsp", quote))
            .unwrap();
        assert_eq!(
            (reply.status, reply.events.len(), reply.follow_ups.len()),
            (202, 0, 1)
        );
        let put = &reply.follow_ups[0];
        assert!(put.url.ends_with(&format!("/quotes/{quote_id}")));
        let terms: serde_json::Value = serde_json::from_slice(&put.body).unwrap();
        let packet =
            railgate_mojaloop::ilp::decode_packet(terms["ilpPacket"].as_str().unwrap()).unwrap();
        assert_eq!((packet.version, packet.amount), (version, 250_000));

        let transfer = |condition: &str, expiration: chrono::DateTime<Utc>| {
            json!({
                "transferId": transfer_id, "payeeFsp": OUR_FSP, "payerFsp": "mockdfsp",
                "amount": { "amount": "2500", "currency": "TZS" },
                "ilpPacket": terms["ilpPacket"], "condition": condition,
                "expiration": wire::fspiop_datetime(expiration),
            })
        };
        let later = Utc::now() + chrono::Duration::seconds(30);
        let condition = terms["condition"].as_str().unwrap();
        let reply = adapter
            .callback(&inbound(
                http::Method::POST,
                "/transfers",
                "mockdfsp",
                transfer(condition, later),
            ))
            .unwrap();
        assert_eq!(reply.events.len(), 1, "{version:?}");
        // Whatever transaction a request-to-pay linked, else the payment reference.
        assert_eq!(
            reply.events[0].attempt,
            AttemptRef::Transaction {
                rail_reference: transfer_id.clone(),
                payment_reference: "CN-77".to_owned()
            }
        );
        let done: serde_json::Value = serde_json::from_slice(&reply.follow_ups[0].body).unwrap();
        assert_eq!(done["transferState"], "COMMITTED");
        assert!(railgate_mojaloop::ilp::fulfils(
            done["fulfilment"].as_str().unwrap(),
            condition
        ));

        // Refused, with the code the payer FSP expects, and no event.
        let refusals = [
            (
                transfer("p-W1LZ4iX6fA5wUZoTOULaRIvlTzFjTQXFFDn7CuXmM", later),
                "mockdfsp",
                "3100",
            ),
            (
                transfer(condition, Utc::now() - chrono::Duration::seconds(1)),
                "mockdfsp",
                "3303",
            ),
            (transfer(condition, later), "otherfsp", "3100"),
        ];
        for (body, source, code) in refusals {
            let reply = adapter
                .callback(&inbound(http::Method::POST, "/transfers", source, body))
                .unwrap();
            assert!(reply.events.is_empty());
            assert!(reply.follow_ups[0]
                .url
                .ends_with(&format!("/transfers/{transfer_id}/error")));
            let error: serde_json::Value =
                serde_json::from_slice(&reply.follow_ups[0].body).unwrap();
            assert_eq!(
                error["errorInformation"]["errorCode"], code,
                "{version:?} {source}"
            );
        }
    }
}

/// The payer FSP names its `transactionId` in `PUT /transactionRequests` and then quotes and
/// pays without the (optional) `transactionRequestId`: the transfer still completes our
/// request-to-pay, and nothing is taken for a pushed payment.
#[tokio::test]
async fn request_to_pay_is_matched_by_transaction_id_when_the_payer_omits_the_request_id() {
    let g = Gateway::start(Options::default()).await;
    let id = g.add_attempt(Direction::Collection, "255712345613", "30000", "POL-13");
    g.start_attempt(id).await;
    let Status::Completed(settled) = g.wait_final(id).await else {
        panic!("{:?} {:?}", g.status(id), g.refused())
    };
    g.wait_for("the mock to record the collection", |g| {
        !g.hub.collected().is_empty()
    })
    .await;
    let collected = g.hub.collected();
    assert_eq!(collected.len(), 1);
    assert!(collected[0].committed);
    assert_eq!(
        settled.rail_reference.as_deref(),
        Some(collected[0].transfer_id.as_str())
    );
    assert!(
        g.store().received.is_empty(),
        "not taken for a pushed payment"
    );
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());
    assert!(g.refused().is_empty(), "{:?}", g.refused());
}

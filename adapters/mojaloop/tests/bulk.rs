//! Payrolls through FSPIOP bulk against the mock hub, its ingress over mutual TLS: each line
//! ends as the bulk column of the scenario table says and is paid at most once; a bulk whose
//! answer is lost is settled by `GET /bulkTransfers/{id}`, never sent again; an upload tried
//! again sends nothing new; bulk callbacks that name no bulk of ours, come from another FSP or
//! name a transfer the bulk does not carry are refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;

use chrono::Utc;
use common::{Gateway, Options, OUR_FSP};
use railgate_mojaloop::bulk::wire::{bulk_id, BulkPurpose};
use railgate_mojaloop::wire::{self, derive_id, id_string, IdPurpose};
use railgate_rail::{
    Attempt, BatchAck, BatchLineResult, BatchState, CallbackError, Currency, Direction,
    FailureCode, InboundRequest, Money, Party, PartyIdType, RailAdapter, RailStatus,
};
use railgate_testkit::pki::{self, Ca};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

const PEER: &str = "mockdfsp";

/// A hub whose ingress wants our client certificate, and a bulk answer window of `wait`.
async fn gateway(ca: &Ca, dir: &std::path::Path, wait: Duration) -> Gateway {
    Gateway::start(Options {
        tls: Some((
            pki::server_config(&ca.server(), Some(ca)),
            pki::client_tls(dir, ca, Some(&ca.client("nhif"))),
        )),
        bulk_answer_wait: wait,
        ..Options::default()
    })
    .await
}

fn line(msisdn: &str, amount: &str, reference: &str) -> Attempt {
    Attempt {
        attempt_id: Uuid::new_v4(),
        payment_id: Uuid::now_v7(),
        direction: Direction::Disbursement,
        amount: Money::parse(amount, Currency::Tzs).unwrap(),
        party: Party::new(PartyIdType::Msisdn, msisdn, None).unwrap(),
        reference: reference.to_owned(),
        narrative: None,
        rail_reference: None,
        rail_state: None,
        request: None,
        created_at: Utc::now(),
    }
}

/// Reads the batch's results until it is done (bounded); every line result listed.
async fn results_when_done(g: &Gateway, batch_ref: &str) -> Vec<BatchLineResult> {
    for _ in 0..400 {
        let page = g.core.adapter.batch_results(batch_ref, None).await.unwrap();
        assert!(page.next.is_none(), "one page per bulk");
        if page.state == BatchState::Done {
            return page.lines;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the bulk was not done in time");
}

fn by_attempt(lines: &[BatchLineResult]) -> HashMap<Uuid, Vec<BatchLineResult>> {
    let mut m: HashMap<Uuid, Vec<BatchLineResult>> = HashMap::new();
    for l in lines {
        m.entry(l.attempt_id).or_default().push(l.clone());
    }
    m
}

fn count(g: &Gateway, method: &str, path_start: &str) -> usize {
    g.hub
        .received()
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(path_start))
        .count()
}

#[tokio::test]
async fn each_line_of_a_bulk_ends_as_the_table_says_over_mutual_tls() {
    let ca = Ca::new("Hub CA");
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(&ca, dir.path(), Duration::from_secs(30)).await;
    assert!(g.hub.base_url().starts_with("https://"));
    // (last digits, expected end); the first two lines pay one beneficiary twice.
    let table = [
        ("00", "completed"),
        ("00", "completed"),
        ("01", "failed"),
        ("02", "failed"),
        ("03", "failed"),
        ("04", "completed"),
        ("06", "failed"),
        ("13", "completed"),
        ("14", "other amount"),
        ("15", "failed"),
    ];
    let lines: Vec<Attempt> = table
        .iter()
        .enumerate()
        .map(|(i, (d, _))| {
            let msisdn = if i == 0 {
                "255712345000".to_owned()
            } else {
                format!("2557123450{d}")
            };
            line(&msisdn, "1500.50", &format!("PAY-{i}"))
        })
        .collect();
    let batch_id = Uuid::now_v7();
    let ack = g.core.adapter.submit_batch(batch_id, &lines).await.unwrap();
    let BatchAck::Accepted { batch_ref } = ack else {
        panic!("{ack:?}")
    };
    let bulk_transfer = id_string(bulk_id(batch_id, BulkPurpose::Transfer, PEER));
    assert_eq!(batch_ref, bulk_transfer);
    let results = by_attempt(&results_when_done(&g, &batch_ref).await);
    let ours = Money::parse("1500.50", Currency::Tzs).unwrap();
    for (a, (digits, end)) in lines.iter().zip(table) {
        let r = &results[&a.attempt_id];
        assert_eq!(r.len(), 1, "{digits}: one outcome, listed once: {r:?}");
        match (end, &r[0].status) {
            ("completed", RailStatus::Completed(s)) => {
                assert_eq!(r[0].amount, Some(ours));
                let transfer_id =
                    id_string(derive_id(a.attempt_id, IdPurpose::Transaction).unwrap());
                assert_eq!(s.rail_reference.as_deref(), Some(transfer_id.as_str()));
                assert!(s.receipt.is_some(), "the fulfilment");
            }
            ("failed", RailStatus::Failed(_)) => assert_eq!(r[0].amount, None, "{digits}"),
            ("other amount", RailStatus::Failed(_)) => {
                // Another amount than ours: the gateway records a conflict, never a completion.
                assert_ne!(r[0].amount, Some(ours), "{digits}");
                assert!(r[0].amount.is_some(), "{digits}");
            }
            (end, status) => panic!("{digits} should be {end}: {status:?}"),
        }
        // The single-line inquiry says the same.
        let status = g
            .core
            .adapter
            .inquire(&with_membership(a, batch_id, &batch_ref))
            .await
            .unwrap();
        assert_eq!(
            std::mem::discriminant(&status),
            std::mem::discriminant(&r[0].status),
            "{digits}: {status:?}"
        );
    }
    // 3204 at the lookup, 5101 at the quote.
    let failure = |i: usize| match &results[&lines[i].attempt_id][0].status {
        RailStatus::Failed(f) => f.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(failure(3).code, FailureCode::PartyNotFound);
    assert_eq!(failure(9).rail_code.as_deref(), Some("5101"));
    assert_eq!(failure(2).rail_code.as_deref(), Some("4001"));
    // One bulk quote and one bulk transfer; the transfer carries the quoted lines only.
    assert_eq!(count(&g, "POST", "/bulkQuotes"), 1);
    assert_eq!(count(&g, "POST", "/bulkTransfers"), 1);
    let transfer = g
        .hub
        .received()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/bulkTransfers")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&transfer.body).unwrap();
    assert_eq!(body["bulkTransferId"], bulk_transfer);
    assert_eq!(
        body["bulkQuoteId"],
        id_string(bulk_id(batch_id, BulkPurpose::Quote, PEER))
    );
    assert_eq!(body["individualTransfers"].as_array().unwrap().len(), 7);
    // The beneficiary paid twice was looked up once.
    assert_eq!(count(&g, "GET", "/parties/MSISDN/255712345000"), 1);
    // Paid exactly once per completed line, never for the others.
    let payouts = g.hub.payouts();
    for (a, (digits, end)) in lines.iter().zip(table) {
        let paid: u32 = payouts
            .iter()
            .filter(|p| p.attempt_id == a.attempt_id.to_string())
            .map(|p| p.count)
            .sum();
        assert_eq!(paid, u32::from(end == "completed"), "{digits} paid {paid}");
    }
    assert!(g.hub.rejections().is_empty(), "{:?}", g.hub.rejections());

    // The same upload again (the gateway's retry): the same reference, nothing sent again.
    let before = g.hub.received().len();
    let again = g.core.adapter.submit_batch(batch_id, &lines).await.unwrap();
    assert_eq!(again, BatchAck::Accepted { batch_ref });
    assert_eq!(g.hub.received().len(), before);
}

fn with_membership(a: &Attempt, batch_id: Uuid, batch_ref: &str) -> Attempt {
    let mut a = a.clone();
    a.rail_state = Some(
        railgate_rail::BatchMembership {
            batch_id,
            batch_ref: Some(batch_ref.to_owned()),
        }
        .to_rail_state(),
    );
    a
}

#[tokio::test]
async fn a_lost_bulk_answer_is_settled_by_asking_never_by_resending() {
    let ca = Ca::new("Hub CA");
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(&ca, dir.path(), Duration::from_millis(300)).await;
    g.hub.drop_bulk_answers(1);
    let lines: Vec<Attempt> = ["00", "01", "04", "13"]
        .iter()
        .map(|d| line(&format!("2557123451{d}"), "250", &format!("LOST-{d}")))
        .collect();
    let batch_id = Uuid::now_v7();
    let BatchAck::Accepted { batch_ref } =
        g.core.adapter.submit_batch(batch_id, &lines).await.unwrap()
    else {
        panic!("not accepted")
    };
    let results = by_attempt(&results_when_done(&g, &batch_ref).await);
    assert!(matches!(
        results[&lines[0].attempt_id][0].status,
        RailStatus::Completed(_)
    ));
    assert!(matches!(
        results[&lines[1].attempt_id][0].status,
        RailStatus::Failed(_)
    ));
    // Asked about, never sent again.
    assert_eq!(count(&g, "POST", "/bulkTransfers"), 1);
    assert!(count(&g, "GET", &format!("/bulkTransfers/{batch_ref}")) >= 1);
    for p in g.hub.payouts() {
        assert_eq!(p.count, 1, "{p:?}");
    }
    assert_eq!(g.hub.payouts().len(), 3);
}

fn inbound(path: &str, source: &str, body: serde_json::Value) -> InboundRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert("FSPIOP-Source", source.parse().unwrap());
    headers.insert("FSPIOP-Destination", OUR_FSP.parse().unwrap());
    headers.insert("Date", wire::http_date(Utc::now()).parse().unwrap());
    InboundRequest {
        method: http::Method::PUT,
        path: path.to_owned(),
        query: None,
        headers,
        body: bytes::Bytes::from(serde_json::to_vec(&body).unwrap()),
        received_at: Utc::now(),
        peer: None,
    }
}

#[tokio::test]
async fn bulk_callbacks_are_bound_to_what_we_sent() {
    let ca = Ca::new("Hub CA");
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(&ca, dir.path(), Duration::from_secs(30)).await;
    // Withheld: the callbacks below are the only results.
    g.hub.drop_bulk_answers(1);
    let lines = vec![
        line("255712345200", "300", "B-0"),
        line("255712345300", "300", "B-1"),
    ];
    let batch_id = Uuid::now_v7();
    let BatchAck::Accepted { batch_ref } =
        g.core.adapter.submit_batch(batch_id, &lines).await.unwrap()
    else {
        panic!("not accepted")
    };
    let adapter = &g.core.adapter;
    let transfer_id =
        |a: &Attempt| id_string(derive_id(a.attempt_id, IdPurpose::Transaction).unwrap());
    let done = |results: serde_json::Value| {
        serde_json::json!({
            "bulkTransferState": "COMPLETED",
            "completedTimestamp": wire::fspiop_datetime(Utc::now()),
            "individualTransferResults": results,
        })
    };
    let unauthenticated = |r: Result<_, CallbackError>| {
        assert!(matches!(r, Err(CallbackError::Unauthenticated(_))), "{r:?}")
    };
    // A bulk we never sent.
    let other = id_string(Uuid::new_v4());
    unauthenticated(adapter.callback(&inbound(
        &format!("/bulkTransfers/{other}"),
        PEER,
        done(serde_json::json!([])),
    )));
    // Ours, but from an FSP it did not go to.
    unauthenticated(adapter.callback(&inbound(
        &format!("/bulkTransfers/{batch_ref}"),
        "roguefsp",
        done(serde_json::json!([])),
    )));
    // A transfer the bulk does not carry.
    let stranger = line("255712345400", "300", "X");
    let r = adapter.callback(&inbound(
        &format!("/bulkTransfers/{batch_ref}"),
        PEER,
        done(serde_json::json!([{"transferId": transfer_id(&stranger), "fulfilment": "x".repeat(43)}])),
    ));
    assert!(matches!(r, Err(CallbackError::Malformed(_))), "{r:?}");
    // A fulfilment that does not match the line's condition completes nothing.
    let forged = "A".repeat(43);
    adapter
        .callback(&inbound(
            &format!("/bulkTransfers/{batch_ref}"),
            PEER,
            done(serde_json::json!([{"transferId": transfer_id(&lines[0]), "fulfilment": forged}])),
        ))
        .unwrap();
    let page = adapter.batch_results(&batch_ref, None).await.unwrap();
    assert!(page.lines.is_empty(), "{page:?}");
    let ask = adapter.callback(&inbound(
        &format!("/bulkTransfers/{batch_ref}/error"),
        "switch",
        serde_json::json!({"errorInformation": {"errorCode": "3210", "errorDescription": "Bulk transfer ID not found"}}),
    ));
    // "Not found" before the bulk's expiry says nothing.
    ask.unwrap();
    assert!(adapter
        .batch_results(&batch_ref, None)
        .await
        .unwrap()
        .lines
        .is_empty());
    assert_eq!(g.hub.payouts().len(), 2, "the hub paid both lines once");
}

// An answer to a bulk's party lookup that comes after its upload stopped waiting (its next try
// asks again) is acknowledged with nothing applied, not refused as a callback for an unknown
// attempt; a lookup a single attempt sent afterwards for the same party owns its answer again.
#[tokio::test]
async fn a_late_answer_to_a_bulk_lookup_is_acknowledged() {
    let ca = Ca::new("Hub CA");
    let dir = tempfile::tempdir().unwrap();
    let g = gateway(&ca, dir.path(), Duration::from_secs(30)).await;
    let lines = vec![line("255712346100", "300", "L-0")];
    let BatchAck::Accepted { .. } = g
        .core
        .adapter
        .submit_batch(Uuid::now_v7(), &lines)
        .await
        .unwrap()
    else {
        panic!("not accepted")
    };
    let found = |msisdn: &str| {
        inbound(
            &format!("/parties/MSISDN/{msisdn}"),
            PEER,
            serde_json::json!({"party": {"partyIdInfo": {
                "partyIdType": "MSISDN", "partyIdentifier": msisdn, "fspId": PEER}}}),
        )
    };
    // The bulk's lookup was answered long ago; this one is a late repeat.
    let late = g.core.adapter.callback(&found("255712346100")).unwrap();
    assert_eq!(late.status, 200);
    assert!(late.events.is_empty(), "{:?}", late.events);
    // A party no bulk asked about: an event for the single attempt that looked it up.
    let single = g.core.adapter.callback(&found("255712346199")).unwrap();
    assert_eq!(single.events.len(), 1, "{:?}", single.events);
    // A single attempt's lookup of the bulk's party: the answer is that attempt's again.
    let mut alone = line("255712346100", "300", "L-1");
    alone.attempt_id = Uuid::new_v4();
    g.core.adapter.submit(&alone).await.unwrap();
    let after = g.core.adapter.callback(&found("255712346100")).unwrap();
    assert_eq!(after.events.len(), 1, "{:?}", after.events);
}

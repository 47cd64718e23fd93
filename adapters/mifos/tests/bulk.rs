//! PH-EE bulk: the CSV planner against its quirks, and a 10,000-line payroll through the
//! sandbox with every line accounted for.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::extract::State;
use axum::routing::post;
use common::*;
use railgate_mifos::adapter::batch_callback_url;
use railgate_mifos::bulk::{self, BulkOptions, COLUMNS, PHEE_MAX_FILE_BYTES};
use railgate_mifos::mock::{PhEeMock, PhEeMockConfig};
use railgate_mifos::{PhEeAdapter, PhEeConfig, Secret};
use railgate_rail::{
    Attempt, Currency, Direction, FailureCode, InboundRequest, Party, PartyIdType, RailAdapter,
    RailStatus,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn options() -> BulkOptions {
    BulkOptions {
        payer_id_type: "msisdn".into(),
        payer_identifier: "255700000001".into(),
        purpose: "Benefits November".into(),
        max_file_bytes: PHEE_MAX_FILE_BYTES,
    }
}

fn mode_of(a: &Attempt) -> String {
    if a.party.id_type() == PartyIdType::Msisdn {
        "mojaloop".into()
    } else {
        "gsma".into()
    }
}

#[test]
fn the_plan_keeps_every_line_and_avoids_every_quirk() {
    let mut attempts = Vec::new();
    // Three equal instalments to one payee, which PH-EE would merge into one.
    for _ in 0..3 {
        attempts.push(attempt(
            Direction::Disbursement,
            msisdn(0),
            10_000,
            Currency::Tzs,
        ));
    }
    // Other modes in the same payroll, and an identifier PH-EE's naive CSV split would break.
    attempts.push(attempt(
        Direction::Disbursement,
        Party::new(PartyIdType::AccountId, "ACC-77", None).unwrap(),
        500,
        Currency::Tzs,
    ));
    let comma = attempt(
        Direction::Disbursement,
        Party::new(PartyIdType::AccountId, "12,34", None).unwrap(),
        500,
        Currency::Tzs,
    );
    attempts.push(comma.clone());
    let mut noted = attempt(Direction::Disbursement, msisdn(1), 700, Currency::Tzs);
    noted.narrative = Some("arrears, \"October\"\nand November".into());
    attempts.push(noted);
    let plan = bulk::plan(&attempts, &options(), mode_of);
    assert_eq!(plan.refused.len(), 1);
    assert_eq!(plan.refused[0].attempt_id, comma.attempt_id);
    let planned: Vec<Uuid> = plan
        .batches
        .iter()
        .flat_map(|b| b.lines.iter().map(|l| l.attempt_id))
        .collect();
    assert_eq!(planned.len(), attempts.len() - 1);
    assert_eq!(planned.iter().collect::<HashSet<_>>().len(), planned.len());
    for b in &plan.batches {
        let mut rows = b.csv.lines();
        assert_eq!(rows.next().unwrap(), COLUMNS.join(","));
        let mut keys = HashSet::new();
        for r in rows {
            let f: Vec<&str> = r.split(',').collect();
            assert_eq!(f.len(), COLUMNS.len(), "{r}");
            assert_eq!(f[2], b.payment_mode, "one payment mode per file");
            assert!(
                keys.insert((
                    f[5].to_owned(),
                    f[6].to_owned(),
                    f[7].to_owned(),
                    f[8].to_owned()
                )),
                "duplicate payee+amount in one file"
            );
        }
    }
    assert_eq!(
        plan.batches
            .iter()
            .filter(|b| b.payment_mode == "mojaloop")
            .count(),
        3
    );
    assert_eq!(
        plan.batches
            .iter()
            .filter(|b| b.payment_mode == "gsma")
            .count(),
        1
    );
    // mojaloop mode sends every payee as an MSISDN: other payees are refused in that mode.
    let p2 = bulk::plan(&attempts[3..4], &options(), |_| "mojaloop".into());
    assert_eq!(p2.refused.len(), 1);
}

#[derive(Clone, Default)]
struct Receiver {
    adapter: Option<Arc<PhEeAdapter>>,
    hints: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> axum::http::StatusCode {
    let path = uri
        .path()
        .strip_prefix("/rails/mifos")
        .unwrap_or(uri.path())
        .to_owned();
    let req = InboundRequest {
        method: http::Method::POST,
        path,
        query: uri.query().map(str::to_owned),
        headers,
        body,
        received_at: chrono::Utc::now(),
        peer: None,
    };
    match r.adapter.as_ref().unwrap().callback(&req) {
        Ok(reply) => {
            assert!(reply.events.is_empty());
            r.hints.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::OK
        }
        Err(_) => {
            r.refused.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::UNAUTHORIZED
        }
    }
}

#[tokio::test]
async fn a_ten_thousand_line_payroll_has_every_line_accounted_for() {
    let mock = PhEeMock::start(PhEeMockConfig::default()).await.unwrap();
    let token = Secret::new("bulk-callback-token");
    let adapter = Arc::new(
        PhEeAdapter::new(PhEeConfig {
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
            callback_token: Some(token.clone()),
            currencies: vec![Currency::Tzs],
            timeout_ms: 20_000,
            tls: None,
            oauth: None,
        })
        .unwrap(),
    );
    let receiver = Receiver {
        adapter: Some(adapter.clone()),
        ..Receiver::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/rails/mifos/{*rest}", post(receive))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // 10,000 lines: mostly successes, some failures; every tenth line repeats the payee and
    // amount of the line before (equal instalments), and a tenth of payees are wallets paid
    // in another mode.
    let scenario = |i: usize| [0u8, 0, 0, 0, 0, 0, 1, 2, 3, 6][i % 10];
    let mut attempts: Vec<Attempt> = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let a = if i % 10 == 9 {
            let prev = &attempts[i - 1];
            attempt(
                Direction::Disbursement,
                prev.party.clone(),
                prev.amount.minor(),
                Currency::Tzs,
            )
        } else {
            let id = format!("2557{:06}{:02}", i, scenario(i));
            let party = if i % 10 == 5 {
                Party::new(PartyIdType::AccountId, &format!("W{id}"), None).unwrap()
            } else {
                Party::new(PartyIdType::Msisdn, &id, None).unwrap()
            };
            attempt(
                Direction::Disbursement,
                party,
                10_000 + i64::try_from(i % 500).unwrap() * 100,
                Currency::Tzs,
            )
        };
        attempts.push(a);
    }
    let plan = bulk::plan(&attempts, &options(), mode_of);
    assert!(plan.refused.is_empty());
    assert!(
        plan.batches.len() >= 2
            && plan
                .batches
                .iter()
                .all(|b| b.csv.len() <= PHEE_MAX_FILE_BYTES)
    );

    let callback = batch_callback_url(&gw, "mifos", &token);
    let mut batch_ids = Vec::new();
    for b in &plan.batches {
        batch_ids.push(adapter.submit_bulk(b, Some(&callback)).await.unwrap());
    }
    // Poll (the callbacks are only hints) until every line of every batch is final.
    let mut outcome: HashMap<Uuid, RailStatus> = HashMap::new();
    for (b, id) in plan.batches.iter().zip(&batch_ids) {
        let mut done = false;
        for _ in 0..200 {
            let results = adapter.bulk_results(id).await.unwrap();
            let acc = bulk::account_for(b, &results);
            assert!(acc.unexpected.is_empty() && acc.amount_mismatch.is_empty());
            if acc.all_final() {
                for (a, s) in acc.reported {
                    assert!(outcome.insert(a, s).is_none(), "a line in two batches");
                }
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(done, "batch {id} never finished");
        let summary = adapter.batch_summary(id).await.unwrap();
        assert_eq!(summary.total, u64::try_from(b.lines.len()).unwrap());
    }
    assert_eq!(outcome.len(), 10_000);
    let payouts: HashMap<String, u32> = mock
        .payouts()
        .into_iter()
        .map(|p| (p.attempt_id, p.count))
        .collect();
    let mut paid = 0;
    for a in &attempts {
        let s = &outcome[&a.attempt_id];
        match a.party.scenario_digits() {
            0 => {
                assert!(matches!(s, RailStatus::Completed(_)), "{s:?}");
                assert_eq!(payouts.get(&a.attempt_id.to_string()), Some(&1));
                paid += 1;
            }
            1 => assert!(
                matches!(s, RailStatus::Failed(f) if f.code == FailureCode::InsufficientFunds)
            ),
            2 => {
                assert!(matches!(s, RailStatus::Failed(f) if f.code == FailureCode::PartyNotFound))
            }
            3 => assert!(matches!(s, RailStatus::Failed(f) if f.code == FailureCode::Declined)),
            6 => assert!(matches!(s, RailStatus::Failed(_))),
            other => panic!("unexpected scenario {other}"),
        }
    }
    assert_eq!(payouts.len(), paid);
    // The batch callbacks arrived and were taken as hints (PH-EE sends one per phase).
    for _ in 0..100 {
        if receiver.hints.load(Ordering::SeqCst) >= plan.batches.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(receiver.hints.load(Ordering::SeqCst) >= plan.batches.len());
    assert_eq!(receiver.refused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn what_payment_hub_does_with_a_naive_file_is_why_the_plan_exists() {
    // The same lines sent as one naive file: PH-EE drops the repeated payee+amount line and
    // sends the wallet line in the first row's mode. The planner's files lose nothing.
    let mock = PhEeMock::start(PhEeMockConfig::default()).await.unwrap();
    let adapter = PhEeAdapter::new(PhEeConfig {
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
        callback_token: None,
        currencies: vec![Currency::Tzs],
        timeout_ms: 5_000,
        tls: None,
        oauth: None,
    })
    .unwrap();
    let a = attempt(Direction::Disbursement, msisdn(0), 10_000, Currency::Tzs);
    let b = attempt(Direction::Disbursement, msisdn(0), 10_000, Currency::Tzs);
    let mut naive = bulk::plan(std::slice::from_ref(&a), &options(), mode_of)
        .batches
        .remove(0);
    let extra = bulk::plan(std::slice::from_ref(&b), &options(), mode_of)
        .batches
        .remove(0);
    naive.csv.push_str(extra.csv.lines().nth(1).unwrap());
    naive.csv.push('\n');
    naive.lines.extend(extra.lines);
    let id = adapter.submit_bulk(&naive, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acc = bulk::account_for(&naive, &adapter.bulk_results(&id).await.unwrap());
    assert_eq!(
        acc.missing,
        vec![b.attempt_id],
        "PH-EE silently dropped the second line"
    );
    // The planner puts them in two files, and both are paid.
    let plan = bulk::plan(&[a.clone(), b.clone()], &options(), mode_of);
    assert_eq!(plan.batches.len(), 2);
    for batch in &plan.batches {
        adapter.submit_bulk(batch, None).await.unwrap();
    }
    // The first file again, as after a lost upload answer: its line was sent before, so
    // PH-EE refuses the row (TransactionExists); the line is not failed and not paid twice.
    let again = adapter.submit_bulk(&plan.batches[0], None).await.unwrap();
    for _ in 0..100 {
        let paid = mock.payouts();
        if paid.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acc = bulk::account_for(
        &plan.batches[0],
        &adapter.bulk_results(&again).await.unwrap(),
    );
    assert_eq!(acc.reported.len(), 1);
    assert_eq!(acc.reported[0].1, RailStatus::Pending);
    let paid = mock.payouts();
    assert_eq!(paid.len(), 2);
    assert!(paid.iter().all(|p| p.count == 1));
    let line = plan.batches[0].lines[0].attempt_id;
    let original = if line == a.attempt_id { &a } else { &b };
    assert!(matches!(
        adapter.inquire(original).await.unwrap(),
        RailStatus::Completed(_)
    ));
}

//! Property tests of the ledger against the real store (SQLite and PostgreSQL): random
//! sequences of payments, submissions, signed callbacks through the real inbox, duplicates,
//! failures, inquiries, reversals, cancellations and restarts (one mid-transaction), with the
//! ledger's invariants checked after every step.
//!
//! Cases are few (each runs on a fresh database); raise `LEDGER_PROP_CASES` to search longer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use proptest::prelude::*;
use railgate::api::auth::Caller;
use railgate::api::AppState;
use railgate::domain::{
    CollectionMode, Currency, Direction, Failure, FailureCode, Money, NewPayment, Party,
    PartyIdType, State,
};
use railgate::engine::{self, Change};
use railgate::ledger::balances;
use railgate::store::{attempts, payments, Db};
use railgate_rail::{InboundRequest, Settled};
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    /// A disbursement (or a request-to-pay collection) of `amount` minor units.
    Create {
        collection: bool,
        amount: i64,
    },
    /// The dispatcher stores an attempt and sends it.
    Submit(usize),
    /// The rail accepted the attempt.
    Accept(usize),
    /// A signed success or failure callback through the callbacks inbox.
    Callback {
        payment: usize,
        success: bool,
    },
    /// The n-th callback sent so far, delivered again as it was.
    Redeliver(usize),
    /// An inquiry's answer (or a retried job applying it again).
    Inquiry {
        payment: usize,
        success: bool,
    },
    LoseTrack(usize),
    Cancel(usize),
    Reverse(usize),
    /// The process stops mid-way through applying a completion, and starts again.
    Restart(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..6;
    prop_oneof![
        3 => (any::<bool>(), 1i64..5_000_000).prop_map(|(collection, amount)| Op::Create { collection, amount }),
        3 => i.clone().prop_map(Op::Submit),
        1 => i.clone().prop_map(Op::Accept),
        4 => (i.clone(), any::<bool>()).prop_map(|(payment, success)| Op::Callback { payment, success }),
        2 => (0usize..8).prop_map(Op::Redeliver),
        2 => (i.clone(), any::<bool>()).prop_map(|(payment, success)| Op::Inquiry { payment, success }),
        1 => i.clone().prop_map(Op::LoseTrack),
        1 => i.clone().prop_map(Op::Cancel),
        2 => i.clone().prop_map(Op::Reverse),
        1 => i.prop_map(Op::Restart),
    ]
}

struct World {
    url: String,
    state: AppState,
    caller: Caller,
    payments: Vec<Uuid>,
    callbacks: Vec<(Vec<u8>, String)>,
}

impl World {
    async fn new(store: Store) -> Option<World> {
        let url = database_url(store).await?;
        let state = app_state(&url).await;
        let client = railgate::store::keys::ensure_client(&state.db, "props")
            .await
            .unwrap();
        Some(World {
            url,
            caller: Caller {
                client_id: client,
                key_id: Uuid::nil(),
                scopes: vec!["admin".into()],
            },
            state,
            payments: Vec::new(),
            callbacks: Vec::new(),
        })
    }

    fn db(&self) -> &Db {
        &self.state.db
    }

    fn pick(&self, i: usize) -> Option<Uuid> {
        (!self.payments.is_empty()).then(|| self.payments[i % self.payments.len()])
    }

    async fn attempt(&self, p: Uuid) -> Option<attempts::AttemptRow> {
        let mut conn = self.db().pool().acquire().await.unwrap();
        attempts::latest(&mut conn, p).await.unwrap()
    }

    async fn deliver(&self, body: &[u8], event_id: &str) {
        let mut headers = http::HeaderMap::new();
        let sig = railgate_mock::sign(MOCK_SECRET, chrono::Utc::now().timestamp(), body);
        headers.insert(railgate_mock::SIGNATURE_HEADER, sig.parse().unwrap());
        headers.insert(railgate_mock::EVENT_ID_HEADER, event_id.parse().unwrap());
        let req = InboundRequest {
            method: http::Method::POST,
            path: railgate_mock::CALLBACK_PATH.to_owned(),
            query: None,
            headers,
            body: body.to_vec().into(),
            received_at: chrono::Utc::now(),
            peer: None,
        };
        railgate::callbacks::receive(
            self.db(),
            &self.state.group,
            &self.state.rails,
            &self.state.wake,
            "mock",
            req,
        )
        .await
        .unwrap();
    }

    async fn apply(&mut self, op: &Op) {
        let kind = self.db().kind();
        match op {
            Op::Create { collection, amount } => {
                let n = self.payments.len();
                let tzs: Currency = "TZS".parse().unwrap();
                let new = NewPayment {
                    direction: if *collection {
                        Direction::Collection
                    } else {
                        Direction::Disbursement
                    },
                    mode: collection.then_some(CollectionMode::RequestToPay),
                    reference: format!("P-{n}"),
                    amount: Money::from_minor(*amount, tzs).unwrap(),
                    party: Party::new(PartyIdType::Msisdn, "255712345600", None).unwrap(),
                    narrative: None,
                    rail_hint: None,
                    metadata: serde_json::json!({"programme": if n % 2 == 0 { "maternity" } else { "chf" }})
                        .as_object()
                        .unwrap()
                        .clone(),
                    payroll_id: None,
                };
                let p =
                    railgate::api::payments::insert_payment(&self.state, &self.caller, &new, None)
                        .await
                        .unwrap();
                self.payments.push(p.id);
            }
            Op::Submit(i) => {
                let Some(p) = self.pick(*i) else { return };
                // What the dispatcher does before it sends a first attempt.
                let mut tx = self.db().begin().await.unwrap();
                let held = payments::lock_state(&mut tx, kind, p).await.unwrap();
                let moved = engine::apply(&mut tx, kind, p, Change::Submit, "props: submit")
                    .await
                    .unwrap();
                if held == State::Queued && moved.changed() {
                    attempts::insert(&mut tx, self.caller.client_id, p, "mock", i64::MAX)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                } else {
                    tx.rollback().await.unwrap();
                }
            }
            Op::Accept(i) => {
                let Some(p) = self.pick(*i) else { return };
                let Some(a) = self.attempt(p).await else {
                    return;
                };
                let mut tx = self.db().begin().await.unwrap();
                engine::apply(
                    &mut tx,
                    kind,
                    p,
                    Change::Accept {
                        attempt: Some(a.id),
                        rail_reference: Some("TX-1".to_owned()),
                    },
                    "props: accepted",
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
            Op::Callback { payment, success } => {
                let Some(p) = self.pick(*payment) else { return };
                // No attempt yet: the callback names one we never made, and is refused.
                let attempt = self.attempt(p).await.map_or_else(Uuid::new_v4, |a| a.id);
                let event_id = Uuid::new_v4().to_string();
                let body = serde_json::to_vec(&serde_json::json!({
                    "event_id": event_id,
                    "request_id": attempt,
                    "transaction_id": "TX-1",
                    "status": if *success { "SUCCESS" } else { "FAILED" },
                    "code": if *success { None } else { Some("DECLINED") },
                    "receipt": success.then_some("R-1"),
                    "amount": "1.00",
                    "currency": "TZS",
                    "occurred_at": chrono::Utc::now(),
                }))
                .unwrap();
                self.deliver(&body, &event_id).await;
                self.callbacks.push((body, event_id));
            }
            Op::Redeliver(n) => {
                if self.callbacks.is_empty() {
                    return;
                }
                let (body, id) = self.callbacks[n % self.callbacks.len()].clone();
                self.deliver(&body, &id).await;
            }
            Op::Inquiry { payment, success } => {
                let Some(p) = self.pick(*payment) else { return };
                let Some(a) = self.attempt(p).await else {
                    return;
                };
                let mut tx = self.db().begin().await.unwrap();
                if *success {
                    let s = Settled {
                        rail_reference: Some("TX-1".into()),
                        receipt: Some("R-2".into()),
                        amount: None,
                    };
                    engine::apply(
                        &mut tx,
                        kind,
                        p,
                        Change::Complete {
                            attempt: Some(a.id),
                            settled: s.clone(),
                        },
                        "props: inquiry",
                    )
                    .await
                    .unwrap();
                } else {
                    let f = Failure::new(FailureCode::PartyNotFound, "no such party", None);
                    engine::apply(
                        &mut tx,
                        kind,
                        p,
                        Change::Fail {
                            attempt: Some(a.id),
                            failure: f.clone(),
                        },
                        "props: inquiry",
                    )
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
            }
            Op::LoseTrack(i) => {
                let Some(p) = self.pick(*i) else { return };
                let Some(a) = self.attempt(p).await else {
                    return;
                };
                let mut tx = self.db().begin().await.unwrap();
                engine::apply(
                    &mut tx,
                    kind,
                    p,
                    Change::LoseTrack {
                        attempt: a.id,
                        why: "timeout".to_string(),
                    },
                    "props",
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
            Op::Cancel(i) => {
                let Some(p) = self.pick(*i) else { return };
                let mut tx = self.db().begin().await.unwrap();
                engine::apply(&mut tx, kind, p, Change::Cancel, "props: cancel")
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            Op::Reverse(i) => {
                let Some(p) = self.pick(*i) else { return };
                let mut tx = self.db().begin().await.unwrap();
                engine::apply(&mut tx, kind, p, Change::Reverse, "props: refunded")
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            Op::Restart(i) => {
                // Half-way through applying a completion, the process dies: nothing of it stays.
                if let Some(p) = self.pick(*i) {
                    let mut tx = self.db().begin().await.unwrap();
                    let s = Settled {
                        rail_reference: None,
                        receipt: None,
                        amount: None,
                    };
                    engine::apply(
                        &mut tx,
                        kind,
                        p,
                        Change::Complete {
                            attempt: None,
                            settled: s.clone(),
                        },
                        "props: lost",
                    )
                    .await
                    .unwrap();
                    drop(tx);
                }
                self.state.db.close().await;
                self.state = app_state(&self.url).await;
            }
        }
    }

    /// The ledger's invariants, over everything stored.
    async fn check(&self) -> Result<(), String> {
        let db = self.db();
        let unbalanced = balances::unbalanced_transfers(db).await.unwrap();
        if !unbalanced.is_empty() {
            return Err(format!("unbalanced transfers: {unbalanced:?}"));
        }
        for t in balances::trial_balance(db, None).await.unwrap() {
            if !t.balanced() {
                return Err(format!("trial balance not zero: {t:?}"));
            }
        }
        for a in balances::accounts(db, None).await.unwrap() {
            let b = &a.balance;
            if b.debits_pending < 0 || b.credits_pending < 0 || b.debits_posted < 0 {
                return Err(format!("a negative total: {a:?}"));
            }
            if a.non_negative && a.balance.posted(a.normal_side) < 0 {
                return Err(format!("{} is below zero: {b:?}", a.code));
            }
        }
        let rows: Vec<(String, String)> =
            railgate::store::sql::query_as("SELECT payment_id, phase FROM ledger_transfers")
                .fetch_all(db.pool())
                .await
                .unwrap();
        let mut phases: HashMap<String, Vec<String>> = HashMap::new();
        for (p, phase) in rows {
            phases.entry(p).or_default().push(phase);
        }
        let states: Vec<(String, String, String, i64)> = railgate::store::sql::query_as(
            "SELECT id, state, direction, amount_minor FROM payments",
        )
        .fetch_all(db.pool())
        .await
        .unwrap();
        let mut in_flight = 0i64;
        for (id, state, direction, amount) in &states {
            let got = phases.get(id).cloned().unwrap_or_default();
            let n = |ph: &str| got.iter().filter(|x| *x == ph).count();
            let (pending, posted, voided, reversal) =
                (n("pending"), n("posted"), n("voided"), n("reversal"));
            let disb = direction == "disbursement";
            let ok = match state.as_str() {
                "received" | "queued" => got.is_empty(),
                "submitted" | "pending" | "unknown" => {
                    posted == 0 && voided == 0 && reversal == 0 && pending == usize::from(disb)
                }
                "completed" => posted == 1 && voided == 0 && reversal == 0 && pending <= 1,
                "reversed" => posted == 1 && reversal == 1 && voided == 0,
                "failed" | "cancelled" => posted == 0 && reversal == 0 && voided == pending,
                other => return Err(format!("unexpected state {other}")),
            };
            if !ok {
                return Err(format!(
                    "payment {id} ({direction}, {state}) has transfers {got:?}"
                ));
            }
            if disb && matches!(state.as_str(), "submitted" | "pending" | "unknown") {
                in_flight += amount;
            }
        }
        // What is pending in the books is exactly what is in flight at the rails.
        let pending: i64 = balances::trial_balance(db, None)
            .await
            .unwrap()
            .iter()
            .map(|t| t.totals.debits_pending)
            .sum();
        if pending != in_flight {
            return Err(format!("pending {pending} but {in_flight} in flight"));
        }
        Ok(())
    }
}

fn run(store: Store, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Some(mut w) = World::new(store).await else {
            return Ok(());
        };
        for (i, op) in ops.iter().enumerate() {
            w.apply(op).await;
            if let Err(e) = w.check().await {
                w.state.db.close().await;
                return Err(TestCaseError::fail(format!("after step {i} {op:?}: {e}")));
            }
        }
        w.state.db.close().await;
        Ok(())
    })
}

fn cases() -> u32 {
    std::env::var("LEDGER_PROP_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn ledger_invariants_hold_on_sqlite(ops in proptest::collection::vec(op(), 1..40)) {
        run(Store::Sqlite, ops)?;
    }

    #[test]
    fn ledger_invariants_hold_on_postgres(ops in proptest::collection::vec(op(), 1..40)) {
        run(Store::Postgres, ops)?;
    }
}

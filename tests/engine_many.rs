//! The engine's group apply (`engine::apply_many`, set-based statements) against its one by
//! one apply, on the real stores: the same script of changes, interleaved across payments and
//! several to one payment, applied to two identical sets of payments, one change per
//! transaction for the first set and all in one group for the second. Both sets must end
//! alike: states, history, attempts, conflicts, ledger transfers and entries, events and the
//! webhook deliveries they fan out to, and what each change came to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use railgate::api::auth::Caller;
use railgate::domain::PartyIdType;
use railgate::domain::{Currency, Direction, Failure, FailureCode, Money, NewPayment, Party};
use railgate::engine::{self, Applied, Change};
use railgate::store::{attempts, Db};
use railgate_rail::Settled;
use uuid::Uuid;

/// The script: (payment index, change), given each payment's attempt id.
fn script(attempt: &[Uuid]) -> Vec<(usize, Change)> {
    let done = |i: usize, receipt: &str| Change::Complete {
        attempt: Some(attempt[i]),
        settled: Settled {
            rail_reference: Some(format!("RR-{i}")),
            receipt: Some(receipt.to_owned()),
            amount: None,
        },
    };
    let fail = |i: usize| Change::Fail {
        attempt: Some(attempt[i]),
        failure: Failure::new(FailureCode::Declined, "declined by the payee's bank", None),
    };
    let accept = |i: usize| Change::Accept {
        attempt: Some(attempt[i]),
        rail_reference: Some(format!("RR-{i}")),
    };
    let lose = |i: usize| Change::LoseTrack {
        attempt: attempt[i],
        why: "no answer".to_owned(),
    };
    vec![
        (0, Change::Submit),
        (1, Change::Submit),
        (2, Change::Submit),
        (3, Change::Submit),
        (4, Change::Cancel),
        (5, Change::Submit),
        (0, accept(0)),
        (1, fail(1)),
        (2, lose(2)),
        (3, accept(3)),
        (5, accept(5)),
        (0, done(0, "R-0")),
        (2, done(2, "R-2")),
        (3, done(3, "R-3")),
        (5, done(5, "R-5")),
        // A redelivery, a contradiction, a reversal and a change after the end.
        (3, done(3, "R-3")),
        (0, fail(0)),
        (5, Change::Reverse),
        (4, Change::Submit),
        (1, Change::Submit),
    ]
}

/// What a payment came to, as comparable text.
async fn outcome(db: &Db, payment: Uuid) -> Vec<String> {
    let mut out = Vec::new();
    let id = payment.to_string();
    let q = |sql: &'static str| railgate::store::sql::query(sql).bind(id.clone());
    let row = q(
        "SELECT state, failure_code, exception, conflict, rail_reference, receipt \
               FROM payments WHERE id = $1",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    let fields: [Option<String>; 6] = [
        row.get("state"),
        row.get("failure_code"),
        row.get("exception"),
        row.get::<Option<String>, _>("conflict")
            .map(|_| "conflict".into()),
        row.get("rail_reference"),
        row.get("receipt"),
    ];
    out.push(format!("payment {fields:?}"));
    for row in q("SELECT seq, from_state, to_state FROM payment_transitions \
                WHERE payment_id = $1 ORDER BY seq")
    .fetch_all(db.pool())
    .await
    .unwrap()
    {
        let (seq, from, to): (i64, Option<String>, String) =
            (row.get("seq"), row.get("from_state"), row.get("to_state"));
        out.push(format!("history {seq} {from:?} -> {to}"));
    }
    for row in q("SELECT status, rail_reference FROM attempts WHERE payment_id = $1")
        .fetch_all(db.pool())
        .await
        .unwrap()
    {
        let (status, r): (String, Option<String>) = (row.get("status"), row.get("rail_reference"));
        out.push(format!("attempt {status} {r:?}"));
    }
    for row in q("SELECT t.phase, t.amount_minor, \
                (SELECT COUNT(*) FROM ledger_entries e WHERE e.transfer_id = t.id) AS entries, \
                t.pending_id IS NOT NULL AS resolves FROM ledger_transfers t \
                WHERE t.payment_id = $1 ORDER BY t.phase")
    .fetch_all(db.pool())
    .await
    .unwrap()
    {
        let (phase, amount, entries, resolves): (String, i64, i64, bool) = (
            row.get("phase"),
            row.get("amount_minor"),
            row.get("entries"),
            row.get("resolves"),
        );
        out.push(format!(
            "transfer {phase} {amount} entries={entries} resolves={resolves}"
        ));
    }
    for row in q("SELECT e.type, (SELECT COUNT(*) FROM webhook_deliveries d \
                WHERE d.event_id = e.id) AS deliveries FROM events e \
                WHERE e.payment_id = $1 ORDER BY e.seq")
    .fetch_all(db.pool())
    .await
    .unwrap()
    {
        let (kind, deliveries): (String, i64) = (row.get("type"), row.get("deliveries"));
        out.push(format!("event {kind} deliveries={deliveries}"));
    }
    let conflicts: i64 =
        railgate::store::sql::query_scalar("SELECT COUNT(*) FROM conflicts WHERE payment_id = $1")
            .bind(id.clone())
            .fetch_one(db.pool())
            .await
            .unwrap();
    out.push(format!("conflicts {conflicts}"));
    out.push(format!("jobs {}", payment_jobs(db, payment).await));
    out
}

/// The payment's driving jobs (0 or 1).
async fn payment_jobs(db: &Db, payment: Uuid) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE kind = 'payment' AND payment_id = $1",
    )
    .bind(payment.to_string())
    .fetch_one(db.pool())
    .await
    .unwrap()
}

/// The caller with every scope, for a client.
fn admin(client_id: Uuid) -> Caller {
    Caller {
        client_id,
        key_id: Uuid::nil(),
        scopes: vec!["admin".into()],
    }
}

/// A disbursement of `minor` TZS created as the API creates it, and its first attempt (on the
/// mock rail, no deadline): (payment id, attempt id).
async fn payment_with_attempt(
    state: &railgate::api::AppState,
    caller: &Caller,
    reference: String,
    minor: i64,
) -> (Uuid, Uuid) {
    let tzs: Currency = "TZS".parse().unwrap();
    let new = NewPayment {
        direction: Direction::Disbursement,
        mode: None,
        reference,
        amount: Money::from_minor(minor, tzs).unwrap(),
        party: Party::new(PartyIdType::Msisdn, "255712345600", None).unwrap(),
        narrative: None,
        rail_hint: None,
        metadata: serde_json::Map::new(),
        payroll_id: None,
    };
    let p = railgate::api::payments::insert_payment(state, caller, &new, None)
        .await
        .unwrap();
    let mut conn = state.db.pool().acquire().await.unwrap();
    let a = attempts::insert(&mut conn, caller.client_id, p.id, "mock", i64::MAX)
        .await
        .unwrap();
    (p.id, a.id)
}

both_stores!(group_apply_matches_one_by_one, |store| async move {
    let Some(url) = database_url(store).await else {
        return;
    };
    let state = app_state(&url).await;
    let db = state.db.clone();
    let kind = db.kind();
    let client = railgate::store::keys::ensure_client(&db, "many")
        .await
        .unwrap();
    {
        // Every event fans out to this endpoint: the deliveries are compared too.
        let mut conn = db.pool().acquire().await.unwrap();
        railgate::notify::endpoints::create(
            &mut conn,
            client,
            "https://core.example.org/hooks",
            None,
            None,
            railgate::notify::endpoints::Format::Standard,
            None,
        )
        .await
        .unwrap();
    }
    let caller = admin(client);
    let mut sets: Vec<Vec<(Uuid, Uuid)>> = Vec::new();
    for set in ["one", "group"] {
        let mut made = Vec::new();
        for i in 0..6i64 {
            made.push(
                payment_with_attempt(&state, &caller, format!("{set}-{i}"), 10_000 + i).await,
            );
        }
        sets.push(made);
    }
    let (one, group) = (&sets[0], &sets[1]);

    // One by one, a transaction each.
    let attempts_one: Vec<Uuid> = one.iter().map(|(_, a)| *a).collect();
    let mut by_one = Vec::new();
    for (i, change) in script(&attempts_one) {
        let mut tx = db.begin().await.unwrap();
        let applied = engine::apply(&mut tx, kind, one[i].0, change, "script")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        by_one.push(applied);
    }

    // All at once.
    let attempts_group: Vec<Uuid> = group.iter().map(|(_, a)| *a).collect();
    let items = script(&attempts_group)
        .into_iter()
        .map(|(i, change)| engine::Item {
            payment_id: group[i].0,
            change,
            cause: "script".to_owned(),
        })
        .collect();
    let mut tx = db.begin().await.unwrap();
    let mut later = engine::Deferred::default();
    let by_group = engine::apply_many(&mut tx, kind, items, &mut later)
        .await
        .unwrap();
    later.run(&mut tx).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(by_one, by_group, "each change came to the same");
    assert!(by_one.iter().any(|a| matches!(a, Applied::Changed { .. })));
    assert!(by_one.contains(&Applied::Duplicate));
    assert!(by_one.contains(&Applied::Conflict));
    for i in 0..6 {
        let a = outcome(&db, one[i].0).await;
        let b = outcome(&db, group[i].0).await;
        assert_eq!(a, b, "payment {i} ended alike");
        assert!(a.iter().any(|l| l.starts_with("history")), "{a:?}");
    }
    // What the script makes of each payment, whichever way it was applied.
    let states = [
        "completed",
        "failed",
        "completed",
        "completed",
        "cancelled",
        "reversed",
    ];
    for (i, want) in states.iter().enumerate() {
        let got = outcome(&db, group[i].0).await;
        assert!(
            got[0].starts_with(&format!("payment [Some(\"{want}\")")),
            "payment {i}: {got:?}"
        );
    }
    // Every payment ended final: no job is left to be claimed only to be finished.
    for (i, (p, _)) in one.iter().chain(group.iter()).enumerate() {
        assert_eq!(payment_jobs(&db, *p).await, 0, "payment {i} kept its job");
    }
    let zero = outcome(&db, group[0].0).await;
    assert!(zero.contains(&"conflicts 1".to_owned()), "{zero:?}");
    // Payment 5 was reversed: its four transfers (pending, posted, reversal) balance.
    let five = outcome(&db, group[5].0).await;
    assert!(
        five.iter().any(|l| l.starts_with("transfer reversal")),
        "{five:?}"
    );
    assert!(
        five.iter()
            .any(|l| l.contains("payment.completed deliveries=1")),
        "{five:?}"
    );
    let unbalanced: i64 = railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM (SELECT transfer_id FROM ledger_entries GROUP BY transfer_id \
         HAVING SUM(debits_pending) <> SUM(credits_pending) \
         OR SUM(debits_posted) <> SUM(credits_posted)) x",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(unbalanced, 0, "every transfer balances");
});

// A payment that becomes final loses its driving job in the same transaction, unless a
// dispatcher holds the job (leased): that one is left to the dispatcher to finish.
both_stores!(
    final_payment_leaves_no_job_but_a_held_one,
    |store| async move {
        let Some(url) = database_url(store).await else {
            return;
        };
        let state = app_state(&url).await;
        let db = state.db.clone();
        let kind = db.kind();
        let client = railgate::store::keys::ensure_client(&db, "jobs-end")
            .await
            .unwrap();
        let caller = admin(client);
        let make =
            |reference: &str| payment_with_attempt(&state, &caller, reference.to_owned(), 5_000);
        let held = make("held").await;
        let submit = |p: Uuid| {
            let db = db.clone();
            async move {
                let mut tx = db.begin().await.unwrap();
                engine::apply(&mut tx, kind, p, Change::Submit, "test")
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        };
        submit(held.0).await;
        // A dispatcher claims the first payment's job; the second's is written after the claim.
        let claimed = railgate::store::jobs::claim(&db, "w-1", 60_000_000, 100)
            .await
            .unwrap();
        let job = claimed
            .into_iter()
            .find(|j| j.payment_id == Some(held.0))
            .expect("the held payment's job is claimed");
        let free = make("free").await;
        submit(free.0).await;
        assert_eq!(payment_jobs(&db, free.0).await, 1);
        for (p, a) in [held, free] {
            let mut tx = db.begin().await.unwrap();
            let applied = engine::apply(
                &mut tx,
                kind,
                p,
                Change::Complete {
                    attempt: Some(a),
                    settled: Settled {
                        rail_reference: Some("RR".into()),
                        receipt: Some("R".into()),
                        amount: None,
                    },
                },
                "test",
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            assert!(matches!(applied, Applied::Changed { .. }), "{applied:?}");
        }
        assert_eq!(
            payment_jobs(&db, free.0).await,
            0,
            "the free job went with the end"
        );
        assert_eq!(
            payment_jobs(&db, held.0).await,
            1,
            "the held job is the dispatcher's"
        );
        let mut conn = db.pool().acquire().await.unwrap();
        railgate::store::jobs::finish(&mut conn, &job)
            .await
            .unwrap();
        drop(conn);
        assert_eq!(payment_jobs(&db, held.0).await, 0);
    }
);

//! A payroll completes exactly when its last item is final, whichever transactions finish its
//! items and in whatever order they commit; and a transaction that finishes items while
//! others stay open does not lock the payroll's row (which would make all of a payroll's
//! finishing transactions on PostgreSQL pass one at a time).
//!
//! Items are finished here by plain updates inside open transactions, so that the tests can
//! hold two of them open at once; `payrolls::complete_if_done` is what the engine runs after
//! every change that made a payroll's item final.
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
use railgate::domain::{Currency, Direction, Money, NewPayment, Party, PartyIdType};
use railgate::store::payrolls::{self, Status};
use railgate::store::{Conn, Db};
use std::time::Duration;
use uuid::Uuid;

/// A released payroll of `n` queued items: (payroll id, item ids).
async fn payroll(state: &railgate::api::AppState, n: usize) -> (Uuid, Vec<Uuid>) {
    let db = &state.db;
    let client = railgate::store::keys::ensure_client(db, "completion")
        .await
        .unwrap();
    let caller = Caller {
        client_id: client,
        key_id: Uuid::nil(),
        scopes: vec!["admin".into()],
    };
    let id = Uuid::now_v7();
    {
        let mut tx = db.begin().await.unwrap();
        payrolls::create(
            &mut tx,
            id,
            client,
            "race",
            "test",
            i64::try_from(n).unwrap(),
        )
        .await
        .unwrap();
        assert!(
            payrolls::set_status(&mut tx, id, Status::Importing, Status::Released)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
    }
    let tzs: Currency = "TZS".parse().unwrap();
    let mut items = Vec::new();
    for i in 0..n {
        let new = NewPayment {
            direction: Direction::Disbursement,
            mode: None,
            reference: format!("{id}-{i}"),
            amount: Money::from_minor(10_000, tzs).unwrap(),
            party: Party::new(PartyIdType::Msisdn, "255712345600", None).unwrap(),
            narrative: None,
            rail_hint: None,
            metadata: serde_json::Map::new(),
            payroll_id: Some(id),
        };
        let p = railgate::api::payments::insert_payment(state, &caller, &new, None)
            .await
            .unwrap();
        items.push(p.id);
    }
    (id, items)
}

async fn finish(conn: &mut Conn, item: Uuid) {
    let done = railgate::store::sql::query(
        "UPDATE payments SET state = 'completed' WHERE id = $1 AND state = 'queued'",
    )
    .bind(item.to_string())
    .execute(conn)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1, "item {item} was not queued");
}

async fn status(db: &Db, payroll: Uuid) -> Status {
    payrolls::get_in(&mut db.pool().acquire().await.unwrap(), None, payroll)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// Waits until some session of the database waits for a lock (PostgreSQL).
async fn someone_waits_for_a_lock(db: &Db) {
    for _ in 0..500 {
        let waiting: i64 = railgate::store::sql::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND datname = current_database()",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no session ever waited for a lock");
}

both_stores!(
    the_last_item_completes_the_payroll_and_no_other_does,
    |store| async move {
        let Some(url) = database_url(store).await else {
            return;
        };
        let state = app_state(&url).await;
        let db = state.db.clone();
        let (id, items) = payroll(&state, 3).await;
        for (i, item) in items.iter().enumerate() {
            let mut tx = db.begin().await.unwrap();
            finish(&mut tx, *item).await;
            let completed = payrolls::complete_if_done(&mut tx, id).await.unwrap();
            tx.commit().await.unwrap();
            let last = i + 1 == items.len();
            assert_eq!(completed, last, "after item {i}");
            let want = if last {
                Status::Completed
            } else {
                Status::Released
            };
            assert_eq!(status(&db, id).await, want, "after item {i}");
        }
        // Once completed, nothing completes it again.
        let mut tx = db.begin().await.unwrap();
        assert!(!payrolls::complete_if_done(&mut tx, id).await.unwrap());
        tx.commit().await.unwrap();
    }
);

/// The hazard of a look that takes no lock: the first transaction sees the second item open
/// and leaves the payroll alone; the second item is finished by another transaction that
/// commits first and still sees the first transaction's item open. Unless the second waits
/// for the first, neither completes the payroll. The first holds the item it saw open, so
/// the second waits for its commit and then sees it.
#[tokio::test]
async fn an_item_seen_open_is_held_until_the_look_commits_on_postgres() {
    let Some(url) = database_url(Store::Postgres).await else {
        return;
    };
    let state = app_state(&url).await;
    let db = state.db.clone();
    let (id, items) = payroll(&state, 2).await;
    let (a, r) = (items[0], items[1]);

    let mut first = db.begin().await.unwrap();
    finish(&mut first, a).await;
    assert!(!payrolls::complete_if_done(&mut first, id).await.unwrap());

    let other = db.clone();
    let second = tokio::spawn(async move {
        let mut tx = other.begin().await.unwrap();
        finish(&mut tx, r).await;
        let completed = payrolls::complete_if_done(&mut tx, id).await.unwrap();
        tx.commit().await.unwrap();
        completed
    });
    // The second waits for the first, which holds the item it saw open.
    someone_waits_for_a_lock(&db).await;
    assert!(!second.is_finished());
    first.commit().await.unwrap();
    assert!(second.await.unwrap(), "the second completes the payroll");
    assert_eq!(status(&db, id).await, Status::Completed);
}

/// Two transactions finish the last two items at once: each sees the other's item changing,
/// takes the locked path, and whichever commits last completes the payroll.
#[tokio::test]
async fn the_last_two_items_finished_at_once_complete_the_payroll_on_postgres() {
    let Some(url) = database_url(Store::Postgres).await else {
        return;
    };
    let state = app_state(&url).await;
    let db = state.db.clone();
    let (id, items) = payroll(&state, 2).await;

    let mut first = db.begin().await.unwrap();
    finish(&mut first, items[0]).await;
    let mut second = db.begin().await.unwrap();
    finish(&mut second, items[1]).await;
    // The first's item is being changed by the first: the second cannot count it final.
    assert!(!payrolls::complete_if_done(&mut second, id).await.unwrap());
    second.commit().await.unwrap();
    assert_eq!(status(&db, id).await, Status::Released);
    assert!(payrolls::complete_if_done(&mut first, id).await.unwrap());
    first.commit().await.unwrap();
    assert_eq!(status(&db, id).await, Status::Completed);
}

/// While items stay open, finishing one does not touch the payroll's row: another session
/// holding that row locked does not hold the finishing transaction up.
#[tokio::test]
async fn finishing_an_item_while_others_stay_open_takes_no_payroll_lock_on_postgres() {
    let Some(url) = database_url(Store::Postgres).await else {
        return;
    };
    let state = app_state(&url).await;
    let db = state.db.clone();
    let (id, items) = payroll(&state, 3).await;

    let mut holder = db.begin().await.unwrap();
    railgate::store::sql::query("SELECT id FROM payrolls WHERE id = $1 FOR UPDATE")
        .bind(id.to_string())
        .execute(&mut *holder)
        .await
        .unwrap();

    let mut tx = db.begin().await.unwrap();
    // A wait for the payroll's row would fail here instead of hanging.
    railgate::store::sql::query("SET LOCAL lock_timeout = '2s'")
        .execute(&mut *tx)
        .await
        .unwrap();
    finish(&mut tx, items[0]).await;
    assert!(!payrolls::complete_if_done(&mut tx, id).await.unwrap());
    tx.commit().await.unwrap();
    holder.rollback().await.unwrap();
    assert_eq!(status(&db, id).await, Status::Released);
}

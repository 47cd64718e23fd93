//! Two `railgate serve` processes on one PostgreSQL database share a run of 500 payments:
//! each creates half through its API, both dispatchers claim from the one job table
//! (`FOR UPDATE SKIP LOCKED` under a lease), and no payment is submitted twice.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
mod process;

use common::Store;
use process::*;
use std::time::Duration;

/// The scenario rows that end completed (the unlisted 42 included).
const ROWS: &[&str] = &["00", "04", "05", "07", "08", "09", "10", "42"];
const PAYMENTS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_500_payments_on_postgres() {
    let Some(url) = database(Store::Postgres).await else {
        return;
    };
    let dir = scratch_dir("multi");
    let mock = railgate_mock::spawn(common::mock_config()).await.unwrap();
    let key = provision(&url).await;
    let mut gateways = Vec::new();
    for name in ["a", "b"] {
        let port = free_port();
        let mut gw = Gateway::new(
            &dir,
            name,
            port,
            &config_toml(port, &url, &mock.base_url(), 32, 30),
        );
        gw.start().await;
        gateways.push(gw);
    }
    let bases = gateways.iter().map(Gateway::base_url).collect();
    let created = create_many(bases, key, PAYMENTS, ROWS, "MI", 16).await;
    assert_eq!(created.len(), PAYMENTS);

    let db = connect(&url).await;
    let logs: Vec<&std::path::Path> = gateways.iter().map(Gateway::log_path).collect();
    wait_settled(&db, Duration::from_secs(120), &logs).await;

    // Money: every attempt paid at most once, every payment at most once, one attempt each.
    assert_paid_at_most_once(&db, &mock).await;
    let (by_attempt, by_reference) = paid(&mock);
    assert_eq!(
        by_reference.len(),
        PAYMENTS,
        "every payment reached the rail"
    );
    assert_eq!(by_attempt.len(), PAYMENTS);
    for (reference, o) in outcomes(&db).await {
        assert_eq!(o.state, "completed", "{reference}: {o:?}");
        assert_eq!(by_reference.get(&reference), Some(&1), "{reference}");
    }
    let attempts: i64 = railgate::store::sql::query_scalar("SELECT COUNT(*) FROM attempts")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(attempts, i64::try_from(PAYMENTS).unwrap());

    // Both processes did work: the first attempt's transition names the dispatcher that
    // stored and sent it ("dispatcher <pid>-<id>: first attempt").
    let causes: Vec<String> = railgate::store::sql::query_scalar(
        "SELECT cause FROM payment_transitions WHERE to_state = 'submitted' \
         AND cause LIKE 'dispatcher %: first attempt'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(causes.len(), PAYMENTS, "one first attempt per payment");
    let mut per_gateway = Vec::new();
    for gw in &gateways {
        let pid = gw.pids[0];
        let n = causes
            .iter()
            .filter(|c| c.starts_with(&format!("dispatcher {pid}-")))
            .count();
        per_gateway.push((gw.name.clone(), n));
    }
    eprintln!("first attempts per process: {per_gateway:?}");
    assert_eq!(
        per_gateway.iter().map(|(_, n)| n).sum::<usize>(),
        PAYMENTS,
        "every first attempt was made by one of the two processes: {per_gateway:?}"
    );
    for (name, n) in &per_gateway {
        assert!(*n > 0, "process {name} submitted nothing: {per_gateway:?}");
    }
    for mut gw in gateways {
        gw.kill9();
    }
    db.close().await;
    let _ = mock.shutdown().await;
    drop_database(&url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

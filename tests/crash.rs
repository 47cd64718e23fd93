//! Crash test: the real `railgate serve` binary, killed with SIGKILL at random moments while
//! payments spread over the whole scenario table are created and driven, and restarted each
//! time with the same configuration and database (one process at a time). At the end every
//! payment is final or an operator exception, the mock rail (in this process, so it outlives
//! every kill) paid each at most once, and no job was lost.
//!
//! At the end every payment is final or an operator exception, none is missing, none was paid
//! twice, and the ledger's trial balance is zero. The kills are spread over the creation of the
//! payments (kill `k` of `K` comes once at least `k/K` of them exist, after a random 0.3–2 s
//! up), so a long run is killed throughout, not only at its start.
//!
//! The CI run is short (200 payments, 5 kills per store). The scale is set by
//! `RAILGATE_CRASH_PAYMENTS` and `RAILGATE_CRASH_KILLS` (at least 5); the full run, 10,000
//! payments and 20 kills on each store in a release build, is `scripts/crash-run.sh`:
//!
//! ```text
//! RAILGATE_CRASH_PAYMENTS=10000 RAILGATE_CRASH_KILLS=20 cargo test --release --test crash -- --nocapture --test-threads 1
//! ```
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
use rand::Rng;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Every row of the scenario table, and one unlisted ending (plain success).
const ROWS: &[&str] = &[
    "00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "42",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What each row may end as, whatever the kills did. A kill can cost a callback (the rail
/// gives up on a gateway that is down), never the outcome: the inquiry finds it. Only a
/// payment whose attempt stayed unanswered past its deadline may be an exception instead.
fn allowed(digits: &str, state: &str, exception: bool, failure: Option<&str>) -> bool {
    match digits {
        "00" | "04" | "05" | "07" | "08" | "10" | "42" => state == "completed" || exception,
        // The rail refused twice with nothing moved; each kill that caught it in hand counts a
        // try, so it may run out of tries, and then it failed as the rail being unavailable.
        "09" => state == "completed" || exception || failure == Some("rail_unavailable"),
        "01" | "02" | "03" | "06" => state == "failed" || exception,
        // The failure callback may be lost to a kill; the inquiry then says success.
        "11" => state == "failed" || state == "completed" || exception,
        // The rail never answers an inquiry: an exception after the deadline, whatever the kills.
        "12" => exception,
        _ => false,
    }
}

/// The client's trial balance, as the API gives it: debits equal credits in every currency,
/// pending and posted.
async fn assert_trial_balance_zero(base: &str, key: &str) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/v1/ledger/trial-balance"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let tb: Value = resp.json().await.unwrap();
    assert_eq!(tb["balanced"], true, "{tb}");
    let currencies = tb["currencies"].as_array().unwrap();
    assert!(!currencies.is_empty(), "no ledger entries at all: {tb}");
    for c in currencies {
        assert_eq!(c["debits_posted"], c["credits_posted"], "{tb}");
        assert_eq!(c["debits_pending"], c["credits_pending"], "{tb}");
    }
}

async fn crash_run(store: Store) {
    let Some(url) = database(store).await else {
        return;
    };
    let n = env_usize("RAILGATE_CRASH_PAYMENTS", 200);
    let kills = env_usize("RAILGATE_CRASH_KILLS", 5).max(5);
    let tag = match store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    };
    let dir = scratch_dir(&format!("crash-{tag}"));
    let mock = railgate_mock::spawn(common::mock_config()).await.unwrap();
    let key = provision(&url).await;
    let port = free_port();
    let mut gw = Gateway::new(
        &dir,
        "gateway",
        port,
        // Few rail slots, so that the attempts a kill leaves stored but unsent outnumber
        // them on restart: each is inquired about and resent, and an inquiry that kept its
        // slot across the resend once deadlocked the rail exactly then.
        &config_toml(port, &url, &mock.base_url(), 6, 15),
    );
    gw.start().await;

    let started = tokio::time::Instant::now();
    let progress = Arc::new(AtomicUsize::new(0));
    let creating = tokio::spawn(create_many_counted(
        vec![gw.base_url()],
        key.clone(),
        n,
        ROWS,
        "CR",
        8,
        progress.clone(),
    ));
    // Kills at random moments: while payments are being created, submitted, called back and
    // inquired about. The process is down for a random while each time. Kill `k` also waits
    // until `k/kills` of the payments exist, which spreads the kills over a long run.
    for k in 0..kills {
        let (alive_ms, down_ms) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(300..2_000u64), rng.gen_range(0..500u64))
        };
        tokio::time::sleep(Duration::from_millis(alive_ms)).await;
        let due = k * n / kills;
        while progress.load(Ordering::SeqCst) < due && !creating.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw.kill9();
        eprintln!(
            "[{tag}] kill {} of {kills} at {:.1} s, {} of {n} payments created",
            k + 1,
            started.elapsed().as_secs_f64(),
            progress.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(down_ms)).await;
        gw.start().await;
    }
    let created = creating.await.unwrap();
    eprintln!(
        "[{tag}] {n} payments created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(created.len(), n);

    let db = connect(&url).await;
    // Bounded by the attempt deadline (15 s) plus the inquiry schedule; generous for noise.
    wait_settled(
        &db,
        Duration::from_secs(90 + u64::try_from(n / 10).unwrap()),
        &[gw.log_path()],
    )
    .await;
    eprintln!(
        "[{tag}] every payment final or an exception at {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let total: i64 = railgate::store::sql::query_scalar("SELECT COUNT(*) FROM payments")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(
        total,
        i64::try_from(n).unwrap(),
        "one payment per reference"
    );
    assert_paid_at_most_once(&db, &mock).await;
    let outcomes = outcomes(&db).await;
    let mut tally = std::collections::BTreeMap::new();
    for (reference, id) in &created {
        let i: usize = reference[3..].parse().unwrap();
        let digits = ROWS[i % ROWS.len()];
        let o = &outcomes[reference];
        assert!(
            allowed(
                digits,
                &o.state,
                o.exception.is_some(),
                o.failure.as_deref()
            ),
            "payment {id} ({reference}, scenario {digits}) ended {o:?}"
        );
        let exception = if o.exception.is_some() {
            "+exception"
        } else {
            ""
        };
        *tally
            .entry(format!("{digits} {}{exception}", o.state))
            .or_insert(0usize) += 1;
    }
    assert_trial_balance_zero(&gw.base_url(), &key).await;
    eprintln!(
        "[{tag}] {n} payments, {kills} kills, pids {:?}: {tally:?}",
        gw.pids
    );
    assert_eq!(gw.pids.len(), kills + 1);
    eprintln!(
        "[{tag}] passed: {n} payments, {kills} kills: 0 lost, 0 paid twice, every payment \
         final or an exception, trial balance zero ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    gw.kill9();
    db.close().await;
    let _ = mock.shutdown().await;
    drop_database(&url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_on_sqlite() {
    crash_run(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_on_postgres() {
    crash_run(Store::Postgres).await;
}

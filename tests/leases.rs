//! The dispatcher's hold on its jobs. A job that waits longer than its lease (here: for the
//! one slot of a slow rail) keeps it: the dispatcher renews the leases of the jobs in hand, so
//! no job is claimed again while it still runs. Without that, each re-claim counted a try and two runs drove one payment at
//! once; scenario 09 (two 503s, then accepted) then ran out of tries and failed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;

both_stores!(
    jobs_waiting_for_a_slow_rail_keep_their_lease,
    |store| async move {
        let Some(app) = spawn_app_with(store, |cfg| {
            cfg.dispatch.lease_ms = 300;
            cfg.dispatch.max_submit_tries = 4;
            for r in &mut cfg.rails {
                r.concurrency = 1;
            }
        })
        .await
        else {
            return;
        };
        // Every answer of the rail takes 150 ms and only one request is in flight at a time:
        // the eight payments' 24 submissions queue for the slot far longer than the lease.
        app.mock.set_faults(railgate_mock::Faults {
            latency_ms: 150,
            drop_callbacks: false,
            error_rate_percent: 0,
        });
        let mut ids = Vec::new();
        for i in 0..8 {
            let p = app
                .disburse(
                    &format!("LEASE-{i}"),
                    &format!("2557123450{i}09"),
                    "1000.00",
                )
                .await;
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
        for (i, id) in ids.iter().enumerate() {
            let p = app.wait_final(id).await;
            assert_eq!(p["state"], "completed", "payment {i}: {p}");
            assert_eq!(app.paid(&format!("LEASE-{i}")), 1);
        }
        app.stop().await;
    }
);

// A rail that refuses with nothing moved is given up on after `max_submit_tries` refusals of
// the attempt, and only those count: claims of the job (after a restart, or a lease taken
// over) do not. Scenario 09 refuses twice, then accepts.
both_stores!(only_refusals_count_towards_giving_up, |store| async move {
    let Some(app) = spawn_app_with(store, |cfg| cfg.dispatch.max_submit_tries = 3).await else {
        return;
    };
    let p = app.disburse("REFUSED-OK", "255712345609", "1000.00").await;
    let id = p["id"].as_str().unwrap().to_owned();
    // As soon as the first refusal is on record, make the job look claimed many times
    // over, as a gateway restarting in a loop would leave it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let refusals: Option<i64> = railgate::store::sql::query_scalar(
            "SELECT MAX(refusals) FROM attempts WHERE payment_id = $1",
        )
        .bind(&id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        if refusals.unwrap_or(0) >= 1 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    railgate::store::sql::query("UPDATE jobs SET tries = tries + 100 WHERE payment_id = $1")
        .bind(&id)
        .execute(app.db.pool())
        .await
        .unwrap();
    let p = app.wait_final(&id).await;
    assert_eq!(p["state"], "completed", "{p}");
    assert_eq!(app.paid("REFUSED-OK"), 1);
    let refusals: i64 = railgate::store::sql::query_scalar(
        "SELECT MAX(refusals) FROM attempts WHERE payment_id = $1",
    )
    .bind(&id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(refusals, 2, "scenario 09 refuses twice");
    app.stop().await;
});

both_stores!(gives_up_after_max_refusals, |store| async move {
    let Some(app) = spawn_app_with(store, |cfg| cfg.dispatch.max_submit_tries = 2).await else {
        return;
    };
    let p = app.disburse("REFUSED-KO", "255712345609", "1000.00").await;
    let p = app.wait_final(p["id"].as_str().unwrap()).await;
    assert_eq!(p["state"], "failed", "{p}");
    assert_eq!(p["failure"]["code"], "rail_unavailable", "{p}");
    assert!(
        p["failure"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("refused 2 times"),
        "{p}"
    );
    assert_eq!(app.paid("REFUSED-KO"), 0, "nothing moved");
    app.stop().await;
});

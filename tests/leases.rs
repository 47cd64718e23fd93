//! A job that waits longer than its lease (here: for the one slot of a slow rail) keeps it:
//! the dispatcher renews the leases of the jobs in hand, so no job is claimed again while it
//! still runs. Without that, each re-claim counted a try and two runs drove one payment at
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

//! A slow rail keeps its own pace without taking the dispatcher from the others. The
//! dispatcher takes a rail's slot before it gives a job one of its own; a job whose rail has
//! no free slot goes back to the queue for a moment instead of waiting in a dispatcher slot.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use serde_json::Value;

both_stores!(
    a_slow_rail_leaves_the_dispatcher_to_the_others,
    |store| async move {
        // A second mock rail server, slow (every answer takes 0.6 s) and one request at a time.
        let slow = railgate_mock::spawn(mock_config()).await.unwrap();
        slow.set_faults(railgate_mock::Faults {
            latency_ms: 600,
            drop_callbacks: false,
            error_rate_percent: 0,
        });
        let slow_url = slow.base_url();
        let Some(app) = spawn_app_with(store, move |c| {
            c.dispatch.max_in_flight = 4;
            let mut second = c.rails[0].clone();
            second.id = "slow".into();
            second.concurrency = 1;
            second.request_timeout_ms = 5_000;
            second.deadline_secs = 300;
            second
                .settings
                .insert("base_url".into(), toml::Value::String(slow_url));
            second.batch = Some(false);
            c.rails.push(second);
        })
        .await
        else {
            return;
        };
        let post = |reference: String, rail: Option<&'static str>| {
            let mut body = disbursement(&reference, "255712345600", "10.00");
            if let Some(r) = rail {
                body["rail"] = Value::String(r.into());
            }
            let app = &app;
            async move {
                let (s, v) = app.post("/v1/disbursements", &app.key, &body, None).await;
                assert_eq!(s, 201, "{v}");
                v["id"].as_str().unwrap().to_owned()
            }
        };
        // Twelve payments for the slow rail first (7 s of its time), then eight for the
        // fast one.
        let mut slow_ids = Vec::new();
        for i in 0..12 {
            slow_ids.push(post(format!("SLOW-{i}"), Some("slow")).await);
        }
        let mut fast_ids = Vec::new();
        for i in 0..8 {
            fast_ids.push(post(format!("FAST-{i}"), None).await);
        }
        for id in &fast_ids {
            let p = app.wait_final(id).await;
            assert_eq!(p["state"], "completed", "{p}");
        }
        // The fast rail's payments did not queue behind the slow rail's: when the last of
        // them completed, the slow rail was still working through its own.
        let mut slow_final = 0;
        for id in &slow_ids {
            let p = app.payment(id).await;
            if p["state"] == "completed" {
                slow_final += 1;
            }
        }
        assert!(
            slow_final < slow_ids.len(),
            "every slow payment was done before the fast ones: they waited for the slow rail"
        );
        // And the slow rail still gets through all of its own.
        for id in &slow_ids {
            let p = app.wait_final(id).await;
            assert_eq!(p["state"], "completed", "{p}");
        }
        app.stop().await;
    }
);

//! A gateway whose log destination is full (`/dev/full`: every write fails with "no space
//! left on device") goes on serving, and still shuts down on SIGTERM. A failed write of a log
//! line used to panic the task that logged it: HTTP handlers dropped their connections, and
//! the task that turns SIGTERM into a graceful shutdown died after its log line, so the
//! process never stopped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

mod common;
mod process;

use common::Store;
use process::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_disk_neither_breaks_requests_nor_blocks_shutdown() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("\n!!! SKIPPING: this system has no /dev/full to stand for a full disk. !!!\n");
        return;
    }
    let url = database(Store::Sqlite).await.unwrap();
    let dir = scratch_dir("full-disk");
    let mock = railgate_mock::spawn(common::mock_config()).await.unwrap();
    let key = provision(&url).await;
    let port = free_port();
    let mut gw = Gateway::new(
        &dir,
        "gateway",
        port,
        &config_toml(port, &url, &mock.base_url(), 8, 15),
    );
    // Every request and every dispatch step logs at this level.
    gw.log_level = Some("info".into());
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    gw.start_logging_to(full).await;

    let http = reqwest::Client::new();
    for i in 0..5 {
        let resp = http
            .post(format!("{}/v1/disbursements", gw.base_url()))
            .bearer_auth(&key)
            .json(&common::disbursement(
                &format!("FULL-{i}"),
                &msisdn(i, "00"),
                "1000.00",
            ))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("the gateway answers although it cannot write its logs");
        assert_eq!(resp.status().as_u16(), 201);
    }
    let db = connect(&url).await;
    wait_settled(&db, Duration::from_secs(30), &[]).await;
    db.close().await;

    let status = gw.terminate(Duration::from_secs(30)).await;
    assert!(status.success(), "exit status {status}");
    let _ = mock.shutdown().await;
    drop_database(&url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

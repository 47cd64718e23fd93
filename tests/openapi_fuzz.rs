//! A property-based run over the served `openapi.yaml` (schemathesis, pinned and installed by
//! `scripts/test-setup.sh`): every operation, with generated valid and invalid requests,
//! against the gateway and its sandbox rails on a fresh store. It must find no 5xx, no
//! response outside its schema, no undocumented status, no invalid request answered 2xx and
//! no valid one refused. Bounded: a few examples per operation and a time budget.
//!
//! `RAILGATE_FUZZ_SEED` changes the (otherwise fixed, so CI is repeatable) seed;
//! `RAILGATE_FUZZ_EXAMPLES` the examples per operation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

const PINNED: &str = "4.32.5";
/// The whole run's budget, per store; the process is killed a little after it.
const BUDGET_SECS: u64 = 150;

/// The pinned schemathesis: `$SCHEMATHESIS`, the test tools' environment, or `PATH`.
fn schemathesis() -> Option<PathBuf> {
    let tools = std::env::var("RAILGATE_TEST_TOOLS")
        .map(PathBuf::from)
        .or_else(|_| {
            std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache/railgate-test-tools"))
        })
        .ok()
        .map(|t| t.join("bin/schemathesis"));
    let candidates = std::env::var("SCHEMATHESIS")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(tools)
        .chain(std::iter::once(PathBuf::from("schemathesis")));
    for c in candidates {
        let Ok(out) = std::process::Command::new(&c).arg("--version").output() else {
            continue;
        };
        let version = String::from_utf8_lossy(&out.stdout);
        if version.trim() == format!("schemathesis, version {PINNED}") {
            return Some(c);
        }
        eprintln!("{} is {}, not {PINNED}", c.display(), version.trim());
    }
    None
}

both_stores!(
    the_served_spec_holds_under_a_property_based_run,
    |store| async move {
        let Some(exe) = schemathesis() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("schemathesis {PINNED} is not installed under CI=true: run scripts/test-setup.sh");
            }
            eprintln!(
            "\n!!! SKIPPING the property-based run over openapi.yaml: schemathesis {PINNED} is not installed. Run scripts/test-setup.sh. !!!\n"
        );
            return;
        };
        // Generated requests come fast and many are writes: a pool the size of a real
        // deployment's, so that the run measures answers, not queueing for a connection.
        let Some(app) = spawn_app_all_rails_with(store, |c| c.db_connections = 16).await else {
            return;
        };
        let seed = std::env::var("RAILGATE_FUZZ_SEED").unwrap_or_else(|_| "20261202".into());
        let examples = std::env::var("RAILGATE_FUZZ_EXAMPLES").unwrap_or_else(|_| "10".into());
        let report = std::env::temp_dir().join(format!(
            "railgate-schemathesis-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&report).expect("scratch directory");
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(["--no-color", "run"])
            .arg(app.url("/openapi.yaml"))
            .args(["--url", &app.base])
            .args(["-H", &format!("Authorization: Bearer {}", app.key)])
            // Not `positive_data_acceptance`: it wants every schema-valid request answered 2xx,
            // and a schema cannot say which MSISDN is real or which payment exists; the business
            // refusals (422, 409) are documented instead.
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,\
             content_type_conformance,negative_data_rejection",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", &examples])
            .args(["--seed", &seed])
            .args(["--max-time", &BUDGET_SECS.to_string()])
            .args(["--workers", "1"])
            .args(["--request-timeout", "60"])
            .args(["--suppress-health-check", "all"])
            .args([
                "--output-truncate",
                "false",
                "--generation-database",
                "none",
            ])
            .arg("--report-dir")
            .arg(report.join("report"))
            // Its caches (`.schemathesis/`) go to the scratch directory, not the work tree.
            .current_dir(&report)
            .env("SCHEMATHESIS_HOOKS", "")
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(BUDGET_SECS + 120), cmd.output())
            .await
            .expect("schemathesis ran past its budget")
            .expect("schemathesis could not be started");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{stdout}\n{stderr}");
        let _ = std::fs::remove_dir_all(&report);
        app.stop().await;
        assert!(
        out.status.success(),
        "schemathesis found disagreements between openapi.yaml and the server ({store:?}, seed {seed}); see above"
    );
    }
);

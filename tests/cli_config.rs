//! The command line: `--config` is accepted before or after the subcommand, and a command that
//! needs the database refuses to run without one instead of making up `./railgate.db`. Runs the
//! built binary in a directory of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("railgate-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The binary in `dir`, with nothing from the test's environment naming a configuration.
fn railgate(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_railgate"));
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env("RUST_LOG", "warn");
    for var in [
        "DATABASE_URL",
        "RAILGATE_CONFIG",
        "RAILGATE_LISTEN",
        "RAILGATE_PUBLIC_URL",
        "RAILGATE_DISPATCH",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn printed_key(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("API key: "))
        .unwrap_or_else(|| panic!("no key printed: {}", text(out)))
        .trim()
        .to_owned()
}

both_stores!(
    config_after_the_subcommand_names_the_database,
    |store| async move {
        let Some(url) = database_url(store).await else {
            return;
        };
        let dir = work_dir();
        let config = dir.join("gateway.toml");
        std::fs::write(&config, format!("database_url = \"{url}\"\n")).unwrap();

        // After the subcommand, as an operator would type it.
        let out = railgate(&dir)
            .args(["keys", "create", "--config"])
            .arg(&config)
            .args(["--client", "finance", "--scopes", "reports:read"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let after = printed_key(&out);
        // Before it, and in between.
        let out = railgate(&dir)
            .arg("--config")
            .arg(&config)
            .args(["keys", "create", "--client", "finance"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let before = printed_key(&out);
        let out = railgate(&dir)
            .args(["keys", "--config"])
            .arg(&config)
            .arg("list")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));

        // The keys are in the configured database, and nothing was made up in the directory.
        let db = railgate::store::Db::connect(&url, 1).await.unwrap();
        for key in [&after, &before] {
            let rec = railgate::store::keys::lookup(&db, key).await.unwrap();
            assert!(rec.is_some(), "{key} is not in the configured database");
        }
        db.close().await;
        assert!(!dir.join("railgate.db").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
);

#[test]
fn no_database_is_refused_with_a_way_to_name_one() {
    let dir = work_dir();
    for args in [
        &["keys", "create", "--client", "finance"][..],
        &["keys", "list"],
        &["migrate"],
        &[
            "report",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-31",
            "--out",
            "r.csv",
        ],
    ] {
        let out = railgate(&dir).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no database is configured")
                && err.contains("--config")
                && err.contains("DATABASE_URL"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!out.status.success());
    }
    // A configuration file that names no database is refused too.
    std::fs::write(dir.join("empty.toml"), "db_connections = 2\n").unwrap();
    let out = railgate(&dir)
        .args(["keys", "list", "--config", "empty.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database is configured"));

    // `serve` as well: it must exit, not listen on a store of its own.
    let mut child = railgate(&dir)
        .arg("serve")
        .env("RAILGATE_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let status = status.expect("serve without a database kept running");
    assert!(!status.success());

    let made: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("railgate.db"))
        .collect();
    assert!(made.is_empty(), "a database was made up: {made:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve` with `config`, run to its exit; `None` if it kept running.
fn serve_until_exit(dir: &Path, config: &Path) -> Option<Output> {
    let child = railgate(dir)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RAILGATE_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => Some(out.unwrap()),
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            None
        }
    }
}

// A rail's own keys are read by its crate into a typed configuration: a mistyped key stops
// the gateway at start-up with the rail and the key named, instead of falling back to a
// default. A mistyped shared key (`batch_chnk`) is one the rail's crate does not know either.
#[test]
fn a_mistyped_rail_key_is_refused_at_start_up() {
    let dir = work_dir();
    let db = dir.join("gw.db");
    let cases = [
        (
            "bank-eu",
            "bank",
            "outbound_dir = \"out\"\ninbound_dir = \"in\"\ndebtor_name = \"Fund\"\n\
             debtor_ibn = \"DE89370400440532013000\"\ncurrency = \"EUR\"",
            "debtor_ibn",
        ),
        (
            "mpesa-ke",
            "mpesa",
            "base_url = \"http://127.0.0.1:9\"\nconsumer_key = \"k\"\n\
             consumer_secret_evn = \"MPESA_SECRET\"\ncallback_secret_env = \"CB\"",
            "consumer_secret_evn",
        ),
        (
            "phee",
            "phee",
            "channel_url = \"http://127.0.0.1:9\"\noperations_url = \"http://127.0.0.1:9/api/v1\"\n\
             tenant = \"gorilla\"\npayer_identifier = \"255700000001\"\nbulk_purpse = \"payroll\"",
            "bulk_purpse",
        ),
        (
            "mmapi-tz",
            "mmapi",
            "base_url = \"http://127.0.0.1:9\"\ncallback_secret_env = \"CB\"\n\
             scheme_party_value = \"255700000001\"\nbatch_chnk = 5",
            "batch_chnk",
        ),
    ];
    for (id, kind, keys, key) in cases {
        let config = dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "database_url = \"sqlite://{}\"\n\n[[rails]]\nid = \"{id}\"\nkind = \"{kind}\"\n{keys}\n",
                db.display()
            ),
        )
        .unwrap();
        let out = serve_until_exit(&dir, &config)
            .unwrap_or_else(|| panic!("{id}: serve kept running with a mistyped key"));
        assert!(!out.status.success(), "{id}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("rail {id}")) && err.contains(key),
            "{id}: {}",
            text(&out)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

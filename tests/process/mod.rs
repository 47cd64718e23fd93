//! The real `railgate` binary as a child process: its TOML configuration, start and readiness,
//! `kill -9`, and a load of payments created over HTTP that survives the gateway dying under
//! it. Used by the crash and multi-instance tests; the mock rail stays in the test process so
//! it outlives every kill and its paid counts are the truth.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use crate::common::{self, Store};
use railgate::store::{keys, Db};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The variable naming the mock rail's callback secret in the configuration.
pub const SECRET_ENV: &str = "RAILGATE_TEST_MOCK_SECRET";

/// A free port on loopback (bound once, then released for the gateway, which keeps it
/// across restarts so callbacks addressed to an earlier run still arrive).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A directory of its own for a test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("railgate-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The gateway's configuration: one mock rail (at most `concurrency` requests to it at once),
/// everything routed to it, test timings.
pub fn config_toml(
    port: u16,
    database_url: &str,
    mock_url: &str,
    concurrency: usize,
    deadline_secs: u64,
) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
database_url = "{database_url}"
db_connections = 5

[dispatch]
poll_ms = 20
lease_ms = 5000

[[rails]]
id = "mock"
kind = "mock"
base_url = "{mock_url}"
callback_secret_env = "{SECRET_ENV}"
concurrency = {concurrency}
request_timeout_ms = 1000
callback_grace_ms = 400
deadline_secs = {deadline_secs}
# The mock rail's scenario 11 pays after it said "failed": its failures are asked about
# again, so a late success whose callback a kill lost is still recorded as a conflict.
confirm_failures = true
confirm_failure_after_ms = 1500

[[routes]]
rail = "mock"
"#
    )
}

/// Migrates the database and creates client "acme" with a key that may write and read payments.
pub async fn provision(database_url: &str) -> String {
    let db = Db::connect(database_url, 1).await.unwrap();
    db.migrate().await.unwrap();
    let client = keys::ensure_client(&db, "acme").await.unwrap();
    let key = keys::generate_key();
    keys::insert_key(
        &db,
        client,
        &key,
        &["payments:write", "payments:read"],
        None,
    )
    .await
    .unwrap();
    db.close().await;
    key
}

/// One `railgate serve` process, restartable with the same configuration.
pub struct Gateway {
    pub name: String,
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// Every process id this gateway has had, in order.
    pub pids: Vec<u32>,
    /// `RUST_LOG` for the process (default: `RAILGATE_TEST_LOG`, else `warn`).
    pub log_level: Option<String>,
}

impl Gateway {
    pub fn new(dir: &Path, name: &str, port: u16, toml: &str) -> Gateway {
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, toml).unwrap();
        Gateway {
            name: name.to_owned(),
            port,
            config,
            log: dir.join(format!("{name}.log")),
            child: None,
            pids: Vec::new(),
            log_level: None,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits (bounded) until it answers `/readyz`.
    pub async fn start(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.start_logging_to(log).await;
    }

    /// Starts the process with its logs (stdout and stderr) going to `log`.
    pub async fn start_logging_to(&mut self, log: File) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_railgate"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env(SECRET_ENV, common::MOCK_SECRET)
            .env(
                "RUST_LOG",
                self.log_level
                    .clone()
                    .or_else(|| std::env::var("RAILGATE_TEST_LOG").ok())
                    .unwrap_or_else(|| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        // The configuration file alone decides: nothing from the test's environment.
        for var in [
            "DATABASE_URL",
            "RAILGATE_CONFIG",
            "RAILGATE_LISTEN",
            "RAILGATE_PUBLIC_URL",
            "RAILGATE_DB_CONNECTIONS",
            "RAILGATE_DISPATCH",
        ] {
            cmd.env_remove(var);
        }
        let child = cmd.spawn().unwrap();
        self.pids.push(child.id());
        self.child = Some(child);
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.base_url());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "{} exited during start ({status}); its log: {}",
                    self.name,
                    self.log.display()
                );
            }
            let ok = http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not ready within 60 s; its log: {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown hook runs, leases stay taken, in-flight requests are cut.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM, then waits (bounded) for the process to exit; its exit status.
    pub async fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("not running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit within {limit:?} of SIGTERM", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A scenario row: the last two digits of the payee's phone number.
pub fn msisdn(i: usize, digits: &str) -> String {
    format!("25571{:05}{digits}", i % 100_000)
}

/// Creates payment `i` through `base`, retrying while the gateway is down or restarting.
/// No idempotency key: the reference is unique per client, so a retry whose first try did
/// commit answers 409 naming the payment, and the client learns its id either way.
pub async fn create_payment(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    reference: &str,
    msisdn: &str,
) -> String {
    let body = common::disbursement(reference, msisdn, "1000.00");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "payment {reference} could not be created within 120 s"
        );
        let sent = http
            .post(format!("{base}/v1/disbursements"))
            .bearer_auth(key)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let Ok(resp) = sent else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let status = resp.status().as_u16();
        let Ok(v) = resp.json::<Value>().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match status {
            201 => return v["id"].as_str().unwrap().to_owned(),
            409 if v["existing_payment_id"].is_string() => {
                return v["existing_payment_id"].as_str().unwrap().to_owned()
            }
            500..=599 => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => panic!("creating {reference}: {status} {v}"),
        }
    }
}

/// Creates `n` payments with `workers` concurrent clients, payment `i` through
/// `bases[i % bases.len()]` with scenario `rows[i % rows.len()]`. Returns reference → id.
pub async fn create_many(
    bases: Vec<String>,
    key: String,
    n: usize,
    rows: &'static [&'static str],
    prefix: &'static str,
    workers: usize,
) -> HashMap<String, String> {
    let created = Arc::new(AtomicUsize::new(0));
    create_many_counted(bases, key, n, rows, prefix, workers, created).await
}

/// [`create_many`], counting in `created` the payments created so far (for a caller that
/// paces something else by the load's progress).
pub async fn create_many_counted(
    bases: Vec<String>,
    key: String,
    n: usize,
    rows: &'static [&'static str],
    prefix: &'static str,
    workers: usize,
    created: Arc<AtomicUsize>,
) -> HashMap<String, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::new();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (next, http, bases, key) = (next.clone(), http.clone(), bases.clone(), key.clone());
        let created = created.clone();
        set.spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return made;
                }
                let reference = format!("{prefix}-{i:05}");
                let digits = rows[i % rows.len()];
                let base = &bases[i % bases.len()];
                let id = create_payment(&http, base, &key, &reference, &msisdn(i, digits)).await;
                made.push((reference, id));
                created.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let mut all = HashMap::new();
    while let Some(r) = set.join_next().await {
        all.extend(r.unwrap());
    }
    all
}

/// Payments neither final nor an exception.
pub async fn open_payments(db: &Db) -> i64 {
    railgate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM payments WHERE state NOT IN \
         ('completed', 'failed', 'cancelled', 'reversed') AND exception IS NULL",
    )
    .fetch_one(db.pool())
    .await
    .unwrap()
}

/// Waits (bounded) until every payment is final or an exception; on time-out, names the
/// stragglers and whether each still has its driving job (a payment without one is lost).
pub async fn wait_settled(db: &Db, limit: Duration, logs: &[&Path]) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if open_payments(db).await == 0 {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let rows: Vec<(String, String, String, i64)> = railgate::store::sql::query_as(
                "SELECT p.reference, p.state, p.party_value, \
                 (SELECT COUNT(*) FROM jobs j WHERE j.payment_id = p.id) AS jobs \
                 FROM payments p WHERE p.state NOT IN \
                 ('completed', 'failed', 'cancelled', 'reversed') AND p.exception IS NULL \
                 ORDER BY p.reference LIMIT 20",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
            panic!(
                "payments still open after {limit:?} (reference, state, phone, jobs): {rows:?}; logs: {logs:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the mock rail paid, as (attempt id → count) and (reference → total count).
pub fn paid(mock: &railgate_mock::MockRail) -> (HashMap<String, u32>, HashMap<String, u32>) {
    let mut by_attempt: HashMap<String, u32> = HashMap::new();
    let mut by_reference: HashMap<String, u32> = HashMap::new();
    for p in mock.payouts() {
        *by_attempt.entry(p.attempt_id.to_string()).or_default() += p.count;
        *by_reference.entry(p.reference.clone()).or_default() += p.count;
    }
    (by_attempt, by_reference)
}

/// How a payment ended, as the store has it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: String,
    pub exception: Option<String>,
    pub conflict: Option<String>,
    pub failure: Option<String>,
}

type OutcomeRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The store's answer for each payment, by reference.
pub async fn outcomes(db: &Db) -> HashMap<String, Outcome> {
    let rows: Vec<OutcomeRow> = railgate::store::sql::query_as(
        "SELECT reference, state, exception, conflict, failure_code FROM payments",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    rows.into_iter()
        .map(|(reference, state, exception, conflict, failure)| {
            (
                reference,
                Outcome {
                    state,
                    exception,
                    conflict,
                    failure,
                },
            )
        })
        .collect()
}

/// Asserts the money invariants that hold whatever happened to the gateway:
/// the mock paid no attempt and no payment more than once, no payment has a second attempt,
/// every paid attempt is one of ours, a completed payment was paid exactly once, and a
/// failed one without a recorded conflict was not paid at all.
pub async fn assert_paid_at_most_once(db: &Db, mock: &railgate_mock::MockRail) {
    // A rail that pays after it said "failed" (scenario 11: the late success comes a moment
    // after the failure callback) is recorded as a conflict when its late word arrives: give
    // the last of those words time to arrive before judging. Bounded; nothing is asserted
    // about how long it takes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, by_reference) = paid(mock);
        let outcomes = outcomes(db).await;
        let waiting = outcomes.iter().any(|(reference, o)| {
            o.state == "failed"
                && o.conflict.is_none()
                && by_reference.get(reference).copied().unwrap_or(0) > 0
        });
        if !waiting || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (by_attempt, by_reference) = paid(mock);
    for (a, n) in &by_attempt {
        assert!(*n <= 1, "attempt {a} was paid {n} times");
    }
    for (r, n) in &by_reference {
        assert!(*n <= 1, "payment {r} was paid {n} times");
    }
    let multi: Vec<(String, i64)> = railgate::store::sql::query_as(
        "SELECT payment_id, COUNT(*) FROM attempts GROUP BY payment_id HAVING COUNT(*) > 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert!(
        multi.is_empty(),
        "payments with several attempts: {multi:?}"
    );
    let ours: Vec<String> = railgate::store::sql::query_scalar("SELECT id FROM attempts")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let ours: std::collections::HashSet<String> = ours.into_iter().collect();
    for a in by_attempt.keys() {
        assert!(
            ours.contains(a),
            "the rail paid attempt {a}, which we never made"
        );
    }
    for (reference, o) in outcomes(db).await {
        let n = by_reference.get(&reference).copied().unwrap_or(0);
        match o.state.as_str() {
            "completed" => assert_eq!(n, 1, "{reference} is completed but was paid {n} times"),
            "failed" if o.conflict.is_none() => {
                assert_eq!(n, 0, "{reference} failed but was paid {n} times")
            }
            _ => {}
        }
    }
}

pub async fn connect(database_url: &str) -> Db {
    Db::connect(database_url, 2).await.unwrap()
}

/// A database of the test's own on `store` (None: PostgreSQL unreachable outside CI).
pub async fn database(store: Store) -> Option<String> {
    common::database_url(store).await
}

/// Removes a passing test's database (its PostgreSQL schema, or its SQLite directory); a
/// failing test keeps it for a look.
pub async fn drop_database(database_url: &str) {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        if let Some(dir) = Path::new(path).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        return;
    }
    let Some((_, schema)) = database_url.split_once("search_path%3D") else {
        return;
    };
    let admin = Db::connect(&common::postgres_base(), 1).await.unwrap();
    railgate::store::sql::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
}

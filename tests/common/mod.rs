//! Test harness: the real gateway on port 0 with a fresh database (a SQLite file, or a
//! PostgreSQL schema of its own), the real mock rail on another port, and API keys.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing
)]

use railgate::app::{self, Running};
use railgate::config::Config;
use railgate::sandbox::sandbox_config;
use railgate::store::{keys, Db};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

pub fn postgres_base() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database URL of its own for one test. `None` when PostgreSQL is unreachable outside CI
/// (the test then says so loudly and returns); under `CI=true` that is a failure.
pub async fn database_url(store: Store) -> Option<String> {
    match store {
        Store::Sqlite => {
            let dir = std::env::temp_dir()
                .join(format!("railgate-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            Some(format!("sqlite://{}", dir.join("t.db").display()))
        }
        Store::Postgres => {
            let base = postgres_base();
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let admin = match Db::connect(&base, 1).await {
                Ok(db) => db,
                Err(e) => {
                    if std::env::var("CI").is_ok_and(|v| v == "true") {
                        panic!("PostgreSQL at {base} is unreachable under CI=true: {e}");
                    }
                    eprintln!("\n!!! SKIPPING a PostgreSQL test: {base} is unreachable ({e}). Set DATABASE_URL or start PostgreSQL. !!!\n");
                    return None;
                }
            };
            railgate::store::sql::query(&format!("CREATE SCHEMA {schema}"))
                .execute(admin.pool())
                .await
                .unwrap();
            admin.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            Some(format!("{base}{sep}options=-c%20search_path%3D{schema}"))
        }
    }
}

pub struct TestApp {
    pub gateway: Running,
    pub mock: railgate_mock::MockRail,
    pub base: String,
    pub http: reqwest::Client,
    /// Client "acme": every scope.
    pub key: String,
    /// Client "acme": payments:read only.
    pub read_key: String,
    /// Client "acme": recon:write only (no payment scopes).
    pub other_scope_key: String,
    /// Client "other": every scope.
    pub other_client_key: String,
    pub revoked_key: String,
    pub db: Db,
    pub database_url: String,
    /// The Mojaloop mock hub, when the test asked for every rail.
    pub mojaloop: Option<railgate_mojaloop::MockHub>,
    /// The other mock rails, when the test asked for them.
    pub mobile: Option<(
        railgate_mmapi::mock::MmapiMock,
        railgate_mpesa::mock::MpesaMock,
    )>,
    /// PH-EE, Fineract and the bank with its folders, when the test asked for every rail.
    pub mifos_bank: Option<railgate::sandbox::MifosBankMocks>,
}

pub const MOCK_SECRET: &str = "test-callback-secret";

/// One secret per rail, as the sandbox has them (the mock rail's is `MOCK_SECRET`).
pub fn rail_secrets() -> railgate::sandbox::RailSecrets {
    railgate::sandbox::RailSecrets {
        mock: MOCK_SECRET.into(),
        mmapi: "test-mmapi-callback-secret".into(),
        mpesa: "test-mpesa-callback-secret".into(),
        mojaloop_ilp: "test-mojaloop-ilp-secret".into(),
        phee: "test-phee-callback-token".into(),
    }
}

/// Timings short enough for tests, long enough for a noisy machine.
pub fn test_config(database_url: String, mock_url: &str) -> Config {
    let mut cfg = sandbox_config(0, database_url, mock_url, MOCK_SECRET);
    cfg.db_connections = 5;
    cfg.dispatch.poll_ms = 20;
    cfg.dispatch.lease_ms = 5_000;
    for r in &mut cfg.rails {
        r.request_timeout_ms = 1_000;
        r.callback_grace_ms = 400;
        r.deadline_secs = 8;
    }
    cfg
}

/// The gateway's state on a migrated database, with no server and no rail behind it: for tests
/// that drive the engine and the store directly.
pub async fn app_state(url: &str) -> railgate::api::AppState {
    let db = Db::connect(url, 3).await.unwrap();
    db.migrate().await.unwrap();
    let cfg = test_config(url.to_owned(), "http://127.0.0.1:9");
    let rails = railgate::rails::Rails::from_config(&cfg, railgate::adapters::build).unwrap();
    railgate::api::AppState {
        intake: railgate::api::intake::Intake::start(db.clone()),
        group: railgate::callbacks::CallbackGroup::start(db.clone()),
        db,
        rails: std::sync::Arc::new(rails),
        cfg: std::sync::Arc::new(cfg),
        wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        metrics: None,
        keys: std::sync::Arc::default(),
        progress: std::sync::Arc::default(),
    }
}

pub fn mock_config() -> railgate_mock::MockRailConfig {
    let mut m = railgate_mock::MockRailConfig::local(MOCK_SECRET);
    m.callback_delay_ms = 20;
    m.pending_delay_ms = 1_000;
    m.conflict_delay_ms = 500;
    m.hang_ms = 3_000;
    m
}

pub async fn spawn_app(store: Store) -> Option<TestApp> {
    spawn_app_with(store, |_| {}).await
}

pub async fn spawn_app_with(store: Store, tweak: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_app_with_mock(store, |_| {}, tweak).await
}

/// `spawn_app_with`, with the mock rail's own settings adjusted first by `rail`.
pub async fn spawn_app_with_mock(
    store: Store,
    rail: impl FnOnce(&mut railgate_mock::MockRailConfig),
    tweak: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let url = database_url(store).await?;
    let mut m = mock_config();
    rail(&mut m);
    let mock = railgate_mock::spawn(m).await.unwrap();
    let mut cfg = test_config(url.clone(), &mock.base_url());
    tweak(&mut cfg);
    spawn_with_config(cfg, url, mock, None).await
}

/// The gateway with every mock rail (generic, GSMA MMAPI, M-Pesa) configured as the sandbox has them.
pub async fn spawn_app_all_rails(store: Store) -> Option<TestApp> {
    spawn_app_all_rails_with(store, |_| {}).await
}

/// `spawn_app_all_rails`, with the configuration adjusted last by `tweak`.
pub async fn spawn_app_all_rails_with(
    store: Store,
    tweak: impl FnOnce(&mut Config),
) -> Option<TestApp> {
    let url = database_url(store).await?;
    let rails = railgate::sandbox::MockRails::start(MOCK_SECRET, railgate::sandbox::Timing::Fast)
        .await
        .unwrap();
    let mut cfg = test_config(url.clone(), &rails.mock.base_url());
    rails.configure(&mut cfg, &rail_secrets());
    for r in &mut cfg.rails {
        r.request_timeout_ms = 1_000;
        r.callback_grace_ms = 400;
        r.deadline_secs = 8;
    }
    tweak(&mut cfg);
    let railgate::sandbox::MockRails {
        mock,
        mmapi,
        mpesa,
        mojaloop,
        mifos_bank,
    } = rails;
    let mut app = spawn_with_config(cfg, url, mock, Some((mmapi, mpesa))).await?;
    mojaloop.set_callback_base(&format!("{}/rails/mojaloop", app.base));
    app.mojaloop = Some(mojaloop);
    app.mifos_bank = Some(mifos_bank);
    Some(app)
}

async fn spawn_with_config(
    cfg: Config,
    url: String,
    mock: railgate_mock::MockRail,
    mobile: Option<(
        railgate_mmapi::mock::MmapiMock,
        railgate_mpesa::mock::MpesaMock,
    )>,
) -> Option<TestApp> {
    let gateway = app::start(cfg, None).await.unwrap();
    let db = gateway.state.db.clone();
    let acme = keys::ensure_client(&db, "acme").await.unwrap();
    let other = keys::ensure_client(&db, "other").await.unwrap();
    let mk = |scopes: &'static [&'static str], client| {
        let db = db.clone();
        async move {
            let k = keys::generate_key();
            keys::insert_key(&db, client, &k, scopes, None)
                .await
                .unwrap();
            k
        }
    };
    let all = &railgate::api::auth::SCOPES;
    let key = mk(all, acme).await;
    let read_key = mk(&["payments:read"], acme).await;
    let other_scope_key = mk(&["recon:write"], acme).await;
    let other_client_key = mk(all, other).await;
    let revoked_key = mk(all, acme).await;
    keys::revoke(
        &db,
        &keys::lookup(&db, &revoked_key)
            .await
            .unwrap()
            .unwrap()
            .id
            .to_string(),
    )
    .await
    .unwrap();
    let base = gateway.base_url();
    Some(TestApp {
        gateway,
        mock,
        base,
        http: reqwest::Client::new(),
        key,
        read_key,
        other_scope_key,
        other_client_key,
        revoked_key,
        db,
        database_url: url,
        mojaloop: None,
        mobile,
        mifos_bank: None,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(
        &self,
        path: &str,
        key: &str,
        body: &Value,
        idem: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).bearer_auth(key).json(body);
        if let Some(k) = idem {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v = resp.json().await.unwrap_or(Value::Null);
        (status, v)
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn disburse(&self, reference: &str, msisdn: &str, amount: &str) -> Value {
        let (s, v) = self
            .post(
                "/v1/disbursements",
                &self.key,
                &disbursement(reference, msisdn, amount),
                None,
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    pub async fn payment(&self, id: &str) -> Value {
        let (s, v) = self.get(&format!("/v1/payments/{id}"), &self.key).await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Polls until the payment satisfies `done` (bounded; returns the last view either way).
    pub async fn wait_for(
        &self,
        id: &str,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let p = self.payment(id).await;
            if done(&p) || tokio::time::Instant::now() > deadline {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_final(&self, id: &str) -> Value {
        self.wait_for(id, Duration::from_secs(30), |p| {
            matches!(
                p["state"].as_str(),
                Some("completed" | "failed" | "cancelled" | "reversed")
            ) || !p["exception"].is_null()
        })
        .await
    }

    /// The Prometheus text `/metrics` serves.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// How many rows a table holds (to prove that bad input changed nothing).
    pub async fn count(&self, table: &str) -> i64 {
        railgate::store::sql::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    /// Times money moved at the mock rail for payments with this reference.
    pub fn paid(&self, reference: &str) -> u32 {
        self.mock
            .payouts()
            .iter()
            .filter(|p| p.reference == reference)
            .map(|p| p.count)
            .sum()
    }

    /// Times money moved, per a mock's `GET {control}/payouts`, for payments with this reference.
    pub async fn paid_at(&self, control_url: &str, reference: &str) -> u32 {
        let rows: Vec<Value> = self
            .http
            .get(format!("{control_url}/payouts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        rows.iter()
            .filter(|r| r["reference"] == reference)
            .map(|r| u32::try_from(r["count"].as_u64().unwrap_or(0)).unwrap())
            .sum()
    }

    /// Runs the scenario table on one rail through the whole gateway and checks every end state
    /// and that nothing was paid twice. `party(digits)` builds the party for a row.
    pub async fn run_scenario_table(
        &self,
        rail: &str,
        direction: &str,
        currency: &str,
        amount: &str,
        party: impl Fn(&str) -> Value,
        control_url: &str,
    ) {
        let rows = [
            ("00", "completed"),
            ("01", "failed"),
            ("02", "failed"),
            ("03", "failed"),
            ("04", "completed"),
            ("05", "completed"),
            ("06", "failed"),
            ("07", "completed"),
            ("08", "completed"),
            ("09", "completed"),
            ("10", "completed"),
            ("11", "conflict"),
            ("12", "exception"),
        ];
        let (path, party_key) = match direction {
            "disbursement" => ("/v1/disbursements", "payee"),
            _ => ("/v1/collections", "payer"),
        };
        let mut ids = Vec::new();
        for (digits, _) in rows {
            let body = json!({
                "reference": short_reference(rail, direction, digits),
                "amount": {"value": amount, "currency": currency},
                party_key: party(digits),
                "rail": rail,
            });
            let (s, p) = self.post(path, &self.key, &body, None).await;
            assert_eq!(s, 201, "{rail} {digits}: {p}");
            ids.push(p["id"].as_str().unwrap().to_owned());
        }
        for ((digits, want), id) in rows.iter().zip(&ids) {
            let p = self
                .wait_for(id, Duration::from_secs(40), |p| match *want {
                    "conflict" => !p["conflict"].is_null(),
                    "exception" => !p["exception"].is_null(),
                    w => p["state"] == w,
                })
                .await;
            let reference = short_reference(rail, direction, digits);
            let mut paid = self.paid_at(control_url, &reference).await;
            // Where the gateway's answer is what moves the money (a Mojaloop payee FSP's
            // fulfilment), the rail learns of it just after the gateway: give it time.
            let settle = tokio::time::Instant::now() + Duration::from_secs(10);
            while *want == "completed" && paid == 0 && tokio::time::Instant::now() < settle {
                tokio::time::sleep(Duration::from_millis(50)).await;
                paid = self.paid_at(control_url, &reference).await;
            }
            match *want {
                "conflict" => assert!(!p["conflict"].is_null(), "{rail} {direction} {digits}: {p}"),
                "exception" => {
                    assert!(
                        !p["exception"].is_null(),
                        "{rail} {direction} {digits}: {p}"
                    );
                    assert_eq!(p["state"], "unknown");
                }
                w => assert_eq!(p["state"], w, "{rail} {direction} {digits}: {p}"),
            }
            assert!(paid <= 1, "{rail} {direction} {digits} paid {paid} times");
            if *want == "completed" {
                assert_eq!(
                    paid, 1,
                    "{rail} {direction} {digits}: completed but the rail paid {paid} times"
                );
            }
            if *want == "failed" && ["01", "02", "03"].contains(digits) {
                assert_eq!(paid, 0, "{rail} {direction} {digits}");
            }
        }
    }

    /// Stops everything and removes the test's database (its SQLite directory, or its
    /// PostgreSQL schema), so passing tests leave nothing behind.
    pub async fn stop(self) {
        self.gateway.shutdown().await;
        let _ = self.mock.shutdown().await;
        self.db.close().await;
        drop_database(&self.database_url).await;
    }
}

async fn drop_database(url: &str) {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    } else if let Some((_, schema)) = url.split_once("search_path%3D") {
        if let Ok(admin) = Db::connect(&postgres_base(), 1).await {
            let _ = railgate::store::sql::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(admin.pool())
                .await;
            admin.close().await;
        }
    }
}

pub fn disbursement(reference: &str, msisdn: &str, amount: &str) -> Value {
    json!({
        "reference": reference,
        "amount": {"value": amount, "currency": "TZS"},
        "payee": {"id_type": "MSISDN", "id_value": msisdn, "name": "Asha Juma"},
        "narrative": "Maternity benefit",
        "metadata": {"programme": "maternity", "insuree": "CHF-1001"}
    })
}

/// At most 12 characters: M-Pesa's STK `AccountReference` limit.
fn short_reference(rail: &str, direction: &str, digits: &str) -> String {
    let r: String = rail.chars().take(6).collect();
    let d: String = direction.chars().take(1).collect();
    format!("{r}-{d}-{digits}")
}

/// Runs an async test body on both stores, as two tests.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::common::Store::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::common::Store::Postgres).await
            }
        }
    };
}

/// The console's form token for a request signed in with `key` under HTTP Basic (the token a
/// page served to that key carries).
pub fn console_form_token(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(
        Sha256::new()
            .chain_update(b"railgate-console-form\0")
            .chain_update(key.as_bytes())
            .finalize(),
    )
}

/// The sign-in form as a browser gets it: its nonce and the `railgate_signin=` cookie that
/// goes with it (a sign-in post must carry both).
pub async fn sign_in_form(http: &reqwest::Client, app: &TestApp) -> (String, String) {
    let resp = http.get(app.url("/reports")).send().await.unwrap();
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("railgate_signin="))
        .expect("the sign-in form sets its nonce cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = resp.text().await.unwrap();
    let at = page
        .find("name=\"signin\" value=\"")
        .expect("the sign-in form carries its nonce")
        + 21;
    (cookie, page[at..at + 64].to_owned())
}

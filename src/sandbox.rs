//! `railgate sandbox`: the gateway, every mock rail and an embedded store on loopback.

use crate::app::{self, AppError, Running};
use crate::config::{Config, RailConfig, RouteConfig};
use crate::store::{keys, Db};
use std::net::SocketAddr;
use std::path::PathBuf;

pub struct SandboxOptions {
    pub port: u16,
    pub db: Option<PathBuf>,
    pub api_key: Option<String>,
}

pub struct Sandbox {
    pub gateway: Running,
    pub rails: MockRails,
    pub api_key: String,
    /// Kept so the temporary database lives as long as the sandbox.
    _tmp: Option<TempDir>,
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn random_secret() -> String {
    keys::generate_key()
}

/// The rails and routes of the sandbox: everything goes to the mock rail by default.
pub fn sandbox_config(
    port: u16,
    database_url: String,
    mock_url: &str,
    mock_secret: &str,
) -> Config {
    let mut settings = toml::Table::new();
    settings.insert("base_url".into(), toml::Value::String(mock_url.to_owned()));
    settings.insert(
        "callback_secret".into(),
        toml::Value::String(mock_secret.to_owned()),
    );
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        database_url,
        db_connections: 4,
        rails: vec![RailConfig {
            id: "mock".into(),
            kind: "mock".into(),
            concurrency: 64,
            rate_per_second: 0,
            request_timeout_ms: 3_000,
            deadline_secs: 120,
            callback_grace_ms: 2_000,
            settings,
        }],
        routes: vec![RouteConfig {
            rail: "mock".into(),
            ..RouteConfig::default()
        }],
        ..Config::default()
    }
}

pub async fn start(opts: SandboxOptions) -> Result<Sandbox, AppError> {
    let (path, tmp) = match opts.db {
        Some(p) => (p, None),
        None => {
            let dir = std::env::temp_dir().join(format!(
                "railgate-sandbox-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir_all(&dir).map_err(AppError::Listen)?;
            (dir.join("railgate.db"), Some(TempDir(dir)))
        }
    };
    let secret = random_secret();
    let rails = MockRails::start(&secret, Timing::Sandbox)
        .await
        .map_err(AppError::Listen)?;
    let mut cfg = sandbox_config(
        opts.port,
        format!("sqlite://{}", path.display()),
        &rails.mock.base_url(),
        &secret,
    );
    rails.configure(&mut cfg, &secret);
    let gateway = app::start(cfg, None).await?;
    rails.connect(&gateway.base_url());
    let db: &Db = &gateway.state.db;
    let client = keys::ensure_client(db, "demo").await?;
    let api_key = match opts.api_key {
        Some(k) => {
            if keys::lookup(db, &k).await?.is_none() {
                keys::insert_key(db, client, &k, &crate::api::auth::SCOPES, Some("sandbox"))
                    .await?;
            }
            k
        }
        None => {
            let k = keys::generate_key();
            keys::insert_key(db, client, &k, &crate::api::auth::SCOPES, Some("sandbox")).await?;
            k
        }
    };
    Ok(Sandbox {
        gateway,
        rails,
        api_key,
        _tmp: tmp,
    })
}

/// How quickly the mock rails answer: as documented in the sandbox, or much faster for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    Sandbox,
    Fast,
}

/// Every mock rail, each on its own loopback port.
pub struct MockRails {
    pub mock: railgate_mock::MockRail,
    pub mmapi: railgate_mmapi::mock::MmapiMock,
    pub mpesa: railgate_mpesa::mock::MpesaMock,
    /// The Mojaloop hub (switch + one peer FSP); it learns the gateway's address in `connect`.
    pub mojaloop: railgate_mojaloop::MockHub,
}

/// Our FSP id in the sandbox's Mojaloop scheme, and the scheme's own identifier there.
pub const MOJALOOP_FSP_ID: &str = "railgate";
pub const MOJALOOP_SCHEME_PARTY: &str = "BUSINESS:NHIF";

impl MockRails {
    pub async fn start(secret: &str, timing: Timing) -> std::io::Result<MockRails> {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let (cb, pending, conflict, hang) = match timing {
            Timing::Sandbox => (100, 3_000, 2_000, 60_000),
            Timing::Fast => (20, 1_000, 500, 3_000),
        };
        let mut m = railgate_mock::MockRailConfig::local(secret.to_owned());
        m.callback_delay_ms = cb;
        m.pending_delay_ms = pending;
        m.conflict_delay_ms = conflict;
        m.hang_ms = hang;
        let mock = railgate_mock::spawn(m).await?;
        let mmapi = railgate_mmapi::mock::MmapiMock::start(railgate_mmapi::mock::MmapiMockConfig {
            callback_delay: ms(cb),
            pending_delay: ms(pending),
            conflict_delay: ms(conflict),
            ..Default::default()
        })
        .await?;
        let mpesa = railgate_mpesa::mock::MpesaMock::start(railgate_mpesa::mock::MpesaMockConfig {
            callback_delay: ms(cb),
            pending_delay: ms(pending),
            conflict_delay: ms(conflict),
            ..Default::default()
        })
        .await?;
        let mut hub = railgate_mojaloop::MockHubConfig::new(MOJALOOP_FSP_ID);
        hub.callback_delay = ms(cb);
        hub.pending_delay = ms(pending);
        hub.late_success_delay = ms(conflict);
        let mojaloop = railgate_mojaloop::MockHub::start(hub).await?;
        Ok(MockRails {
            mock,
            mmapi,
            mpesa,
            mojaloop,
        })
    }

    /// Tells the mocks that call the gateway back at registered addresses (the Mojaloop hub)
    /// where it listens, once it does.
    pub fn connect(&self, gateway_base: &str) {
        self.mojaloop.set_callback_base(&format!(
            "{}/rails/mojaloop",
            gateway_base.trim_end_matches('/')
        ));
    }

    /// Adds the mocked rails to a configuration: `mmapi` (GSMA Mobile Money API), `mpesa`
    /// (Daraja) and `mojaloop` (FSPIOP v1.1); KES goes to M-Pesa, `ALIAS` parties to Mojaloop,
    /// the rest stays on the generic mock rail, and any can be chosen with the `rail` hint.
    pub fn configure(&self, cfg: &mut Config, secret: &str) {
        let rail = |id: &str, kind: &str, pairs: &[(&str, String)]| {
            let mut settings = toml::Table::new();
            for (k, v) in pairs {
                settings.insert((*k).to_owned(), toml::Value::String(v.clone()));
            }
            RailConfig {
                id: id.into(),
                kind: kind.into(),
                concurrency: 64,
                rate_per_second: 0,
                request_timeout_ms: 3_000,
                deadline_secs: 120,
                callback_grace_ms: 2_000,
                settings,
            }
        };
        cfg.rails.push(rail(
            "mmapi",
            "mmapi",
            &[
                ("base_url", self.mmapi.base_url()),
                ("auth", "none".into()),
                ("callback_secret", secret.to_owned()),
                ("scheme_party_value", "255700000001".into()),
            ],
        ));
        cfg.rails.push(rail(
            "mpesa",
            "mpesa",
            &[
                ("base_url", self.mpesa.base_url()),
                ("callback_secret", secret.to_owned()),
                ("consumer_key", "sandbox-key".into()),
                ("consumer_secret", "sandbox-secret".into()),
                ("b2c_shortcode", "600997".into()),
                ("b2c_initiator_name", "sandbox-initiator".into()),
                ("b2c_security_credential", "sandbox-credential".into()),
                ("stk_shortcode", "174379".into()),
                ("stk_passkey", "sandbox-passkey".into()),
                ("currencies", "KES".into()),
            ],
        ));
        cfg.rails.push(rail(
            "mojaloop",
            "mojaloop",
            &[
                ("hub_url", self.mojaloop.base_url()),
                ("fsp_id", MOJALOOP_FSP_ID.into()),
                ("hub_fsp_id", "switch".into()),
                ("peers", "mockdfsp".into()),
                ("ilp_secret", secret.to_owned()),
                ("scheme_party", MOJALOOP_SCHEME_PARTY.into()),
                ("scheme_name", "National Health Insurance Fund".into()),
            ],
        ));
        cfg.routes.insert(
            0,
            RouteConfig {
                rail: "mojaloop".into(),
                id_type: Some("ALIAS".into()),
                ..RouteConfig::default()
            },
        );
        cfg.routes.insert(
            0,
            RouteConfig {
                rail: "mpesa".into(),
                currency: Some("KES".into()),
                ..RouteConfig::default()
            },
        );
    }
}

/// What the sandbox prints for a newcomer.
pub fn banner(base: &str, key: &str, mock: &str) -> String {
    format!(
        "Railgate sandbox: gateway {base}, mock rail {mock}\n\
API key: {key}\n\n\
Try it (the last two digits of the phone number pick the mock rail's scenario; see the README):\n\
  curl -s -X POST {base}/v1/disbursements -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n\
    -H 'Idempotency-Key: demo-1' \\\n\
    -d '{{\"reference\":\"BEN-2026-000100\",\"amount\":{{\"value\":\"15000.00\",\"currency\":\"TZS\"}},\"payee\":{{\"id_type\":\"MSISDN\",\"id_value\":\"255712345600\",\"name\":\"Asha Juma\"}},\"narrative\":\"Maternity benefit\",\"metadata\":{{\"programme\":\"maternity\"}}}}'\n\
  curl -s {base}/v1/payments -H 'Authorization: Bearer {key}'\n\
  curl -s -X POST {base}/v1/collections -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n\
    -d '{{\"reference\":\"PREM-2026-07\",\"amount\":{{\"value\":\"5000.00\",\"currency\":\"TZS\"}},\"payer\":{{\"id_type\":\"MSISDN\",\"id_value\":\"255712345601\"}},\"mode\":\"request_to_pay\"}}'\n"
    )
}

/// The sandbox's Mojaloop scheme, for a newcomer: where its hub is and how to play an insuree
/// paying a premium into the scheme.
pub fn mojaloop_banner(hub: &str) -> String {
    format!(
        "Mojaloop hub (mock, FSPIOP v1.1): {hub}; ALIAS parties go to it, or pass \"rail\": \"mojaloop\".\n\
An insuree pays an expected collection (use its payment_reference) through the scheme:\n\
  curl -s -X POST {hub}/_control/push -H 'Content-Type: application/json' \\\n\
    -d '{{\"id_type\":\"BUSINESS\",\"id_value\":\"NHIF\",\"reference\":\"<payment_reference>\",\"amount\":\"5000\",\"currency\":\"TZS\",\"payer_msisdn\":\"255712345600\"}}'\n"
    )
}

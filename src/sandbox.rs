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

/// One secret per sandbox rail, each drawn on its own: one that leaks (an M-Pesa callback
/// URL in a log) opens no other rail.
#[derive(Clone)]
pub struct RailSecrets {
    /// The mock rail's HMAC key for its callbacks.
    pub mock: String,
    /// MMAPI's and M-Pesa's callback path secrets.
    pub mmapi: String,
    pub mpesa: String,
    /// Mojaloop's ILP secret (fulfilments of the transfers paid to us).
    pub mojaloop_ilp: String,
    /// PH-EE's batch callback token.
    pub phee: String,
}

impl RailSecrets {
    pub fn random() -> RailSecrets {
        RailSecrets {
            mock: keys::generate_key(),
            mmapi: keys::generate_key(),
            mpesa: keys::generate_key(),
            mojaloop_ilp: keys::generate_key(),
            phee: keys::generate_key(),
        }
    }
}

impl std::fmt::Debug for RailSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RailSecrets(***)")
    }
}

/// The rails and routes of the sandbox: everything goes to the mock rail by default.
pub fn sandbox_config(
    port: u16,
    database_url: String,
    mock_url: &str,
    mock_secret: &str,
) -> Config {
    let mut mock = rail(
        "mock",
        "mock",
        &[
            ("base_url", mock_url.to_owned()),
            ("callback_secret", mock_secret.to_owned()),
        ],
    );
    // Payrolls go through the mock rail's batch API.
    mock.batch = Some(true);
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        database_url,
        db_connections: 4,
        rails: vec![mock],
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
    let secrets = RailSecrets::random();
    let rails = MockRails::start(&secrets.mock, Timing::Sandbox)
        .await
        .map_err(AppError::Listen)?;
    let mut cfg = sandbox_config(
        opts.port,
        format!("sqlite://{}", path.display()),
        &rails.mock.base_url(),
        &secrets.mock,
    );
    rails.configure(&mut cfg, &secrets);
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
    pub mifos_bank: MifosBankMocks,
}

/// The Mifos rails (Payment Hub EE, Fineract) and the bank, with the bank's drop folders.
pub struct MifosBankMocks {
    pub phee: railgate_mifos::mock::PhEeMock,
    pub fineract: railgate_mifos::mock::FineractMock,
    pub bank: railgate_bank::mock::BankMock,
    /// `out/` (pain.001 from us; the bank moves what it picked up to `out/archive/`) and
    /// `in/` (pain.002 and camt from the bank). Removed with the sandbox.
    pub bank_dir: TempDir,
    /// How often the gateway reads the bank's inbound folder (statuses, bookings, returns).
    pub returns_poll_ms: u64,
    /// How long after PH-EE or Fineract fails a payment the gateway asks about it again (their
    /// "refused, then paid ~2 s later" scenario 11 must have played out by then).
    pub recheck_after_ms: u64,
}

/// The debtor account the sandbox's bank rail pays from.
pub const SANDBOX_DEBTOR_IBAN: &str = "DE89370400440532013000";

impl MifosBankMocks {
    pub async fn start(timing: Timing) -> std::io::Result<MifosBankMocks> {
        // PH-EE's 11 pays after the gateway's first inquiry has seen the failure (it comes
        // after the rail's callback grace: 2 s in the sandbox, 0.4 s in tests) and before its
        // second look (`recheck_after_ms`), so the contradiction is recorded as the table says.
        let late_success_after = std::time::Duration::from_millis(match timing {
            Timing::Sandbox => 5_000,
            Timing::Fast => 2_000,
        });
        let phee = railgate_mifos::mock::PhEeMock::start(railgate_mifos::mock::PhEeMockConfig {
            late_success_after,
            ..railgate_mifos::mock::PhEeMockConfig::default()
        })
        .await?;
        let fineract = railgate_mifos::mock::FineractMock::start(
            railgate_mifos::mock::FineractMockConfig::default(),
        )
        .await?;
        let dir = std::env::temp_dir().join(format!(
            "railgate-sandbox-bank-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let bank_dir = TempDir(dir.clone());
        // `late_booking` stands for "two days later" (the bank's 04).
        let (poll, returns_poll_ms, late_booking, recheck_after_ms) = match timing {
            Timing::Sandbox => (500, 2_000, 8_000, 10_000),
            Timing::Fast => (100, 200, 4_000, 3_000),
        };
        let bank = railgate_bank::mock::BankMock::start(railgate_bank::mock::BankMockConfig {
            outbound_dir: dir.join("out"),
            inbound_dir: dir.join("in"),
            account_iban: SANDBOX_DEBTOR_IBAN.into(),
            poll_every: std::time::Duration::from_millis(poll),
            late_booking: std::time::Duration::from_millis(late_booking),
        })
        .await?;
        bank.archive_pickups_to(dir.join("out").join("archive"));
        Ok(MifosBankMocks {
            phee,
            fineract,
            bank,
            bank_dir,
            returns_poll_ms,
            recheck_after_ms,
        })
    }

    /// What the sandbox prints about these rails.
    pub fn banner(&self) -> String {
        format!(
            "Mifos and bank rails: phee (Payment Hub EE at {}, with \"rail\": \"phee\"), \
fineract (ACCOUNT_ID payees in KES, at {}), bank (IBAN payees in EUR).\n\
Bank drop folders: {} (pain.001 out; picked-up files in archive/) and {} (pain.002, camt in).",
            self.phee.base_url(),
            self.fineract.base_url(),
            self.outbound_dir().display(),
            self.inbound_dir().display()
        )
    }

    pub fn outbound_dir(&self) -> PathBuf {
        self.bank_dir.0.join("out")
    }

    pub fn inbound_dir(&self) -> PathBuf {
        self.bank_dir.0.join("in")
    }

    /// Where the sandbox bank keeps the pain.001 files it picked up.
    pub fn archive_dir(&self) -> PathBuf {
        self.outbound_dir().join("archive")
    }

    /// The bank mock's control endpoints (`/payouts`, `/faults`, `/statement`, `/camt053`).
    pub fn bank_control_url(&self) -> String {
        format!("http://{}/_control", self.bank.control_addr)
    }

    pub fn phee_control_url(&self) -> String {
        format!("{}/_control", self.phee.base_url())
    }

    pub fn fineract_control_url(&self) -> String {
        format!("http://{}/_control", self.fineract.addr)
    }

    /// Adds `phee`, `fineract` and `bank`; routes IBAN payees in EUR to the bank and
    /// savings accounts (`ACCOUNT_ID`) in KES to Fineract. PH-EE is reached with the `rail`
    /// hint (or a route of your own). `phee_token` authenticates PH-EE's batch callbacks.
    pub fn configure(&self, cfg: &mut Config, phee_token: &str) {
        cfg.rails.push(rail(
            "phee",
            "phee",
            &[
                ("channel_url", self.phee.base_url()),
                ("operations_url", self.phee.operations_url()),
                ("tenant", "gorilla".into()),
                ("payer_identifier", "255700000001".into()),
                ("callback_token", phee_token.to_owned()),
                ("currencies", "TZS,KES".into()),
            ],
        ));
        let recheck_after = Some(self.recheck_after_ms);
        if let Some(phee) = cfg.rails.last_mut() {
            phee.confirm_failure_after_ms = recheck_after;
        }
        cfg.rails.push(rail(
            "fineract",
            "fineract",
            &[
                ("base_url", self.fineract.base_url()),
                ("tenant", "default".into()),
                ("username", "mifos".into()),
                ("password", "password".into()),
                ("currencies", "KES".into()),
            ],
        ));
        if let Some(fineract) = cfg.rails.last_mut() {
            fineract.confirm_failure_after_ms = recheck_after;
        }
        cfg.rails.push(rail(
            "bank",
            "bank",
            &[
                ("outbound_dir", self.outbound_dir().display().to_string()),
                ("inbound_dir", self.inbound_dir().display().to_string()),
                ("pain001_version", "09".into()),
                ("debtor_name", "Social Health Insurance Fund".into()),
                ("debtor_iban", SANDBOX_DEBTOR_IBAN.into()),
                ("debtor_bic", "COBADEFFXXX".into()),
                ("currency", "EUR".into()),
                ("returns_poll_ms", self.returns_poll_ms.to_string()),
            ],
        ));
        cfg.routes.insert(
            0,
            RouteConfig {
                rail: "bank".into(),
                id_type: Some("IBAN".into()),
                currency: Some("EUR".into()),
                ..RouteConfig::default()
            },
        );
        cfg.routes.insert(
            0,
            RouteConfig {
                rail: "fineract".into(),
                id_type: Some("ACCOUNT_ID".into()),
                currency: Some("KES".into()),
                ..RouteConfig::default()
            },
        );
    }
}

/// A sandbox rail with string settings of its own (its crate reads them typed).
fn rail(id: &str, kind: &str, pairs: &[(&str, String)]) -> RailConfig {
    let mut rc = RailConfig::new(id, kind);
    for (k, v) in pairs {
        rc.settings
            .insert((*k).to_owned(), toml::Value::String(v.clone()));
    }
    rc.concurrency = 64;
    rc.request_timeout_ms = 3_000;
    rc.deadline_secs = 120;
    rc.callback_grace_ms = 2_000;
    rc
}

/// Our FSP id in the sandbox's Mojaloop scheme, and the scheme's own identifier there.
pub const MOJALOOP_FSP_ID: &str = "railgate";
pub const MOJALOOP_SCHEME_PARTY: &str = "BUSINESS:NHIF";

impl MockRails {
    /// `secret` is the mock rail's HMAC key (`RailSecrets::mock`).
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
        let mifos_bank = MifosBankMocks::start(timing).await?;
        Ok(MockRails {
            mock,
            mmapi,
            mpesa,
            mojaloop,
            mifos_bank,
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
    /// Each rail gets its own secret from `secrets`.
    pub fn configure(&self, cfg: &mut Config, secrets: &RailSecrets) {
        let mut mmapi = rail(
            "mmapi",
            "mmapi",
            &[
                ("base_url", self.mmapi.base_url()),
                ("auth", "none".into()),
                ("callback_secret", secrets.mmapi.clone()),
                ("scheme_party_value", "255700000001".into()),
            ],
        );
        // Payrolls go through `POST /batchtransactions`.
        mmapi.batch = Some(true);
        cfg.rails.push(mmapi);
        cfg.rails.push(rail(
            "mpesa",
            "mpesa",
            &[
                ("base_url", self.mpesa.base_url()),
                ("callback_secret", secrets.mpesa.clone()),
                ("consumer_key", "sandbox-key".into()),
                ("consumer_secret", "sandbox-secret".into()),
                ("b2c_shortcode", "600997".into()),
                ("b2c_initiator_name", "sandbox-initiator".into()),
                ("b2c_security_credential", "sandbox-credential".into()),
                ("stk_shortcode", "174379".into()),
                ("stk_passkey", "sandbox-passkey".into()),
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
                ("ilp_secret", secrets.mojaloop_ilp.clone()),
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
        self.mifos_bank.configure(cfg, &secrets.phee);
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
  curl -s -X POST {base}/v1/payments/<id>/reversals -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n\
    -d '{{\"reason\":\"paid twice by the scheme\"}}'   (a completed payment; the money goes back)\n\
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

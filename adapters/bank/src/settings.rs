//! A bank rail's `[[rails]]` settings (`kind = "bank"`), read into a typed struct that refuses
//! unknown keys. The keys are listed in the README.

use crate::charset::Charset;
use crate::{AccountId, BankAdapter, BankConfig, DebtorAccount, Pain001Options, Pain001Version};
use railgate_rail::settings::flex;
use railgate_rail::{Currency, RailAdapter, RailSetup, SettingsError};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankSettings {
    pub outbound_dir: Option<PathBuf>,
    pub inbound_dir: Option<PathBuf>,
    /// `09` (default) or `03`, or the full `pain.001.001.09`.
    pub pain001_version: Option<String>,
    /// `sepa` (default) or `unicode`.
    pub charset: Option<String>,
    pub debtor_name: Option<String>,
    /// Exactly one of `debtor_iban` and `debtor_account`.
    pub debtor_iban: Option<String>,
    pub debtor_account: Option<String>,
    pub debtor_bic: Option<String>,
    pub currency: Option<String>,
    /// Default: `debtor_name`.
    pub initiating_party: Option<String>,
    /// Default: true for EUR.
    #[serde(default, deserialize_with = "flex::opt")]
    pub sepa: Option<bool>,
    /// How often the inbound folder is read (default 60 000).
    #[serde(default, deserialize_with = "flex::opt")]
    pub returns_poll_ms: Option<u64>,
}

impl BankSettings {
    /// The adapter's configuration.
    pub fn config(&self, setup: &RailSetup) -> Result<BankConfig, SettingsError> {
        let version = match self.pain001_version.as_deref().unwrap_or("09") {
            "03" | "pain.001.001.03" => Pain001Version::V03,
            "09" | "pain.001.001.09" => Pain001Version::V09,
            other => {
                return Err(setup.invalid(format!("pain001_version '{other}' is not 03 or 09")))
            }
        };
        let charset = match self.charset.as_deref().unwrap_or("sepa") {
            "sepa" => Charset::Sepa,
            "unicode" => Charset::Unicode,
            other => return Err(setup.invalid(format!("charset '{other}' is not sepa or unicode"))),
        };
        let account = match (&self.debtor_iban, &self.debtor_account) {
            (Some(iban), None) => AccountId::Iban(iban.clone()),
            (None, Some(number)) => AccountId::Other(number.clone()),
            _ => {
                return Err(
                    setup.invalid("exactly one of 'debtor_iban' and 'debtor_account' is required")
                )
            }
        };
        let currency: Currency = setup
            .required(&self.currency, "currency")?
            .parse()
            .map_err(|e| setup.invalid(e))?;
        let debtor_name = setup.required(&self.debtor_name, "debtor_name")?.to_owned();
        let dir = |v: &Option<PathBuf>, key: &str| {
            v.clone()
                .ok_or_else(|| setup.invalid(format!("'{key}' is required")))
        };
        Ok(BankConfig {
            rail_id: setup.rail_id.clone(),
            poll_every: self
                .returns_poll_ms
                .map(Duration::from_millis)
                .unwrap_or(crate::adapter::DEFAULT_POLL),
            outbound_dir: dir(&self.outbound_dir, "outbound_dir")?,
            inbound_dir: dir(&self.inbound_dir, "inbound_dir")?,
            pain001: Pain001Options {
                version,
                initiating_party: self
                    .initiating_party
                    .clone()
                    .unwrap_or_else(|| debtor_name.clone()),
                debtor: DebtorAccount {
                    name: debtor_name,
                    account,
                    bic: self.debtor_bic.clone(),
                    currency,
                },
                sepa: self.sepa.unwrap_or(currency == Currency::Eur),
                charset,
            },
        })
    }
}

/// The bank adapter from its rail's setup (the registry's constructor for `bank`).
pub fn bank(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    setup.refuse_oauth("bank")?;
    setup.refuse_tls("bank")?;
    let s: BankSettings = setup.parse(&[])?;
    let adapter = BankAdapter::new(s.config(&setup)?).map_err(|e| setup.invalid(e))?;
    Ok(Arc::new(adapter))
}

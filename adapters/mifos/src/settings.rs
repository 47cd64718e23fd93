//! The Mifos rails' `[[rails]]` settings: Payment Hub EE (`kind = "phee"`) and Apache Fineract
//! savings accounts (`kind = "fineract"`), read into typed structs that refuse unknown keys.
//! The keys are listed in the README.

use crate::adapter::{BulkSettings, BATCH_CALLBACK_PATH};
use crate::{FineractAdapter, FineractConfig, PhEeAdapter, PhEeConfig};
use railgate_rail::settings::flex;
use railgate_rail::{RailAdapter, RailSetup, SecretSetting, SettingsError};
use serde::Deserialize;
use std::sync::Arc;

/// `kind = "phee"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhEeSettings {
    pub channel_url: Option<String>,
    pub operations_url: Option<String>,
    /// Default: `channel_url`.
    pub bulk_url: Option<String>,
    pub tenant: Option<String>,
    /// Default `MSISDN`.
    pub payer_id_type: Option<String>,
    pub payer_identifier: Option<String>,
    pub payee_dfsp: Option<String>,
    /// Default `mpesa`.
    pub collection_scheme: Option<String>,
    pub operations_token: Option<SecretSetting>,
    pub callback_token: Option<SecretSetting>,
    pub currencies: Option<String>,
    /// Default `mojaloop`.
    pub bulk_payment_mode: Option<String>,
    /// Default `payroll`.
    pub bulk_purpose: Option<String>,
}

impl PhEeSettings {
    pub const SECRETS: &'static [&'static str] = &["operations_token", "callback_token"];

    /// The adapter's configuration; `setup.tls` and `setup.oauth` (Keycloak) go with it.
    pub fn config(&self, setup: &RailSetup) -> Result<PhEeConfig, SettingsError> {
        let channel_url = setup.required(&self.channel_url, "channel_url")?.to_owned();
        Ok(PhEeConfig {
            rail_id: setup.rail_id.clone(),
            operations_url: setup
                .required(&self.operations_url, "operations_url")?
                .to_owned(),
            bulk_url: self.bulk_url.clone().unwrap_or_else(|| channel_url.clone()),
            channel_url,
            tenant: setup.required(&self.tenant, "tenant")?.to_owned(),
            payer_id_type: self
                .payer_id_type
                .clone()
                .unwrap_or_else(|| "MSISDN".into()),
            payer_identifier: setup
                .required(&self.payer_identifier, "payer_identifier")?
                .to_owned(),
            payee_dfsp: self.payee_dfsp.clone(),
            collection_scheme: self
                .collection_scheme
                .clone()
                .unwrap_or_else(|| "mpesa".into()),
            operations_token: setup.optional_secret(&self.operations_token, "operations_token")?,
            callback_token: setup.optional_secret(&self.callback_token, "callback_token")?,
            currencies: setup.currencies(&self.currencies)?,
            timeout_ms: setup.timeout_ms(),
            tls: setup.tls.clone(),
            oauth: setup.oauth.clone(),
        })
    }
}

/// The PH-EE adapter from its rail's setup (the registry's constructor for `phee`).
pub fn phee(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    let s: PhEeSettings = setup.parse(PhEeSettings::SECRETS)?;
    let cfg = s.config(&setup)?;
    let callback_url = cfg.callback_token.as_ref().map(|t| {
        format!(
            "{}{BATCH_CALLBACK_PATH}?token={}",
            setup.callback_base,
            t.expose()
        )
    });
    let adapter = PhEeAdapter::new(cfg)
        .map_err(|e| setup.invalid(e))?
        .with_bulk(BulkSettings {
            payment_mode: s
                .bulk_payment_mode
                .clone()
                .unwrap_or_else(|| "mojaloop".into()),
            purpose: s.bulk_purpose.clone().unwrap_or_else(|| "payroll".into()),
            callback_url,
        });
    Ok(Arc::new(adapter))
}

/// `kind = "fineract"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineractSettings {
    pub base_url: Option<String>,
    /// Default `default`.
    pub tenant: Option<String>,
    pub username: Option<String>,
    pub password: Option<SecretSetting>,
    #[serde(default, deserialize_with = "flex::opt")]
    pub payment_type_id: Option<i64>,
    pub currencies: Option<String>,
}

/// The Fineract adapter from its rail's setup (the registry's constructor for `fineract`).
pub fn fineract(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    setup.refuse_oauth("fineract")?;
    let s: FineractSettings = setup.parse(&["password"])?;
    let adapter = FineractAdapter::new(FineractConfig {
        rail_id: setup.rail_id.clone(),
        base_url: setup.required(&s.base_url, "base_url")?.to_owned(),
        tenant: s.tenant.clone().unwrap_or_else(|| "default".into()),
        username: setup.required(&s.username, "username")?.to_owned(),
        password: setup.secret(&s.password, "password")?,
        payment_type_id: s.payment_type_id,
        currencies: setup.currencies(&s.currencies)?,
        timeout_ms: setup.timeout_ms(),
        tls: setup.tls.clone(),
    })
    .map_err(|e| setup.invalid(e))?;
    Ok(Arc::new(adapter))
}

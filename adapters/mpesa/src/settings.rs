//! An M-Pesa rail's `[[rails]]` settings (`kind = "mpesa"`), read into a typed struct that
//! refuses unknown keys. The keys are listed in the README.

use crate::{B2cConfig, CommandId, MpesaAdapter, MpesaConfig, StkConfig, StkTransactionType};
use railgate_rail::{RailAdapter, RailSetup, SecretSetting, SettingsError};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MpesaSettings {
    pub base_url: Option<String>,
    pub consumer_key: Option<String>,
    pub consumer_secret: Option<SecretSetting>,
    /// The secret path segment of our callback URLs (Daraja does not sign callbacks).
    pub callback_secret: Option<SecretSetting>,
    /// Comma-separated source addresses callbacks must come from (empty: any).
    pub allowed_peers: Option<String>,
    /// Disbursements (B2C), when `b2c_shortcode` is set.
    pub b2c_shortcode: Option<String>,
    pub b2c_initiator_name: Option<String>,
    pub b2c_security_credential: Option<SecretSetting>,
    /// `SalaryPayment` (default), `BusinessPayment` or `PromotionPayment`.
    pub b2c_command_id: Option<String>,
    /// Collections (STK push), when `stk_shortcode` is set.
    pub stk_shortcode: Option<String>,
    pub stk_passkey: Option<SecretSetting>,
    /// Default: `stk_shortcode`.
    pub stk_party_b: Option<String>,
    /// `CustomerPayBillOnline` (default) or `CustomerBuyGoodsOnline`.
    pub stk_transaction_type: Option<String>,
}

impl MpesaSettings {
    pub const SECRETS: &'static [&'static str] = &[
        "consumer_secret",
        "callback_secret",
        "b2c_security_credential",
        "stk_passkey",
    ];

    fn b2c(&self, setup: &RailSetup) -> Result<Option<B2cConfig>, SettingsError> {
        let Some(shortcode) = self.b2c_shortcode.clone() else {
            return Ok(None);
        };
        Ok(Some(B2cConfig {
            initiator_name: setup
                .required(&self.b2c_initiator_name, "b2c_initiator_name")?
                .to_owned(),
            security_credential: setup
                .secret(&self.b2c_security_credential, "b2c_security_credential")?,
            shortcode,
            command_id: match self.b2c_command_id.as_deref().unwrap_or("SalaryPayment") {
                "SalaryPayment" => CommandId::SalaryPayment,
                "BusinessPayment" => CommandId::BusinessPayment,
                "PromotionPayment" => CommandId::PromotionPayment,
                other => return Err(setup.invalid(format!("b2c_command_id '{other}'"))),
            },
        }))
    }

    fn stk(&self, setup: &RailSetup) -> Result<Option<StkConfig>, SettingsError> {
        let Some(shortcode) = self.stk_shortcode.clone() else {
            return Ok(None);
        };
        Ok(Some(StkConfig {
            party_b: self
                .stk_party_b
                .clone()
                .unwrap_or_else(|| shortcode.clone()),
            shortcode,
            passkey: setup.secret(&self.stk_passkey, "stk_passkey")?,
            transaction_type: match self
                .stk_transaction_type
                .as_deref()
                .unwrap_or("CustomerPayBillOnline")
            {
                "CustomerPayBillOnline" => StkTransactionType::CustomerPayBillOnline,
                "CustomerBuyGoodsOnline" => StkTransactionType::CustomerBuyGoodsOnline,
                other => return Err(setup.invalid(format!("stk_transaction_type '{other}'"))),
            },
        }))
    }

    /// The adapter's configuration.
    pub fn config(&self, setup: &RailSetup) -> Result<MpesaConfig, SettingsError> {
        let mut cfg = MpesaConfig::new(
            &setup.rail_id,
            setup.required(&self.base_url, "base_url")?,
            &setup.callback_base,
            setup.secret(&self.callback_secret, "callback_secret")?,
            setup.required(&self.consumer_key, "consumer_key")?,
            setup.secret(&self.consumer_secret, "consumer_secret")?,
        );
        cfg.b2c = self.b2c(setup)?;
        cfg.stk = self.stk(setup)?;
        if let Some(peers) = &self.allowed_peers {
            cfg.allowed_peers = peers
                .split(',')
                .map(|p| {
                    p.trim().parse().map_err(|_| {
                        setup.invalid(format!("allowed_peers: '{p}' is not an IP address"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        cfg.request_timeout = setup.request_timeout;
        cfg.tls = setup.tls.clone();
        Ok(cfg)
    }
}

/// The M-Pesa adapter from its rail's setup (the registry's constructor for `mpesa`). Daraja's
/// own grant is its consumer key: `[rails.oauth]` is refused.
pub fn mpesa(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    setup.refuse_oauth("mpesa")?;
    let s: MpesaSettings = setup.parse(MpesaSettings::SECRETS)?;
    let adapter = MpesaAdapter::new(s.config(&setup)?).map_err(|e| setup.invalid(e))?;
    Ok(Arc::new(adapter))
}

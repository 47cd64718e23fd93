//! The Mifos rails from their `[[rails]]` settings: Payment Hub EE (`phee`) and Apache
//! Fineract savings accounts (`fineract`).
//!
//! The configurations are public so that the gateway's own PH-EE bulk path (`crate::bulk`)
//! can build the same adapter the rail uses (see `build`): adapters hold no state, so two instances built
//! from one configuration behave as one.

use super::{client_tls, currencies, invalid, oauth, required};
use crate::config::{ConfigError, RailConfig};
use railgate_mifos::{FineractAdapter, FineractConfig, PhEeAdapter, PhEeConfig, Secret};
use railgate_rail::RailAdapter;
use std::sync::Arc;
use std::time::Duration;

fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

/// PH-EE's adapter configuration from a rail's settings.
pub fn phee_config(rc: &RailConfig, timeout: Duration) -> Result<PhEeConfig, ConfigError> {
    let channel_url = required(rc, "channel_url")?;
    Ok(PhEeConfig {
        rail_id: rc.id.clone(),
        operations_url: required(rc, "operations_url")?,
        bulk_url: rc
            .setting("bulk_url")
            .unwrap_or_else(|| channel_url.clone()),
        channel_url,
        tenant: required(rc, "tenant")?,
        payer_id_type: rc
            .setting("payer_id_type")
            .unwrap_or_else(|| "MSISDN".into()),
        payer_identifier: required(rc, "payer_identifier")?,
        payee_dfsp: rc.setting("payee_dfsp"),
        collection_scheme: rc
            .setting("collection_scheme")
            .unwrap_or_else(|| "mpesa".into()),
        operations_token: optional_secret(rc, "operations_token")?,
        callback_token: optional_secret(rc, "callback_token")?,
        currencies: currencies(rc)?,
        timeout_ms: millis(timeout),
        tls: client_tls(rc)?,
        oauth: oauth(rc)?,
    })
}

/// A secret that may be absent altogether (but, when named, must be readable).
fn optional_secret(rc: &RailConfig, key: &str) -> Result<Option<Secret>, ConfigError> {
    let named = [key.to_owned(), format!("{key}_env"), format!("{key}_file")]
        .iter()
        .any(|k| rc.settings.contains_key(k));
    if named {
        rc.secret(key).map(|s| Some(Secret::new(s)))
    } else {
        Ok(None)
    }
}

pub(super) fn phee(
    rc: &RailConfig,
    callback_base: &str,
    timeout: Duration,
) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let cfg = phee_config(rc, timeout)?;
    let callback_url = cfg.callback_token.as_ref().map(|t| {
        format!(
            "{callback_base}{}?token={}",
            railgate_mifos::adapter::BATCH_CALLBACK_PATH,
            t.expose()
        )
    });
    let adapter = PhEeAdapter::new(cfg)
        .map_err(|e| invalid(rc, e))?
        .with_bulk(railgate_mifos::adapter::BulkSettings {
            payment_mode: rc
                .setting("bulk_payment_mode")
                .unwrap_or_else(|| "mojaloop".into()),
            purpose: rc
                .setting("bulk_purpose")
                .unwrap_or_else(|| "payroll".into()),
            callback_url,
        });
    Ok(Arc::new(adapter))
}

pub(super) fn fineract(
    rc: &RailConfig,
    timeout: Duration,
) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let payment_type_id = rc
        .setting("payment_type_id")
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| invalid(rc, format!("payment_type_id '{v}' is not a number")))
        })
        .transpose()?;
    let adapter = FineractAdapter::new(FineractConfig {
        rail_id: rc.id.clone(),
        base_url: required(rc, "base_url")?,
        tenant: rc.setting("tenant").unwrap_or_else(|| "default".into()),
        username: required(rc, "username")?,
        password: Secret::new(rc.secret("password")?),
        payment_type_id,
        currencies: currencies(rc)?,
        timeout_ms: millis(timeout),
        tls: client_tls(rc)?,
    })
    .map_err(|e| invalid(rc, e))?;
    Ok(Arc::new(adapter))
}

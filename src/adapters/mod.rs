//! Building each configured rail's adapter from its kind and settings.
//!
//! Each kind reads its own keys from the `[[rails]]` table; secrets come through
//! `RailConfig::secret` (`<key>_env` or `<key>_file`). The keys are listed in the README.
//! One file per rail family beside this one.

pub mod bank;
pub mod mifos;
mod mobile;
mod mojaloop;

use crate::config::{ConfigError, RailConfig};
use railgate_rail::oauth::OAuthConfig;
use railgate_rail::tls::ClientTls;
use railgate_rail::{Currency, RailAdapter};
use std::sync::Arc;
use std::time::Duration;

/// The rail's `[rails.tls]`, loaded: files and variables read, certificates parsed, the key
/// checked against its certificate.
pub(crate) fn client_tls(rc: &RailConfig) -> Result<Option<ClientTls>, ConfigError> {
    rc.tls
        .as_ref()
        .map(|t| t.load().map_err(|e| invalid(rc, e)))
        .transpose()
}

/// The rail's `[rails.oauth]`, with its client secret read.
pub(crate) fn oauth(rc: &RailConfig) -> Result<Option<OAuthConfig>, ConfigError> {
    rc.oauth
        .as_ref()
        .map(|o| o.resolve().map_err(|e| invalid(rc, e)))
        .transpose()
}

pub(crate) fn invalid(rc: &RailConfig, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("rail {}: {why}", rc.id))
}

pub(crate) fn required(rc: &RailConfig, key: &str) -> Result<String, ConfigError> {
    rc.setting(key)
        .ok_or_else(|| invalid(rc, format!("'{key}' is required")))
}

pub(crate) fn currencies(rc: &RailConfig) -> Result<Vec<Currency>, ConfigError> {
    match rc.setting("currencies") {
        None => Ok(Currency::ALL.to_vec()),
        Some(list) => list
            .split(',')
            .map(|c| c.trim().parse::<Currency>().map_err(|e| invalid(rc, e)))
            .collect(),
    }
}

/// Builds the adapter for `rc`; `callback_base` is `{public_url}/rails/{id}`.
pub fn build(rc: &RailConfig, callback_base: &str) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let timeout = Duration::from_millis(rc.request_timeout_ms);
    // Only rails that put a token endpoint in front take `[rails.oauth]` (M-Pesa's own grant
    // is its consumer key); a table no adapter reads is refused rather than ignored.
    if rc.oauth.is_some() && !matches!(rc.kind.as_str(), "mmapi" | "mojaloop" | "phee") {
        return Err(invalid(
            rc,
            format!("[rails.oauth] is not used by kind '{}'", rc.kind),
        ));
    }
    if rc.tls.is_some() && rc.kind == "bank" {
        return Err(invalid(
            rc,
            "[rails.tls] is not used by kind 'bank' (files)",
        ));
    }
    match rc.kind.as_str() {
        "mock" => {
            let http = railgate_rail::tls::client_builder(client_tls(rc)?.as_ref())
                .build()
                .map_err(|e| invalid(rc, format!("cannot build the HTTP client: {e}")))?;
            Ok(Arc::new(railgate_mock::MockRailAdapter::with_client(
                railgate_mock::MockAdapterConfig {
                    rail_id: rc.id.clone(),
                    base_url: required(rc, "base_url")?,
                    callback_url: format!("{callback_base}{}", railgate_mock::CALLBACK_PATH),
                    callback_secret: rc.secret("callback_secret")?,
                    request_timeout: timeout,
                    replay_window: Duration::from_secs(300),
                },
                http,
            )))
        }
        "mmapi" => mobile::mmapi(rc, callback_base, timeout),
        "mpesa" => mobile::mpesa(rc, callback_base, timeout),
        "mojaloop" => mojaloop::mojaloop(rc, callback_base, timeout),
        "phee" => mifos::phee(rc, callback_base, timeout),
        "fineract" => mifos::fineract(rc, timeout),
        "bank" => bank::bank(rc),
        other => Err(invalid(rc, format!("unknown kind '{other}'"))),
    }
}

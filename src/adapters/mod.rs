//! The registry of rail kinds: each kind's name and its crate's constructor. Nothing else in
//! the gateway names a rail kind (the sandbox names the mocks it starts).
//!
//! A rail's `[[rails]]` table is split in two: what every rail shares (`RailConfig`: limits,
//! timeouts, `[rails.tls]`, `[rails.oauth]`, batches, failure re-checks) is read by the
//! gateway; the rest is handed to the kind's constructor, which reads it into its crate's typed
//! settings and refuses an unknown key, naming the rail and the key. What the adapter can do
//! (batches, reversals, whether its failures are final, inbound files to poll) it declares
//! itself (`railgate_rail::RailAdapter`). A new rail is one crate and one line below.

use crate::config::{ConfigError, RailConfig};
use railgate_rail::{Constructor, RailAdapter, RailSetup};
use std::sync::Arc;
use std::time::Duration;

/// Every kind this build knows. The mock rail is there only in builds with the `sandbox`
/// feature (the default); a production build (`--no-default-features`) has no mock at all.
pub const KINDS: &[(&str, Constructor)] = &[
    ("mmapi", railgate_mmapi::settings::mmapi),
    ("mpesa", railgate_mpesa::settings::mpesa),
    ("mojaloop", railgate_mojaloop::settings::mojaloop),
    ("phee", railgate_mifos::settings::phee),
    ("fineract", railgate_mifos::settings::fineract),
    ("bank", railgate_bank::settings::bank),
    #[cfg(feature = "sandbox")]
    ("mock", railgate_mock::settings::mock),
];

fn invalid(rc: &RailConfig, why: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("rail {}: {why}", rc.id))
}

/// What the gateway hands `rc`'s constructor: its own settings, TLS and OAuth2 loaded.
fn setup(rc: &RailConfig, callback_base: &str) -> Result<RailSetup, ConfigError> {
    Ok(RailSetup {
        rail_id: rc.id.clone(),
        callback_base: callback_base.to_owned(),
        request_timeout: Duration::from_millis(rc.request_timeout_ms),
        tls: rc
            .tls
            .as_ref()
            .map(|t| t.load().map_err(|e| invalid(rc, e)))
            .transpose()?,
        oauth: rc
            .oauth
            .as_ref()
            .map(|o| o.resolve().map_err(|e| invalid(rc, e)))
            .transpose()?,
        settings: rc.settings.clone(),
    })
}

/// Builds the adapter for `rc`; `callback_base` is `{public_url}/rails/{id}`.
pub fn build(rc: &RailConfig, callback_base: &str) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let Some((_, construct)) = KINDS.iter().find(|(kind, _)| *kind == rc.kind) else {
        let known: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        return Err(invalid(
            rc,
            format!(
                "unknown kind '{}' (this build knows: {})",
                rc.kind,
                known.join(", ")
            ),
        ));
    };
    construct(setup(rc, callback_base)?).map_err(|e| ConfigError::Invalid(e.to_string()))
}

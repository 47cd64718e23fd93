//! Building each configured rail's adapter from its kind and settings.

use crate::config::{ConfigError, RailConfig};
use railgate_rail::RailAdapter;
use std::sync::Arc;
use std::time::Duration;

/// Builds the adapter for `rc`; `callback_base` is `{public_url}/rails/{id}`.
pub fn build(rc: &RailConfig, callback_base: &str) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let required = |key: &str| {
        rc.setting(key)
            .ok_or_else(|| ConfigError::Invalid(format!("rail {}: '{key}' is required", rc.id)))
    };
    match rc.kind.as_str() {
        "mock" => Ok(Arc::new(railgate_mock::MockRailAdapter::new(
            railgate_mock::MockAdapterConfig {
                rail_id: rc.id.clone(),
                base_url: required("base_url")?,
                callback_url: format!("{callback_base}{}", railgate_mock::CALLBACK_PATH),
                callback_secret: rc.secret("callback_secret")?,
                request_timeout: Duration::from_millis(rc.request_timeout_ms),
                replay_window: Duration::from_secs(300),
            },
        ))),
        other => Err(ConfigError::Invalid(format!(
            "rail {}: unknown kind '{other}'",
            rc.id
        ))),
    }
}

//! Building each configured rail's adapter from its kind and settings.

use crate::config::{ConfigError, RailConfig};
use railgate_rail::RailAdapter;
use std::sync::Arc;

/// Builds the adapter for `rc`; `callback_base` is `{public_url}/rails/{id}`.
pub fn build(rc: &RailConfig, callback_base: &str) -> Result<Arc<dyn RailAdapter>, ConfigError> {
    let _ = callback_base;
    match rc.kind.as_str() {
        other => Err(ConfigError::Invalid(format!("rail {}: unknown kind '{other}'", rc.id))),
    }
}

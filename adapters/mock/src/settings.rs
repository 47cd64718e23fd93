//! The mock rail's `[[rails]]` settings (`kind = "mock"`), read into a typed struct that
//! refuses unknown keys.

use crate::{MockAdapterConfig, MockRailAdapter, CALLBACK_PATH};
use railgate_rail::{RailAdapter, RailSetup, SecretSetting, SettingsError};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockSettings {
    /// The mock rail's API root, e.g. `http://127.0.0.1:9100`.
    pub base_url: Option<String>,
    /// The key the rail signs its callbacks with.
    pub callback_secret: Option<SecretSetting>,
}

/// The mock rail's adapter from its rail's setup (the registry's constructor for `mock`).
pub fn mock(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    setup.refuse_oauth("mock")?;
    let s: MockSettings = setup.parse(&["callback_secret"])?;
    let http = railgate_rail::tls::client_builder(setup.tls.as_ref())
        .build()
        .map_err(|e| setup.invalid(format!("cannot build the HTTP client: {e}")))?;
    let config = MockAdapterConfig {
        rail_id: setup.rail_id.clone(),
        base_url: setup.required(&s.base_url, "base_url")?.to_owned(),
        callback_url: format!("{}{CALLBACK_PATH}", setup.callback_base),
        callback_secret: setup
            .secret(&s.callback_secret, "callback_secret")?
            .expose()
            .to_owned(),
        request_timeout: setup.request_timeout,
        replay_window: Duration::from_secs(300),
    };
    Ok(Arc::new(MockRailAdapter::with_client(config, http)))
}

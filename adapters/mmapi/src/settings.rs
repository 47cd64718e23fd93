//! An MMAPI rail's `[[rails]]` settings (`kind = "mmapi"`), read into a typed struct that
//! refuses unknown keys. The keys are listed in the README.

use crate::{Auth, CallbackAuth, MmapiAdapter, MmapiConfig, Notification};
use railgate_rail::oauth::OAuthConfig;
use railgate_rail::{RailAdapter, RailSetup, SecretSetting, SettingsError};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmapiSettings {
    /// The API root including `/v1.2/mm`.
    pub base_url: Option<String>,
    /// `none` | `api_key` | `basic` | `oauth2` (default `oauth2` with `[rails.oauth]`, else
    /// `none`).
    pub auth: Option<String>,
    pub api_key: Option<SecretSetting>,
    pub username: Option<String>,
    pub password: Option<SecretSetting>,
    /// The flat OAuth2 keys of earlier configurations (`[rails.oauth]` is the current form).
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretSetting>,
    /// Callbacks authenticated by Basic credentials the provider presents...
    pub callback_username: Option<String>,
    pub callback_password: Option<SecretSetting>,
    /// ... or by a secret path segment.
    pub callback_secret: Option<SecretSetting>,
    /// Default `msisdn`.
    pub scheme_party_type: Option<String>,
    pub scheme_party_value: Option<String>,
    pub currencies: Option<String>,
    /// `callback` (default) or `polling`.
    pub notification: Option<String>,
}

impl MmapiSettings {
    pub const SECRETS: &'static [&'static str] = &[
        "api_key",
        "password",
        "client_secret",
        "callback_password",
        "callback_secret",
    ];

    fn auth(&self, setup: &RailSetup) -> Result<Auth, SettingsError> {
        let table = setup.oauth.clone();
        let kind = match (&self.auth, &table) {
            (None, Some(_)) => "oauth2",
            (a, _) => a.as_deref().unwrap_or("none"),
        };
        if table.is_some() && kind != "oauth2" {
            return Err(setup.invalid(format!("[rails.oauth] with auth '{kind}'")));
        }
        let api_key = || setup.optional_secret(&self.api_key, "api_key");
        Ok(match kind {
            "none" => Auth::None,
            "api_key" => Auth::ApiKey {
                api_key: setup.secret(&self.api_key, "api_key")?,
            },
            "basic" => Auth::Basic {
                username: setup.required(&self.username, "username")?.to_owned(),
                password: setup.secret(&self.password, "password")?,
                api_key: api_key()?,
            },
            "oauth2" => Auth::OAuth2 {
                // `[rails.oauth]`, or the flat keys of earlier configurations.
                oauth: match table {
                    Some(t) => t,
                    None => OAuthConfig::client_credentials(
                        setup.required(&self.token_url, "token_url")?,
                        setup.required(&self.client_id, "client_id")?,
                        setup.secret(&self.client_secret, "client_secret")?,
                    ),
                },
                api_key: api_key()?,
            },
            other => {
                return Err(setup.invalid(format!(
                    "auth '{other}' is not one of none, api_key, basic, oauth2"
                )))
            }
        })
    }

    /// The adapter's configuration.
    pub fn config(&self, setup: &RailSetup) -> Result<MmapiConfig, SettingsError> {
        let callback_auth = match &self.callback_username {
            Some(username) => CallbackAuth::Basic {
                username: username.clone(),
                password: setup.secret(&self.callback_password, "callback_password")?,
            },
            None => {
                CallbackAuth::PathSecret(setup.secret(&self.callback_secret, "callback_secret")?)
            }
        };
        let scheme_party = vec![(
            self.scheme_party_type
                .clone()
                .unwrap_or_else(|| "msisdn".into()),
            setup
                .required(&self.scheme_party_value, "scheme_party_value")?
                .to_owned(),
        )];
        let mut cfg = MmapiConfig::new(
            &setup.rail_id,
            setup.required(&self.base_url, "base_url")?,
            &setup.callback_base,
            self.auth(setup)?,
            callback_auth,
            scheme_party,
            setup.currencies(&self.currencies)?,
        );
        cfg.request_timeout = setup.request_timeout;
        cfg.tls = setup.tls.clone();
        cfg.notification = match self.notification.as_deref() {
            None | Some("callback") => Notification::Callback,
            Some("polling") => Notification::Polling,
            Some(other) => {
                return Err(
                    setup.invalid(format!("notification '{other}' is not callback or polling"))
                )
            }
        };
        Ok(cfg)
    }
}

/// The MMAPI adapter from its rail's setup (the registry's constructor for `mmapi`).
pub fn mmapi(setup: RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError> {
    let s: MmapiSettings = setup.parse(MmapiSettings::SECRETS)?;
    let adapter = MmapiAdapter::new(s.config(&setup)?).map_err(|e| setup.invalid(e))?;
    Ok(Arc::new(adapter))
}

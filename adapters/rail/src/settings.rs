//! A rail's `[[rails]]` settings, read by the rail's own crate into a typed configuration.
//!
//! The gateway reads what every rail shares (`id`, `kind`, limits, timeouts, `[rails.tls]`,
//! `[rails.oauth]`, batches, failure re-checks) and hands the rest of the table, with the
//! loaded TLS and OAuth2 settings, to the constructor its registry holds for the rail's kind
//! (a [`Constructor`]). The constructor reads the table into its crate's settings struct, which
//! carries `#[serde(deny_unknown_fields)]`: a mistyped key is refused at start-up with an
//! error naming the rail and the key, never silently replaced by its default.
//!
//! Two conventions of the configuration file are kept as they are:
//! - a secret `<key>` is given as `<key>_env` (an environment variable holding it) or
//!   `<key>_file` (a file holding it); `<key>` itself only in generated configurations (the
//!   sandbox). [`RailSetup::parse`] folds the three keys of each secret the struct names into
//!   one [`SecretSetting`] before reading, so `callback_secret_evn` is still an unknown key;
//! - numbers and booleans may be written as TOML values or as strings (`grace_secs = 45` or
//!   `grace_secs = "45"`), as the earlier string-keyed settings accepted: see [`flex`].

use crate::oauth::OAuthConfig;
use crate::tls::ClientTls;
use crate::{Currency, RailAdapter, Secret};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

/// Builds a rail's adapter from its setup; one per kind in the gateway's registry.
pub type Constructor = fn(RailSetup) -> Result<Arc<dyn RailAdapter>, SettingsError>;

/// Why a rail's settings cannot make an adapter. Says which rail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rail {rail}: {why}")]
pub struct SettingsError {
    pub rail: String,
    pub why: String,
}

/// What the gateway hands a rail kind's constructor.
#[derive(Clone)]
pub struct RailSetup {
    /// The rail's id (`[[rails]] id`).
    pub rail_id: String,
    /// `{public_url}/rails/{id}`: where the rail reaches this rail's callbacks.
    pub callback_base: String,
    /// Timeout of one HTTP request to the rail (`request_timeout_ms`).
    pub request_timeout: Duration,
    /// `[rails.tls]`, loaded and checked.
    pub tls: Option<ClientTls>,
    /// `[rails.oauth]`, its client secret read.
    pub oauth: Option<OAuthConfig>,
    /// The rail's own keys: every key of its `[[rails]]` table the gateway does not read.
    pub settings: toml::Table,
}

/// Prints the settings' keys, never their values (generated configurations hold secrets).
impl std::fmt::Debug for RailSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RailSetup")
            .field("rail_id", &self.rail_id)
            .field("callback_base", &self.callback_base)
            .field("request_timeout", &self.request_timeout)
            .field("tls", &self.tls.is_some())
            .field("oauth", &self.oauth)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RailSetup {
    /// A setup with no TLS, no OAuth2 and no settings yet (tests, the sandbox).
    pub fn new(rail_id: impl Into<String>, callback_base: impl Into<String>) -> RailSetup {
        RailSetup {
            rail_id: rail_id.into(),
            callback_base: callback_base.into(),
            request_timeout: Duration::from_secs(10),
            tls: None,
            oauth: None,
            settings: toml::Table::new(),
        }
    }

    pub fn invalid(&self, why: impl Display) -> SettingsError {
        SettingsError {
            rail: self.rail_id.clone(),
            why: why.to_string(),
        }
    }

    /// Reads the settings into `T`. `secrets` names the keys `T` takes as a
    /// [`SecretSetting`] (each given as `<key>_env`, `<key>_file` or `<key>`). An unknown key,
    /// or a value of the wrong type, is an error naming the key.
    pub fn parse<T: DeserializeOwned>(&self, secrets: &[&str]) -> Result<T, SettingsError> {
        let mut table = self.settings.clone();
        for key in secrets {
            fold_secret(&mut table, key);
        }
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            // One line: the TOML reader appends "in `key`" on a line of its own.
            let why = e.inner().to_string().replace('\n', " ");
            // An unknown field's message names it already.
            if path == "." || why.contains(&format!("`{path}`")) {
                self.invalid(why)
            } else {
                self.invalid(format!("'{path}': {why}"))
            }
        })
    }

    /// Refuses a `[rails.oauth]` table for a kind that puts no token endpoint in front: a
    /// table no adapter reads is refused rather than ignored.
    pub fn refuse_oauth(&self, kind: &str) -> Result<(), SettingsError> {
        match self.oauth {
            Some(_) => Err(self.invalid(format!("[rails.oauth] is not used by kind '{kind}'"))),
            None => Ok(()),
        }
    }

    /// Refuses a `[rails.tls]` table for a kind that does not speak HTTP.
    pub fn refuse_tls(&self, kind: &str) -> Result<(), SettingsError> {
        match self.tls {
            Some(_) => Err(self.invalid(format!("[rails.tls] is not used by kind '{kind}'"))),
            None => Ok(()),
        }
    }

    /// A secret the rail cannot work without.
    pub fn secret(&self, s: &Option<SecretSetting>, key: &str) -> Result<Secret, SettingsError> {
        match s {
            Some(s) => s.resolve(&self.rail_id, key),
            None => Err(self.invalid(format!("{key}_env or {key}_file is required"))),
        }
    }

    /// A secret that may be absent altogether (but, when named, must be readable).
    pub fn optional_secret(
        &self,
        s: &Option<SecretSetting>,
        key: &str,
    ) -> Result<Option<Secret>, SettingsError> {
        s.as_ref()
            .map(|s| s.resolve(&self.rail_id, key))
            .transpose()
    }

    /// A required setting's value, or an error naming it.
    pub fn required<'a>(&self, v: &'a Option<String>, key: &str) -> Result<&'a str, SettingsError> {
        v.as_deref()
            .ok_or_else(|| self.invalid(format!("'{key}' is required")))
    }

    /// `currencies = "TZS,KES"`; all of them when unset.
    pub fn currencies(&self, list: &Option<String>) -> Result<Vec<Currency>, SettingsError> {
        match list {
            None => Ok(Currency::ALL.to_vec()),
            Some(list) => list
                .split(',')
                .map(|c| c.trim().parse::<Currency>().map_err(|e| self.invalid(e)))
                .collect(),
        }
    }

    /// `request_timeout` in whole milliseconds (for configurations that count in them).
    pub fn timeout_ms(&self) -> u64 {
        u64::try_from(self.request_timeout.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Moves `key`, `key_env` and `key_file` into one table `key = { value, env, file }`.
fn fold_secret(table: &mut toml::Table, key: &str) {
    let mut folded = toml::Table::new();
    for (suffix, field) in [("", "value"), ("_env", "env"), ("_file", "file")] {
        if let Some(v) = table.remove(&format!("{key}{suffix}")) {
            folded.insert(field.to_owned(), v);
        }
    }
    if !folded.is_empty() {
        table.insert(key.to_owned(), toml::Value::Table(folded));
    }
}

/// Where a secret comes from: `<key>_env` names an environment variable, `<key>_file` a file
/// (surrounding whitespace ignored), `<key>` is the value itself (generated configurations).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSetting {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub value: Option<Secret>,
}

impl std::fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSetting")
            .field("env", &self.env)
            .field("file", &self.file)
            .field("value", &self.value)
            .finish()
    }
}

impl SecretSetting {
    /// The secret's value: from the variable, else the file, else the value given inline.
    pub fn resolve(&self, rail: &str, key: &str) -> Result<Secret, SettingsError> {
        let err = |why: String| SettingsError {
            rail: rail.to_owned(),
            why,
        };
        if let Some(var) = &self.env {
            return std::env::var(var)
                .map(Secret::new)
                .map_err(|_| err(format!("environment variable {var} is not set")));
        }
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim()))
                .map_err(|e| err(format!("cannot read {key}_file: {e}")));
        }
        self.value
            .clone()
            .ok_or_else(|| err(format!("{key}_env or {key}_file is required")))
    }
}

/// Settings that may be written as TOML values or as strings, for `#[serde(default,
/// deserialize_with = "flex::opt")]` fields of type `Option<bool>`, `Option<u64>`,
/// `Option<i64>`... Hand-written because the choice is per field and small: a TOML value of
/// the field's type, or a string that parses as one.
pub mod flex {
    use serde::{Deserialize, Deserializer};
    use std::fmt::Display;
    use std::str::FromStr;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        Native(T),
        Text(String),
    }

    pub fn opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + FromStr,
        T::Err: Display,
    {
        match Raw::<T>::deserialize(d)? {
            Raw::Native(v) => Ok(Some(v)),
            Raw::Text(s) => s
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("'{s}' is not valid: {e}"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        base_url: String,
        #[serde(default)]
        callback_secret: Option<SecretSetting>,
        #[serde(default, deserialize_with = "flex::opt")]
        grace_secs: Option<u64>,
        #[serde(default, deserialize_with = "flex::opt")]
        sepa: Option<bool>,
    }

    fn setup(text: &str) -> RailSetup {
        let mut s = RailSetup::new("r1", "http://gw/rails/r1");
        s.settings = toml::from_str(text).unwrap();
        s
    }

    #[test]
    fn reads_typed_keys_and_folds_secrets() {
        let s = setup(
            "base_url = \"http://x\"\ncallback_secret = \"s\"\ngrace_secs = \"45\"\nsepa = true",
        );
        let e: Example = s.parse(&["callback_secret"]).unwrap();
        assert_eq!(e.base_url, "http://x");
        assert_eq!(e.grace_secs, Some(45));
        assert_eq!(e.sepa, Some(true));
        let secret = s.secret(&e.callback_secret, "callback_secret").unwrap();
        assert_eq!(secret.expose(), "s");
        let s = setup("base_url = \"http://x\"\ngrace_secs = 7\nsepa = \"false\"");
        let e: Example = s.parse(&["callback_secret"]).unwrap();
        assert_eq!((e.grace_secs, e.sepa), (Some(7), Some(false)));
        let err = s.secret(&e.callback_secret, "callback_secret").unwrap_err();
        assert_eq!(
            err.to_string(),
            "rail r1: callback_secret_env or callback_secret_file is required"
        );
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values_by_name() {
        let s = setup("base_url = \"http://x\"\ncallback_secret_evn = \"V\"");
        let err = s.parse::<Example>(&["callback_secret"]).unwrap_err();
        assert_eq!(err.rail, "r1");
        assert!(
            err.why.contains("unknown field `callback_secret_evn`"),
            "{err}"
        );
        let s = setup("base_ur = \"http://x\"");
        let err = s.parse::<Example>(&[]).unwrap_err().to_string();
        assert!(err.starts_with("rail r1: unknown field `base_ur`"), "{err}");
        let s = setup("base_url = \"http://x\"\ngrace_secs = \"soon\"");
        let err = s.parse::<Example>(&[]).unwrap_err().to_string();
        assert!(
            err.contains("`grace_secs`") && err.contains("soon"),
            "{err}"
        );
    }
}

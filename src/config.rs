//! Configuration: a TOML file, with environment variables over it. Secrets come only from
//! the environment or from files (`<name>_env` / `<name>_file` keys), never from the file itself
//! except in the sandbox, which makes its own.

use railgate_rail::oauth::OAuthSettings;
use railgate_rail::settings::flex;
use railgate_rail::tls::TlsSettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on. Env: `RAILGATE_LISTEN`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Base URL at which rails reach this gateway's `/rails/...` callbacks.
    /// Env: `RAILGATE_PUBLIC_URL`. Defaults to `http://{listen}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// `sqlite://path` (created if missing) or `postgres://...`. Env: `DATABASE_URL`. No
    /// default: a command that needs the store refuses to run without one (see `database`).
    #[serde(default)]
    pub database_url: String,
    /// Pool size. Env: `RAILGATE_DB_CONNECTIONS`.
    #[serde(default = "default_connections")]
    pub db_connections: u32,
    /// How many of `db_connections` background work (dispatcher, webhooks, bank watchers,
    /// batch poller) gets, as a pool of its own; the API keeps the rest (at least one).
    /// Default: half, at least one. Env: `RAILGATE_DB_BACKGROUND_CONNECTIONS`.
    #[serde(default)]
    pub db_background_connections: Option<u32>,
    /// How long a query waits for a free pooled connection before it fails.
    #[serde(default = "default_acquire_timeout_ms")]
    pub db_acquire_timeout_ms: u64,
    /// On PostgreSQL, an instance whose heartbeat is older than this is taken for dead, and
    /// the idempotency keys it held in flight may be retried.
    #[serde(default = "default_instance_stale_ms")]
    pub instance_stale_ms: u64,
    /// Timeouts and limits of the HTTP server's connections.
    #[serde(default)]
    pub http: HttpConfig,
    /// Largest request body accepted, in bytes (payroll uploads have their own limit).
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// Largest payroll file accepted by `POST /v1/payrolls`, in bytes (streamed, never held
    /// whole for CSV).
    #[serde(default = "default_payroll_limit")]
    pub payroll_limit_bytes: usize,
    /// Whether a client's `rail` hint may override the routing table.
    #[serde(default = "default_true")]
    pub allow_rail_hint: bool,
    #[serde(default)]
    pub dispatch: DispatchConfig,
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Traces exported over OTLP (off unless `otlp_endpoint` is set).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub rails: Vec<RailConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `[telemetry]`: where traces go. Logs always go to stderr and metrics to `/metrics`; traces
/// leave the process only when an OTLP collector is named.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans are posted to
    /// `{otlp_endpoint}/v1/traces` as protobuf. Unset: no traces are exported.
    /// Env: `RAILGATE_OTLP_ENDPOINT`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` the spans carry (one per deployment, e.g. per scheme).
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// How long one export may take before it is abandoned (the spans are dropped, the
    /// gateway goes on).
    #[serde(default = "default_otlp_timeout_ms")]
    pub otlp_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: default_service_name(),
            otlp_timeout_ms: default_otlp_timeout_ms(),
        }
    }
}

fn default_service_name() -> String {
    "railgate".into()
}

fn default_otlp_timeout_ms() -> u64 {
    10_000
}

/// The HTTP server's connections: how long a client may take, and how many it may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// A request's line and headers must arrive within this (slow-header clients).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this, else 408 (slow-body clients).
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// A keep-alive connection with no request for this long is closed.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Connections served at once; further ones wait to be accepted until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Terminate TLS here (`[http.tls]`); without it the server speaks plain HTTP and TLS is
    /// left to a proxy in front.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

/// The server's TLS: its certificate and key, and which client certificates it asks for.
/// Each PEM comes from `<name>_file` or `<name>_env` (the variable holds the PEM itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub cert_env: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub key_env: Option<String>,
    /// The CA whose client certificates every connection must present (a listener only rails
    /// reach). Without it, no client certificate is required of the listener as a whole.
    #[serde(default)]
    pub client_ca_file: Option<String>,
    #[serde(default)]
    pub client_ca_env: Option<String>,
    /// Per rail id, the CA whose client certificates its callbacks (`/rails/{id}/…`) must
    /// present: the listener asks every client for a certificate, and a request to that rail's
    /// routes without one from that CA is refused with 403. Other routes are unaffected.
    #[serde(default)]
    pub rail_client_ca_files: BTreeMap<String, String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout_ms: default_header_timeout_ms(),
            body_timeout_ms: default_body_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_connections: default_max_connections(),
            tls: None,
        }
    }
}

fn default_header_timeout_ms() -> u64 {
    10_000
}
fn default_body_timeout_ms() -> u64 {
    30_000
}
fn default_idle_timeout_ms() -> u64 {
    60_000
}
fn default_max_connections() -> usize {
    1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// Run the dispatcher in this process. Env: `RAILGATE_DISPATCH` (true/false).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Jobs claimed per poll.
    #[serde(default = "default_batch")]
    pub batch: i64,
    /// Jobs handled at once by this process (across rails).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// How long a claimed job is ours before another instance may take it.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Idle poll interval when no job is due.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Retries of a submission the rail refused with nothing moved, before the payment fails.
    #[serde(default = "default_submit_tries")]
    pub max_submit_tries: i64,
    /// Failed runs in a row (the job's handler erred, e.g. its rail is not configured) after
    /// which a job is dead-lettered for an operator instead of retried (at least 1).
    #[serde(default = "default_dead_letter_after")]
    pub dead_letter_after: i64,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            enabled: true,
            batch: default_batch(),
            max_in_flight: default_in_flight(),
            lease_ms: default_lease_ms(),
            poll_ms: default_poll_ms(),
            max_submit_tries: default_submit_tries(),
            dead_letter_after: default_dead_letter_after(),
        }
    }
}

/// Webhook deliveries to the core (DESIGN §7).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Timeout of one delivery, connection included.
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u64,
    /// Deliveries sent at once by this process, so that slow receivers cannot take the
    /// dispatcher's slots from payments.
    #[serde(default = "default_webhook_in_flight")]
    pub max_in_flight: usize,
    /// First retry delay; later ones grow exponentially (with jitter) up to `retry_max_ms`.
    #[serde(default = "default_webhook_retry_min_ms")]
    pub retry_min_ms: u64,
    #[serde(default = "default_webhook_retry_max_ms")]
    pub retry_max_ms: u64,
    /// A delivery is retried until it is this old (at least three days), then abandoned.
    #[serde(default = "default_webhook_give_up_secs")]
    pub give_up_after_secs: u64,
    /// TLS of webhook and openIMIS deliveries (`[notify.tls]`): a client certificate for
    /// receivers that require one, a private CA, a pin. Same keys as a rail's `[rails.tls]`.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            timeout_ms: default_webhook_timeout_ms(),
            max_in_flight: default_webhook_in_flight(),
            retry_min_ms: default_webhook_retry_min_ms(),
            retry_max_ms: default_webhook_retry_max_ms(),
            give_up_after_secs: default_webhook_give_up_secs(),
            tls: None,
        }
    }
}

fn default_webhook_timeout_ms() -> u64 {
    10_000
}
fn default_webhook_in_flight() -> usize {
    16
}
fn default_webhook_retry_min_ms() -> u64 {
    5_000
}
fn default_webhook_retry_max_ms() -> u64 {
    3_600_000
}
fn default_webhook_give_up_secs() -> u64 {
    4 * 24 * 3600
}

/// One `[[rails]]` table: what every rail shares, read here; the rest (`settings`) is the
/// rail's own, read by its crate into a typed configuration that refuses unknown keys (see
/// `crate::adapters`).
#[derive(Debug, Clone, Deserialize)]
pub struct RailConfig {
    /// The rail's id: routes name it, callbacks arrive at `/rails/{id}/...`.
    pub id: String,
    /// Which adapter: a kind of the registry (`crate::adapters::KINDS`).
    pub kind: String,
    /// Requests in flight to this rail at once.
    #[serde(default = "default_rail_concurrency")]
    pub concurrency: usize,
    /// Requests per second to this rail (0 = unlimited).
    #[serde(default)]
    pub rate_per_second: u32,
    /// Timeout of one HTTP request to the rail.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// After this long without a final answer an attempt becomes an operator exception.
    #[serde(default = "default_deadline_secs")]
    pub deadline_secs: u64,
    /// How long to wait for a callback before asking the rail.
    #[serde(default = "default_callback_grace_ms")]
    pub callback_grace_ms: u64,
    /// Payrolls through the rail's batch API: on or off; unset, as the adapter's batch
    /// support says (`BatchSupport::on_by_default`).
    #[serde(default, deserialize_with = "flex::opt")]
    pub batch: Option<bool>,
    /// Lines per payroll chunk (default `batches::DEFAULT_CHUNK`, capped by the rail's
    /// limit). `bulk_chunk` is its older name (PH-EE).
    #[serde(default, alias = "bulk_chunk", deserialize_with = "flex::opt")]
    pub batch_chunk: Option<usize>,
    /// How often open batches are read (default `batches::DEFAULT_POLL_MS`).
    #[serde(default, deserialize_with = "flex::opt")]
    pub batch_poll_ms: Option<u64>,
    /// Ask the rail once more after a failure; unset, on where the adapter says its failures
    /// are not final (`RailAdapter::failures_final`).
    #[serde(default, deserialize_with = "flex::opt")]
    pub confirm_failures: Option<bool>,
    /// How long after a failure it is asked about again.
    #[serde(default, deserialize_with = "flex::opt")]
    pub confirm_failure_after_ms: Option<u64>,
    /// TLS to the rail (`[rails.tls]`): our client certificate and key, the rail's CA, a pin.
    #[serde(default)]
    pub tls: Option<TlsSettings>,
    /// OAuth2 client credentials (`[rails.oauth]`) for rails behind a token endpoint: MMAPI,
    /// Mojaloop (a hub behind an API gateway), PH-EE (Keycloak).
    #[serde(default)]
    pub oauth: Option<OAuthSettings>,
    /// The rail's own settings (base_url, callback_secret_env, ...), for its crate to read.
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl RailConfig {
    /// A rail of `kind` with every shared setting at its default and no settings of its own.
    pub fn new(id: impl Into<String>, kind: impl Into<String>) -> RailConfig {
        RailConfig {
            id: id.into(),
            kind: kind.into(),
            concurrency: default_rail_concurrency(),
            rate_per_second: 0,
            request_timeout_ms: default_request_timeout_ms(),
            deadline_secs: default_deadline_secs(),
            callback_grace_ms: default_callback_grace_ms(),
            batch: None,
            batch_chunk: None,
            batch_poll_ms: None,
            confirm_failures: None,
            confirm_failure_after_ms: None,
            tls: None,
            oauth: None,
            settings: toml::Table::new(),
        }
    }

    /// One of the rail's own settings as text (strings, numbers and booleans), for display
    /// and tests; the rail's crate reads them typed.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.settings.get(key).and_then(|v| match v {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Integer(i) => Some(i.to_string()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub rail: String,
    pub direction: Option<String>,
    pub currency: Option<String>,
    pub id_type: Option<String>,
    /// The party identifier starts with this (a country code, a bank code).
    pub prefix: Option<String>,
    pub programme: Option<String>,
    /// Inclusive bounds, decimal strings in the payment's currency.
    pub min_amount: Option<String>,
    pub max_amount: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads the file (if given), then applies environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let mut cfg: Config = toml::from_str(&text)?;
        cfg.apply_env()?;
        Ok(cfg)
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Ok(v) = std::env::var("RAILGATE_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("RAILGATE_LISTEN={v}")))?;
        }
        if let Ok(v) = std::env::var("RAILGATE_OTLP_ENDPOINT") {
            self.telemetry.otlp_endpoint = Some(v).filter(|v| !v.is_empty());
        }
        if let Ok(v) = std::env::var("RAILGATE_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Ok(v) = std::env::var("DATABASE_URL") {
            self.database_url = v;
        }
        if let Ok(v) = std::env::var("RAILGATE_DB_CONNECTIONS") {
            self.db_connections = v
                .parse()
                .map_err(|_| ConfigError::Invalid(format!("RAILGATE_DB_CONNECTIONS={v}")))?;
        }
        if let Ok(v) = std::env::var("RAILGATE_DB_BACKGROUND_CONNECTIONS") {
            self.db_background_connections = Some(v.parse().map_err(|_| {
                ConfigError::Invalid(format!("RAILGATE_DB_BACKGROUND_CONNECTIONS={v}"))
            })?);
        }
        if let Ok(v) = std::env::var("RAILGATE_DISPATCH") {
            self.dispatch.enabled = v != "false" && v != "0";
        }
        Ok(())
    }

    /// The configured database URL, or an error that says how to name one (rather than a
    /// store made up in the working directory that the gateway never reads).
    pub fn database(&self) -> Result<&str, ConfigError> {
        let url = self.database_url.trim();
        if url.is_empty() {
            return Err(ConfigError::Invalid(
                "no database is configured: set `database_url` in the configuration file \
                 (railgate --config FILE, or RAILGATE_CONFIG=FILE) or the environment variable \
                 DATABASE_URL (sqlite://PATH or postgres://...)"
                    .into(),
            ));
        }
        Ok(url)
    }

    /// The API's pool and background work's pool: `db_connections` split between them, each
    /// at least one connection.
    pub fn pool_sizes(&self) -> crate::store::PoolSizes {
        let total = self.db_connections.max(2);
        let background = self
            .db_background_connections
            .unwrap_or(total / 2)
            .clamp(1, total.saturating_sub(1));
        crate::store::PoolSizes {
            api: total.saturating_sub(background).max(1),
            background,
            acquire_timeout: std::time::Duration::from_millis(self.db_acquire_timeout_ms.max(1)),
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            public_url: None,
            database_url: String::new(),
            db_connections: default_connections(),
            db_background_connections: None,
            db_acquire_timeout_ms: default_acquire_timeout_ms(),
            instance_stale_ms: default_instance_stale_ms(),
            http: HttpConfig::default(),
            body_limit_bytes: default_body_limit(),
            payroll_limit_bytes: default_payroll_limit(),
            allow_rail_hint: true,
            dispatch: DispatchConfig::default(),
            notify: NotifyConfig::default(),
            telemetry: TelemetryConfig::default(),
            rails: Vec::new(),
            routes: Vec::new(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_connections() -> u32 {
    8
}
fn default_acquire_timeout_ms() -> u64 {
    30_000
}
fn default_instance_stale_ms() -> u64 {
    5_000
}
fn default_body_limit() -> usize {
    64 * 1024
}
fn default_payroll_limit() -> usize {
    200 * 1024 * 1024
}
fn default_true() -> bool {
    true
}
fn default_batch() -> i64 {
    64
}
fn default_in_flight() -> usize {
    128
}
fn default_lease_ms() -> u64 {
    30_000
}
fn default_poll_ms() -> u64 {
    100
}
fn default_submit_tries() -> i64 {
    8
}
fn default_dead_letter_after() -> i64 {
    20
}
fn default_rail_concurrency() -> usize {
    32
}
fn default_request_timeout_ms() -> u64 {
    10_000
}
fn default_deadline_secs() -> u64 {
    3600
}
fn default_callback_grace_ms() -> u64 {
    30_000
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    // The keys every rail shares are typed here (values or strings, as the file may have
    // them); the rest is left for the rail's crate.
    #[test]
    fn shared_rail_keys_are_typed_and_the_rest_is_the_rails_own() {
        let cfg: Config = toml::from_str(
            r#"
            [[rails]]
            id = "phee"
            kind = "phee"
            bulk_chunk = "7"
            batch = true
            confirm_failures = "false"
            confirm_failure_after_ms = 1500
            channel_url = "http://ph"
            "#,
        )
        .unwrap();
        let rc = &cfg.rails[0];
        assert_eq!(rc.batch_chunk, Some(7), "the older name of batch_chunk");
        assert_eq!(rc.batch, Some(true));
        assert_eq!(rc.confirm_failures, Some(false));
        assert_eq!(rc.confirm_failure_after_ms, Some(1500));
        assert_eq!(rc.batch_poll_ms, None);
        let own: Vec<&String> = rc.settings.keys().collect();
        assert_eq!(own, ["channel_url"]);

        let bad = toml::from_str::<Config>(
            "[[rails]]\nid = \"m\"\nkind = \"mock\"\nbatch_chunk = \"many\"",
        );
        let err = bad.unwrap_err().to_string();
        assert!(err.contains("many"), "{err}");
    }
}

//! How one MMAPI rail instance is configured: where the provider is, how we authenticate to
//! it, and how it authenticates its callbacks to us.

use railgate_rail::oauth::OAuthConfig;
use railgate_rail::tls::ClientTls;
use railgate_rail::Currency;
pub use railgate_rail::Secret;
use std::time::Duration;

/// How we authenticate to the provider (GSMA security guidelines §3.4; bilateral in practice).
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials (a sandbox, or mutual TLS terminated in front of us).
    None,
    /// `X-API-Key` only.
    ApiKey { api_key: Secret },
    /// HTTP Basic on every request (allowed by the spec, "not recommended" by the guidelines).
    Basic {
        username: String,
        password: Secret,
        api_key: Option<Secret>,
    },
    /// OAuth2 client credentials (SEC §3.4.1): `POST {token_url}` with Basic
    /// `client_id:client_secret` and `grant_type=client_credentials`, the API key beside it
    /// when given; the token is cached and refreshed before it expires
    /// (`railgate_rail::oauth::TokenClient`).
    OAuth2 {
        oauth: OAuthConfig,
        api_key: Option<Secret>,
    },
}

/// How the provider proves a callback is its own.
///
/// The API defines no callback signature. What operators deploy is one of: TLS plus HTTP Basic
/// credentials agreed bilaterally (the security guidelines list Basic/OAuth2 between the
/// platform and the client's gateway for callbacks), or an unguessable token in the callback
/// URL when the platform cannot present credentials. Both are supported; either way an
/// `X-Content-Hash` header, when present, must match the body, and the `X-CorrelationID`
/// header, when present, must name the attempt in the path.
#[derive(Debug, Clone)]
pub enum CallbackAuth {
    Basic {
        username: String,
        password: Secret,
    },
    /// The secret becomes the first path segment: `/rails/{id}/{secret}/transactions/{attempt}`.
    PathSecret(Secret),
}

/// Whether results come back by callback or are polled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notification {
    /// Send `X-Callback-URL`; the provider PUTs the result. Polling still settles lost ones.
    Callback,
    /// Omit `X-Callback-URL`; the gateway settles every attempt by `inquire`.
    Polling,
}

#[derive(Debug, Clone)]
pub struct MmapiConfig {
    /// The rail's id in the gateway ("mmapi-tz").
    pub rail_id: String,
    /// The provider's API root including version and `/mm`, without a trailing slash
    /// (e.g. `https://api.operator.example/v1.2/mm`).
    pub base_url: String,
    /// Where the gateway serves this rail's callbacks: `{gateway}/rails/{rail_id}`.
    pub callback_base: String,
    pub auth: Auth,
    pub callback_auth: CallbackAuth,
    /// Refuse callbacks without `X-Content-Hash` (when the provider is known to send it).
    pub require_content_hash: bool,
    pub notification: Notification,
    /// The scheme's own account at the provider, as MMAPI party items
    /// (e.g. `[("accountid", "2000023")]`): debit party of disbursements, credit party of
    /// request-to-pay collections.
    pub scheme_party: Vec<(String, String)>,
    pub currencies: Vec<Currency>,
    /// Bound on every HTTP exchange with the provider.
    pub request_timeout: Duration,
    /// Client certificate, CA bundle and pin for the provider's TLS (mutual TLS, SEC §3.3);
    /// `None`: the public web roots, no client certificate.
    pub tls: Option<ClientTls>,
}

impl MmapiConfig {
    /// A configuration with the usual defaults: callbacks, 30 s timeout, default TLS.
    pub fn new(
        rail_id: impl Into<String>,
        base_url: impl Into<String>,
        callback_base: impl Into<String>,
        auth: Auth,
        callback_auth: CallbackAuth,
        scheme_party: Vec<(String, String)>,
        currencies: Vec<Currency>,
    ) -> MmapiConfig {
        MmapiConfig {
            rail_id: rail_id.into(),
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            callback_base: callback_base.into().trim_end_matches('/').to_owned(),
            auth,
            callback_auth,
            require_content_hash: false,
            notification: Notification::Callback,
            scheme_party,
            currencies,
            request_timeout: Duration::from_secs(30),
            tls: None,
        }
    }
}

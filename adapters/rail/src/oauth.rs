//! OAuth2 client credentials (RFC 6749 §4.4): one token client for every rail that puts a
//! token endpoint in front of its API (an MMAPI provider, Daraja, a Mojaloop hub behind an
//! API gateway, Payment Hub EE behind Keycloak).
//!
//! The token is cached and refreshed a margin before it expires. One async mutex makes
//! concurrent callers share a single fetch instead of stampeding the endpoint (the lock is
//! held across that fetch, whose time the HTTP client's timeout bounds). A request answered
//! 401 hands its token back through [`TokenClient::rejected`], which forgets it only if it is
//! still the cached one: a burst of 401s for one stale token clears the cache once, never a
//! fresh token fetched meanwhile. The token is not payment state, so it lives in memory only.

use crate::{transport, RailError, Secret};
use serde::Deserialize;
use std::fmt;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How the token is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRequest {
    /// `POST` a form `grant_type=client_credentials` (and `scope`), the standard way.
    Post,
    /// `GET` the token URL as it is (its query names the grant): Daraja's
    /// `/oauth/v1/generate?grant_type=client_credentials`.
    Get,
}

/// How the client authenticates to the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret` (every server must accept it).
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (some gateways accept only this).
    Body,
}

/// A token endpoint and our client's credentials at it.
#[derive(Clone)]
pub struct OAuthConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
    pub client_auth: ClientAuth,
    pub request: TokenRequest,
    /// Headers every token request carries besides the credentials (MMAPI's `X-API-Key`).
    pub extra_headers: Vec<(String, Secret)>,
    /// Refresh this long before the token expires (at most half its lifetime).
    pub refresh_margin: Duration,
    /// The lifetime assumed when the answer gives none.
    pub default_lifetime: Duration,
}

impl OAuthConfig {
    /// The standard grant: POST, Basic credentials, a 60 s margin, an hour when unsaid.
    pub fn client_credentials(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: Secret,
    ) -> OAuthConfig {
        OAuthConfig {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            scope: None,
            client_auth: ClientAuth::Basic,
            request: TokenRequest::Post,
            extra_headers: Vec::new(),
            refresh_margin: Duration::from_secs(60),
            default_lifetime: Duration::from_secs(3600),
        }
    }
}

impl fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthConfig")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("client_auth", &self.client_auth)
            .field("request", &self.request)
            .field("refresh_margin", &self.refresh_margin)
            .finish_non_exhaustive()
    }
}

/// The `[rails.oauth]` table of a rail's configuration: where the token endpoint is and who we
/// are there. The client secret comes from the environment or a file, as every secret does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    pub token_url: String,
    pub client_id: String,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// A file holding the client secret (surrounding whitespace is ignored).
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// The secret itself: only for generated configurations (the sandbox), never a real one.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Space-separated scopes to ask for.
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Refresh this many seconds before the token expires (default 60).
    #[serde(default)]
    pub refresh_margin_secs: Option<u64>,
}

impl OAuthSettings {
    /// Reads the client secret and makes the configuration of a standard POST grant.
    pub fn resolve(&self) -> Result<OAuthConfig, String> {
        let secret = match (
            &self.client_secret_env,
            &self.client_secret_file,
            &self.client_secret,
        ) {
            (Some(var), None, None) => std::env::var(var)
                .map(Secret::new)
                .map_err(|_| format!("oauth: environment variable {var} is not set"))?,
            (None, Some(path), None) => std::fs::read_to_string(path)
                .map(|s| Secret::new(s.trim()))
                .map_err(|e| format!("oauth: cannot read client_secret_file: {e}"))?,
            (None, None, Some(s)) => s.clone(),
            (None, None, None) => {
                return Err("oauth: client_secret_env or client_secret_file is required".into())
            }
            _ => {
                return Err(
                    "oauth: give the client secret one way only (client_secret_env or client_secret_file)"
                        .into(),
                )
            }
        };
        if self.token_url.trim().is_empty() || self.client_id.trim().is_empty() {
            return Err("oauth: token_url and client_id must not be empty".into());
        }
        let mut cfg =
            OAuthConfig::client_credentials(self.token_url.trim(), self.client_id.trim(), secret);
        cfg.scope = self.scope.clone().filter(|s| !s.trim().is_empty());
        cfg.client_auth = self.client_auth;
        if let Some(m) = self.refresh_margin_secs {
            cfg.refresh_margin = Duration::from_secs(m);
        }
        Ok(cfg)
    }
}

/// A bearer token from the endpoint; prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Secret);

impl AccessToken {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// Fetches, caches and refreshes one client's token. Cheap to share behind an `Arc`.
pub struct TokenClient {
    config: OAuthConfig,
    http: reqwest::Client,
    cached: Mutex<Option<Cached>>,
    /// Names the endpoint in errors ("token endpoint of rail mmapi-tz").
    label: String,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenClient {
    /// `http` is the rail's own client (its timeouts and TLS: a private CA and client
    /// certificate usually cover the token endpoint too).
    pub fn new(config: OAuthConfig, http: reqwest::Client) -> TokenClient {
        TokenClient {
            config,
            http,
            cached: Mutex::new(None),
            label: "token endpoint".to_owned(),
        }
    }

    /// Names the rail in this client's errors.
    pub fn for_rail(mut self, rail_id: &str) -> TokenClient {
        self.label = format!("token endpoint of rail {rail_id}");
        self
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// The cached token, or a new one when there is none or it is due for refresh.
    pub async fn token(&self) -> Result<AccessToken, RailError> {
        self.token_at(Instant::now()).await
    }

    async fn token_at(&self, now: Instant) -> Result<AccessToken, RailError> {
        let mut guard = self.cached.lock().await;
        if let Some(c) = guard.as_ref() {
            if now < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        // Never let the margin swallow the whole lifetime of a short-lived token.
        let margin = self
            .config
            .refresh_margin
            .min(lifetime.checked_div(2).unwrap_or_default());
        *guard = Some(Cached {
            token: token.clone(),
            refresh_at: now
                .checked_add(lifetime.saturating_sub(margin))
                .unwrap_or(now),
        });
        Ok(token)
    }

    /// The rail answered 401 to a request bearing `token`: forget it, if it is still the one
    /// cached, so the next request fetches another.
    pub async fn rejected(&self, token: &AccessToken) {
        let mut guard = self.cached.lock().await;
        if guard.as_ref().is_some_and(|c| &c.token == token) {
            tracing::info!(token_url = %self.config.token_url, "Access token refused; fetching a new one next time");
            *guard = None;
        }
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), RailError> {
        #[derive(Deserialize)]
        struct Reply {
            access_token: String,
            #[serde(default)]
            expires_in: Option<serde_json::Value>,
        }
        let c = &self.config;
        let mut rb = match c.request {
            TokenRequest::Get => self.http.get(&c.token_url),
            TokenRequest::Post => {
                let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
                if let Some(scope) = &c.scope {
                    form.push(("scope", scope));
                }
                if c.client_auth == ClientAuth::Body {
                    form.push(("client_id", &c.client_id));
                    form.push(("client_secret", c.client_secret.expose()));
                }
                self.http.post(&c.token_url).form(&form)
            }
        };
        if c.client_auth == ClientAuth::Basic || c.request == TokenRequest::Get {
            rb = rb.basic_auth(&c.client_id, Some(c.client_secret.expose()));
        }
        for (name, value) in &c.extra_headers {
            rb = rb.header(name.as_str(), value.expose());
        }
        let peer = self.label.as_str();
        let resp = rb
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| transport::read_error(&e, peer))?;
        let status = resp.status();
        if !status.is_success() {
            // A refusal of our credentials does not mend itself; an unavailable or failing
            // endpoint may.
            return Err(
                if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    RailError::Retryable(format!("{peer} answered {status}"))
                } else {
                    RailError::Permanent(format!(
                        "{peer} refused our client credentials ({status})"
                    ))
                },
            );
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport::read_error(&e, peer))?;
        let reply: Reply = serde_json::from_slice(&body).map_err(|e| {
            // The body may hold a token: say only what was wrong with its shape.
            RailError::Retryable(format!(
                "{peer}: unreadable answer (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if reply.access_token.is_empty() {
            return Err(RailError::Retryable(format!("{peer}: empty access_token")));
        }
        Ok((
            AccessToken(Secret::new(reply.access_token)),
            expires_in(reply.expires_in.as_ref()).unwrap_or(c.default_lifetime),
        ))
    }
}

/// `expires_in` as a number or a numeric string (Daraja sends `"3599"`).
fn expires_in(v: Option<&serde_json::Value>) -> Option<Duration> {
    let secs = match v {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    secs.map(Duration::from_secs)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::{Form, Json, Router};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A token endpoint on loopback: Basic `app:s3cret`, numbered tokens, a fixed lifetime;
    /// `GET /api` accepts only the latest token, as an endpoint that revoked the older ones.
    #[derive(Default)]
    struct Endpoint {
        issued: AtomicU64,
        lifetime: u64,
    }

    async fn issue(
        State(ep): State<Arc<Endpoint>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        let basic = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // base64("app:s3cret")
        let by_basic = basic == "Basic YXBwOnMzY3JldA==";
        let by_body = form.get("client_id").map(String::as_str) == Some("app")
            && form.get("client_secret").map(String::as_str) == Some("s3cret");
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || !(by_basic || by_body)
        {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        let n = ep.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let scope = form.get("scope").cloned().unwrap_or_default();
        Json(serde_json::json!({
            "access_token": format!("tok-{n}{scope}"),
            "token_type": "Bearer",
            "expires_in": ep.lifetime,
        }))
        .into_response()
    }

    async fn api(State(ep): State<Arc<Endpoint>>, headers: HeaderMap) -> StatusCode {
        let latest = format!("Bearer tok-{}", ep.issued.load(Ordering::SeqCst));
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(v) if v == latest => StatusCode::OK,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    async fn endpoint(lifetime: u64) -> (Arc<Endpoint>, String) {
        let ep = Arc::new(Endpoint {
            issued: AtomicU64::new(0),
            lifetime,
        });
        let app = Router::new()
            .route("/token", post(issue))
            .route("/api", axum::routing::get(api))
            .with_state(ep.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (ep, format!("http://{addr}"))
    }

    fn client(base: &str, secret: &str) -> TokenClient {
        TokenClient::new(
            OAuthConfig::client_credentials(format!("{base}/token"), "app", Secret::new(secret)),
            reqwest::Client::new(),
        )
    }

    #[tokio::test]
    async fn caches_then_refreshes_before_expiry() {
        let (ep, base) = endpoint(600).await;
        let tc = client(&base, "s3cret");
        let t0 = Instant::now();
        let first = tc.token_at(t0).await.unwrap();
        assert_eq!(first.expose(), "tok-1");
        // Within the lifetime less the margin: the cached token, no new fetch.
        let later = t0 + Duration::from_secs(600 - 61);
        assert_eq!(tc.token_at(later).await.unwrap(), first);
        assert_eq!(ep.issued.load(Ordering::SeqCst), 1);
        // Inside the margin (60 s before expiry): refreshed before it expires.
        let due = t0 + Duration::from_secs(600 - 59);
        assert_eq!(tc.token_at(due).await.unwrap().expose(), "tok-2");
        assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_short_lived_token_is_refreshed_at_half_its_life() {
        let (ep, base) = endpoint(30).await;
        let tc = client(&base, "s3cret");
        let t0 = Instant::now();
        tc.token_at(t0).await.unwrap();
        tc.token_at(t0 + Duration::from_secs(14)).await.unwrap();
        assert_eq!(ep.issued.load(Ordering::SeqCst), 1);
        tc.token_at(t0 + Duration::from_secs(15)).await.unwrap();
        assert_eq!(ep.issued.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch() {
        let (ep, base) = endpoint(600).await;
        let tc = Arc::new(client(&base, "s3cret"));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let tc = tc.clone();
            set.spawn(async move { tc.token().await.unwrap() });
        }
        while let Some(t) = set.join_next().await {
            assert_eq!(t.unwrap().expose(), "tok-1");
        }
        assert_eq!(ep.issued.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_401_clears_the_cache_once() {
        let (ep, base) = endpoint(600).await;
        let tc = client(&base, "s3cret");
        let http = reqwest::Client::new();
        let call = |t: &AccessToken| {
            http.get(format!("{base}/api"))
                .bearer_auth(t.expose())
                .send()
        };
        let stale = tc.token().await.unwrap();
        assert_eq!(call(&stale).await.unwrap().status(), 200);
        // The endpoint moves on (another instance fetched a token): ours is refused.
        ep.issued.fetch_add(1, Ordering::SeqCst);
        assert_eq!(call(&stale).await.unwrap().status(), 401);
        // Three requests in flight with the stale token all hear 401 …
        tc.rejected(&stale).await;
        let fresh = tc.token().await.unwrap();
        assert_eq!(fresh.expose(), "tok-3");
        tc.rejected(&stale).await;
        tc.rejected(&stale).await;
        // … and the fresh token survives the late ones.
        assert_eq!(tc.token().await.unwrap(), fresh);
        assert_eq!(ep.issued.load(Ordering::SeqCst), 3);
        assert_eq!(call(&fresh).await.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn credentials_in_the_body_and_a_scope() {
        let (_, base) = endpoint(600).await;
        let mut cfg =
            OAuthConfig::client_credentials(format!("{base}/token"), "app", Secret::new("s3cret"));
        cfg.client_auth = ClientAuth::Body;
        cfg.scope = Some("fspiop".into());
        let tc = TokenClient::new(cfg, reqwest::Client::new());
        assert_eq!(tc.token().await.unwrap().expose(), "tok-1fspiop");
    }

    #[tokio::test]
    async fn refused_credentials_are_permanent_and_never_printed() {
        let (_, base) = endpoint(600).await;
        let tc = client(&base, "wrong-secret");
        let err = tc.token().await.unwrap_err();
        assert!(
            matches!(&err, RailError::Permanent(m) if m.contains("401")),
            "{err:?}"
        );
        assert!(!format!("{err:?} {tc:?}").contains("wrong-secret"));
        // A token endpoint that is not there: retryable, it moves no money.
        let gone = client("http://127.0.0.1:9", "s3cret");
        assert!(matches!(gone.token().await, Err(RailError::Retryable(_))));
    }

    #[test]
    fn settings_read_the_secret_from_the_environment_or_a_file() {
        let s: OAuthSettings = toml_like(
            r#"{"token_url": "https://auth/token", "client_id": "app", "client_secret_file": "/nonexistent/secret"}"#,
        );
        assert!(s.resolve().unwrap_err().contains("client_secret_file"));
        let s: OAuthSettings =
            toml_like(r#"{"token_url": "https://auth/token", "client_id": "app"}"#);
        assert!(s.resolve().unwrap_err().contains("client_secret_env"));
        let bad = serde_json::from_str::<OAuthSettings>(
            r#"{"token_url": "u", "client_id": "c", "client_secert_env": "X"}"#,
        );
        assert!(bad.is_err(), "a mistyped key is refused");
        let s: OAuthSettings = toml_like(
            r#"{"token_url": "https://auth/token", "client_id": "app", "client_secret": "x", "scope": "a b", "client_auth": "body", "refresh_margin_secs": 5}"#,
        );
        let c = s.resolve().unwrap();
        assert_eq!(c.scope.as_deref(), Some("a b"));
        assert_eq!(c.client_auth, ClientAuth::Body);
        assert_eq!(c.refresh_margin, Duration::from_secs(5));
        assert!(!format!("{c:?}").contains("\"x\""));
    }

    fn toml_like(json: &str) -> OAuthSettings {
        serde_json::from_str(json).unwrap()
    }
}

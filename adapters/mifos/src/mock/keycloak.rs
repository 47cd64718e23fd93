//! The sandbox PH-EE's Keycloak, when asked for: a client-credentials token endpoint on the
//! mock's own port (`/realms/{realm}/protocol/openid-connect/token`, the client's id and
//! secret in HTTP Basic or in the form), and the check that every request to the channel,
//! the operations app and the bulk processor carries a bearer token it issued and that has
//! not expired. Tokens can be expired at once (`expire_all`), as a Keycloak restart or a
//! revoked session does, to show that the adapter fetches a new one.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Where the token endpoint is, below the mock's base URL.
pub const TOKEN_PATH: &str = "/realms/paymenthub/protocol/openid-connect/token";

/// The one client Keycloak knows, and how long its tokens live.
#[derive(Debug, Clone)]
pub struct KeycloakConfig {
    pub client_id: String,
    pub client_secret: String,
    pub token_lifetime: Duration,
}

#[derive(Default)]
struct Tokens {
    live: HashMap<String, Instant>,
    issued: u64,
    refused: u64,
}

/// The issued tokens; shared by the token endpoint and the check in front of the API.
#[derive(Clone)]
pub struct Keycloak {
    cfg: Arc<KeycloakConfig>,
    tokens: Arc<Mutex<Tokens>>,
}

impl Keycloak {
    pub fn new(cfg: KeycloakConfig) -> Keycloak {
        Keycloak {
            cfg: Arc::new(cfg),
            tokens: Arc::new(Mutex::new(Tokens::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        self.lock().issued
    }

    /// API requests refused for a missing, unknown or expired token.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    /// Every token issued so far expires now.
    pub fn expire_all(&self) {
        self.lock().live.clear();
    }

    fn client_of(&self, headers: &HeaderMap, form: &HashMap<String, String>) -> Option<()> {
        let (id, secret) = match headers
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
        {
            Some(b64) => {
                let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                let text = String::from_utf8(raw).ok()?;
                let (id, secret) = text.split_once(':')?;
                (id.to_owned(), secret.to_owned())
            }
            None => (
                form.get("client_id")?.clone(),
                form.get("client_secret")?.clone(),
            ),
        };
        (id == self.cfg.client_id && secret == self.cfg.client_secret).then_some(())
    }
}

/// `POST {TOKEN_PATH}`: a bearer token for the configured client.
pub async fn issue_token(
    State(kc): State<Keycloak>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    if kc.client_of(&headers, &form).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = Uuid::new_v4().simple().to_string();
    let lifetime = kc.cfg.token_lifetime;
    {
        let mut t = kc.lock();
        t.issued = t.issued.saturating_add(1);
        let expiry = Instant::now()
            .checked_add(lifetime)
            .unwrap_or_else(Instant::now);
        t.live.insert(token.clone(), expiry);
    }
    Json(serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
    }))
    .into_response()
}

/// In front of the channel, the operations app and the bulk processor: 401 without a live
/// token, before anything is recorded.
pub async fn require_token(State(kc): State<Keycloak>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let live = {
        let mut t = kc.lock();
        let live = t
            .live
            .get(&token)
            .is_some_and(|expiry| Instant::now() < *expiry);
        if !live {
            t.refused = t.refused.saturating_add(1);
        }
        live
    };
    if !live {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "invalid_token"})),
        )
            .into_response();
    }
    next.run(request).await
}

//! Bearer API keys with scopes; each key belongs to a client that sees only its own data.

use super::problem::Problem;
use super::AppState;
use crate::store::keys;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

pub const SCOPES: [&str; 6] = [
    "payments:write",
    "payments:read",
    "recon:write",
    "reports:read",
    "admin",
    OPERATOR,
];

/// The gateway's operator: what belongs to no one client (the dispatcher's dead letter).
/// Not implied by `admin`, which is a client's and reaches only that client's data.
pub const OPERATOR: &str = "operator";

#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: Uuid,
    pub key_id: Uuid,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn require(&self, scope: &str) -> Result<(), Problem> {
        if self
            .scopes
            .iter()
            .any(|s| s == scope || (s == "admin" && scope != OPERATOR))
        {
            Ok(())
        } else {
            Err(Problem::forbidden(scope))
        }
    }

    /// Allowed with any one of the scopes.
    #[allow(clippy::result_large_err)] // as `require`
    pub fn require_any(&self, scopes: &[&str]) -> Result<(), Problem> {
        if scopes.iter().any(|s| self.require(s).is_ok()) {
            Ok(())
        } else {
            Err(Problem::forbidden(&scopes.join("' or '")))
        }
    }
}

/// The presented key from `Authorization: Bearer <key>`.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
}

pub async fn authenticate(state: &AppState, key: &str) -> Result<Caller, Problem> {
    let record = keys::lookup(&state.db, key).await?;
    match record {
        None => Err(Problem::unauthorized("the API key is not valid")),
        Some(r) if r.revoked_at.is_some() => Err(Problem::unauthorized("the API key was revoked")),
        Some(r) => Ok(Caller {
            client_id: r.client_id,
            key_id: r.id,
            scopes: r.scopes,
        }),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts).ok_or_else(|| {
            Problem::unauthorized("send an API key as 'Authorization: Bearer <key>'")
        })?;
        authenticate(state, key).await
    }
}

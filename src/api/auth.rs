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
    let hash = keys::hash_key(key);
    if let Some(caller) = state.keys.get(&hash) {
        return Ok(caller);
    }
    let record = keys::lookup_hashed(&state.db, &hash).await?;
    match record {
        None => Err(Problem::unauthorized("the API key is not valid")),
        Some(r) if r.revoked_at.is_some() => Err(Problem::unauthorized("the API key was revoked")),
        Some(r) => {
            let caller = Caller {
                client_id: r.client_id,
                key_id: r.id,
                scopes: r.scopes,
            };
            state.keys.put(hash, caller.clone());
            Ok(caller)
        }
    }
}

/// Valid keys recently read from the store, by their hash: a busy client's every request
/// would otherwise cost a read of its key (as many statements as payments, on the store every
/// write waits on). A key is kept for [`KEY_CACHE_TTL`] after it was read, so a revocation
/// (`railgate keys revoke`, from any process) takes effect within that long. Unknown and
/// revoked keys are never kept, and neither is a key in clear.
#[derive(Debug)]
pub struct KeyCache {
    ttl: std::time::Duration,
    held: std::sync::Mutex<std::collections::HashMap<String, (Caller, std::time::Instant)>>,
}

/// How long a key read from the store is trusted without reading it again.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The most keys held at once; when full, the expired go, and if none had, all do.
const KEY_CACHE_MAX: usize = 4096;

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::with_ttl(KEY_CACHE_TTL)
    }
}

impl KeyCache {
    pub fn with_ttl(ttl: std::time::Duration) -> KeyCache {
        KeyCache {
            ttl,
            held: std::sync::Mutex::default(),
        }
    }

    /// The map is only touched in short sections that leave it whole: a poisoned lock still
    /// guards a consistent map.
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Caller, std::time::Instant)>>
    {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The caller of a key (by hash) read less than the TTL ago.
    pub fn get(&self, hash: &str) -> Option<Caller> {
        let held = self.lock();
        let (caller, at) = held.get(hash)?;
        (at.elapsed() < self.ttl).then(|| caller.clone())
    }

    /// Keeps a valid key's caller, read from the store just now.
    pub fn put(&self, hash: String, caller: Caller) {
        if self.ttl.is_zero() {
            return;
        }
        let mut held = self.lock();
        if held.len() >= KEY_CACHE_MAX {
            let ttl = self.ttl;
            held.retain(|_, (_, at)| at.elapsed() < ttl);
            if held.len() >= KEY_CACHE_MAX {
                held.clear();
            }
        }
        held.insert(hash, (caller, std::time::Instant::now()));
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Caller, KeyCache};
    use std::time::Duration;

    fn caller() -> Caller {
        Caller {
            client_id: uuid::Uuid::now_v7(),
            key_id: uuid::Uuid::now_v7(),
            scopes: vec!["payments:read".into()],
        }
    }

    #[test]
    fn a_key_is_held_until_its_ttl_and_never_without_one() {
        let held = KeyCache::with_ttl(Duration::from_secs(3600));
        assert!(held.get("h").is_none());
        let c = caller();
        held.put("h".into(), c.clone());
        assert_eq!(held.get("h").unwrap().key_id, c.key_id);
        assert!(held.get("other").is_none());

        let none = KeyCache::with_ttl(Duration::ZERO);
        none.put("h".into(), caller());
        assert!(none.get("h").is_none(), "a zero TTL holds nothing");
    }

    #[test]
    fn a_full_cache_makes_room() {
        let held = KeyCache::with_ttl(Duration::from_secs(3600));
        for i in 0..super::KEY_CACHE_MAX {
            held.put(format!("k{i}"), caller());
        }
        held.put("last".into(), caller());
        assert!(held.get("last").is_some());
        assert!(held.lock().len() <= super::KEY_CACHE_MAX);
    }
}

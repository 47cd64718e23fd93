//! A cached bearer token, refreshed before it expires.
//!
//! The token is not payment state, so it may live in the adapter value. One async mutex
//! makes concurrent callers share a single refresh instead of stampeding the token endpoint.

use crate::config::Secret;
use railgate_rail::RailError;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    cached: Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

impl TokenCache {
    /// Returns the cached token, or fetches a new one when it is missing or about to expire.
    /// `fetch` returns the token and its lifetime.
    pub(crate) async fn get<F, Fut>(&self, margin: Duration, fetch: F) -> Result<Secret, RailError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Secret, Duration), RailError>>,
    {
        let mut guard = self.cached.lock().await;
        if let Some(c) = guard.as_ref() {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let (token, lifetime) = fetch().await?;
        // Never let the margin swallow the whole lifetime of a short-lived token.
        let margin = margin.min(lifetime.checked_div(2).unwrap_or_default());
        *guard = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now()
                .checked_add(lifetime.saturating_sub(margin))
                .unwrap_or_else(Instant::now),
        });
        Ok(token)
    }

    /// Forgets the token (the provider refused it before its time).
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

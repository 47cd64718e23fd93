//! Idempotency of the inbound requests a rail wants answered by its own id (FSPIOP §3.2.5):
//! the same id with the same body gets the first answer again, with another body an error.

use crate::store::Conn;
use crate::store::{inbound as store, StoreError};
use railgate_rail::{IdempotentPost, Outbound};

#[derive(Debug)]
pub(super) enum Seen {
    /// Never seen: apply it; its follow-ups are stored with it.
    First,
    /// Seen with the same body: apply nothing, send these (the first answer) again.
    Duplicate(Vec<Outbound>),
    /// Seen with another body: apply nothing, refuse.
    Modified,
}

fn decide(stored: (String, String), post: &IdempotentPost) -> Result<Seen, StoreError> {
    let (hash, follow_ups) = stored;
    if hash != post.body_hash {
        return Ok(Seen::Modified);
    }
    serde_json::from_str(&follow_ups)
        .map(Seen::Duplicate)
        .map_err(|e| StoreError::Corrupt(format!("stored follow-ups: {e}")))
}

/// Looks the request up and, on first sight, stores it with the answers it gets.
pub(super) async fn remember(
    conn: &mut Conn,
    rail: &str,
    post: &IdempotentPost,
    row: uuid::Uuid,
    follow_ups: &[Outbound],
) -> Result<Seen, StoreError> {
    if let Some(stored) = store::get(conn, rail, &post.key).await? {
        return decide(stored, post);
    }
    let json = serde_json::to_string(follow_ups)
        .map_err(|e| StoreError::Corrupt(format!("follow-ups: {e}")))?;
    if store::insert(conn, rail, &post.key, &post.body_hash, row, &json).await? {
        return Ok(Seen::First);
    }
    // Another delivery of the same id got in first (PostgreSQL, concurrent transactions).
    match store::get(conn, rail, &post.key).await? {
        Some(stored) => decide(stored, post),
        None => Ok(Seen::First),
    }
}

//! Inbound requests a rail requires to be idempotent under its own id: the first body's hash
//! and the follow-ups answered to it.

use super::{col, now_micros, Result};
use crate::store::Conn;
use uuid::Uuid;

/// The hash and follow-ups (JSON) stored for `(rail, key)`.
pub async fn get(conn: &mut Conn, rail: &str, key: &str) -> Result<Option<(String, String)>> {
    let row = crate::store::sql::query(
        "SELECT body_hash, follow_ups FROM inbound_posts WHERE rail = $1 AND post_key = $2",
    )
    .bind(rail)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((col(&r, "body_hash")?, col(&r, "follow_ups")?)))
        .transpose()
}

/// Stores the first sight of `(rail, key)`; false when another delivery stored it first.
pub async fn insert(
    conn: &mut Conn,
    rail: &str,
    key: &str,
    body_hash: &str,
    row: Uuid,
    follow_ups: &str,
) -> Result<bool> {
    let done = crate::store::sql::query(
        "INSERT INTO inbound_posts (rail, post_key, body_hash, callback_row, follow_ups, at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rail, post_key) DO NOTHING",
    )
    .bind(rail)
    .bind(key)
    .bind(body_hash)
    .bind(row.to_string())
    .bind(follow_ups)
    .bind(now_micros())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

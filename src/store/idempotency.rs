//! Idempotency keys: the first response to a key is stored and replayed.

use super::{col, now_micros, Db, Result};
use sqlx::AnyConnection;
use uuid::Uuid;

/// How long a key is kept (the API promises at least 7 days).
pub const RETENTION_MICROS: i64 = 8 * 24 * 3600 * 1_000_000;
/// A key still marked in flight after this long belongs to a request that died mid-way.
const ABANDONED_AFTER_MICROS: i64 = 60 * 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use: the caller proceeds and completes the key in its transaction.
    Fresh,
    Replay {
        status: u16,
        body: String,
    },
    InFlight,
    /// The key was used with another request body.
    Mismatch,
}

pub async fn begin(db: &Db, client: Uuid, key: &str, request_hash: &str) -> Result<Begin> {
    let now = now_micros();
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (client_id, key) DO NOTHING",
    )
    .bind(client.to_string())
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .execute(db.pool())
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Begin::Fresh);
    }
    let row = sqlx::query(
        "SELECT request_hash, status, response, created_at FROM idempotency_keys \
         WHERE client_id = $1 AND key = $2",
    )
    .bind(client.to_string())
    .bind(key)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        // Purged between the two statements: treat as in flight; the client retries.
        return Ok(Begin::InFlight);
    };
    let hash: String = col(&row, "request_hash")?;
    if hash != request_hash {
        return Ok(Begin::Mismatch);
    }
    let status: Option<i64> = col(&row, "status")?;
    match status {
        Some(s) => Ok(Begin::Replay {
            status: u16::try_from(s).unwrap_or(500),
            body: col::<Option<String>>(&row, "response")?.unwrap_or_default(),
        }),
        None => {
            let created: i64 = col(&row, "created_at")?;
            if now.saturating_sub(created) > ABANDONED_AFTER_MICROS {
                let taken = sqlx::query(
                    "UPDATE idempotency_keys SET created_at = $1 WHERE client_id = $2 AND key = $3 \
                     AND status IS NULL AND created_at = $4",
                )
                .bind(now)
                .bind(client.to_string())
                .bind(key)
                .bind(created)
                .execute(db.pool())
                .await?;
                if taken.rows_affected() == 1 {
                    return Ok(Begin::Fresh);
                }
            }
            Ok(Begin::InFlight)
        }
    }
}

/// Stores the response; called inside the transaction that made the change it describes.
pub async fn complete(
    conn: &mut AnyConnection,
    client: Uuid,
    key: &str,
    status: u16,
    body: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $1, response = $2 WHERE client_id = $3 AND key = $4",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(client.to_string())
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets a key whose request failed on our side, so the client may retry it.
pub async fn abandon(db: &Db, client: Uuid, key: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE client_id = $1 AND key = $2 AND status IS NULL",
    )
    .bind(client.to_string())
    .bind(key)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn purge_expired(db: &Db) -> Result<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now_micros().saturating_sub(RETENTION_MICROS))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

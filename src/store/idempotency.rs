//! Idempotency keys: the first response to a key is stored and replayed.

use super::{col, instances, now_micros, Db, Kind, Result};
use crate::store::Conn;
use std::time::Duration;
use uuid::Uuid;

/// How long a key is kept (the API promises at least 7 days).
pub const RETENTION_MICROS: i64 = 8 * 24 * 3600 * 1_000_000;
/// A key taken before owners were recorded, still marked in flight after this long, belongs to
/// a request that died mid-way.
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

/// Takes the key for this request, or says why not. A key in flight is the owner's while the
/// owner lives: a request of this instance, or of another whose heartbeat is fresher than
/// `stale` (PostgreSQL). A key whose owner is dead (a process killed mid-request) is taken
/// over at once.
pub async fn begin(
    db: &Db,
    client: Uuid,
    key: &str,
    request_hash: &str,
    stale: Duration,
) -> Result<Begin> {
    let now = now_micros();
    let me = db.instance().to_string();
    super::count_write();
    let inserted = crate::store::sql::query(
        "INSERT INTO idempotency_keys (client_id, key, request_hash, created_at, owner) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id, key) DO NOTHING",
    )
    .bind(client.to_string())
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .bind(&me)
    .execute(db.pool())
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Begin::Fresh);
    }
    let row = crate::store::sql::query(
        "SELECT request_hash, status, response, created_at, owner FROM idempotency_keys \
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
    if let Some(s) = status {
        return Ok(Begin::Replay {
            status: u16::try_from(s).unwrap_or(500),
            body: col::<Option<String>>(&row, "response")?.unwrap_or_default(),
        });
    }
    let created: i64 = col(&row, "created_at")?;
    let owner: Option<String> = col(&row, "owner")?;
    let dead = match owner.as_deref() {
        Some(o) if o == me => false,
        // One instance per SQLite file: an owner other than the running one is gone.
        Some(_) if db.kind() == Kind::Sqlite => true,
        Some(o) => !instances::alive(db, o, stale).await?,
        None => now.saturating_sub(created) > ABANDONED_AFTER_MICROS,
    };
    if !dead {
        return Ok(Begin::InFlight);
    }
    // Taken over only as it was read: of two retries racing for it, one wins.
    let taken = crate::store::sql::query(
        "UPDATE idempotency_keys SET created_at = $1, owner = $2 WHERE client_id = $3 \
         AND key = $4 AND status IS NULL AND created_at = $5 \
         AND COALESCE(owner, '') = COALESCE($6, '')",
    )
    .bind(now)
    .bind(&me)
    .bind(client.to_string())
    .bind(key)
    .bind(created)
    .bind(owner.as_deref())
    .execute(db.pool())
    .await?;
    if taken.rows_affected() == 1 {
        tracing::info!("Idempotency key of a dead request taken over");
        return Ok(Begin::Fresh);
    }
    Ok(Begin::InFlight)
}

/// Stores the response; called inside the transaction that made the change it describes.
pub async fn complete(
    conn: &mut Conn,
    client: Uuid,
    key: &str,
    status: u16,
    body: &str,
) -> Result<()> {
    crate::store::sql::query(
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

/// [`complete`] for many keys (client, key, response body) with one status: on PostgreSQL one
/// statement (`UNNEST`), on SQLite one per key.
pub async fn complete_many(
    conn: &mut Conn,
    keys: &[(Uuid, &str, String)],
    status: u16,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    if conn.kind() == super::Kind::Sqlite || keys.len() == 1 {
        for (client, key, body) in keys {
            complete(conn, *client, key, status, body).await?;
        }
        return Ok(());
    }
    crate::store::sql::query(
        "UPDATE idempotency_keys k SET status = $1, response = u.body \
         FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u(client, key, body) \
         WHERE k.client_id = u.client AND k.key = u.key",
    )
    .bind(i64::from(status))
    .bind(
        keys.iter()
            .map(|(c, _, _)| c.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        keys.iter()
            .map(|(_, k, _)| (*k).to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(keys.iter().map(|(_, _, b)| b.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets a key whose request failed on our side, so the client may retry it.
pub async fn abandon(db: &Db, client: Uuid, key: &str) -> Result<()> {
    super::count_write();
    crate::store::sql::query(
        "DELETE FROM idempotency_keys WHERE client_id = $1 AND key = $2 AND status IS NULL",
    )
    .bind(client.to_string())
    .bind(key)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn purge_expired(db: &Db) -> Result<u64> {
    let done = crate::store::sql::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(now_micros().saturating_sub(RETENTION_MICROS))
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

//! Statement entries a rail's file watcher applied (`rail_entries`), once each.
//!
//! A bank repeats itself: the same booking comes in a camt.054 notification and again in the
//! day's camt.053, a statement is delivered twice, the watcher reads the whole inbound folder
//! on every sweep, and several gateway processes may read the same folder. An entry is claimed
//! by its key inside the transaction that applies it, so only one of them ever applies it.

use super::{now_micros, Result};
use crate::store::Conn;
use uuid::Uuid;

/// Claims an entry for applying; false when it was claimed before (nothing to do then).
/// `client_id` is the payment's client.
pub async fn claim(
    conn: &mut Conn,
    rail: &str,
    key: &str,
    (client_id, payment_id): (Uuid, Uuid),
    source: &str,
) -> Result<bool> {
    let done = crate::store::sql::query(
        "INSERT INTO rail_entries (rail, entry_key, payment_id, effect, source, at, client_id) \
         VALUES ($1, $2, $3, 'claimed', $4, $5, $6) ON CONFLICT (rail, entry_key) DO NOTHING",
    )
    .bind(rail)
    .bind(key)
    .bind(payment_id.to_string())
    .bind(source)
    .bind(now_micros())
    .bind(client_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records what applying a claimed entry did (`applied`, `duplicate`, `conflict`, ...).
pub async fn set_effect(conn: &mut Conn, rail: &str, key: &str, effect: &str) -> Result<()> {
    crate::store::sql::query(
        "UPDATE rail_entries SET effect = $1 WHERE rail = $2 AND entry_key = $3",
    )
    .bind(effect)
    .bind(rail)
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many entries of this kind (`prefix`, e.g. `booking:`) other than `key` were applied to
/// the payment without a conflict: a second booking of one payment is money paid twice.
pub async fn others_applied(
    conn: &mut Conn,
    rail: &str,
    payment_id: Uuid,
    prefix: &str,
    key: &str,
) -> Result<i64> {
    let n: i64 = crate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM rail_entries WHERE rail = $1 AND payment_id = $2 \
         AND entry_key LIKE $3 AND entry_key <> $4 AND effect IN ('applied', 'duplicate')",
    )
    .bind(rail)
    .bind(payment_id.to_string())
    .bind(format!("{prefix}%"))
    .bind(key)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

//! Callbacks as received (stored raw before anything else) and the events applied from them.

use super::{now_micros, Result};
use crate::store::Conn;
use uuid::Uuid;

/// Stores a callback as it arrived; returns its row id.
pub async fn store_raw(
    conn: &mut Conn,
    rail: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    crate::store::sql::query(
        "INSERT INTO callbacks (id, rail, method, path, headers, body, received_at, verdict) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'received')",
    )
    .bind(id.to_string())
    .bind(rail)
    .bind(method)
    .bind(path)
    .bind(headers)
    .bind(body.to_vec())
    .bind(now_micros())
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn set_verdict(
    conn: &mut Conn,
    id: Uuid,
    verdict: &str,
    reason: Option<&str>,
) -> Result<()> {
    crate::store::sql::query("UPDATE callbacks SET verdict = $1, reason = $2 WHERE id = $3")
        .bind(verdict)
        .bind(reason)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// A rail's callback id, claimed for the payment (or reversal) it resolved to.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub rail: &'a str,
    pub callback_id: &'a str,
    /// The stored callback (`callbacks.id`).
    pub row: Uuid,
    /// The client of the payment it concerns.
    pub client_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
}

/// Claims a rail's callback id; false when it was seen before (a replay or a duplicate delivery).
pub async fn claim_event(conn: &mut Conn, claim: &Claim<'_>, effect: &str) -> Result<bool> {
    let done = crate::store::sql::query(
        "INSERT INTO callback_events (rail, callback_id, callback_row, payment_id, effect, at, \
         client_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (rail, callback_id) DO NOTHING",
    )
    .bind(claim.rail)
    .bind(claim.callback_id)
    .bind(claim.row.to_string())
    .bind(claim.payment_id.map(|p| p.to_string()))
    .bind(effect)
    .bind(now_micros())
    .bind(claim.client_id.map(|c| c.to_string()))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn set_effect(
    conn: &mut Conn,
    rail: &str,
    callback_id: &str,
    effect: &str,
) -> Result<()> {
    crate::store::sql::query(
        "UPDATE callback_events SET effect = $1 WHERE rail = $2 AND callback_id = $3",
    )
    .bind(effect)
    .bind(rail)
    .bind(callback_id)
    .execute(conn)
    .await?;
    Ok(())
}

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

/// [`set_effect`] for many claimed events at once: (rail, callback id, effect).
pub async fn set_effects(conn: &mut Conn, effects: &[(String, String, &str)]) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if effects.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let col = |f: &dyn Fn(&(String, String, &str)) -> String| {
        Col::Text(effects.iter().map(|e| Some(f(e))).collect())
    };
    let rows = Rows::new(vec![
        ("rail", col(&|e| e.0.clone())),
        ("callback_id", col(&|e| e.1.clone())),
        ("effect", col(&|e| e.2.to_owned())),
    ]);
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} UPDATE callback_events SET effect = u.effect FROM u \
             WHERE callback_events.rail = u.rail AND callback_events.callback_id = u.callback_id",
            part.cte(kind, 1)
        ))
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// [`set_verdict`] for many stored callbacks at once (no reason): (row, verdict).
pub async fn set_verdicts(conn: &mut Conn, verdicts: &[(Uuid, String)]) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if verdicts.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let rows = Rows::new(vec![
        (
            "id",
            Col::Text(verdicts.iter().map(|v| Some(v.0.to_string())).collect()),
        ),
        (
            "verdict",
            Col::Text(verdicts.iter().map(|v| Some(v.1.clone())).collect()),
        ),
    ]);
    for part in rows.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} UPDATE callbacks SET verdict = u.verdict, reason = NULL FROM u \
             WHERE callbacks.id = u.id{}",
            part.cte(kind, 1),
            crate::store::sql::by_key(kind, "callbacks.id", 1)
        ))
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A callback as it arrived, stored with its verdict by [`store_raw_many`].
#[derive(Debug, Clone)]
pub struct RawRow {
    pub id: Uuid,
    pub rail: String,
    pub method: String,
    pub path: String,
    pub headers: String,
    pub body: Vec<u8>,
    pub verdict: String,
}

/// Stores many callbacks as they arrived, each with its verdict, in one statement (per part).
pub async fn store_raw_many(conn: &mut Conn, rows: &[RawRow]) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if rows.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let text = |f: &dyn Fn(&RawRow) -> String| Col::Text(rows.iter().map(|r| Some(f(r))).collect());
    let set = Rows::new(vec![
        ("id", text(&|r| r.id.to_string())),
        ("rail", text(&|r| r.rail.clone())),
        ("method", text(&|r| r.method.clone())),
        ("path", text(&|r| r.path.clone())),
        ("headers", text(&|r| r.headers.clone())),
        (
            "body",
            Col::Bytes(rows.iter().map(|r| Some(r.body.clone())).collect()),
        ),
        ("verdict", text(&|r| r.verdict.clone())),
    ]);
    let at = now_micros();
    for part in set.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO callbacks (id, rail, method, path, headers, body, received_at, \
             verdict) SELECT u.id, u.rail, u.method, u.path, u.headers, u.body, $1, u.verdict \
             FROM u",
            part.cte(kind, 2)
        ))
        .bind(at)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// [`claim_event`] for many events at once, each claimed `pending`: the (rail, callback id)
/// pairs that were new. The claims must name distinct events.
pub async fn claim_events(
    conn: &mut Conn,
    claims: &[Claim<'_>],
) -> Result<std::collections::HashSet<(String, String)>> {
    use crate::store::sql::{Col, Rows};
    let mut claimed = std::collections::HashSet::with_capacity(claims.len());
    if claims.is_empty() {
        return Ok(claimed);
    }
    let kind = conn.kind();
    let text = |f: &dyn Fn(&Claim<'_>) -> Option<String>| Col::Text(claims.iter().map(f).collect());
    let set = Rows::new(vec![
        ("rail", text(&|c| Some(c.rail.to_owned()))),
        ("callback_id", text(&|c| Some(c.callback_id.to_owned()))),
        ("row", text(&|c| Some(c.row.to_string()))),
        ("payment", text(&|c| c.payment_id.map(|p| p.to_string()))),
        ("client", text(&|c| c.client_id.map(|p| p.to_string()))),
    ]);
    let at = now_micros();
    for part in set.parts(kind) {
        // `WHERE true`: SQLite's reading of an upsert after `INSERT … SELECT` needs a clause.
        let rows = crate::store::sql::query(&format!(
            "WITH {} INSERT INTO callback_events (rail, callback_id, callback_row, payment_id, \
             effect, at, client_id) SELECT u.rail, u.callback_id, u.row, u.payment, 'pending', \
             $1, u.client FROM u WHERE true ON CONFLICT (rail, callback_id) DO NOTHING \
             RETURNING rail, callback_id",
            part.cte(kind, 2)
        ))
        .bind(at)
        .bind_rows(kind, part)
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            claimed.insert((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?));
        }
    }
    Ok(claimed)
}

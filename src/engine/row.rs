//! The SQL that writes a payment's state: private to the engine, so that nothing else can.

use crate::domain::{NewPayment, Payment, State};
use crate::store::payments::{from_row, mode_str, COLUMNS};
use crate::store::payrolls::INSERT_CHUNK;
use crate::store::sql::{Col, Rows};
use crate::store::Conn;
use crate::store::{now_micros, Kind, Result, StoreError};
use std::collections::HashMap;
use uuid::Uuid;

/// The payments as held, their rows locked on PostgreSQL in the order of their ids
/// (SQLite's writer holds the whole database). A payment not found is left out. The lock is
/// the one the update takes (`FOR NO KEY UPDATE`: no key of a payment ever changes), so that
/// another transaction's rows naming the payment (its attempts, history, ledger transfers,
/// whose foreign keys take a key-share lock) are not held up by it.
pub(super) async fn lock_many(
    conn: &mut Conn,
    kind: Kind,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Payment>> {
    let mut held = HashMap::with_capacity(ids.len());
    let per_statement = match kind {
        Kind::Postgres => ids.len().max(1),
        Kind::Sqlite => LOCK_CHUNK,
    };
    for chunk in ids.chunks(per_statement) {
        let sql = match kind {
            Kind::Postgres => {
                format!(
                    "SELECT {COLUMNS} FROM payments WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"
                )
            }
            Kind::Sqlite => format!(
                "SELECT {COLUMNS} FROM payments WHERE {}",
                crate::store::sql::in_list(kind, "id", 1, chunk.len())
            ),
        };
        let rows = crate::store::sql::query(&sql)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .fetch_all(&mut *conn)
            .await?;
        for row in rows {
            let p = from_row(&row)?;
            held.insert(p.id, p);
        }
    }
    Ok(held)
}

/// Ids read per statement on SQLite (one value bound per id).
const LOCK_CHUNK: usize = 5_000;

/// A line of history to write: (client, payment, (from, to, cause)).
pub(super) type HistoryLine = (Uuid, Uuid, (State, State, String));

/// Writes back every field a change may touch of each payment in `ps`, and the lines of
/// history (each payment at most once in `history`: its next line), a statement each.
pub(super) async fn write_many(
    conn: &mut Conn,
    ps: &[Payment],
    history: &[HistoryLine],
) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    let kind = conn.kind();
    let now = now_micros();
    let text = |f: &dyn Fn(&Payment) -> Option<String>| Col::Text(ps.iter().map(f).collect());
    let payments = Rows::new(vec![
        ("id", text(&|p| Some(p.id.to_string()))),
        ("state", text(&|p| Some(p.state.as_str().to_owned()))),
        ("rail_reference", text(&|p| p.rail_reference.clone())),
        ("receipt", text(&|p| p.receipt.clone())),
        (
            "failure_code",
            text(&|p| p.failure.as_ref().map(|f| f.code.as_str().to_owned())),
        ),
        (
            "failure_reason",
            text(&|p| p.failure.as_ref().map(|f| f.reason.clone())),
        ),
        (
            "failure_rail_code",
            text(&|p| p.failure.as_ref().and_then(|f| f.rail_code.clone())),
        ),
        ("exception", text(&|p| p.exception.clone())),
        ("conflict", text(&|p| p.conflict.clone())),
    ]);
    let line =
        |f: &dyn Fn(&HistoryLine) -> Option<String>| Col::Text(history.iter().map(f).collect());
    let lines = Rows::new(vec![
        ("id", line(&|h| Some(h.1.to_string()))),
        ("client", line(&|h| Some(h.0.to_string()))),
        ("from_state", line(&|h| Some(h.2 .0.as_str().to_owned()))),
        ("to_state", line(&|h| Some(h.2 .1.as_str().to_owned()))),
        ("cause", line(&|h| Some(h.2 .2.clone()))),
    ]);
    const SET: &str = "state = u.state, rail_reference = u.rail_reference, \
         receipt = u.receipt, failure_code = u.failure_code, \
         failure_reason = u.failure_reason, failure_rail_code = u.failure_rail_code, \
         exception = u.exception, conflict = u.conflict, updated_at = $1";
    const HISTORY: &str = "INSERT INTO payment_transitions (payment_id, seq, from_state, \
         to_state, cause, at, client_id) SELECT h.id, COALESCE((SELECT MAX(t.seq) FROM \
         payment_transitions t WHERE t.payment_id = h.id), 0) + 1, h.from_state, \
         h.to_state, h.cause, $1, h.client FROM h WHERE true";
    if kind == Kind::Postgres {
        // One statement: the rows written by a data-modifying `WITH`, the history inserted
        // beside them (one round trip fewer per change, which is most of a callback's cost).
        let h = lines.cte_as(kind, "h", 11);
        crate::store::sql::query(&format!(
            "WITH {}, {h}, w AS (UPDATE payments SET {SET} FROM u WHERE payments.id = u.id{} \
             RETURNING payments.id) {HISTORY}",
            payments.cte(kind, 2),
            crate::store::sql::by_key(kind, "payments.id", 2)
        ))
        .bind(now)
        .bind_rows(kind, payments)
        .bind_rows(kind, lines)
        .execute(&mut *conn)
        .await?;
        return Ok(());
    }
    if !ps.is_empty() {
        for part in payments.parts(kind) {
            crate::store::sql::query(&format!(
                "WITH {} UPDATE payments SET {SET} FROM u WHERE payments.id = u.id{}",
                part.cte(kind, 2),
                crate::store::sql::by_key(kind, "payments.id", 2)
            ))
            .bind(now)
            .bind_rows(kind, part)
            .execute(&mut *conn)
            .await?;
        }
    }
    if !history.is_empty() {
        for part in lines.parts(kind) {
            let h = part.cte_as(kind, "h", 2);
            crate::store::sql::query(&format!("WITH {h} {HISTORY}"))
                .bind(now)
                .bind_rows(kind, part)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Stores a new payment in `received` and records its first transition.
pub(super) async fn insert(
    conn: &mut Conn,
    id: Uuid,
    client_id: Uuid,
    new: &NewPayment,
    rail: Option<&str>,
    payment_reference: Option<&str>,
    cause: &str,
) -> Result<()> {
    let now = now_micros();
    crate::store::sql::query(&format!(
        "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, NULL, NULL, NULL, NULL, NULL, NULL, NULL, $16, $17, $17)"
    ))
    .bind(id.to_string())
    .bind(client_id.to_string())
    .bind(new.direction.as_str())
    .bind(new.mode.map(mode_str))
    .bind(State::Received.as_str())
    .bind(&new.reference)
    .bind(new.amount.minor())
    .bind(new.amount.currency().code())
    .bind(new.party.id_type().as_str())
    .bind(new.party.id_value())
    .bind(new.party.name())
    .bind(new.narrative.as_deref())
    .bind(rail)
    .bind(serde_json::Value::Object(new.metadata.clone()).to_string())
    .bind(payment_reference)
    .bind(new.payroll_id.map(|p| p.to_string()))
    .bind(now)
    .execute(&mut *conn)
    .await?;
    record_transition(conn, client_id, id, None, State::Received, cause, now).await
}

/// Stores a new payment already routed (`queued`, or `pending` for an expected collection):
/// its row, both lines of its history, and (queued) its dispatch job, in three statements.
/// False when the client already has a payment with that reference (nothing is written).
pub(super) async fn insert_routed(conn: &mut Conn, p: &Payment) -> Result<bool> {
    let at = crate::store::to_micros(p.created_at);
    let inserted = crate::store::sql::query(&format!(
        "INSERT INTO payments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, NULL, NULL, NULL, NULL, NULL, NULL, NULL, $16, $17, $17) \
         ON CONFLICT DO NOTHING"
    ))
    .bind(p.id.to_string())
    .bind(p.client_id.to_string())
    .bind(p.direction.as_str())
    .bind(p.mode.map(mode_str))
    .bind(p.state.as_str())
    .bind(&p.reference)
    .bind(p.amount.minor())
    .bind(p.amount.currency().code())
    .bind(p.party.id_type().as_str())
    .bind(p.party.id_value())
    .bind(p.party.name())
    .bind(p.narrative.as_deref())
    .bind(p.rail.as_deref())
    .bind(serde_json::Value::Object(p.metadata.clone()).to_string())
    .bind(p.payment_reference.as_deref())
    .bind(p.payroll_id.map(|id| id.to_string()))
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(false);
    }
    let mut lines = p.history.iter();
    if let (Some(first), Some(second), None) = (lines.next(), lines.next(), lines.next()) {
        crate::store::sql::query(
            "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, \
             client_id) VALUES ($1, 1, NULL, $2, $3, $4, $9), ($1, 2, $5, $6, $7, $8, $9)",
        )
        .bind(p.id.to_string())
        .bind(first.to.as_str())
        .bind(&first.cause)
        .bind(crate::store::to_micros(first.at))
        .bind(second.from.map(State::as_str))
        .bind(second.to.as_str())
        .bind(&second.cause)
        .bind(crate::store::to_micros(second.at))
        .bind(p.client_id.to_string())
        .execute(&mut *conn)
        .await?;
    } else {
        return Err(StoreError::Corrupt(
            "a routed payment is created with two lines of history".into(),
        ));
    }
    if p.state == State::Queued {
        crate::store::jobs::insert(
            conn,
            crate::store::jobs::JobKind::Payment,
            Some(p.client_id),
            Some(p.id),
            None,
            at,
        )
        .await?;
    }
    Ok(true)
}

/// A new payment with its two lines of history (received, then routed).
type Created<'a> = (
    &'a Payment,
    &'a crate::domain::Transition,
    &'a crate::domain::Transition,
);

/// [`insert_routed`] for many payments at once: three statements whatever their number (the
/// payments, their two lines of history, their jobs), each over one [`Rows`] relation
/// (PostgreSQL: an array per column; SQLite: a `VALUES` list, cut in parts under its limit on
/// bound values). Returns, for each payment, whether it was stored (false: the client already
/// has a payment with that reference, or an earlier payment of the same call took it).
pub(super) async fn insert_routed_many(conn: &mut Conn, ps: &[&Payment]) -> Result<Vec<bool>> {
    if ps.len() < 2 {
        let mut out = Vec::with_capacity(ps.len());
        for p in ps {
            out.push(insert_routed(conn, p).await?);
        }
        return Ok(out);
    }
    let kind = conn.kind();
    let text = |f: &dyn Fn(&Payment) -> String| Col::Text(ps.iter().map(|p| Some(f(p))).collect());
    let opt = |f: &dyn Fn(&Payment) -> Option<String>| Col::Text(ps.iter().map(|p| f(p)).collect());
    let rows = Rows::new(vec![
        ("id", text(&|p| p.id.to_string())),
        ("client", text(&|p| p.client_id.to_string())),
        ("direction", text(&|p| p.direction.as_str().to_owned())),
        ("mode", opt(&|p| p.mode.map(|m| mode_str(m).to_owned()))),
        ("state", text(&|p| p.state.as_str().to_owned())),
        ("reference", text(&|p| p.reference.clone())),
        (
            "amount",
            Col::Int(ps.iter().map(|p| Some(p.amount.minor())).collect()),
        ),
        ("currency", text(&|p| p.amount.currency().code().to_owned())),
        (
            "party_type",
            text(&|p| p.party.id_type().as_str().to_owned()),
        ),
        ("party_value", text(&|p| p.party.id_value().to_owned())),
        ("party_name", opt(&|p| p.party.name().map(str::to_owned))),
        ("narrative", opt(&|p| p.narrative.clone())),
        ("rail", opt(&|p| p.rail.as_deref().map(str::to_owned))),
        (
            "metadata",
            text(&|p| serde_json::Value::Object(p.metadata.clone()).to_string()),
        ),
        ("payment_reference", opt(&|p| p.payment_reference.clone())),
        ("payroll", opt(&|p| p.payroll_id.map(|id| id.to_string()))),
        (
            "at",
            Col::Int(
                ps.iter()
                    .map(|p| Some(crate::store::to_micros(p.created_at)))
                    .collect(),
            ),
        ),
    ]);
    let mut inserted: std::collections::HashSet<String> = std::collections::HashSet::new();
    for part in rows.parts(kind) {
        let got: Vec<String> = crate::store::sql::query_scalar(&format!(
            "WITH {} INSERT INTO payments ({COLUMNS}) \
             SELECT u.id, u.client, u.direction, u.mode, u.state, u.reference, u.amount, \
             u.currency, u.party_type, u.party_value, u.party_name, u.narrative, u.rail, \
             u.metadata, u.payment_reference, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
             u.payroll, u.at, u.at FROM u WHERE true ON CONFLICT DO NOTHING RETURNING id",
            part.cte(kind, 1)
        ))
        .bind_rows(kind, part)
        .fetch_all(&mut *conn)
        .await?;
        inserted.extend(got);
    }
    let stored: Vec<&Payment> = ps
        .iter()
        .copied()
        .filter(|p| inserted.contains(&p.id.to_string()))
        .collect();
    if stored.is_empty() {
        return Ok(vec![false; ps.len()]);
    }
    let mut history: Vec<Created<'_>> = Vec::with_capacity(stored.len());
    for p in &stored {
        let mut lines = p.history.iter();
        match (lines.next(), lines.next(), lines.next()) {
            (Some(first), Some(second), None) => history.push((*p, first, second)),
            _ => {
                return Err(StoreError::Corrupt(
                    "a routed payment is created with two lines of history".into(),
                ))
            }
        }
    }
    let texts =
        |f: &dyn Fn(&Created<'_>) -> Option<String>| Col::Text(history.iter().map(f).collect());
    let ints =
        |f: &dyn Fn(&Created<'_>) -> i64| Col::Int(history.iter().map(|h| Some(f(h))).collect());
    let lines = Rows::new(vec![
        ("id", texts(&|(p, _, _)| Some(p.id.to_string()))),
        ("client", texts(&|(p, _, _)| Some(p.client_id.to_string()))),
        ("to1", texts(&|(_, f, _)| Some(f.to.as_str().to_owned()))),
        ("cause1", texts(&|(_, f, _)| Some(f.cause.clone()))),
        ("at1", ints(&|(_, f, _)| crate::store::to_micros(f.at))),
        (
            "from2",
            texts(&|(_, _, s)| s.from.map(|f| f.as_str().to_owned())),
        ),
        ("to2", texts(&|(_, _, s)| Some(s.to.as_str().to_owned()))),
        ("cause2", texts(&|(_, _, s)| Some(s.cause.clone()))),
        ("at2", ints(&|(_, _, s)| crate::store::to_micros(s.at))),
    ]);
    for part in lines.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, \
             cause, at, client_id) \
             SELECT id, 1, NULL, to1, cause1, at1, client FROM u \
             UNION ALL SELECT id, 2, from2, to2, cause2, at2, client FROM u",
            part.cte(kind, 1)
        ))
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    let queued: Vec<&Payment> = stored
        .iter()
        .copied()
        .filter(|p| p.state == State::Queued)
        .collect();
    if !queued.is_empty() {
        let jobs = Rows::new(vec![
            (
                "job",
                Col::Text(
                    queued
                        .iter()
                        .map(|_| Some(Uuid::now_v7().to_string()))
                        .collect(),
                ),
            ),
            (
                "id",
                Col::Text(queued.iter().map(|p| Some(p.id.to_string())).collect()),
            ),
            (
                "client",
                Col::Text(
                    queued
                        .iter()
                        .map(|p| Some(p.client_id.to_string()))
                        .collect(),
                ),
            ),
            (
                "at",
                Col::Int(
                    queued
                        .iter()
                        .map(|p| Some(crate::store::to_micros(p.created_at)))
                        .collect(),
                ),
            ),
        ]);
        let now = now_micros();
        for part in jobs.parts(kind) {
            crate::store::sql::query(&format!(
                "WITH {} INSERT INTO jobs (id, kind, payment_id, run_at, created_at, client_id) \
                 SELECT u.job, 'payment', u.id, u.at, $1, u.client FROM u",
                part.cte(kind, 2)
            ))
            .bind(now)
            .bind_rows(kind, part)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(ps
        .iter()
        .map(|p| inserted.contains(&p.id.to_string()))
        .collect())
}

async fn record_transition(
    conn: &mut Conn,
    client_id: Uuid,
    id: Uuid,
    from: Option<State>,
    to: State,
    cause: &str,
    at: i64,
) -> Result<()> {
    crate::store::sql::query(
        "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, \
         client_id) SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 \
         FROM payment_transitions WHERE payment_id = $1",
    )
    .bind(id.to_string())
    .bind(from.map(State::as_str))
    .bind(to.as_str())
    .bind(cause)
    .bind(at)
    .bind(client_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the rail money arrived on, for a payment no rail was chosen for.
pub(super) async fn set_rail_if_none(conn: &mut Conn, id: Uuid, rail: &str) -> Result<()> {
    crate::store::sql::query("UPDATE payments SET rail = COALESCE(rail, $1) WHERE id = $2")
        .bind(rail)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Releases up to `limit` held items: `received` → `queued`, their transitions and their
/// driving jobs, in multi-row statements. Returns the ids released (empty when none is
/// left). An item released meanwhile by another path (the openIMIS facade) is skipped.
pub(super) async fn release_chunk(
    conn: &mut Conn,
    payroll_id: Uuid,
    limit: i64,
    cause: &str,
) -> Result<Vec<Uuid>> {
    let ids: Vec<String> = crate::store::sql::query_scalar(
        "SELECT id FROM payments WHERE payroll_id = $1 AND state = 'received' LIMIT $2",
    )
    .bind(payroll_id.to_string())
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let now = now_micros();
    let mut released = Vec::with_capacity(ids.len());
    // PostgreSQL takes the whole list at once (arrays); SQLite a multi-row statement per chunk.
    let per_statement = match conn.kind() {
        Kind::Postgres => ids.len().max(1),
        Kind::Sqlite => INSERT_CHUNK,
    };
    for chunk in ids.chunks(per_statement) {
        released.extend(release_ids(conn, chunk, now, cause).await?);
    }
    released
        .iter()
        .map(|s| {
            Uuid::parse_str(s).map_err(|_| StoreError::Corrupt("payment id is not a UUID".into()))
        })
        .collect()
}

async fn release_ids(
    conn: &mut Conn,
    ids: &[String],
    now: i64,
    cause: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        // `state || ''` keeps both planners on the primary key: with an index on `state`
        // usable they walk every received row of the table instead.
        "UPDATE payments SET state = 'queued', updated_at = $1 WHERE {} \
         AND state || '' = 'received' RETURNING id, client_id",
        crate::store::sql::in_list(conn.kind(), "id", 2, ids.len())
    );
    let kind = conn.kind();
    let moved = crate::store::sql::query_as::<(String, String)>(&sql)
        .bind(now)
        .bind_list(kind, ids.to_vec())
        .fetch_all(&mut *conn)
        .await?;
    if moved.is_empty() {
        return Ok(Vec::new());
    }
    // A payment in `received` has exactly one transition, its creation: nothing leads back
    // to `received`. So the release is its second, and no read of the history is needed.
    if kind == Kind::Postgres {
        let (ids, clients): (Vec<String>, Vec<String>) = moved.into_iter().unzip();
        crate::store::sql::query(
            "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, \
             client_id) SELECT u.id, 2, 'received', 'queued', $1, $2, u.client \
             FROM UNNEST($3::text[], $4::text[]) AS u(id, client)",
        )
        .bind(cause)
        .bind(now)
        .bind(ids.clone())
        .bind(clients.clone())
        .execute(&mut *conn)
        .await?;
        let job_ids: Vec<String> = ids.iter().map(|_| Uuid::now_v7().to_string()).collect();
        crate::store::sql::query(
            "INSERT INTO jobs (id, kind, payment_id, run_at, created_at, client_id) \
             SELECT u.job, 'payment', u.id, $1, $1, u.client \
             FROM UNNEST($2::text[], $3::text[], $4::text[]) AS u(job, id, client) \
             ON CONFLICT DO NOTHING",
        )
        .bind(now)
        .bind(job_ids)
        .bind(ids.clone())
        .bind(clients)
        .execute(&mut *conn)
        .await?;
        return Ok(ids);
    }
    let rows: Vec<String> = (0..moved.len())
        .map(|i| {
            let k = i.saturating_mul(2).saturating_add(3);
            format!(
                "(${k}, 2, 'received', 'queued', $1, $2, ${})",
                k.saturating_add(1)
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, \
         client_id) VALUES {}",
        rows.join(", ")
    );
    let mut q = crate::store::sql::query(&sql).bind(cause).bind(now);
    for (id, client) in &moved {
        q = q.bind(id.as_str()).bind(client.as_str());
    }
    q.execute(&mut *conn).await?;
    let rows: Vec<String> = (0..moved.len())
        .map(|i| {
            let k = i.saturating_mul(3).saturating_add(2);
            format!(
                "(${k}, 'payment', ${}, $1, $1, ${})",
                k.saturating_add(1),
                k.saturating_add(2)
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO jobs (id, kind, payment_id, run_at, created_at, client_id) VALUES {} \
         ON CONFLICT DO NOTHING",
        rows.join(", ")
    );
    let mut q = crate::store::sql::query(&sql).bind(now);
    for (id, client) in &moved {
        q = q
            .bind(Uuid::now_v7().to_string())
            .bind(id.as_str())
            .bind(client.as_str());
    }
    q.execute(conn).await?;
    Ok(moved.into_iter().map(|(id, _)| id).collect())
}

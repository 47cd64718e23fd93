//! Payments and their history.

use super::{col, from_micros, now_micros, uuid_col, Db, Kind, Result, StoreError};
use crate::domain::{
    self, CollectionMode, Currency, Direction, Event, Failure, FailureCode, Money, NewPayment,
    Party, PartyIdType, Payment, State, Transition,
};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use uuid::Uuid;

pub(crate) const COLUMNS: &str =
    "id, client_id, direction, mode, state, reference, amount_minor, currency, \
    party_type, party_value, party_name, narrative, rail, metadata, payment_reference, \
    failure_code, failure_reason, failure_rail_code, receipt, rail_reference, exception, \
    conflict, payroll_id, created_at, updated_at";

/// Stores a new payment in `received` and records its first transition.
pub async fn insert(
    conn: &mut AnyConnection,
    id: Uuid,
    client_id: Uuid,
    new: &NewPayment,
    rail: Option<&str>,
    payment_reference: Option<&str>,
    cause: &str,
) -> Result<()> {
    let now = now_micros();
    sqlx::query(&format!(
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
    record_transition(conn, id, None, State::Received, cause, now).await
}

async fn record_transition(
    conn: &mut AnyConnection,
    id: Uuid,
    from: Option<State>,
    to: State,
    cause: &str,
    at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at) \
         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM payment_transitions \
         WHERE payment_id = $1",
    )
    .bind(id.to_string())
    .bind(from.map(State::as_str))
    .bind(to.as_str())
    .bind(cause)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The outcome of asking the state machine inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The state changed (or stayed, for a self-transition such as a resend).
    To { from: State, to: State },
    /// The machine refused: the payment is in `held`.
    Refused { held: State },
}

/// Applies `event` to the payment inside the caller's transaction, recording the transition.
/// The row is locked first on PostgreSQL, so two workers cannot both move it.
pub async fn transition(
    conn: &mut AnyConnection,
    kind: Kind,
    id: Uuid,
    event: Event,
    cause: &str,
) -> Result<Moved> {
    let held = lock_state(conn, kind, id).await?;
    match domain::state::next(held, event) {
        Err(_) => Ok(Moved::Refused { held }),
        Ok(to) => {
            let now = now_micros();
            sqlx::query("UPDATE payments SET state = $1, updated_at = $2 WHERE id = $3")
                .bind(to.as_str())
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
            if to != held {
                record_transition(conn, id, Some(held), to, cause, now).await?;
            }
            Ok(Moved::To { from: held, to })
        }
    }
}

/// Reads the payment's state, taking its row lock on PostgreSQL.
pub async fn lock_state(conn: &mut AnyConnection, kind: Kind, id: Uuid) -> Result<State> {
    let sql = match kind {
        Kind::Postgres => "SELECT state FROM payments WHERE id = $1 FOR UPDATE",
        Kind::Sqlite => "SELECT state FROM payments WHERE id = $1",
    };
    let s: String = sqlx::query_scalar(sql)
        .bind(id.to_string())
        .fetch_one(conn)
        .await?;
    State::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("state {s}")))
}

/// `lock_state`, with the payment's amount (what a rail's report is compared with).
pub async fn lock_state_and_amount(
    conn: &mut AnyConnection,
    kind: Kind,
    id: Uuid,
) -> Result<(State, Money)> {
    let sql = match kind {
        Kind::Postgres => {
            "SELECT state, amount_minor, currency FROM payments WHERE id = $1 FOR UPDATE"
        }
        Kind::Sqlite => "SELECT state, amount_minor, currency FROM payments WHERE id = $1",
    };
    let row = sqlx::query(sql)
        .bind(id.to_string())
        .fetch_one(conn)
        .await?;
    let s: String = col(&row, "state")?;
    let state = State::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("state {s}")))?;
    let currency: String = col(&row, "currency")?;
    let currency: Currency = currency.parse().map_err(|_| corrupt("currency"))?;
    let amount =
        Money::from_minor(col(&row, "amount_minor")?, currency).map_err(|_| corrupt("amount"))?;
    Ok((state, amount))
}

pub async fn set_failure(conn: &mut AnyConnection, id: Uuid, f: &Failure) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET failure_code = $1, failure_reason = $2, failure_rail_code = $3 \
         WHERE id = $4",
    )
    .bind(f.code.as_str())
    .bind(&f.reason)
    .bind(f.rail_code.as_deref())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_rail(
    conn: &mut AnyConnection,
    id: Uuid,
    rail_reference: Option<&str>,
    receipt: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET rail_reference = COALESCE($1, rail_reference), \
         receipt = COALESCE($2, receipt) WHERE id = $3",
    )
    .bind(rail_reference)
    .bind(receipt)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_exception(conn: &mut AnyConnection, id: Uuid, why: &str) -> Result<()> {
    sqlx::query("UPDATE payments SET exception = $1, updated_at = $2 WHERE id = $3")
        .bind(why)
        .bind(now_micros())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Clears the payment's exception once a final answer settled it, noting the exception on
/// the latest transition (the one that settled it) so the history keeps it.
pub async fn clear_exception(conn: &mut AnyConnection, id: Uuid, why: &str) -> Result<()> {
    sqlx::query("UPDATE payments SET exception = NULL, updated_at = $1 WHERE id = $2")
        .bind(now_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE payment_transitions SET cause = cause || $1 WHERE payment_id = $2 AND seq = \
         (SELECT MAX(seq) FROM payment_transitions WHERE payment_id = $2)",
    )
    .bind(format!(" (settles the exception: {why})"))
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the rail contradicted what we hold (a reconciliation break later).
pub async fn record_conflict(
    conn: &mut AnyConnection,
    id: Uuid,
    held: State,
    claimed: &str,
    source: &str,
    detail: Option<&str>,
) -> Result<()> {
    let summary = format!("rail reported {claimed} while the payment is {held}");
    record_conflict_noting(conn, id, held, claimed, source, detail, &summary).await
}

/// `record_conflict`, with the payment's note written out by the caller (where the state
/// alone does not say what the rail contradicted, e.g. another amount).
pub async fn record_conflict_noting(
    conn: &mut AnyConnection,
    id: Uuid,
    held: State,
    claimed: &str,
    source: &str,
    detail: Option<&str>,
    summary: &str,
) -> Result<()> {
    let now = now_micros();
    sqlx::query(
        "INSERT INTO conflicts (id, payment_id, held_state, claimed, source, detail, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(id.to_string())
    .bind(held.as_str())
    .bind(claimed)
    .bind(source)
    .bind(detail)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE payments SET conflict = $1, updated_at = $2 WHERE id = $3")
        .bind(summary)
        .bind(now)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The payment with that reference for the client and direction, if any.
pub async fn find_by_reference(
    db: &Db,
    client_id: Uuid,
    direction: Direction,
    reference: &str,
) -> Result<Option<Uuid>> {
    let row = sqlx::query(
        "SELECT id FROM payments WHERE client_id = $1 AND direction = $2 AND reference = $3",
    )
    .bind(client_id.to_string())
    .bind(direction.as_str())
    .bind(reference)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| uuid_col(&r, "id")).transpose()
}

/// The payment a reference was issued for, if money for it may come by `rail`: one with no
/// rail chosen yet, or this one (another rail's payment is not this rail's to settle).
pub async fn find_by_payment_reference(
    conn: &mut AnyConnection,
    payment_reference: &str,
    rail: &str,
) -> Result<Option<Uuid>> {
    let row = sqlx::query(
        "SELECT id FROM payments WHERE payment_reference = $1 AND (rail IS NULL OR rail = $2)",
    )
    .bind(payment_reference)
    .bind(rail)
    .fetch_optional(conn)
    .await?;
    row.map(|r| uuid_col(&r, "id")).transpose()
}

/// One payment with its history; `client_id` None means any client (internal use).
pub async fn get(db: &Db, client_id: Option<Uuid>, id: Uuid) -> Result<Option<Payment>> {
    let mut conn = db.pool().acquire().await?;
    get_in(&mut conn, client_id, id).await
}

pub async fn get_in(
    conn: &mut AnyConnection,
    client_id: Option<Uuid>,
    id: Uuid,
) -> Result<Option<Payment>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut p = from_row(&row)?;
    if client_id.is_some_and(|c| c != p.client_id) {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT from_state, to_state, cause, at FROM payment_transitions WHERE payment_id = $1 \
         ORDER BY seq",
    )
    .bind(id.to_string())
    .fetch_all(conn)
    .await?;
    p.history = rows
        .iter()
        .map(|r| {
            let from: Option<String> = col(r, "from_state")?;
            let to: String = col(r, "to_state")?;
            Ok(Transition {
                from: from.as_deref().and_then(State::parse),
                to: State::parse(&to).ok_or_else(|| StoreError::Corrupt(to.clone()))?,
                cause: col(r, "cause")?,
                at: from_micros(col(r, "at")?),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some(p))
}

/// One payment without its history, inside a transaction (what the ledger and events need).
pub async fn get_bare(conn: &mut AnyConnection, id: Uuid) -> Result<Payment> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id.to_string())
        .fetch_one(conn)
        .await?;
    from_row(&row)
}

/// Records the rail money arrived on, for a payment no rail was chosen for.
pub async fn set_rail_if_none(conn: &mut AnyConnection, id: Uuid, rail: &str) -> Result<()> {
    sqlx::query("UPDATE payments SET rail = COALESCE(rail, $1) WHERE id = $2")
        .bind(rail)
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub reference: Option<String>,
    pub state: Option<State>,
    pub direction: Option<Direction>,
    pub rail: Option<String>,
    pub payroll_id: Option<uuid::Uuid>,
    /// Only payments whose id sorts after this one (ids are UUIDv7: creation order).
    pub after: Option<Uuid>,
    pub limit: i64,
}

/// A page of a client's payments in creation order (without histories).
pub async fn list(db: &Db, client_id: Uuid, f: &Filter) -> Result<Vec<Payment>> {
    let mut sql = format!("SELECT {COLUMNS} FROM payments WHERE client_id = $1");
    let mut binds: Vec<String> = vec![client_id.to_string()];
    let mut add = |clause: &str, v: String, sql: &mut String| {
        binds.push(v);
        sql.push_str(&format!(" AND {clause} ${}", binds.len()));
    };
    if let Some(r) = &f.reference {
        add("reference =", r.clone(), &mut sql);
    }
    if let Some(s) = f.state {
        add("state =", s.as_str().to_owned(), &mut sql);
    }
    if let Some(d) = f.direction {
        add("direction =", d.as_str().to_owned(), &mut sql);
    }
    if let Some(r) = &f.rail {
        add("rail =", r.clone(), &mut sql);
    }
    if let Some(p) = f.payroll_id {
        add("payroll_id =", p.to_string(), &mut sql);
    }
    if let Some(a) = f.after {
        add("id >", a.to_string(), &mut sql);
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", f.limit.clamp(1, 500)));
    let mut q = sqlx::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

pub fn mode_str(m: CollectionMode) -> &'static str {
    match m {
        CollectionMode::RequestToPay => "request_to_pay",
        CollectionMode::Expected => "expected",
    }
}

fn parse_mode(s: &str) -> Option<CollectionMode> {
    match s {
        "request_to_pay" => Some(CollectionMode::RequestToPay),
        "expected" => Some(CollectionMode::Expected),
        _ => None,
    }
}

pub fn parse_failure_code(s: &str) -> Option<FailureCode> {
    use FailureCode as F;
    [
        F::InsufficientFunds,
        F::PartyNotFound,
        F::Declined,
        F::LimitExceeded,
        F::Expired,
        F::InvalidRequest,
        F::RailUnavailable,
        F::RailRejected,
        F::Duplicate,
        F::Cancelled,
        F::Returned,
    ]
    .into_iter()
    .find(|c| c.as_str() == s)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn from_row(row: &AnyRow) -> Result<Payment> {
    let direction: String = col(row, "direction")?;
    let mode: Option<String> = col(row, "mode")?;
    let state: String = col(row, "state")?;
    let currency: String = col(row, "currency")?;
    let currency: Currency = currency.parse().map_err(|_| corrupt("currency"))?;
    let amount =
        Money::from_minor(col(row, "amount_minor")?, currency).map_err(|_| corrupt("amount"))?;
    let party_type: String = col(row, "party_type")?;
    let party_value: String = col(row, "party_value")?;
    let party_name: Option<String> = col(row, "party_name")?;
    let party = Party::new(
        PartyIdType::parse(&party_type).ok_or_else(|| corrupt("party_type"))?,
        &party_value,
        party_name.as_deref(),
    )
    .map_err(|_| corrupt("party"))?;
    let metadata: String = col(row, "metadata")?;
    let metadata = match serde_json::from_str(&metadata) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(corrupt("metadata")),
    };
    let failure_code: Option<String> = col(row, "failure_code")?;
    let failure = match failure_code {
        Some(code) => Some(Failure {
            code: parse_failure_code(&code).ok_or_else(|| corrupt("failure_code"))?,
            reason: col::<Option<String>>(row, "failure_reason")?.unwrap_or_default(),
            rail_code: col(row, "failure_rail_code")?,
        }),
        None => None,
    };
    let payroll: Option<String> = col(row, "payroll_id")?;
    Ok(Payment {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction"))?,
        mode: mode.as_deref().and_then(parse_mode),
        state: State::parse(&state).ok_or_else(|| corrupt("state"))?,
        reference: col(row, "reference")?,
        amount,
        party,
        narrative: col(row, "narrative")?,
        rail: col(row, "rail")?,
        metadata,
        payment_reference: col(row, "payment_reference")?,
        failure,
        receipt: col(row, "receipt")?,
        rail_reference: col(row, "rail_reference")?,
        exception: col(row, "exception")?,
        conflict: col(row, "conflict")?,
        payroll_id: payroll.as_deref().and_then(|p| Uuid::parse_str(p).ok()),
        created_at: from_micros(col(row, "created_at")?),
        updated_at: from_micros(col(row, "updated_at")?),
        history: Vec::new(),
    })
}

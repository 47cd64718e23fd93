//! Payments and their history.

use super::{col, from_micros, uuid_col, Db, Kind, Result, StoreError};
use crate::domain::{
    CollectionMode, Currency, Direction, Failure, FailureCode, Money, Party, PartyIdType, Payment,
    State, Transition,
};
use crate::store::Conn;
use crate::store::Row;
use uuid::Uuid;

pub(crate) const COLUMNS: &str =
    "id, client_id, direction, mode, state, reference, amount_minor, currency, \
    party_type, party_value, party_name, narrative, rail, metadata, payment_reference, \
    failure_code, failure_reason, failure_rail_code, receipt, rail_reference, exception, \
    conflict, payroll_id, created_at, updated_at";

/// Reads the payment's state, taking its row lock on PostgreSQL.
pub async fn lock_state(conn: &mut Conn, kind: Kind, id: Uuid) -> Result<State> {
    let sql = match kind {
        Kind::Postgres => "SELECT state FROM payments WHERE id = $1 FOR UPDATE",
        Kind::Sqlite => "SELECT state FROM payments WHERE id = $1",
    };
    let s: String = crate::store::sql::query_scalar(sql)
        .bind(id.to_string())
        .fetch_one(conn)
        .await?;
    State::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("state {s}")))
}

/// The payment with that reference for the client and direction, if any.
pub async fn find_by_reference(
    db: &Db,
    client_id: Uuid,
    direction: Direction,
    reference: &str,
) -> Result<Option<Uuid>> {
    let mut conn = db.pool().acquire().await?;
    find_by_reference_in(&mut conn, client_id, direction, reference).await
}

/// `find_by_reference`, inside the caller's transaction.
pub async fn find_by_reference_in(
    conn: &mut Conn,
    client_id: Uuid,
    direction: Direction,
    reference: &str,
) -> Result<Option<Uuid>> {
    let row = crate::store::sql::query(
        "SELECT id FROM payments WHERE client_id = $1 AND direction = $2 AND reference = $3",
    )
    .bind(client_id.to_string())
    .bind(direction.as_str())
    .bind(reference)
    .fetch_optional(conn)
    .await?;
    row.map(|r| uuid_col(&r, "id")).transpose()
}

/// The payment a reference was issued for (its client and id), if money for it may come by
/// `rail`: one with no rail chosen yet, or this one (another rail's payment is not this
/// rail's to settle).
pub async fn find_by_payment_reference(
    conn: &mut Conn,
    payment_reference: &str,
    rail: &str,
) -> Result<Option<(Uuid, Uuid)>> {
    let row = crate::store::sql::query(
        "SELECT client_id, id FROM payments WHERE payment_reference = $1 \
         AND (rail IS NULL OR rail = $2)",
    )
    .bind(payment_reference)
    .bind(rail)
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((uuid_col(&r, "client_id")?, uuid_col(&r, "id")?)))
        .transpose()
}

/// One payment with its history; `client_id` None means any client (internal use).
pub async fn get(db: &Db, client_id: Option<Uuid>, id: Uuid) -> Result<Option<Payment>> {
    let mut conn = db.pool().acquire().await?;
    get_in(&mut conn, client_id, id).await
}

/// The payment's row alone, without its history: what deciding, sending or checking a
/// callback needs (one statement; [`get_in`] reads the history too).
pub async fn row_in(conn: &mut Conn, id: Uuid) -> Result<Option<Payment>> {
    let row = crate::store::sql::query(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// [`row_in`] on a connection of the pool.
pub async fn row(db: &Db, id: Uuid) -> Result<Option<Payment>> {
    let mut conn = db.pool().acquire().await?;
    row_in(&mut conn, id).await
}

pub async fn get_in(conn: &mut Conn, client_id: Option<Uuid>, id: Uuid) -> Result<Option<Payment>> {
    let Some(mut p) = row_in(conn, id).await? else {
        return Ok(None);
    };
    if client_id.is_some_and(|c| c != p.client_id) {
        return Ok(None);
    }
    let rows = crate::store::sql::query(
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
pub async fn get_bare(conn: &mut Conn, id: Uuid) -> Result<Payment> {
    let row = crate::store::sql::query(&format!("SELECT {COLUMNS} FROM payments WHERE id = $1"))
        .bind(id.to_string())
        .fetch_one(conn)
        .await?;
    from_row(&row)
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
    let mut q = crate::store::sql::query(&sql);
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

pub(crate) fn from_row(row: &Row) -> Result<Payment> {
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

/// The payments with these ids (without histories), in one statement per hundred ids.
pub async fn get_many(
    conn: &mut Conn,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, Payment>> {
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(100) {
        let kind = conn.kind();
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE {}",
            crate::store::sql::in_list(kind, "id", 1, chunk.len())
        );
        let q = crate::store::sql::query(&sql)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>());
        for row in q.fetch_all(&mut *conn).await? {
            let p = from_row(&row)?;
            found.insert(p.id, p);
        }
    }
    Ok(found)
}

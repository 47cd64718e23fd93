//! Payrolls: a payroll row, and its items stored as payments with `payroll_id` set.
//!
//! Items go in with multi-row statements (one round trip per few hundred rows) and are
//! released the same way, so a file of 100,000 lines costs a few hundred statements rather
//! than several hundred thousand.

use super::{col, from_micros, now_micros, uuid_col, Db, Result, StoreError};
use crate::domain::{Direction, Money, NewPayment, PartyIdType, State};
use crate::store::Conn;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// Rows per multi-row statement on SQLite (PostgreSQL binds arrays instead). Chosen when
/// SQLite bound `$n` parameters by name at a cost growing with their square; statements of
/// many arguments now go to SQLite with anonymous marks (`store::sql`), so this is a bound
/// on a statement's size, no longer on its binding cost.
pub const INSERT_CHUNK: usize = 100;

/// Where a payroll is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Items are being stored; nothing of it may be released or paid yet.
    Importing,
    /// Stored and waiting: items stay `received` until released (all at once or one by one).
    Held,
    /// Every item was handed to the dispatcher.
    Released,
    /// Released, then held again by an operator: items not yet taken by the dispatcher wait
    /// (and items not yet released stay held) until it is released once more.
    Paused,
    /// Every item reached a final state.
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Importing => "importing",
            Status::Held => "held",
            Status::Released => "released",
            Status::Paused => "paused",
            Status::Completed => "completed",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Importing,
            Status::Held,
            Status::Released,
            Status::Paused,
            Status::Completed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct Payroll {
    pub id: Uuid,
    pub client_id: Uuid,
    pub name: String,
    pub status: Status,
    pub source: String,
    pub item_count: i64,
    pub created_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// The states of an item that is still open (the rest are final).
const OPEN_STATES: &str = "('received', 'queued', 'submitted', 'pending', 'unknown')";

pub async fn create(
    conn: &mut Conn,
    id: Uuid,
    client_id: Uuid,
    name: &str,
    source: &str,
    item_count: i64,
) -> Result<()> {
    crate::store::sql::query(
        "INSERT INTO payrolls (id, client_id, name, status, source, item_count, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id.to_string())
    .bind(client_id.to_string())
    .bind(name)
    .bind(Status::Importing.as_str())
    .bind(source)
    .bind(item_count)
    .bind(now_micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the payroll from `from` to `to`; false when it was not in `from`.
pub async fn set_status(conn: &mut Conn, id: Uuid, from: Status, to: Status) -> Result<bool> {
    let now = now_micros();
    let done = crate::store::sql::query(
        "UPDATE payrolls SET status = $1, \
         released_at = CASE WHEN $1 = 'released' THEN $2 ELSE released_at END, \
         completed_at = CASE WHEN $1 = 'completed' THEN $2 ELSE completed_at END \
         WHERE id = $3 AND status = $4",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(id.to_string())
    .bind(from.as_str())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// One validated payroll line, compact: a payroll of a million lines is held in memory
/// between validation and storage, so each line keeps only what its row needs.
#[derive(Debug, Clone)]
pub struct NewItem {
    pub id: Uuid,
    /// The file's line (CSV) or item position (JSON), for reports.
    pub line: u64,
    pub reference: Box<str>,
    pub amount: Money,
    pub party_type: PartyIdType,
    pub party_value: Box<str>,
    pub party_name: Option<Box<str>>,
    pub narrative: Option<Box<str>>,
    /// The metadata as stored (JSON text).
    pub metadata: Box<str>,
    pub rail: Arc<str>,
}

impl NewItem {
    /// Keeps what the row of a validated disbursement needs; the id is chosen here (UUIDv7,
    /// so items list in file order).
    pub fn new(line: u64, p: NewPayment, rail: Arc<str>) -> NewItem {
        NewItem {
            id: Uuid::now_v7(),
            line,
            reference: p.reference.into_boxed_str(),
            amount: p.amount,
            party_type: p.party.id_type(),
            party_value: p.party.id_value().into(),
            party_name: p.party.name().map(Into::into),
            narrative: p.narrative.map(String::into_boxed_str),
            metadata: serde_json::Value::Object(p.metadata)
                .to_string()
                .into_boxed_str(),
            rail,
        }
    }
}

/// Stores disbursement items in `received`, with their first transition: on PostgreSQL as two
/// statements whatever their number (`UNNEST` of one array per column), on SQLite as two
/// multi-row statements per `INSERT_CHUNK` items.
pub async fn insert_items(
    conn: &mut Conn,
    client_id: Uuid,
    payroll_id: Uuid,
    items: &[NewItem],
    cause: &str,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    if conn.kind() == super::Kind::Sqlite {
        for chunk in items.chunks(INSERT_CHUNK) {
            insert_chunk(conn, client_id, payroll_id, chunk, cause).await?;
        }
        return Ok(());
    }
    let now = now_micros();
    let ids: Vec<String> = items.iter().map(|it| it.id.to_string()).collect();
    let text = |f: fn(&NewItem) -> &str| {
        items
            .iter()
            .map(|it| f(it).to_owned())
            .collect::<Vec<String>>()
    };
    let opt = |f: fn(&NewItem) -> Option<&str>| {
        items
            .iter()
            .map(|it| f(it).map(str::to_owned))
            .collect::<Vec<Option<String>>>()
    };
    crate::store::sql::query(
        "INSERT INTO payments (id, client_id, direction, state, reference, amount_minor, currency, \
         party_type, party_value, party_name, narrative, rail, metadata, payroll_id, created_at, \
         updated_at) \
         SELECT u.id, $1, $2, $3, u.reference, u.amount, u.currency, u.party_type, u.party_value, \
         u.party_name, u.narrative, u.rail, u.metadata, $4, $5, $5 \
         FROM UNNEST($6::text[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], \
         $12::text[], $13::text[], $14::text[], $15::text[]) \
         AS u(id, reference, amount, currency, party_type, party_value, party_name, narrative, \
         rail, metadata)",
    )
    .bind(client_id.to_string())
    .bind(Direction::Disbursement.as_str())
    .bind(State::Received.as_str())
    .bind(payroll_id.to_string())
    .bind(now)
    .bind(ids.clone())
    .bind(text(|it| &it.reference))
    .bind(items.iter().map(|it| it.amount.minor()).collect::<Vec<i64>>())
    .bind(text(|it| it.amount.currency().code()))
    .bind(text(|it| it.party_type.as_str()))
    .bind(text(|it| &it.party_value))
    .bind(opt(|it| it.party_name.as_deref()))
    .bind(opt(|it| it.narrative.as_deref()))
    .bind(text(|it| &it.rail))
    .bind(text(|it| &it.metadata))
    .execute(&mut *conn)
    .await?;
    crate::store::sql::query(
        "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, \
         client_id) SELECT u.id, 1, NULL, $1, $2, $3, $4 FROM UNNEST($5::text[]) AS u(id)",
    )
    .bind(State::Received.as_str())
    .bind(cause)
    .bind(now)
    .bind(client_id.to_string())
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// SQLite: one chunk of items (`INSERT_CHUNK` at most) as two multi-row statements.
async fn insert_chunk(
    conn: &mut Conn,
    client_id: Uuid,
    payroll_id: Uuid,
    items: &[NewItem],
    cause: &str,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = now_micros();
    // $1..$5 are shared by every row; each row binds 10 values of its own.
    let mut sql = String::from(
        "INSERT INTO payments (id, client_id, direction, state, reference, amount_minor, currency, \
         party_type, party_value, party_name, narrative, rail, metadata, payroll_id, created_at, \
         updated_at) VALUES ",
    );
    let mut n = 5usize;
    for i in 0..items.len() {
        if i > 0 {
            sql.push(',');
        }
        let p: Vec<String> = (1..=10)
            .map(|k| format!("${}", n.saturating_add(k)))
            .collect();
        sql.push_str(&format!(
            "({}, $1, $2, $3, {}, $4, $5, $5)",
            p.first().map_or("", String::as_str),
            p.get(1..).map(|s| s.join(", ")).unwrap_or_default()
        ));
        n = n.saturating_add(10);
    }
    let mut q = crate::store::sql::query(&sql)
        .bind(client_id.to_string())
        .bind(Direction::Disbursement.as_str())
        .bind(State::Received.as_str())
        .bind(payroll_id.to_string())
        .bind(now);
    for it in items {
        q = q
            .bind(it.id.to_string())
            .bind(&*it.reference)
            .bind(it.amount.minor())
            .bind(it.amount.currency().code())
            .bind(it.party_type.as_str())
            .bind(&*it.party_value)
            .bind(it.party_name.as_deref())
            .bind(it.narrative.as_deref())
            .bind(&*it.rail)
            .bind(&*it.metadata);
    }
    q.execute(&mut *conn).await?;

    let mut sql = String::from(
        "INSERT INTO payment_transitions (payment_id, seq, from_state, to_state, cause, at, \
         client_id) VALUES ",
    );
    for i in 0..items.len() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, 1, NULL, $1, $2, $3, $4)",
            i.saturating_add(5)
        ));
    }
    let mut q = crate::store::sql::query(&sql)
        .bind(State::Received.as_str())
        .bind(cause)
        .bind(now)
        .bind(client_id.to_string());
    for it in items {
        q = q.bind(it.id.to_string());
    }
    q.execute(conn).await?;
    Ok(())
}

/// Which of `references` the client already used for disbursements.
pub async fn existing_references(
    db: &Db,
    client_id: Uuid,
    references: &[&str],
) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for chunk in references.chunks(INSERT_CHUNK.saturating_mul(5)) {
        let sql = format!(
            "SELECT reference FROM payments WHERE client_id = $1 AND direction = 'disbursement' \
             AND {}",
            crate::store::sql::in_list(db.kind(), "reference", 2, chunk.len())
        );
        let q = crate::store::sql::query_scalar::<String>(&sql)
            .bind(client_id.to_string())
            .bind_list(
                db.kind(),
                chunk.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>(),
            );
        found.extend(q.fetch_all(db.pool()).await?);
    }
    Ok(found)
}

/// Removes a payroll whose import failed half-way, with whatever of its items was stored.
pub async fn discard(db: &Db, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    // A payment a reconciliation run settled stays (what the foreign key from settlements to
    // payments refused before migration 0018).
    let settled: i64 = crate::store::sql::query_scalar(
        "SELECT COUNT(*) FROM recon_settlements s JOIN payments p ON p.id = s.payment_id \
         WHERE p.payroll_id = $1",
    )
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    if settled > 0 {
        return Err(StoreError::Corrupt(format!(
            "payroll {id} has {settled} settled payments and cannot be discarded"
        )));
    }
    crate::store::sql::query(
        "DELETE FROM payment_transitions WHERE payment_id IN \
         (SELECT id FROM payments WHERE payroll_id = $1)",
    )
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    crate::store::sql::query("DELETE FROM payments WHERE payroll_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    crate::store::sql::query("DELETE FROM payrolls WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

fn from_row(row: &crate::store::Row) -> Result<Payroll> {
    let status: String = col(row, "status")?;
    Ok(Payroll {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        name: col(row, "name")?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("payroll status {status}")))?,
        source: col(row, "source")?,
        item_count: col(row, "item_count")?,
        created_at: from_micros(col(row, "created_at")?),
        released_at: col::<Option<i64>>(row, "released_at")?.map(from_micros),
        completed_at: col::<Option<i64>>(row, "completed_at")?.map(from_micros),
    })
}

const COLUMNS: &str =
    "id, client_id, name, status, source, item_count, created_at, released_at, completed_at";

/// The payroll, if it belongs to the client (`None` = any client).
pub async fn get(db: &Db, client_id: Option<Uuid>, id: Uuid) -> Result<Option<Payroll>> {
    let mut conn = db.pool().acquire().await?;
    get_in(&mut conn, client_id, id).await
}

pub async fn get_in(conn: &mut Conn, client_id: Option<Uuid>, id: Uuid) -> Result<Option<Payroll>> {
    let row = crate::store::sql::query(&format!("SELECT {COLUMNS} FROM payrolls WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let p = from_row(&row)?;
    Ok((client_id.is_none_or(|c| c == p.client_id)).then_some(p))
}

/// Count and total of the items in one state and currency, and how many of them wait for an
/// operator (unknown past their deadline) or were contradicted by their rail.
#[derive(Debug, Clone)]
pub struct StateCount {
    pub state: State,
    pub currency: String,
    pub count: i64,
    pub total_minor: i64,
    pub exceptions: i64,
    pub conflicts: i64,
}

pub async fn counts(db: &Db, id: Uuid) -> Result<Vec<StateCount>> {
    let mut conn = db.pool().acquire().await?;
    counts_in(&mut conn, id).await
}

/// One pass over the payroll's items (a million-item payroll's pass takes seconds, so the
/// exceptions and conflicts are counted in the same one).
pub async fn counts_in(conn: &mut Conn, id: Uuid) -> Result<Vec<StateCount>> {
    let rows = crate::store::sql::query(
        "SELECT state, currency, COUNT(*) AS n, CAST(SUM(amount_minor) AS BIGINT) AS total, \
         COUNT(exception) AS exceptions, COUNT(conflict) AS conflicts \
         FROM payments WHERE payroll_id = $1 GROUP BY state, currency ORDER BY state, currency",
    )
    .bind(id.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = col(r, "state")?;
            Ok(StateCount {
                state: State::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?,
                currency: col(r, "currency")?,
                count: col(r, "n")?,
                total_minor: col(r, "total")?,
                exceptions: col(r, "exceptions")?,
                conflicts: col(r, "conflicts")?,
            })
        })
        .collect()
}

/// Marks the payroll completed when no item is open any more; true when this call did it.
///
/// On PostgreSQL the payroll row is locked before the last look: two items finishing in two
/// transactions at once would otherwise each still see the other open, and neither would
/// complete it. That lock is held to the commit, so taking it in every transaction that
/// finishes items would make all of a payroll's finishing transactions pass one at a time.
/// It is taken only when no open item is left that no other transaction is changing
/// ([`untouched_open_item`]): while there is one, this transaction holds it, and the one
/// that finishes it will look again after this one's commit.
pub async fn complete_if_done(conn: &mut Conn, payroll_id: Uuid) -> Result<bool> {
    let lock = if conn.kind() == super::Kind::Postgres {
        if untouched_open_item(conn, payroll_id).await? {
            return Ok(false);
        }
        " FOR UPDATE"
    } else {
        // SQLite has one writer: nothing finishes items beside this transaction.
        ""
    };
    let status: Option<String> = crate::store::sql::query_scalar(&format!(
        "SELECT status FROM payrolls WHERE id = $1{lock}"
    ))
    .bind(payroll_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    match status.as_deref().and_then(Status::parse) {
        Some(Status::Held | Status::Released | Status::Paused) => {}
        Some(Status::Importing | Status::Completed) | None => return Ok(false),
    }
    let open: Option<String> = crate::store::sql::query_scalar(&format!(
        "SELECT id FROM payments WHERE payroll_id = $1 AND state IN {OPEN_STATES} LIMIT 1"
    ))
    .bind(payroll_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    if open.is_some() {
        return Ok(false);
    }
    let now = now_micros();
    let done = crate::store::sql::query(
        "UPDATE payrolls SET status = 'completed', completed_at = $1 \
         WHERE id = $2 AND status IN ('held', 'released', 'paused')",
    )
    .bind(now)
    .bind(payroll_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the payroll has an open item that no other transaction is changing, which this
/// one then holds (PostgreSQL): when there is one, the payroll cannot be done, and whoever
/// finishes that item later looks again after this transaction's commit.
///
/// The item is locked `FOR SHARE` until the commit: the transaction that finishes it must
/// wait for this one, so its own look (fast, or locked and exact) sees this one's writes.
/// Items that another transaction is changing or has locked are skipped (`SKIP LOCKED`): they
/// may be finishing there, unseen here. So this never waits, and when every open item left
/// is one of those, the caller takes the locked path, whose answer is exact. (Share locks of
/// other looks, and the key-share locks that inserting a row that refers to a payment takes,
/// do not stand in the way: they change nothing.)
async fn untouched_open_item(conn: &mut Conn, payroll_id: Uuid) -> Result<bool> {
    let found: Option<String> = crate::store::sql::query_scalar(&format!(
        "SELECT id FROM payments WHERE payroll_id = $1 AND state IN {OPEN_STATES} \
         LIMIT 1 FOR SHARE SKIP LOCKED"
    ))
    .bind(payroll_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.is_some())
}

/// The client's held-payroll item with this reference, for the openIMIS facade.
#[derive(Debug, Clone)]
pub struct ItemRef {
    pub payment_id: Uuid,
    pub payroll_id: Option<Uuid>,
    pub payroll_status: Option<Status>,
}

pub async fn find_item(db: &Db, client_id: Uuid, reference: &str) -> Result<Option<ItemRef>> {
    let row = crate::store::sql::query(
        "SELECT p.id, p.payroll_id, r.status FROM payments p LEFT JOIN payrolls r \
         ON r.id = p.payroll_id WHERE p.client_id = $1 AND p.direction = 'disbursement' \
         AND p.reference = $2",
    )
    .bind(client_id.to_string())
    .bind(reference)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let payroll: Option<String> = col(&row, "payroll_id")?;
    let status: Option<String> = col(&row, "status")?;
    Ok(Some(ItemRef {
        payment_id: uuid_col(&row, "id")?,
        payroll_id: payroll.and_then(|s| Uuid::parse_str(&s).ok()),
        payroll_status: status.as_deref().and_then(Status::parse),
    }))
}

/// A page of a payroll's items in creation order, for the export (no histories).
pub async fn items_page(
    db: &Db,
    payroll_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<crate::domain::Payment>> {
    let cols = super::payments::COLUMNS;
    let rows = match after {
        Some(a) => {
            crate::store::sql::query(&format!(
                "SELECT {cols} FROM payments WHERE payroll_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(payroll_id.to_string())
            .bind(a.to_string())
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            crate::store::sql::query(&format!(
                "SELECT {cols} FROM payments WHERE payroll_id = $1 ORDER BY id LIMIT $2"
            ))
            .bind(payroll_id.to_string())
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(super::payments::from_row).collect()
}

/// The rail each of `ids` is routed to (in chunks of `INSERT_CHUNK` per statement).
pub async fn rails_of(conn: &mut Conn, ids: &[Uuid]) -> Result<Vec<(Uuid, Option<String>)>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(INSERT_CHUNK) {
        let kind = conn.kind();
        let sql = format!(
            "SELECT id, rail FROM payments WHERE {}",
            crate::store::sql::in_list(kind, "id", 1, chunk.len())
        );
        let q = crate::store::sql::query_as::<(String, Option<String>)>(&sql)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>());
        for (id, rail) in q.fetch_all(&mut *conn).await? {
            let id = Uuid::parse_str(&id)
                .map_err(|_| StoreError::Corrupt("payment id is not a UUID".into()))?;
            out.push((id, rail));
        }
    }
    Ok(out)
}

/// Moves the idle driving jobs of `ids` to `run_at`, later or earlier: the release holds
/// them back so the batch path can take them before the dispatcher sends them one by one, and
/// the batch path pushes them past an upload or a callback grace.
pub async fn hold_jobs(conn: &mut Conn, ids: &[Uuid], run_at: i64) -> Result<()> {
    let kind = conn.kind();
    // PostgreSQL takes the whole list as one array.
    let per_statement = match kind {
        super::Kind::Postgres => ids.len().max(1),
        super::Kind::Sqlite => INSERT_CHUNK,
    };
    for chunk in ids.chunks(per_statement) {
        let sql = format!(
            "UPDATE jobs SET run_at = $1, version = version + 1 WHERE kind = 'payment' \
             AND lease_until IS NULL AND {}",
            crate::store::sql::in_list(kind, "payment_id", 2, chunk.len())
        );
        crate::store::sql::query(&sql)
            .bind(run_at)
            .bind_list(kind, chunk.iter().map(Uuid::to_string).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// When a paused payroll's waiting jobs are due: never, until it is released again.
pub const PAUSED_UNTIL: i64 = i64::MAX / 2;

/// Moves the jobs of the payroll's items that are still `queued` (never sent) and not in a
/// dispatcher's hands to `run_at`: [`PAUSED_UNTIL`] to pause them, now to let them go.
/// Returns how many jobs moved.
pub async fn move_queued_jobs(conn: &mut Conn, payroll_id: Uuid, run_at: i64) -> Result<u64> {
    let done = crate::store::sql::query(
        "UPDATE jobs SET run_at = $1, version = version + 1 WHERE kind = 'payment' \
         AND lease_until IS NULL AND payment_id IN \
         (SELECT id FROM payments WHERE payroll_id = $2 AND state = 'queued')",
    )
    .bind(run_at)
    .bind(payroll_id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// A page of the client's payrolls, newest first, before `before` (keyset on the id, which is
/// a UUIDv7: creation order).
pub async fn page(
    db: &Db,
    client_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Payroll>> {
    let limit = limit.clamp(1, 200);
    let rows = match before {
        Some(b) => {
            crate::store::sql::query(&format!(
                "SELECT {COLUMNS} FROM payrolls WHERE client_id = $1 AND id < $2 \
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(client_id.to_string())
            .bind(b.to_string())
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
        None => {
            crate::store::sql::query(&format!(
                "SELECT {COLUMNS} FROM payrolls WHERE client_id = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(client_id.to_string())
            .bind(limit)
            .fetch_all(db.pool())
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// How many of the payroll's items are in each state: read from the (payroll_id, state)
/// index alone, without the items' rows.
pub async fn state_counts(db: &Db, id: Uuid) -> Result<Vec<(State, i64)>> {
    let rows = crate::store::sql::query(
        "SELECT state, COUNT(*) AS n FROM payments WHERE payroll_id = $1 GROUP BY state",
    )
    .bind(id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let state: String = col(r, "state")?;
            Ok((
                State::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("state {state}")))?,
                col(r, "n")?,
            ))
        })
        .collect()
}

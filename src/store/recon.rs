//! Statements, their lines, reconciliation runs, settlements and breaks.
//!
//! Lines and settlements arrive by the million, so they are written with multi-row inserts
//! inside transactions of many thousand rows (see [`bind_budget`] for the size of each).

use super::{col, now_micros, uuid_col, Db, Result, StoreError};
use crate::store::Conn;
use crate::store::Row;
use uuid::Uuid;

/// One statement line as stored: where it came from and what it says.
#[derive(Debug, Clone, Default)]
pub struct LineRow {
    pub line_no: i64,
    pub section: i64,
    pub entry: i64,
    pub source_line: i64,
    pub byte_offset: i64,
    pub status: &'static str,
    pub line_date: Option<String>,
    pub booking_date: Option<String>,
    pub value_date: Option<String>,
    pub amount_minor: i64,
    pub instructed_minor: Option<i64>,
    pub currency: String,
    pub direction: &'static str,
    pub reference: Option<String>,
    pub rail_transaction_id: Option<String>,
    pub receipt: Option<String>,
    pub creditor_reference: Option<String>,
    pub remittance: Option<String>,
    pub bank_entry_ref: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_account: Option<String>,
    pub fee_minor: Option<i64>,
    pub bank_transaction_code: Option<String>,
    pub extra: Option<String>,
}

pub const LINE_COLUMNS: &str = "statement_id, line_no, section, entry, source_line, byte_offset, \
    status, line_date, booking_date, value_date, amount_minor, instructed_minor, currency, \
    direction, reference, rail_transaction_id, receipt, creditor_reference, remittance, \
    bank_entry_ref, counterparty_name, counterparty_account, fee_minor, bank_transaction_code, extra";
const LINE_COLUMN_COUNT: usize = 25;
/// Bound values per multi-row statement. Through the `Any` driver, SQLite's cost per bound
/// value grew with the number of values in the statement (measured: 400 rows of 25 columns
/// took ten times longer per row than 10 rows: SQLite finds each `$n` by name in a list), so
/// its statements stayed small; `store::sql` now sends such statements with anonymous marks,
/// which removes that cost, and the budget was not re-tuned since. PostgreSQL pays
/// a round trip per statement instead and is fastest with large ones (measured on 100,000
/// lines: 250 values 11.9 s, 1,000 values 5.0 s, 4,000 values 3.2 s).
fn bind_budget(conn: &Conn) -> usize {
    if conn.kind() == super::Kind::Sqlite {
        250
    } else {
        4_000
    }
}

/// Rows of `cols` columns per multi-row insert on this connection.
fn rows_per_insert(conn: &Conn, cols: usize) -> usize {
    bind_budget(conn).checked_div(cols).unwrap_or(1).max(1)
}

/// `($1, $2, …), (…)` for `rows` rows of `cols` columns.
fn values_clause(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows.saturating_mul(cols).saturating_mul(5));
    let mut n: usize = 0;
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            n = n.saturating_add(1);
            s.push('$');
            s.push_str(&n.to_string());
        }
        s.push(')');
    }
    s
}

/// Inserts lines of one statement (of `client_id`) in multi-row statements.
pub async fn insert_lines(
    conn: &mut Conn,
    client_id: Uuid,
    statement_id: Uuid,
    lines: &[LineRow],
) -> Result<()> {
    let sid = statement_id.to_string();
    let client = client_id.to_string();
    if conn.kind() == super::Kind::Postgres {
        return insert_lines_unnest(conn, &client, &sid, lines).await;
    }
    // The line's columns and its client.
    let cols = LINE_COLUMN_COUNT.saturating_add(1);
    let rows = rows_per_insert(conn, cols);
    for chunk in lines.chunks(rows) {
        let sql = format!(
            "INSERT INTO statement_lines ({LINE_COLUMNS}, client_id) VALUES {}",
            values_clause(chunk.len(), cols)
        );
        let mut q = crate::store::sql::query(&sql);
        for l in chunk {
            q = q
                .bind(sid.clone())
                .bind(l.line_no)
                .bind(l.section)
                .bind(l.entry)
                .bind(l.source_line)
                .bind(l.byte_offset)
                .bind(l.status)
                .bind(l.line_date.clone())
                .bind(l.booking_date.clone())
                .bind(l.value_date.clone())
                .bind(l.amount_minor)
                .bind(l.instructed_minor)
                .bind(l.currency.clone())
                .bind(l.direction)
                .bind(l.reference.clone())
                .bind(l.rail_transaction_id.clone())
                .bind(l.receipt.clone())
                .bind(l.creditor_reference.clone())
                .bind(l.remittance.clone())
                .bind(l.bank_entry_ref.clone())
                .bind(l.counterparty_name.clone())
                .bind(l.counterparty_account.clone())
                .bind(l.fee_minor)
                .bind(l.bank_transaction_code.clone())
                .bind(l.extra.clone())
                .bind(client.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// PostgreSQL: the lines as one statement, an array per column (`UNNEST`).
async fn insert_lines_unnest(
    conn: &mut Conn,
    client: &str,
    statement_id: &str,
    lines: &[LineRow],
) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let int = |f: fn(&LineRow) -> i64| lines.iter().map(f).collect::<Vec<i64>>();
    let opt_int = |f: fn(&LineRow) -> Option<i64>| lines.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&LineRow) -> &str| {
        lines
            .iter()
            .map(|l| f(l).to_owned())
            .collect::<Vec<String>>()
    };
    let opt = |f: fn(&LineRow) -> &Option<String>| {
        lines
            .iter()
            .map(|l| f(l).clone())
            .collect::<Vec<Option<String>>>()
    };
    let sql = format!(
        "INSERT INTO statement_lines ({LINE_COLUMNS}, client_id) \
         SELECT $1, u.* , $2 FROM UNNEST($3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], \
         $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], \
         $13::bigint[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], \
         $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::bigint[], \
         $25::text[], $26::text[]) AS u"
    );
    crate::store::sql::query(&sql)
        .bind(statement_id)
        .bind(client)
        .bind(int(|l| l.line_no))
        .bind(int(|l| l.section))
        .bind(int(|l| l.entry))
        .bind(int(|l| l.source_line))
        .bind(int(|l| l.byte_offset))
        .bind(text(|l| l.status))
        .bind(opt(|l| &l.line_date))
        .bind(opt(|l| &l.booking_date))
        .bind(opt(|l| &l.value_date))
        .bind(int(|l| l.amount_minor))
        .bind(opt_int(|l| l.instructed_minor))
        .bind(text(|l| &l.currency))
        .bind(text(|l| l.direction))
        .bind(opt(|l| &l.reference))
        .bind(opt(|l| &l.rail_transaction_id))
        .bind(opt(|l| &l.receipt))
        .bind(opt(|l| &l.creditor_reference))
        .bind(opt(|l| &l.remittance))
        .bind(opt(|l| &l.bank_entry_ref))
        .bind(opt(|l| &l.counterparty_name))
        .bind(opt(|l| &l.counterparty_account))
        .bind(opt_int(|l| l.fee_minor))
        .bind(opt(|l| &l.bank_transaction_code))
        .bind(opt(|l| &l.extra))
        .execute(conn)
        .await?;
    Ok(())
}

/// A stored statement.
#[derive(Debug, Clone)]
pub struct StatementRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub content_hash: String,
    pub format: String,
    pub rail: Option<String>,
    pub byte_size: i64,
    pub status: String,
    pub line_count: i64,
    pub error_count: i64,
    pub errors: serde_json::Value,
    pub headers: serde_json::Value,
    pub period_from: Option<String>,
    pub period_to: Option<String>,
    pub uploaded_by: String,
    pub created_at: i64,
}

const STATEMENT_COLUMNS: &str = "id, client_id, content_hash, format, rail, byte_size, status, \
    line_count, error_count, errors, headers, period_from, period_to, uploaded_by, created_at";

fn json_col(row: &Row, name: &str) -> Result<serde_json::Value> {
    let s: String = col(row, name)?;
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt(format!("{name} is not JSON")))
}

fn statement_from_row(row: &Row) -> Result<StatementRow> {
    Ok(StatementRow {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        content_hash: col(row, "content_hash")?,
        format: col(row, "format")?,
        rail: col(row, "rail")?,
        byte_size: col(row, "byte_size")?,
        status: col(row, "status")?,
        line_count: col(row, "line_count")?,
        error_count: col(row, "error_count")?,
        errors: json_col(row, "errors")?,
        headers: json_col(row, "headers")?,
        period_from: col(row, "period_from")?,
        period_to: col(row, "period_to")?,
        uploaded_by: col(row, "uploaded_by")?,
        created_at: col(row, "created_at")?,
    })
}

/// Claims (client, content hash) for a new statement. `Err` with a unique violation when the
/// same bytes were uploaded before (or are being uploaded right now).
#[expect(
    clippy::too_many_arguments,
    reason = "one column each, named at the call"
)]
pub async fn insert_statement(
    db: &Db,
    id: Uuid,
    client_id: Uuid,
    content_hash: &str,
    format: &str,
    rail: Option<&str>,
    byte_size: i64,
    uploaded_by: &str,
) -> Result<()> {
    crate::store::sql::query(&format!(
        "INSERT INTO statements ({STATEMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, 'loading', \
         0, 0, '[]', '[]', NULL, NULL, $7, $8)"
    ))
    .bind(id.to_string())
    .bind(client_id.to_string())
    .bind(content_hash)
    .bind(format)
    .bind(rail)
    .bind(byte_size)
    .bind(uploaded_by)
    .bind(now_micros())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub struct Loaded<'a> {
    pub line_count: i64,
    pub error_count: i64,
    pub errors: &'a serde_json::Value,
    pub headers: &'a serde_json::Value,
    pub period_from: Option<&'a str>,
    pub period_to: Option<&'a str>,
}

pub async fn finish_statement(conn: &mut Conn, id: Uuid, l: &Loaded<'_>) -> Result<()> {
    crate::store::sql::query(
        "UPDATE statements SET status = 'loaded', line_count = $1, error_count = $2, errors = $3, \
         headers = $4, period_from = $5, period_to = $6 WHERE id = $7",
    )
    .bind(l.line_count)
    .bind(l.error_count)
    .bind(l.errors.to_string())
    .bind(l.headers.to_string())
    .bind(l.period_from)
    .bind(l.period_to)
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Removes a statement that could not be loaded (or turned out to be a re-delivery).
pub async fn discard_statement(db: &Db, id: Uuid) -> Result<()> {
    let mut tx = db.begin().await?;
    for sql in [
        "DELETE FROM statement_identities WHERE statement_id = $1",
        "DELETE FROM statement_line_matches WHERE statement_id = $1",
        "DELETE FROM statement_lines WHERE statement_id = $1",
        "DELETE FROM statements WHERE id = $1",
    ] {
        crate::store::sql::query(sql)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn statement_by_hash(
    db: &Db,
    client_id: Uuid,
    content_hash: &str,
) -> Result<Option<StatementRow>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {STATEMENT_COLUMNS} FROM statements WHERE client_id = $1 AND content_hash = $2"
    ))
    .bind(client_id.to_string())
    .bind(content_hash)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(statement_from_row).transpose()
}

pub async fn statement(db: &Db, client_id: Uuid, id: Uuid) -> Result<Option<StatementRow>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {STATEMENT_COLUMNS} FROM statements WHERE client_id = $1 AND id = $2"
    ))
    .bind(client_id.to_string())
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(statement_from_row).transpose()
}

/// The statement already registered under this bank identity, if any.
pub async fn statement_by_identity(
    db: &Db,
    client_id: Uuid,
    identity: &str,
) -> Result<Option<Uuid>> {
    let row = crate::store::sql::query(
        "SELECT statement_id FROM statement_identities WHERE client_id = $1 AND identity = $2",
    )
    .bind(client_id.to_string())
    .bind(identity)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| uuid_col(&r, "statement_id")).transpose()
}

pub async fn insert_identity(
    conn: &mut Conn,
    client_id: Uuid,
    identity: &str,
    statement_id: Uuid,
) -> Result<()> {
    crate::store::sql::query(
        "INSERT INTO statement_identities (client_id, identity, statement_id) VALUES ($1, $2, $3)",
    )
    .bind(client_id.to_string())
    .bind(identity)
    .bind(statement_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// A reconciliation run as stored.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub statement_id: Option<Uuid>,
    pub date_from: Option<String>,
    pub date_to: Option<String>,
    pub dry_run: bool,
    pub rules: serde_json::Value,
    pub status: String,
    pub report: Option<serde_json::Value>,
    pub created_by: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

const RUN_COLUMNS: &str = "id, client_id, statement_id, date_from, date_to, dry_run, rules, \
    status, report, created_by, created_at, finished_at";

fn run_from_row(row: &Row) -> Result<RunRow> {
    let statement: Option<String> = col(row, "statement_id")?;
    let report: Option<String> = col(row, "report")?;
    let dry: i64 = col(row, "dry_run")?;
    Ok(RunRow {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        statement_id: statement.as_deref().and_then(|s| Uuid::parse_str(s).ok()),
        date_from: col(row, "date_from")?,
        date_to: col(row, "date_to")?,
        dry_run: dry != 0,
        rules: json_col(row, "rules")?,
        status: col(row, "status")?,
        report: report.and_then(|r| serde_json::from_str(&r).ok()),
        created_by: col(row, "created_by")?,
        created_at: col(row, "created_at")?,
        finished_at: col(row, "finished_at")?,
    })
}

pub async fn insert_run(db: &Db, r: &RunRow) -> Result<()> {
    crate::store::sql::query(&format!(
        "INSERT INTO recon_runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, \
         $10, NULL)"
    ))
    .bind(r.id.to_string())
    .bind(r.client_id.to_string())
    .bind(r.statement_id.map(|s| s.to_string()))
    .bind(r.date_from.clone())
    .bind(r.date_to.clone())
    .bind(i64::from(r.dry_run))
    .bind(r.rules.to_string())
    .bind(r.status.clone())
    .bind(r.created_by.clone())
    .bind(r.created_at)
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn finish_run(
    conn: &mut Conn,
    id: Uuid,
    status: &str,
    report: &serde_json::Value,
) -> Result<()> {
    crate::store::sql::query(
        "UPDATE recon_runs SET status = $1, report = $2, finished_at = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(report.to_string())
    .bind(now_micros())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn run(db: &Db, client_id: Option<Uuid>, id: Uuid) -> Result<Option<RunRow>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {RUN_COLUMNS} FROM recon_runs WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    let run = row.as_ref().map(run_from_row).transpose()?;
    Ok(run.filter(|r| client_id.is_none_or(|c| c == r.client_id)))
}

pub async fn recent_runs(db: &Db, client_id: Uuid, limit: i64) -> Result<Vec<RunRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {RUN_COLUMNS} FROM recon_runs WHERE client_id = $1 ORDER BY created_at DESC \
         LIMIT {}",
        limit.clamp(1, 500)
    ))
    .bind(client_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(run_from_row).collect()
}

/// A payment settled by a statement line.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub payment_id: Uuid,
    pub statement_id: Uuid,
    pub line_no: i64,
    pub rule: &'static str,
    pub amount_minor: i64,
    pub fee_minor: i64,
    pub currency: String,
    pub settled_on: Option<String>,
}

/// Records settlements of the run's client's payments; a payment already settled keeps its
/// first settlement. Returns the payments settled now, so that only they are posted (two runs
/// at once settle a payment once).
pub async fn insert_settlements(
    conn: &mut Conn,
    client_id: Uuid,
    run_id: Uuid,
    rows: &[Settlement],
) -> Result<std::collections::HashSet<Uuid>> {
    use crate::store::sql::{Col, Rows};
    let mut inserted = std::collections::HashSet::with_capacity(rows.len());
    if rows.is_empty() {
        return Ok(inserted);
    }
    let kind = conn.kind();
    let text = |f: &dyn Fn(&Settlement) -> Option<String>| Col::Text(rows.iter().map(f).collect());
    let int = |f: &dyn Fn(&Settlement) -> i64| Col::Int(rows.iter().map(|s| Some(f(s))).collect());
    // One statement on PostgreSQL (an array per column); SQLite in parts under its limit.
    let table = Rows::new(vec![
        ("payment", text(&|s| Some(s.payment_id.to_string()))),
        ("statement", text(&|s| Some(s.statement_id.to_string()))),
        ("line_no", int(&|s| s.line_no)),
        ("rule", text(&|s| Some(s.rule.to_owned()))),
        ("amount", int(&|s| s.amount_minor)),
        ("fee", int(&|s| s.fee_minor)),
        ("currency", text(&|s| Some(s.currency.clone()))),
        ("settled_on", text(&|s| s.settled_on.clone())),
    ]);
    let now = now_micros();
    let mut from = 0usize;
    for part in table.parts(kind) {
        let n = part.len();
        let ids = rows.get(from..from.saturating_add(n)).unwrap_or_default();
        from = from.saturating_add(n);
        // A settlement names a payment of the run's client: `EXISTS` checks it as the row
        // goes in (it stands for a foreign key, whose per-row check and lock on the payment
        // cost as much as the insert itself; see migration 0018). No row comes back per
        // settlement (a million-line run would read a million rows): the count tells whether
        // every row went in, which is the rule; only when some did not (a payment settled by
        // a run at the same time) are this run's asked for.
        let done = crate::store::sql::query(&format!(
            "WITH {} INSERT INTO recon_settlements (payment_id, run_id, statement_id, line_no, \
             rule, amount_minor, fee_minor, currency, settled_on, at, client_id) \
             SELECT u.payment, $1, u.statement, u.line_no, u.rule, u.amount, u.fee, u.currency, \
             u.settled_on, $2, $3 FROM u WHERE EXISTS (SELECT 1 FROM payments p \
             WHERE p.id = u.payment AND p.client_id = $3) \
             ON CONFLICT (payment_id) DO NOTHING",
            part.cte(kind, 4)
        ))
        .bind(run_id.to_string())
        .bind(now)
        .bind(client_id.to_string())
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
        if usize::try_from(done.rows_affected()).ok() == Some(n) {
            inserted.extend(ids.iter().map(|s| s.payment_id));
            continue;
        }
        let list: Vec<String> = ids.iter().map(|s| s.payment_id.to_string()).collect();
        let got: Vec<String> = crate::store::sql::query_scalar(&format!(
            "SELECT payment_id FROM recon_settlements WHERE run_id = $1 AND {}",
            crate::store::sql::in_list(kind, "payment_id", 2, list.len())
        ))
        .bind(run_id.to_string())
        .bind_list(kind, list)
        .fetch_all(&mut *conn)
        .await?;
        for id in got {
            inserted.insert(
                Uuid::parse_str(&id)
                    .map_err(|_| StoreError::Corrupt("settlement payment id".into()))?,
            );
        }
    }
    Ok(inserted)
}

/// Marks statement lines as matched by a run, so a later run does not count them again.
/// Runs of consecutive line numbers (most of a statement, in practice) are kept as one range
/// each in `statement_line_matches`, not written on every line; the rest are marked on the
/// line, by short lists.
pub async fn mark_lines_matched(
    conn: &mut Conn,
    client_id: Uuid,
    run_id: Uuid,
    statement_id: Uuid,
    line_nos: &[i64],
) -> Result<()> {
    const MIN_RANGE: i64 = 32;
    let mut sorted = line_nos.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut singles: Vec<i64> = Vec::new();
    let mut i = 0usize;
    while let Some(&start) = sorted.get(i) {
        let mut end = start;
        let mut j = i.saturating_add(1);
        while sorted.get(j) == Some(&end.saturating_add(1)) {
            end = end.saturating_add(1);
            j = j.saturating_add(1);
        }
        if end.saturating_sub(start) >= MIN_RANGE {
            crate::store::sql::query(
                "INSERT INTO statement_line_matches (client_id, statement_id, first_line, \
                 last_line, run_id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(client_id.to_string())
            .bind(statement_id.to_string())
            .bind(start)
            .bind(end)
            .bind(run_id.to_string())
            .execute(&mut *conn)
            .await?;
        } else {
            singles.extend(sorted.get(i..j).unwrap_or(&[]));
        }
        i = j;
    }
    for chunk in singles.chunks(500) {
        let kind = conn.kind();
        crate::store::sql::query(&format!(
            "UPDATE statement_lines SET matched_run = $1 WHERE statement_id = $2 AND {}",
            crate::store::sql::in_list(kind, "line_no", 3, chunk.len())
        ))
        .bind(run_id.to_string())
        .bind(statement_id.to_string())
        .bind_list(kind, chunk.to_vec())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The ranges of lines earlier runs matched (`mark_lines_matched`), by statement, each
/// statement's sorted by first line: for the client, or for one statement of it.
pub async fn matched_ranges(
    db: &Db,
    client_id: Uuid,
    statement: Option<Uuid>,
) -> Result<std::collections::HashMap<String, Vec<(i64, i64)>>> {
    let rows = match statement {
        Some(s) => {
            crate::store::sql::query_as::<(String, i64, i64)>(
                "SELECT statement_id, first_line, last_line FROM statement_line_matches \
                 WHERE client_id = $1 AND statement_id = $2 ORDER BY statement_id, first_line",
            )
            .bind(client_id.to_string())
            .bind(s.to_string())
            .fetch_all(db.pool())
            .await?
        }
        None => {
            crate::store::sql::query_as::<(String, i64, i64)>(
                "SELECT statement_id, first_line, last_line FROM statement_line_matches \
                 WHERE client_id = $1 ORDER BY statement_id, first_line",
            )
            .bind(client_id.to_string())
            .fetch_all(db.pool())
            .await?
        }
    };
    let mut out: std::collections::HashMap<String, Vec<(i64, i64)>> =
        std::collections::HashMap::new();
    for (statement, first, last) in rows {
        let ranges = out.entry(statement).or_default();
        // Sorted by first line: one overlapping the last (two runs at once) extends it.
        match ranges.last_mut() {
            Some((_, end)) if first <= end.saturating_add(1) => *end = (*end).max(last),
            _ => ranges.push((first, last)),
        }
    }
    Ok(out)
}

/// Whether `line_no` falls in one of `ranges` (as `matched_ranges` gives them: sorted by first
/// line, not overlapping).
pub fn in_ranges(ranges: &[(i64, i64)], line_no: i64) -> bool {
    let at = ranges.partition_point(|(first, _)| *first <= line_no);
    at.checked_sub(1)
        .and_then(|i| ranges.get(i))
        .is_some_and(|(_, last)| line_no <= *last)
}

/// Refreshes the planner's statistics after a large load, so that the first run over a fresh
/// million-line statement uses the line indexes rather than scanning.
pub async fn analyse_lines(db: &Db) -> Result<()> {
    crate::store::sql::query("ANALYZE statement_lines")
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A break as stored.
#[derive(Debug, Clone)]
pub struct BreakRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub run_id: Option<Uuid>,
    pub dedupe_key: String,
    pub kind: String,
    pub severity: String,
    pub status: String,
    pub owner: Option<String>,
    pub note: String,
    pub detail: serde_json::Value,
    pub payment_id: Option<Uuid>,
    pub statement_id: Option<Uuid>,
    pub line_no: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub rail: Option<String>,
    pub programme: Option<String>,
    pub opened_at: i64,
    pub resolution: Option<String>,
    pub reason: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    pub entries: Option<serde_json::Value>,
}

const BREAK_COLUMNS: &str = "id, client_id, run_id, dedupe_key, kind, severity, status, owner, \
    note, detail, payment_id, statement_id, line_no, amount_minor, currency, rail, programme, \
    opened_at, resolution, reason, resolved_by, resolved_at, entries";

fn opt_uuid(row: &Row, name: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = col(row, name)?;
    Ok(s.as_deref().and_then(|s| Uuid::parse_str(s).ok()))
}

fn break_from_row(row: &Row) -> Result<BreakRow> {
    let entries: Option<String> = col(row, "entries")?;
    Ok(BreakRow {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        run_id: opt_uuid(row, "run_id")?,
        dedupe_key: col(row, "dedupe_key")?,
        kind: col(row, "kind")?,
        severity: col(row, "severity")?,
        status: col(row, "status")?,
        owner: col(row, "owner")?,
        note: col(row, "note")?,
        detail: json_col(row, "detail")?,
        payment_id: opt_uuid(row, "payment_id")?,
        statement_id: opt_uuid(row, "statement_id")?,
        line_no: col(row, "line_no")?,
        amount_minor: col(row, "amount_minor")?,
        currency: col(row, "currency")?,
        rail: col(row, "rail")?,
        programme: col(row, "programme")?,
        opened_at: col(row, "opened_at")?,
        resolution: col(row, "resolution")?,
        reason: col(row, "reason")?,
        resolved_by: col(row, "resolved_by")?,
        resolved_at: col(row, "resolved_at")?,
        entries: entries.and_then(|e| serde_json::from_str(&e).ok()),
    })
}

/// Stores breaks; one already raised under the same key (by an earlier run) is kept as it is.
/// Returns how many were new.
pub async fn insert_breaks(conn: &mut Conn, rows: &[BreakRow]) -> Result<u64> {
    const COLS: usize = 23;
    let mut added = 0u64;
    let per = rows_per_insert(conn, COLS);
    for chunk in rows.chunks(per) {
        let sql = format!(
            "INSERT INTO recon_breaks ({BREAK_COLUMNS}) VALUES {} \
             ON CONFLICT (client_id, dedupe_key) DO NOTHING",
            values_clause(chunk.len(), COLS)
        );
        let mut q = crate::store::sql::query(&sql);
        for b in chunk {
            q = q
                .bind(b.id.to_string())
                .bind(b.client_id.to_string())
                .bind(b.run_id.map(|r| r.to_string()))
                .bind(b.dedupe_key.clone())
                .bind(b.kind.clone())
                .bind(b.severity.clone())
                .bind(b.status.clone())
                .bind(b.owner.clone())
                .bind(b.note.clone())
                .bind(b.detail.to_string())
                .bind(b.payment_id.map(|r| r.to_string()))
                .bind(b.statement_id.map(|r| r.to_string()))
                .bind(b.line_no)
                .bind(b.amount_minor)
                .bind(b.currency.clone())
                .bind(b.rail.clone())
                .bind(b.programme.clone())
                .bind(b.opened_at)
                .bind(b.resolution.clone())
                .bind(b.reason.clone())
                .bind(b.resolved_by.clone())
                .bind(b.resolved_at)
                .bind(b.entries.as_ref().map(serde_json::Value::to_string));
        }
        let done = q.execute(&mut *conn).await?;
        added = added.saturating_add(done.rows_affected());
    }
    Ok(added)
}

/// The open breaks a run stored (not those an earlier run had raised already).
pub async fn opened_by_run(conn: &mut Conn, run_id: Uuid) -> Result<Vec<BreakRow>> {
    let rows = crate::store::sql::query(&format!(
        "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE run_id = $1 AND status = 'open' ORDER BY id"
    ))
    .bind(run_id.to_string())
    .fetch_all(conn)
    .await?;
    rows.iter().map(break_from_row).collect()
}

#[derive(Debug, Default, Clone)]
pub struct BreakFilter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list_breaks(
    db: &Db,
    client_id: Option<Uuid>,
    f: &BreakFilter,
) -> Result<Vec<BreakRow>> {
    let mut sql = format!("SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    let mut add = |clause: &str, v: String, sql: &mut String| {
        binds.push(v);
        sql.push_str(&format!(" AND {clause} ${}", binds.len()));
    };
    if let Some(c) = client_id {
        add("client_id =", c.to_string(), &mut sql);
    }
    if let Some(s) = &f.status {
        add("status =", s.clone(), &mut sql);
    }
    if let Some(k) = &f.kind {
        add("kind =", k.clone(), &mut sql);
    }
    if let Some(a) = f.after {
        add("id >", a.to_string(), &mut sql);
    }
    sql.push_str(&format!(" ORDER BY id LIMIT {}", f.limit.clamp(1, 1000)));
    let mut q = crate::store::sql::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(break_from_row).collect()
}

pub async fn get_break(
    conn: &mut Conn,
    client_id: Option<Uuid>,
    id: Uuid,
) -> Result<Option<BreakRow>> {
    let row = crate::store::sql::query(&format!(
        "SELECT {BREAK_COLUMNS} FROM recon_breaks WHERE id = $1"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    let b = row.as_ref().map(break_from_row).transpose()?;
    Ok(b.filter(|b| client_id.is_none_or(|c| c == b.client_id)))
}

pub struct Resolution<'a> {
    pub resolution: &'a str,
    pub reason: &'a str,
    pub owner: Option<&'a str>,
    pub resolved_by: &'a str,
    pub entries: &'a serde_json::Value,
}

/// Resolves an open break; false when it was no longer open (resolved concurrently).
pub async fn resolve_break(conn: &mut Conn, id: Uuid, r: &Resolution<'_>) -> Result<bool> {
    let done = crate::store::sql::query(
        "UPDATE recon_breaks SET status = 'resolved', resolution = $1, reason = $2, \
         owner = COALESCE($3, owner), resolved_by = $4, resolved_at = $5, entries = $6 \
         WHERE id = $7 AND status = 'open'",
    )
    .bind(r.resolution)
    .bind(r.reason)
    .bind(r.owner)
    .bind(r.resolved_by)
    .bind(now_micros())
    .bind(r.entries.to_string())
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Who a key is, for the audit trail: the client's name and the key's label or prefix.
pub async fn key_owner(db: &Db, key_id: Uuid) -> Result<String> {
    let row = crate::store::sql::query(
        "SELECT c.name AS client_name, k.label AS label, k.prefix AS prefix FROM api_keys k \
         JOIN clients c ON c.id = k.client_id WHERE k.id = $1",
    )
    .bind(key_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(format!("key {key_id}"));
    };
    let client: String = col(&row, "client_name")?;
    let label: Option<String> = col(&row, "label")?;
    let prefix: String = col(&row, "prefix")?;
    Ok(format!(
        "{client} (key {})",
        label.unwrap_or_else(|| format!("{prefix}…"))
    ))
}

#[cfg(test)]
mod tests {
    use super::in_ranges;

    #[test]
    fn a_line_is_in_a_range_from_its_first_to_its_last_line() {
        let ranges = [(1, 40), (50, 50), (60, 99)];
        for (line, inside) in [
            (0, false),
            (1, true),
            (40, true),
            (41, false),
            (50, true),
            (51, false),
            (60, true),
            (99, true),
            (100, false),
        ] {
            assert_eq!(in_ranges(&ranges, line), inside, "line {line}");
        }
        assert!(!in_ranges(&[], 1));
    }
}

/// Rows read for a reconciliation run come by the million, and are handed to the caller a
/// page at a time ([`RUN_PAGE`] rows). Each store is read the way its driver is fast:
///
/// - SQLite's driver hands each result row from the connection's thread to the caller on its
///   own (a message and a copy of every value per row), which cost more than the database's
///   own work on the row. So a page is one row: a JSON array of arrays that SQLite builds,
///   read by keyset (`after` the page's last key) and decoded here in one pass.
/// - PostgreSQL's rows arrive in the caller's own task, cheaply; pages by keyset would make
///   it plan and start a scan per page and wait for the caller between them. So one statement
///   streams every row (each a JSON array, decoded the same way) and the pages are cut here.
///
/// Integers stay integers either way: JSON numbers decode to `i64` exactly, never through a
/// float.
pub const RUN_PAGE: usize = 5_000;

/// `cols` as one JSON array per row (PostgreSQL), or a page's rows as one JSON array of such
/// arrays in `order` (SQLite).
fn json_rows(kind: super::Kind, cols: &[&str], order: &str) -> String {
    match kind {
        super::Kind::Sqlite => format!(
            "json_group_array(json_array({}) ORDER BY {order})",
            cols.join(", ")
        ),
        super::Kind::Postgres => format!("json_build_array({})::text", cols.join(", ")),
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Runs `sql` (its rows built with [`json_rows`]) and hands its rows to `each` a page at a
/// time. `bind` binds the statement's arguments: on SQLite those of the page after the key
/// `after` (none for the first page; `key` reads a row's key), on PostgreSQL (`after` always
/// none) those of the one statement.
async fn read_pages<'q, T, K, E>(
    db: &Db,
    sql: &'q str,
    bind: impl Fn(crate::store::sql::Query<'q>, Option<&K>) -> crate::store::sql::Query<'q>,
    key: impl Fn(&T) -> K,
    what: &str,
    mut each: impl FnMut(Vec<T>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E>
where
    T: serde::de::DeserializeOwned,
    E: From<StoreError>,
{
    use futures_util::TryStreamExt;
    let query = || crate::store::sql::query(sql);
    match db.kind() {
        super::Kind::Sqlite => {
            let mut after: Option<K> = None;
            loop {
                let rows: Option<String> = bind(query(), after.as_ref())
                    .fetch_one(db.pool())
                    .await
                    .map_err(StoreError::from)?
                    .try_get(0)
                    .map_err(StoreError::from)?;
                let rows: Vec<T> = match rows {
                    Some(s) => decode_json(&s, what)?,
                    None => Vec::new(),
                };
                let Some(last) = rows.last() else {
                    return Ok(());
                };
                after = Some(key(last));
                let full = rows.len() >= RUN_PAGE;
                each(rows)?;
                if !full {
                    return Ok(());
                }
            }
        }
        super::Kind::Postgres => {
            let mut stream = bind(query(), None).fetch(db.pool());
            let mut rows = Vec::with_capacity(RUN_PAGE);
            while let Some(row) = stream.try_next().await.map_err(StoreError::from)? {
                let s: String = row.try_get(0).map_err(StoreError::from)?;
                rows.push(decode_json(&s, what)?);
                if rows.len() >= RUN_PAGE {
                    each(std::mem::replace(&mut rows, Vec::with_capacity(RUN_PAGE)))?;
                }
            }
            if !rows.is_empty() {
                each(rows)?;
            }
            Ok(())
        }
    }
}

/// The SQL `LIMIT` of a SQLite page.
fn page_limit() -> i64 {
    i64::try_from(RUN_PAGE).unwrap_or(i64::MAX)
}

/// A payment as a reconciliation run sees it.
#[derive(Debug, serde::Deserialize)]
pub struct ExpectedRow {
    pub id: String,
    pub direction: String,
    pub mode: Option<String>,
    pub state: String,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: String,
    pub party_value: Option<String>,
    pub rail_reference: Option<String>,
    pub receipt: Option<String>,
    pub payment_reference: Option<String>,
    pub rail: Option<String>,
    /// The payment's `metadata.programme`, when it is a string.
    pub programme: Option<serde_json::Value>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The payment's latest attempt: the end-to-end id the rail saw.
    pub attempt_id: Option<String>,
    /// 1 when an earlier run settled the payment, 0 otherwise.
    pub settled: u8,
}

/// Which payments a run expects to see: the client's, active in `[lo_us, hi_us)` or still
/// waiting for an outcome, optionally only those of one rail (or of none yet).
#[derive(Clone, Copy)]
pub struct ExpectedScope<'a> {
    pub client_id: Uuid,
    pub lo_us: i64,
    pub hi_us: i64,
    pub rail: Option<&'a str>,
}

/// Every payment of `scope`, handed to `each` a page at a time (see [`RUN_PAGE`]).
pub async fn expected_pages<E: From<StoreError>>(
    db: &Db,
    scope: ExpectedScope<'_>,
    each: impl FnMut(Vec<ExpectedRow>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let kind = db.kind();
    let programme = match kind {
        super::Kind::Sqlite => "json_extract(p.metadata, '$.programme')",
        super::Kind::Postgres => "p.metadata::json -> 'programme'",
    };
    // 1 or 0 on both stores (SQLite has no boolean to put in its JSON).
    let settled = "CASE WHEN EXISTS (SELECT 1 FROM recon_settlements s WHERE s.payment_id = p.id) \
         THEN 1 ELSE 0 END";
    let cols = [
        "id",
        "direction",
        "mode",
        "state",
        "reference",
        "amount_minor",
        "currency",
        "party_value",
        "rail_reference",
        "receipt",
        "payment_reference",
        "rail",
        "programme",
        "created_at",
        "updated_at",
        "attempt_id",
        "settled",
    ];
    let mut inner = format!(
        "SELECT p.id, p.direction, p.mode, p.state, p.reference, p.amount_minor, p.currency, \
         p.party_value, p.rail_reference, p.receipt, p.payment_reference, p.rail, \
         {programme} AS programme, p.created_at, p.updated_at, \
         (SELECT a.id FROM attempts a WHERE a.payment_id = p.id ORDER BY a.seq DESC LIMIT 1) \
         AS attempt_id, {settled} AS settled \
         FROM payments p WHERE p.client_id = $1 \
         AND ((p.updated_at >= $2 AND p.created_at < $3) \
         OR p.state IN ('received', 'queued', 'submitted', 'pending', 'unknown')) \
         AND p.state NOT IN ('cancelled', 'reversed')"
    );
    if scope.rail.is_some() {
        inner.push_str(" AND (p.rail = $4 OR p.rail IS NULL)");
    }
    let next: usize = if scope.rail.is_some() { 5 } else { 4 };
    let sql = match kind {
        super::Kind::Postgres => format!(
            "SELECT {} FROM ({inner}) page",
            json_rows(kind, &cols, "id")
        ),
        super::Kind::Sqlite => format!(
            "SELECT {} FROM ({inner} AND p.id > ${next} ORDER BY p.id LIMIT ${}) page",
            json_rows(kind, &cols, "id"),
            next.saturating_add(1)
        ),
    };
    read_pages(
        db,
        &sql,
        |q, after: Option<&String>| {
            let mut q = q
                .bind(scope.client_id.to_string())
                .bind(scope.lo_us)
                .bind(scope.hi_us);
            if let Some(r) = scope.rail {
                q = q.bind(r.to_owned());
            }
            match kind {
                super::Kind::Sqlite => q
                    .bind(after.cloned().unwrap_or_default())
                    .bind(page_limit()),
                super::Kind::Postgres => q,
            }
        },
        |row: &ExpectedRow| row.id.clone(),
        "expected payments",
        each,
    )
    .await
}

/// Which statement lines a run reads: one statement's, or those of every loaded statement of
/// the client dated within `[from, to]`; in both cases only lines no run marked matched one by
/// one (ranges are the caller's to skip).
pub enum LineScope {
    Statement(Uuid),
    Dated {
        client_id: Uuid,
        from: String,
        to: String,
    },
}

/// A statement line read for a run, with its statement.
pub struct RunLineRow {
    pub statement_id: String,
    pub line: LineRow,
}

#[derive(serde::Deserialize)]
struct LineJson {
    statement_id: String,
    line_no: i64,
    section: i64,
    entry: i64,
    source_line: i64,
    byte_offset: i64,
    status: String,
    line_date: Option<String>,
    booking_date: Option<String>,
    value_date: Option<String>,
    amount_minor: i64,
    instructed_minor: Option<i64>,
    currency: String,
    direction: String,
    reference: Option<String>,
    rail_transaction_id: Option<String>,
    receipt: Option<String>,
    creditor_reference: Option<String>,
    remittance: Option<String>,
    bank_entry_ref: Option<String>,
    counterparty_name: Option<String>,
    counterparty_account: Option<String>,
    fee_minor: Option<i64>,
    bank_transaction_code: Option<String>,
    extra: Option<String>,
}

impl From<LineJson> for RunLineRow {
    fn from(l: LineJson) -> Self {
        RunLineRow {
            statement_id: l.statement_id,
            line: LineRow {
                line_no: l.line_no,
                section: l.section,
                entry: l.entry,
                source_line: l.source_line,
                byte_offset: l.byte_offset,
                status: match l.status.as_str() {
                    "booked" => "booked",
                    "pending" => "pending",
                    _ => "info",
                },
                line_date: l.line_date,
                booking_date: l.booking_date,
                value_date: l.value_date,
                amount_minor: l.amount_minor,
                instructed_minor: l.instructed_minor,
                currency: l.currency,
                direction: if l.direction == "credit" {
                    "credit"
                } else {
                    "debit"
                },
                reference: l.reference,
                rail_transaction_id: l.rail_transaction_id,
                receipt: l.receipt,
                creditor_reference: l.creditor_reference,
                remittance: l.remittance,
                bank_entry_ref: l.bank_entry_ref,
                counterparty_name: l.counterparty_name,
                counterparty_account: l.counterparty_account,
                fee_minor: l.fee_minor,
                bank_transaction_code: l.bank_transaction_code,
                extra: l.extra,
            },
        }
    }
}

/// Every line of `scope` in statement and line order, handed to `each` a page at a time (see
/// [`RUN_PAGE`]).
pub async fn line_pages<E: From<StoreError>>(
    db: &Db,
    scope: &LineScope,
    mut each: impl FnMut(Vec<RunLineRow>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let kind = db.kind();
    let cols: Vec<&str> = LINE_COLUMNS.split(',').map(str::trim).collect();
    let rows = json_rows(kind, &cols, "statement_id, line_no");
    let select = LINE_COLUMNS
        .split(',')
        .map(|c| format!("l.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let sqlite = kind == super::Kind::Sqlite;
    let (inner, next): (&str, usize) = match scope {
        LineScope::Statement(_) => (
            "FROM statement_lines l WHERE l.statement_id = $1 AND l.matched_run IS NULL",
            2,
        ),
        LineScope::Dated { .. } => (
            "FROM statement_lines l JOIN statements s ON s.id = l.statement_id \
             WHERE s.client_id = $1 AND s.status = 'loaded' AND l.line_date >= $2 \
             AND l.line_date <= $3 AND l.matched_run IS NULL",
            4,
        ),
    };
    // The key of the page after: the line number within one statement (its primary key's
    // range), or (statement, line number) across statements.
    let after = match (sqlite, scope) {
        (false, _) => " ORDER BY l.statement_id, l.line_no".to_owned(),
        (true, LineScope::Statement(_)) => format!(
            " AND l.line_no > ${next} ORDER BY l.line_no LIMIT ${}",
            next.saturating_add(1)
        ),
        (true, LineScope::Dated { .. }) => format!(
            " AND (l.statement_id, l.line_no) > (${next}, ${}) \
             ORDER BY l.statement_id, l.line_no LIMIT ${}",
            next.saturating_add(1),
            next.saturating_add(2)
        ),
    };
    let sql = format!("SELECT {rows} FROM (SELECT {select} {inner}{after}) page");
    read_pages(
        db,
        &sql,
        |q, after: Option<&(String, i64)>| {
            let q = match scope {
                LineScope::Statement(id) => q.bind(id.to_string()),
                LineScope::Dated {
                    client_id,
                    from,
                    to,
                } => q
                    .bind(client_id.to_string())
                    .bind(from.clone())
                    .bind(to.clone()),
            };
            let (sid, line) = after.cloned().unwrap_or_default();
            match (sqlite, scope) {
                (false, _) => q,
                (true, LineScope::Statement(_)) => q.bind(line).bind(page_limit()),
                (true, LineScope::Dated { .. }) => q.bind(sid).bind(line).bind(page_limit()),
            }
        },
        |l: &LineJson| (l.statement_id.clone(), l.line_no),
        "statement lines",
        |page: Vec<LineJson>| each(page.into_iter().map(RunLineRow::from).collect()),
    )
    .await
}

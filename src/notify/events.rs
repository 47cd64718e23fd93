//! The events outbox: written in the transaction of the change they announce, read by the
//! core at `GET /v1/events` and pushed to its webhooks.

use super::deliveries;
use crate::domain::{Payment, State};
use crate::store::Conn;
use crate::store::{col, from_micros, now_micros, uuid_col, Db, Kind, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    PaymentCompleted,
    PaymentFailed,
    PaymentUnknown,
    PaymentCancelled,
    PaymentReversed,
    /// An unknown outcome passed its deadline: an operator must settle it.
    PaymentException,
    PayrollCompleted,
    /// A reconciliation run raised a break for the client's finance officers.
    ReconciliationBreakOpened,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        EventType::PaymentCompleted,
        EventType::PaymentFailed,
        EventType::PaymentUnknown,
        EventType::PaymentCancelled,
        EventType::PaymentReversed,
        EventType::PaymentException,
        EventType::PayrollCompleted,
        EventType::ReconciliationBreakOpened,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentCompleted => "payment.completed",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentUnknown => "payment.unknown",
            EventType::PaymentCancelled => "payment.cancelled",
            EventType::PaymentReversed => "payment.reversed",
            EventType::PaymentException => "payment.exception",
            EventType::PayrollCompleted => "payroll.completed",
            EventType::ReconciliationBreakOpened => "reconciliation.break_opened",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The event a payment's arrival in `to` announces, if any.
    pub fn for_state(to: State) -> Option<EventType> {
        match to {
            State::Completed => Some(EventType::PaymentCompleted),
            State::Failed => Some(EventType::PaymentFailed),
            State::Unknown => Some(EventType::PaymentUnknown),
            State::Cancelled => Some(EventType::PaymentCancelled),
            State::Reversed => Some(EventType::PaymentReversed),
            State::Received | State::Queued | State::Submitted | State::Pending => None,
        }
    }
}

/// An event to write.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub client_id: Uuid,
    pub kind: EventType,
    pub payment_id: Option<Uuid>,
    pub payroll_id: Option<Uuid>,
    pub data: Value,
}

/// Writes the event and one delivery per webhook endpoint of the client that wants it.
pub async fn emit(conn: &mut Conn, e: &NewEvent) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let seq: i64 = crate::store::sql::query_scalar(
        "INSERT INTO events (id, client_id, type, payment_id, payroll_id, data, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
    )
    .bind(id.to_string())
    .bind(e.client_id.to_string())
    .bind(e.kind.as_str())
    .bind(e.payment_id.map(|p| p.to_string()))
    .bind(e.payroll_id.map(|p| p.to_string()))
    .bind(e.data.to_string())
    .bind(now_micros())
    .fetch_one(&mut *conn)
    .await?;
    deliveries::fan_out(conn, e.client_id, id, seq, e.kind, &order_key(e, id)).await?;
    Ok(id)
}

/// [`emit`] for many events: one statement for the events, and their deliveries as
/// [`deliveries::fan_out_many`] writes them.
pub async fn emit_many(conn: &mut Conn, events: Vec<NewEvent>) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if events.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let ids: Vec<Uuid> = events.iter().map(|_| Uuid::now_v7()).collect();
    let text = |f: &dyn Fn(&NewEvent) -> Option<String>| Col::Text(events.iter().map(f).collect());
    let rows = Rows::new(vec![
        (
            "id",
            Col::Text(ids.iter().map(|i| Some(i.to_string())).collect()),
        ),
        ("client", text(&|e| Some(e.client_id.to_string()))),
        ("type", text(&|e| Some(e.kind.as_str().to_owned()))),
        ("payment", text(&|e| e.payment_id.map(|p| p.to_string()))),
        ("payroll", text(&|e| e.payroll_id.map(|p| p.to_string()))),
        ("data", text(&|e| Some(e.data.to_string()))),
    ]);
    let now = now_micros();
    let mut seqs: std::collections::HashMap<String, i64> =
        std::collections::HashMap::with_capacity(events.len());
    for part in rows.parts(kind) {
        let got = crate::store::sql::query_as::<(String, i64)>(&format!(
            "WITH {} INSERT INTO events (id, client_id, type, payment_id, payroll_id, data, \
             created_at) SELECT u.id, u.client, u.type, u.payment, u.payroll, u.data, $1 \
             FROM u WHERE true RETURNING id, seq",
            part.cte(kind, 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .fetch_all(&mut *conn)
        .await?;
        seqs.extend(got);
    }
    let written: Vec<deliveries::Written> = events
        .iter()
        .zip(&ids)
        .filter_map(|(e, id)| {
            let seq = *seqs.get(&id.to_string())?;
            Some(deliveries::Written {
                client_id: e.client_id,
                event_id: *id,
                seq,
                kind: e.kind,
                order_key: order_key(e, *id),
            })
        })
        .collect();
    deliveries::fan_out_many(conn, &written).await
}

/// One payment's (or payroll's) events reach an endpoint in the order they were written.
fn order_key(e: &NewEvent, id: Uuid) -> String {
    match (e.payment_id, e.payroll_id) {
        (Some(p), _) => format!("payment:{p}"),
        (None, Some(p)) => format!("payroll:{p}"),
        (None, None) => format!("event:{id}"),
    }
}

fn micros_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What an event says about a payment: its outcome, not its party (the core has that).
pub fn payment_data(p: &Payment) -> Value {
    json!({
        "payment_id": p.id,
        "reference": p.reference,
        "direction": p.direction,
        "state": p.state,
        "amount": {"value": p.amount.to_decimal_string(), "currency": p.amount.currency()},
        "rail": p.rail,
        "rail_reference": p.rail_reference,
        "receipt": p.receipt,
        "failure": p.failure,
        "exception": p.exception,
        "payroll_id": p.payroll_id,
        "metadata": p.metadata,
        "updated_at": micros_rfc3339(p.updated_at),
    })
}

/// The event for a payment's change of state, if that change is announced.
pub async fn payment_transition(conn: &mut Conn, p: &Payment, to: State) -> Result<()> {
    if let Some(kind) = EventType::for_state(to) {
        emit(
            conn,
            &NewEvent {
                client_id: p.client_id,
                kind,
                payment_id: Some(p.id),
                payroll_id: p.payroll_id,
                data: payment_data(p),
            },
        )
        .await?;
    }
    Ok(())
}

/// `payroll.completed`: for the payrolls module to call in the transaction that sees a
/// payroll's last item reach a final state. `summary` is what the core is told (counts,
/// totals); the event carries the payroll id besides.
pub async fn payroll_completed(
    conn: &mut Conn,
    client_id: Uuid,
    payroll_id: Uuid,
    summary: Value,
) -> Result<Uuid> {
    let mut data = json!({ "payroll_id": payroll_id });
    if let (Some(d), Value::Object(s)) = (data.as_object_mut(), summary) {
        for (k, v) in s {
            d.entry(k).or_insert(v);
        }
    }
    emit(
        conn,
        &NewEvent {
            client_id,
            kind: EventType::PayrollCompleted,
            payment_id: None,
            payroll_id: Some(payroll_id),
            data,
        },
    )
    .await
}

/// Where a reader of the feed is: after the event at (transaction, sequence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    tx: i64,
    seq: i64,
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let (tx, seq) = s.split_once('-')?;
        Some(Cursor {
            tx: tx.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    pub fn encode(self) -> String {
        format!("{}-{}", self.tx, self.seq)
    }
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: Uuid,
    pub kind: String,
    pub payment_id: Option<Uuid>,
    pub payroll_id: Option<Uuid>,
    pub data: Value,
    pub created_at: DateTime<Utc>,
    pub cursor: Cursor,
}

impl StoredEvent {
    /// The event as the feed shows it and webhooks send it (the Standard Webhooks payload:
    /// `type`, `timestamp`, `data`, with our id besides).
    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.kind,
            "timestamp": micros_rfc3339(self.created_at),
            "data": self.data,
        })
    }
}

pub(crate) fn from_row(row: &crate::store::Row) -> Result<StoredEvent> {
    let data: String = col(row, "data")?;
    let payment: Option<String> = col(row, "payment_id")?;
    let payroll: Option<String> = col(row, "payroll_id")?;
    Ok(StoredEvent {
        id: uuid_col(row, "id")?,
        kind: col(row, "type")?,
        payment_id: payment.and_then(|p| Uuid::parse_str(&p).ok()),
        payroll_id: payroll.and_then(|p| Uuid::parse_str(&p).ok()),
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        created_at: from_micros(col(row, "created_at")?),
        cursor: Cursor {
            tx: col(row, "tx")?,
            seq: col(row, "seq")?,
        },
    })
}

/// How long an event-writing transaction may stay open before the feed stops waiting for it.
const SETTLED_AFTER_MICROS: i64 = 10_000_000;

/// A client's events after the cursor, oldest first.
///
/// PostgreSQL numbers rows as transactions start but shows them as they commit, so a reader
/// could see event 8 before event 7 commits and move its cursor past 7. So the cursor orders
/// by writing transaction first, and an event is returned only once every transaction older
/// than its own has ended — or, so that an unrelated long transaction elsewhere in the
/// cluster cannot stall the feed, once it is 10 s old (event-writing transactions are short
/// state changes, far quicker than that). SQLite has one writer: `seq` is commit order.
pub async fn page(db: &Db, client: Uuid, after: Cursor, limit: i64) -> Result<Vec<StoredEvent>> {
    let visible = match db.kind() {
        Kind::Postgres => {
            "AND (tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint OR created_at < $5)"
        }
        Kind::Sqlite => "",
    };
    let sql = format!(
        "SELECT seq, tx, id, type, payment_id, payroll_id, data, created_at FROM events \
         WHERE client_id = $1 AND (tx > $2 OR (tx = $2 AND seq > $3)) {visible} \
         ORDER BY tx, seq LIMIT $4"
    );
    let mut q = crate::store::sql::query(&sql)
        .bind(client.to_string())
        .bind(after.tx)
        .bind(after.seq)
        .bind(limit.clamp(1, 500));
    if db.kind() == Kind::Postgres {
        q = q.bind(now_micros().saturating_sub(SETTLED_AFTER_MICROS));
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

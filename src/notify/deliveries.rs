//! Deliveries: one per (endpoint, event), each sent by a durable webhook job, with every try
//! recorded. Deliveries with the same order key (one payment's events) go out in order.

use super::events::{self, EventType, StoredEvent};
use crate::store::jobs::{self, JobKind};
use crate::store::Conn;
use crate::store::{col, from_micros, now_micros, uuid_col, Db, Result};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Writes a delivery and its job for each of the client's endpoints that wants the event.
pub async fn fan_out(
    conn: &mut Conn,
    client_id: Uuid,
    event_id: Uuid,
    event_seq: i64,
    kind: EventType,
    order_key: &str,
) -> Result<()> {
    let rows = crate::store::sql::query(
        "SELECT id, event_types FROM webhook_endpoints WHERE client_id = $1 AND deleted_at IS NULL",
    )
    .bind(client_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let now = now_micros();
    for row in rows {
        let endpoint = uuid_col(&row, "id")?;
        let types: Option<String> = col(&row, "event_types")?;
        if types.is_some_and(|t| !t.split_whitespace().any(|x| x == kind.as_str())) {
            continue;
        }
        let id = Uuid::now_v7();
        let job = jobs::insert(
            conn,
            JobKind::Webhook,
            Some(client_id),
            None,
            Some(&id.to_string()),
            now,
        )
        .await?;
        crate::store::sql::query(
            "INSERT INTO webhook_deliveries (id, event_seq, endpoint_id, event_id, order_key, \
             job_id, status, tries, next_at, created_at, client_id) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $8)",
        )
        .bind(id.to_string())
        .bind(event_seq)
        .bind(endpoint.to_string())
        .bind(event_id.to_string())
        .bind(order_key)
        .bind(job.to_string())
        .bind(now)
        .bind(client_id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An event just written, for [`fan_out_many`].
#[derive(Debug, Clone)]
pub struct Written {
    pub client_id: Uuid,
    pub event_id: Uuid,
    pub seq: i64,
    pub kind: EventType,
    pub order_key: String,
}

/// A delivery to write: (its id, its job's id, the endpoint, the event).
type Delivery<'a> = (Uuid, Uuid, Uuid, &'a Written);

/// [`fan_out`] for many events: the endpoints of their clients read once, and every delivery
/// with its job written by a statement each.
pub async fn fan_out_many(conn: &mut Conn, events: &[Written]) -> Result<()> {
    use crate::store::sql::{Col, Rows};
    if events.is_empty() {
        return Ok(());
    }
    let kind = conn.kind();
    let mut clients: Vec<String> = events.iter().map(|e| e.client_id.to_string()).collect();
    clients.sort_unstable();
    clients.dedup();
    let sql = format!(
        "SELECT id, client_id, event_types FROM webhook_endpoints WHERE deleted_at IS NULL \
         AND {}",
        crate::store::sql::in_list(kind, "client_id", 1, clients.len())
    );
    let rows = crate::store::sql::query(&sql)
        .bind_list(kind, clients)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut endpoints: std::collections::HashMap<Uuid, Vec<(Uuid, Option<String>)>> =
        std::collections::HashMap::new();
    for row in rows {
        let types: Option<String> = col(&row, "event_types")?;
        endpoints
            .entry(uuid_col(&row, "client_id")?)
            .or_default()
            .push((uuid_col(&row, "id")?, types));
    }
    let mut out: Vec<Delivery<'_>> = Vec::new();
    for e in events {
        for (endpoint, types) in endpoints.get(&e.client_id).into_iter().flatten() {
            if types
                .as_deref()
                .is_some_and(|t| !t.split_whitespace().any(|x| x == e.kind.as_str()))
            {
                continue;
            }
            out.push((Uuid::now_v7(), Uuid::now_v7(), *endpoint, e));
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    let now = now_micros();
    let text = |f: &dyn Fn(&Delivery<'_>) -> Option<String>| Col::Text(out.iter().map(f).collect());
    let jobs = Rows::new(vec![
        ("id", text(&|d| Some(d.1.to_string()))),
        ("payload", text(&|d| Some(d.0.to_string()))),
        ("client", text(&|d| Some(d.3.client_id.to_string()))),
    ]);
    for part in jobs.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO jobs (id, kind, payment_id, payload, run_at, created_at, \
             client_id) SELECT u.id, $1, NULL, u.payload, $2, $2, u.client FROM u WHERE true",
            part.cte(kind, 3)
        ))
        .bind(JobKind::Webhook.as_str())
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    let deliveries = Rows::new(vec![
        ("id", text(&|d| Some(d.0.to_string()))),
        ("seq", Col::Int(out.iter().map(|d| Some(d.3.seq)).collect())),
        ("endpoint", text(&|d| Some(d.2.to_string()))),
        ("event", text(&|d| Some(d.3.event_id.to_string()))),
        ("order_key", text(&|d| Some(d.3.order_key.clone()))),
        ("job", text(&|d| Some(d.1.to_string()))),
        ("client", text(&|d| Some(d.3.client_id.to_string()))),
    ]);
    for part in deliveries.parts(kind) {
        crate::store::sql::query(&format!(
            "WITH {} INSERT INTO webhook_deliveries (id, event_seq, endpoint_id, event_id, \
             order_key, job_id, status, tries, next_at, created_at, client_id) SELECT u.id, \
             u.seq, u.endpoint, u.event, u.order_key, u.job, 'pending', 0, $1, $1, u.client \
             FROM u WHERE true",
            part.cte(kind, 2)
        ))
        .bind(now)
        .bind_rows(kind, part)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Delivered,
    /// Given up: retried past the retry period, or the endpoint was deleted.
    Abandoned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Abandoned => "abandoned",
        }
    }
}

/// Everything a send needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: Uuid,
    /// The endpoint's client.
    pub client_id: Uuid,
    pub endpoint_id: Uuid,
    pub order_key: String,
    pub event_seq: i64,
    pub status: String,
    pub tries: i64,
    pub created_at: i64,
    pub url: String,
    pub secret: String,
    pub format: super::endpoints::Format,
    /// Sent as a bearer token (the openIMIS format).
    pub auth_token: Option<String>,
    pub endpoint_deleted: bool,
    pub event: StoredEvent,
}

pub async fn outgoing(db: &Db, id: Uuid) -> Result<Option<Outgoing>> {
    let row = crate::store::sql::query(
        "SELECT d.id AS delivery_id, d.client_id AS delivery_client, d.endpoint_id, d.order_key, d.event_seq, d.status, d.tries, \
         d.created_at AS delivery_created, w.url, w.secret, w.deleted_at, w.format, w.auth_token, \
         e.seq, e.tx, e.id, e.type, e.payment_id, e.payroll_id, e.data, e.created_at \
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
         JOIN events e ON e.id = d.event_id WHERE d.id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let deleted: Option<i64> = col(&row, "deleted_at")?;
    let format: String = col(&row, "format")?;
    Ok(Some(Outgoing {
        id: uuid_col(&row, "delivery_id")?,
        client_id: uuid_col(&row, "delivery_client")?,
        endpoint_id: uuid_col(&row, "endpoint_id")?,
        order_key: col(&row, "order_key")?,
        event_seq: col(&row, "event_seq")?,
        status: col(&row, "status")?,
        tries: col(&row, "tries")?,
        created_at: col(&row, "delivery_created")?,
        url: col(&row, "url")?,
        secret: col(&row, "secret")?,
        format: super::endpoints::Format::parse(&format).ok_or_else(|| {
            crate::store::StoreError::Corrupt(format!("endpoint format {format}"))
        })?,
        auth_token: col(&row, "auth_token")?,
        endpoint_deleted: deleted.is_some(),
        event: events::from_row(&row)?,
    }))
}

/// When the earliest undelivered delivery before this one (same endpoint and order key) is
/// next tried, if there is one: this one must wait for it.
pub async fn waiting_on(db: &Db, d: &Outgoing) -> Result<Option<i64>> {
    let next: Option<i64> = crate::store::sql::query_scalar(
        "SELECT next_at FROM webhook_deliveries WHERE endpoint_id = $1 AND order_key = $2 \
         AND event_seq < $3 AND status = 'pending' ORDER BY event_seq LIMIT 1",
    )
    .bind(d.endpoint_id.to_string())
    .bind(&d.order_key)
    .bind(d.event_seq)
    .fetch_optional(db.pool())
    .await?;
    Ok(next)
}

/// One try's result.
#[derive(Debug, Clone)]
pub struct Tried {
    pub at: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Records a try and the delivery's new status; when the delivery is done (either way), wakes
/// the next one of its order key.
pub async fn record(
    conn: &mut Conn,
    d: &Outgoing,
    tried: Option<&Tried>,
    status: Status,
    next_at: i64,
) -> Result<()> {
    let now = now_micros();
    if let Some(t) = tried {
        crate::store::sql::query(
            "INSERT INTO webhook_tries (delivery_id, n, at, status_code, error, duration_ms, \
             client_id) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(d.id.to_string())
        .bind(d.tries.saturating_add(1))
        .bind(t.at)
        .bind(t.status_code.map(i64::from))
        .bind(t.error.as_deref())
        .bind(t.duration_ms)
        .bind(d.client_id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    crate::store::sql::query(
        "UPDATE webhook_deliveries SET status = $1, tries = tries + $2, next_at = $3, \
         last_status = COALESCE($4, last_status), last_error = $5, delivered_at = $6 WHERE id = $7",
    )
    .bind(status.as_str())
    .bind(i64::from(tried.is_some()))
    .bind(next_at)
    .bind(tried.and_then(|t| t.status_code).map(i64::from))
    .bind(tried.and_then(|t| t.error.as_deref()))
    .bind((status == Status::Delivered).then_some(now))
    .bind(d.id.to_string())
    .execute(&mut *conn)
    .await?;
    if status != Status::Pending {
        let next: Option<String> = crate::store::sql::query_scalar(
            "SELECT job_id FROM webhook_deliveries WHERE endpoint_id = $1 AND order_key = $2 \
             AND event_seq > $3 AND status = 'pending' ORDER BY event_seq LIMIT 1",
        )
        .bind(d.endpoint_id.to_string())
        .bind(&d.order_key)
        .bind(d.event_seq)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(job) = next {
            crate::store::sql::query(
                "UPDATE jobs SET run_at = $1, version = version + 1 WHERE id = $2",
            )
            .bind(now)
            .bind(job)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: String,
    pub tries: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Every try, oldest first.
    pub attempts: Vec<TryView>,
    #[serde(skip)]
    pub cursor: i64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TryView {
    pub n: i64,
    pub at: DateTime<Utc>,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// An endpoint's deliveries, newest event first, before `before` (an event sequence).
pub async fn list(
    db: &Db,
    endpoint: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryView>> {
    let rows = crate::store::sql::query(
        "SELECT d.id, d.event_id, e.type, d.status, d.tries, d.last_status, d.last_error, \
         d.next_at, d.delivered_at, d.created_at, d.event_seq FROM webhook_deliveries d \
         JOIN events e ON e.id = d.event_id WHERE d.endpoint_id = $1 AND d.event_seq < $2 \
         ORDER BY d.event_seq DESC LIMIT $3",
    )
    .bind(endpoint.to_string())
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit.clamp(1, 500))
    .fetch_all(db.pool())
    .await?;
    let mut page: Vec<DeliveryView> = rows
        .iter()
        .map(|r| {
            let status: String = col(r, "status")?;
            let delivered: Option<i64> = col(r, "delivered_at")?;
            Ok(DeliveryView {
                id: uuid_col(r, "id")?,
                event_id: uuid_col(r, "event_id")?,
                event_type: col(r, "type")?,
                next_at: (status == "pending")
                    .then(|| col::<i64>(r, "next_at").map(from_micros))
                    .transpose()?,
                status,
                tries: col(r, "tries")?,
                last_status: col(r, "last_status")?,
                last_error: col(r, "last_error")?,
                delivered_at: delivered.map(from_micros),
                created_at: from_micros(col(r, "created_at")?),
                attempts: Vec::new(),
                cursor: col(r, "event_seq")?,
            })
        })
        .collect::<Result<_>>()?;
    // The page's tries in one query, spread over their deliveries.
    let (Some(newest), Some(oldest)) = (page.first(), page.last()) else {
        return Ok(page);
    };
    let tries = crate::store::sql::query(
        "SELECT t.delivery_id, t.n, t.at, t.status_code, t.error, t.duration_ms \
         FROM webhook_tries t JOIN webhook_deliveries d ON d.id = t.delivery_id \
         WHERE d.endpoint_id = $1 AND d.event_seq <= $2 AND d.event_seq >= $3 ORDER BY t.n",
    )
    .bind(endpoint.to_string())
    .bind(newest.cursor)
    .bind(oldest.cursor)
    .fetch_all(db.pool())
    .await?;
    let mut by_delivery: std::collections::HashMap<Uuid, Vec<TryView>> =
        std::collections::HashMap::new();
    for t in &tries {
        by_delivery
            .entry(uuid_col(t, "delivery_id")?)
            .or_default()
            .push(TryView {
                n: col(t, "n")?,
                at: from_micros(col(t, "at")?),
                status_code: col(t, "status_code")?,
                error: col(t, "error")?,
                duration_ms: col(t, "duration_ms")?,
            });
    }
    for d in &mut page {
        d.attempts = by_delivery.remove(&d.id).unwrap_or_default();
    }
    Ok(page)
}

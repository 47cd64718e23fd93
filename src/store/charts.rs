//! The figures the console's pictures draw (`crate::charts`), summed by the database in day
//! (or minute) buckets over a bounded range, along an index:
//!
//! - daily flows: a client's payments instructed in the range, through `payments_client_id`
//!   `(client_id, id)`. Payment ids are UUIDv7 taken when the payment is created, so the ids
//!   of a date range are an id range (widened by a minute each side; `created_at` then
//!   filters exactly). Days are the day a payment was instructed (UTC), as in the
//!   reconciliation report, so the picture and the report's table agree.
//! - break ageing: the client's open breaks, through `recon_breaks_status`
//!   `(client_id, status, opened_at)`.
//! - payroll throughput: the transitions of one payroll's items, through
//!   `payments_payroll_state` and the transitions' primary key.
//!
//! Sums are of integer minor units per currency (cast back to BIGINT: PostgreSQL sums BIGINT
//! as NUMERIC), never floats.

use super::{col, Db, Kind, Result};
use chrono::NaiveDate;
use uuid::Uuid;

/// The longest range a query reads, in days: a page's picture, not a data export.
pub const MAX_DAYS: i64 = 92;

pub const DAY_MICROS: i64 = 86_400_000_000;
const MINUTE_MICROS: i64 = 60_000_000;

/// Microseconds at the start of `d` (UTC).
pub fn day_start(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(0)
}

/// The lowest UUIDv7 (as text) whose timestamp is at or after `micros`, less `slack_ms`.
pub fn v7_bound(micros: i64, slack_ms: i64) -> String {
    let ms = micros
        .checked_div(1000)
        .unwrap_or(0)
        .saturating_add(slack_ms)
        .max(0);
    let ms = u64::try_from(ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    // 48 bits of milliseconds, then version 7 and every other bit clear.
    let hi = ms.checked_shl(16).unwrap_or(0) | 0x7000;
    Uuid::from_u64_pair(hi, 0).to_string()
}

/// One day's figures for one rail, programme, direction and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFlow {
    pub day: NaiveDate,
    pub rail: String,
    pub programme: String,
    pub direction: String,
    pub currency: String,
    pub instructed_count: i64,
    pub instructed_minor: i64,
    pub confirmed_minor: i64,
    pub settled_minor: i64,
}

/// Per day, rail, programme, direction and currency: what the client instructed on each day
/// of `from..=to` (at most [`MAX_DAYS`] days from `from`), what of it the rail confirmed and
/// what a statement settled.
pub async fn daily_flows(
    db: &Db,
    client_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayFlow>> {
    let lo = day_start(from);
    let last = from
        .checked_add_signed(chrono::Duration::days(MAX_DAYS.saturating_sub(1)))
        .map_or(to, |end| to.min(end));
    let hi = day_start(last.succ_opt().unwrap_or(last));
    // The programme lives in the payment's metadata (JSON text): read natively by each store.
    let programme = match db.kind() {
        Kind::Postgres => "CAST(p.metadata AS jsonb) ->> 'programme'",
        Kind::Sqlite => "json_extract(p.metadata, '$.programme')",
    };
    let sql = format!(
        "SELECT p.created_at / {DAY_MICROS} AS day, COALESCE(p.rail, 'none') AS rail, \
         COALESCE({programme}, 'general') AS programme, p.direction AS direction, \
         p.currency AS currency, COUNT(*) AS instructed_count, \
         CAST(SUM(p.amount_minor) AS BIGINT) AS instructed_minor, \
         CAST(SUM(CASE WHEN p.state IN ('completed', 'reversed') THEN p.amount_minor ELSE 0 END) \
              AS BIGINT) AS confirmed_minor, \
         CAST(SUM(COALESCE(s.amount_minor, 0)) AS BIGINT) AS settled_minor \
         FROM payments p LEFT JOIN recon_settlements s ON s.payment_id = p.id \
         WHERE p.client_id = $1 AND p.id >= $2 AND p.id < $3 \
         AND p.created_at >= $4 AND p.created_at < $5 \
         GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    );
    let rows = crate::store::sql::query(&sql)
        .bind(client_id.to_string())
        .bind(v7_bound(lo, -60_000))
        .bind(v7_bound(hi, 60_000))
        .bind(lo)
        .bind(hi)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            let day: i64 = col(r, "day")?;
            Ok(DayFlow {
                day: crate::store::from_micros(day.saturating_mul(DAY_MICROS)).date_naive(),
                rail: col(r, "rail")?,
                programme: col(r, "programme")?,
                direction: col(r, "direction")?,
                currency: col(r, "currency")?,
                instructed_count: col(r, "instructed_count")?,
                instructed_minor: col(r, "instructed_minor")?,
                confirmed_minor: col(r, "confirmed_minor")?,
                settled_minor: col(r, "settled_minor")?,
            })
        })
        .collect()
}

/// The age buckets of open breaks: (label, youngest age in days, oldest age in days). The
/// same buckets as the reconciliation report (`recon::report::bucket`).
pub const AGE_BUCKETS: [(&str, i64, i64); 4] = [
    ("0-1d", 0, 1),
    ("2-7d", 2, 7),
    ("8-30d", 8, 30),
    (">30d", 31, i64::MAX),
];

/// Open breaks of one age bucket, severity and currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakAge {
    /// Index into [`AGE_BUCKETS`].
    pub bucket: usize,
    pub critical: bool,
    pub currency: Option<String>,
    pub count: i64,
    pub amount_minor: i64,
}

/// The client's open breaks by age at `now` (microseconds), severity and currency.
pub async fn break_ageing(db: &Db, client_id: Uuid, now: i64) -> Result<Vec<BreakAge>> {
    // A break is in bucket i when its age in whole days is at most the bucket's oldest age.
    let edge = |days: i64| now.saturating_sub(days.saturating_add(1).saturating_mul(DAY_MICROS));
    let rows = crate::store::sql::query(
        "SELECT CAST(CASE WHEN opened_at > $2 THEN 0 WHEN opened_at > $3 THEN 1 \
         WHEN opened_at > $4 THEN 2 ELSE 3 END AS BIGINT) AS bucket, \
         CAST(CASE WHEN severity = 'critical' THEN 1 ELSE 0 END AS BIGINT) AS critical, currency, \
         COUNT(*) AS n, CAST(SUM(COALESCE(amount_minor, 0)) AS BIGINT) AS amount_minor \
         FROM recon_breaks WHERE client_id = $1 AND status = 'open' \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .bind(client_id.to_string())
    .bind(edge(AGE_BUCKETS[0].2))
    .bind(edge(AGE_BUCKETS[1].2))
    .bind(edge(AGE_BUCKETS[2].2))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let bucket: i64 = col(r, "bucket")?;
            let critical: i64 = col(r, "critical")?;
            Ok(BreakAge {
                bucket: usize::try_from(bucket).unwrap_or(0),
                critical: critical == 1,
                currency: col(r, "currency")?,
                count: col(r, "n")?,
                amount_minor: col(r, "amount_minor")?,
            })
        })
        .collect()
}

/// How many of a payroll's items moved in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    /// Minutes since the epoch.
    pub minute: i64,
    /// Items sent to their rail (submitted) that minute.
    pub sent: i64,
    /// Items that reached a final state (completed, failed, cancelled) that minute.
    pub finished: i64,
}

/// Per minute, the payroll's items sent and finished; `None` when the client has no such
/// payroll.
pub async fn payroll_throughput(
    db: &Db,
    client_id: Uuid,
    payroll_id: Uuid,
) -> Result<Option<Vec<MinuteCount>>> {
    let owned: Option<String> =
        crate::store::sql::query_scalar("SELECT id FROM payrolls WHERE id = $1 AND client_id = $2")
            .bind(payroll_id.to_string())
            .bind(client_id.to_string())
            .fetch_optional(db.pool())
            .await?;
    if owned.is_none() {
        return Ok(None);
    }
    let rows = crate::store::sql::query(&format!(
        "SELECT t.at / {MINUTE_MICROS} AS minute, \
         SUM(CASE WHEN t.to_state = 'submitted' THEN 1 ELSE 0 END) AS sent, \
         SUM(CASE WHEN t.to_state IN ('completed', 'failed', 'cancelled') THEN 1 ELSE 0 END) \
             AS finished \
         FROM payments p JOIN payment_transitions t ON t.payment_id = p.id \
         WHERE p.payroll_id = $1 AND t.to_state IN ('submitted', 'completed', 'failed', 'cancelled') \
         GROUP BY 1 ORDER BY 1"
    ))
    .bind(payroll_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(MinuteCount {
                minute: col(r, "minute")?,
                sent: col(r, "sent")?,
                finished: col(r, "finished")?,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v7_bound_orders_with_the_ids_of_its_time() {
        let t = 1_764_633_600_000_000; // 2025-12-02T00:00:00Z
        let id = Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            1_764_633_600,
            5_000_000,
        ))
        .to_string();
        assert!(v7_bound(t, 0) <= id);
        assert!(v7_bound(t.saturating_add(DAY_MICROS), 0) > id);
        assert!(v7_bound(t, -60_000) < v7_bound(t, 0));
    }
}

//! The finance officer's report: per day, rail, programme, direction and currency, what was
//! instructed, confirmed by the rail, settled by a statement, and paid in fees; the open
//! breaks by age; the payments whose outcome is unknown or that need an operator.
//!
//! Days are the day a payment was instructed (UTC), so a day's row follows its payments to
//! confirmation and settlement. Payments are streamed and summed here rather than grouped in
//! SQL: the programme lives in the payment's metadata, which the two stores read differently.

use super::age_days;
use crate::domain::Currency;
use crate::store::recon::{self as rstore, BreakFilter, BreakRow};
use crate::store::{col, now_micros, uuid_col, Db, Result};
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Rows of the unknown-outcome and break lists shown in full.
pub const LIST_LIMIT: i64 = 500;

#[derive(Debug, Clone)]
pub struct Query {
    /// `None`: every client (the command line).
    pub client_id: Option<Uuid>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rail: Option<String>,
    pub programme: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub instructed_count: u64,
    pub instructed_minor: i64,
    pub confirmed_count: u64,
    pub confirmed_minor: i64,
    pub settled_count: u64,
    pub settled_minor: i64,
    pub fees_minor: i64,
    pub failed_count: u64,
    pub unknown_count: u64,
}

impl Figures {
    fn add(&mut self, p: &Row) {
        self.instructed_count = self.instructed_count.saturating_add(1);
        self.instructed_minor = self.instructed_minor.saturating_add(p.amount_minor);
        if matches!(p.state.as_str(), "completed" | "reversed") {
            self.confirmed_count = self.confirmed_count.saturating_add(1);
            self.confirmed_minor = self.confirmed_minor.saturating_add(p.amount_minor);
        }
        if let Some(s) = p.settled_minor {
            self.settled_count = self.settled_count.saturating_add(1);
            self.settled_minor = self.settled_minor.saturating_add(s);
        }
        self.fees_minor = self.fees_minor.saturating_add(p.fee_minor.unwrap_or(0));
        match p.state.as_str() {
            "failed" => self.failed_count = self.failed_count.saturating_add(1),
            "unknown" => self.unknown_count = self.unknown_count.saturating_add(1),
            _ => {}
        }
    }

    fn merge(&mut self, o: &Figures) {
        self.instructed_count = self.instructed_count.saturating_add(o.instructed_count);
        self.instructed_minor = self.instructed_minor.saturating_add(o.instructed_minor);
        self.confirmed_count = self.confirmed_count.saturating_add(o.confirmed_count);
        self.confirmed_minor = self.confirmed_minor.saturating_add(o.confirmed_minor);
        self.settled_count = self.settled_count.saturating_add(o.settled_count);
        self.settled_minor = self.settled_minor.saturating_add(o.settled_minor);
        self.fees_minor = self.fees_minor.saturating_add(o.fees_minor);
        self.failed_count = self.failed_count.saturating_add(o.failed_count);
        self.unknown_count = self.unknown_count.saturating_add(o.unknown_count);
    }
}

/// One line of the daily table.
#[derive(Debug, Clone, Serialize)]
pub struct DayRow {
    pub date: NaiveDate,
    pub rail: String,
    pub programme: String,
    pub direction: String,
    pub currency: Currency,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Totals over the period per direction and currency (amounts only add within a currency).
#[derive(Debug, Clone, Serialize)]
pub struct TotalRow {
    pub direction: String,
    pub currency: Currency,
    #[serde(flatten)]
    pub figures: Figures,
}

pub const BUCKETS: [&str; 4] = ["0-1d", "2-7d", "8-30d", ">30d"];

pub fn bucket(age_days: i64) -> &'static str {
    match age_days {
        i64::MIN..=1 => "0-1d",
        2..=7 => "2-7d",
        8..=30 => "8-30d",
        _ => ">30d",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AgingRow {
    pub bucket: &'static str,
    pub currency: Option<Currency>,
    pub count: u64,
    pub critical: u64,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnknownPayment {
    pub id: Uuid,
    pub reference: String,
    pub direction: String,
    pub state: String,
    pub rail: Option<String>,
    pub amount_minor: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub exception: Option<String>,
    pub conflict: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub query: Query,
    pub generated_at: DateTime<Utc>,
    pub days: Vec<DayRow>,
    pub totals: Vec<TotalRow>,
    pub aging: Vec<AgingRow>,
    pub open_breaks: Vec<BreakRow>,
    pub open_break_count: u64,
    pub unknown: Vec<UnknownPayment>,
}

struct Row {
    state: String,
    amount_minor: i64,
    settled_minor: Option<i64>,
    fee_minor: Option<i64>,
}

fn day_micros(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_micros())
        .unwrap_or(0)
}

fn programme_of(metadata: &str) -> String {
    serde_json::from_str::<Value>(metadata)
        .ok()
        .and_then(|m| {
            m.get("programme")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "general".to_owned())
}

pub async fn build(db: &Db, q: &Query) -> Result<Report> {
    let lo = day_micros(q.from);
    let hi = day_micros(q.to.succ_opt().unwrap_or(q.to));
    let mut sql = String::from(
        "SELECT p.id AS id, p.reference AS reference, p.direction AS direction, p.state AS state, \
         p.amount_minor AS amount_minor, p.currency AS currency, p.rail AS rail, \
         p.metadata AS metadata, p.created_at AS created_at, p.exception AS exception, \
         p.conflict AS conflict, s.amount_minor AS settled_minor, s.fee_minor AS fee_minor \
         FROM payments p LEFT JOIN recon_settlements s ON s.payment_id = p.id \
         WHERE p.created_at >= $1 AND p.created_at < $2",
    );
    let mut binds: Vec<String> = Vec::new();
    if let Some(c) = q.client_id {
        binds.push(c.to_string());
        sql.push_str(&format!(
            " AND p.client_id = ${}",
            binds.len().saturating_add(2)
        ));
    }
    if let Some(r) = &q.rail {
        binds.push(r.clone());
        sql.push_str(&format!(" AND p.rail = ${}", binds.len().saturating_add(2)));
    }
    sql.push_str(" ORDER BY p.created_at");
    let mut query = crate::store::sql::query(&sql).bind(lo).bind(hi);
    for b in binds {
        query = query.bind(b);
    }
    let mut rows = query.fetch(db.pool());
    let mut days: BTreeMap<(NaiveDate, String, String, String, Currency), Figures> =
        BTreeMap::new();
    let mut unknown = Vec::new();
    while let Some(r) = rows.try_next().await? {
        let metadata: String = col(&r, "metadata")?;
        let programme = programme_of(&metadata);
        if q.programme.as_ref().is_some_and(|p| *p != programme) {
            continue;
        }
        let currency: String = col(&r, "currency")?;
        let Ok(currency) = currency.parse::<Currency>() else {
            continue;
        };
        let created: i64 = col(&r, "created_at")?;
        let created = crate::store::from_micros(created);
        let rail: Option<String> = col(&r, "rail")?;
        let direction: String = col(&r, "direction")?;
        let row = Row {
            state: col(&r, "state")?,
            amount_minor: col(&r, "amount_minor")?,
            settled_minor: col(&r, "settled_minor")?,
            fee_minor: col(&r, "fee_minor")?,
        };
        let exception: Option<String> = col(&r, "exception")?;
        let conflict: Option<String> = col(&r, "conflict")?;
        if (row.state == "unknown" || exception.is_some() || conflict.is_some())
            && unknown.len() < usize::try_from(LIST_LIMIT).unwrap_or(0)
        {
            unknown.push(UnknownPayment {
                id: uuid_col(&r, "id")?,
                reference: col(&r, "reference")?,
                direction: direction.clone(),
                state: row.state.clone(),
                rail: rail.clone(),
                amount_minor: row.amount_minor,
                currency,
                created_at: created,
                exception,
                conflict,
            });
        }
        days.entry((
            created.date_naive(),
            rail.unwrap_or_else(|| "none".to_owned()),
            programme,
            direction,
            currency,
        ))
        .or_default()
        .add(&row);
    }
    drop(rows);
    let mut totals: BTreeMap<(String, Currency), Figures> = BTreeMap::new();
    for ((_, _, _, dir, cur), f) in &days {
        totals.entry((dir.clone(), *cur)).or_default().merge(f);
    }

    // Open breaks: every one counts in the aging, the oldest are listed.
    let now = now_micros();
    let mut aging: BTreeMap<(usize, Option<Currency>), AgingRow> = BTreeMap::new();
    let mut open_break_count = 0u64;
    let mut bsql = String::from(
        "SELECT opened_at, severity, amount_minor, currency, rail, programme FROM recon_breaks \
         WHERE status = 'open'",
    );
    if q.client_id.is_some() {
        bsql.push_str(" AND client_id = $1");
    }
    let mut bq = crate::store::sql::query(&bsql);
    if let Some(c) = q.client_id {
        bq = bq.bind(c.to_string());
    }
    let mut brows = bq.fetch(db.pool());
    while let Some(r) = brows.try_next().await? {
        let rail: Option<String> = col(&r, "rail")?;
        let programme: Option<String> = col(&r, "programme")?;
        if q.rail.as_ref().is_some_and(|x| rail.as_ref() != Some(x))
            || q.programme
                .as_ref()
                .is_some_and(|x| programme.as_ref() != Some(x))
        {
            continue;
        }
        open_break_count = open_break_count.saturating_add(1);
        let opened: i64 = col(&r, "opened_at")?;
        let b = bucket(age_days(opened, now));
        let idx = BUCKETS.iter().position(|x| *x == b).unwrap_or(0);
        let currency: Option<String> = col(&r, "currency")?;
        let currency = currency.and_then(|c| c.parse::<Currency>().ok());
        let amount: Option<i64> = col(&r, "amount_minor")?;
        let severity: String = col(&r, "severity")?;
        let row = aging.entry((idx, currency)).or_insert(AgingRow {
            bucket: b,
            currency,
            count: 0,
            critical: 0,
            amount_minor: 0,
        });
        row.count = row.count.saturating_add(1);
        if severity == "critical" {
            row.critical = row.critical.saturating_add(1);
        }
        row.amount_minor = row.amount_minor.saturating_add(amount.unwrap_or(0));
    }
    drop(brows);
    let mut open_breaks = rstore::list_breaks(
        db,
        q.client_id,
        &BreakFilter {
            status: Some("open".into()),
            limit: LIST_LIMIT,
            ..BreakFilter::default()
        },
    )
    .await?;
    open_breaks.retain(|b| {
        q.rail.as_ref().is_none_or(|x| b.rail.as_ref() == Some(x))
            && q.programme
                .as_ref()
                .is_none_or(|x| b.programme.as_ref() == Some(x))
    });
    Ok(Report {
        query: q.clone(),
        generated_at: Utc::now(),
        days: days
            .into_iter()
            .map(
                |((date, rail, programme, direction, currency), figures)| DayRow {
                    date,
                    rail,
                    programme,
                    direction,
                    currency,
                    figures,
                },
            )
            .collect(),
        totals: totals
            .into_iter()
            .map(|((direction, currency), figures)| TotalRow {
                direction,
                currency,
                figures,
            })
            .collect(),
        aging: aging.into_values().collect(),
        open_breaks,
        open_break_count,
        unknown,
    })
}

//! The console's payment search: one client's payments by reference, payee, state, rail,
//! programme and day, a page at a time in id order, newest first (keyset, never an offset, never a count).
//!
//! Every criterion reads through an index that starts with the client and ends with the id
//! (migration 0015), so a page costs the same on the millionth payment as on the first. Ids
//! are UUIDv7, whose first 48 bits are the creation time in milliseconds: a range of days is
//! a range of ids, and needs no index of its own.

use super::{Db, Kind, Result};
use crate::domain::Payment;
use chrono::NaiveDate;
use uuid::Uuid;

#[derive(Debug, Clone, Default)]
pub struct Search {
    pub reference: Option<String>,
    /// The payee's (or payer's) identifier as stored (normalised).
    pub payee: Option<String>,
    pub state: Option<crate::domain::State>,
    pub rail: Option<String>,
    pub programme: Option<String>,
    /// Created on or after this day (UTC).
    pub from: Option<NaiveDate>,
    /// Created on or before this day (UTC).
    pub to: Option<NaiveDate>,
    /// The page before this id (pages run newest first).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// The smallest UUIDv7 text of a day's first millisecond: ids compare as text in the store.
fn first_id_of(day: NaiveDate) -> Option<String> {
    let ms = day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
    let ms = u64::try_from(ms).ok()?;
    Some(format!(
        "{:08x}-{:04x}-7000-8000-000000000000",
        ms >> 16,
        ms & 0xffff
    ))
}

/// The programme as each store reads it from the metadata (the same expression as the index).
fn programme_expr(kind: Kind) -> &'static str {
    match kind {
        Kind::Sqlite => "json_extract(metadata, '$.programme')",
        Kind::Postgres => "(metadata::jsonb ->> 'programme')",
    }
}

/// One page of the client's payments matching every given criterion, newest first.
pub async fn payments(db: &Db, client_id: Uuid, s: &Search) -> Result<Vec<Payment>> {
    let cols = super::payments::COLUMNS;
    let mut sql = format!("SELECT {cols} FROM payments WHERE client_id = $1");
    let mut binds: Vec<String> = vec![client_id.to_string()];
    let mut add = |clause: String, v: String| {
        binds.push(v);
        sql.push_str(&format!(" AND {clause} ${}", binds.len()));
    };
    if let Some(r) = &s.reference {
        // Through the unique (client_id, direction, reference).
        add(
            "direction IN ('disbursement', 'collection') AND reference =".into(),
            r.clone(),
        );
    }
    if let Some(p) = &s.payee {
        add("party_value =".into(), p.clone());
    }
    if let Some(st) = s.state {
        add("state =".into(), st.as_str().to_owned());
    }
    if let Some(r) = &s.rail {
        add("rail =".into(), r.clone());
    }
    if let Some(p) = &s.programme {
        add(format!("{} =", programme_expr(db.kind())), p.clone());
    }
    if let Some(first) = s.from.and_then(first_id_of) {
        add("id >=".into(), first);
    }
    if let Some(end) = s.to.and_then(|d| d.succ_opt()).and_then(first_id_of) {
        add("id <".into(), end);
    }
    if let Some(b) = s.before {
        add("id <".into(), b.to_string());
    }
    sql.push_str(&format!(
        " ORDER BY id DESC LIMIT {}",
        s.limit.clamp(1, 500)
    ));
    let mut q = crate::store::sql::query(&sql);
    for b in binds {
        q = q.bind(b);
    }
    let rows = q.fetch_all(db.pool()).await?;
    rows.iter().map(super::payments::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_an_id_range() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
        let first = first_id_of(day).unwrap_or_default();
        let ms = day
            .and_hms_opt(0, 0, 1)
            .map(|t| t.and_utc())
            .unwrap_or_default();
        let secs = u64::try_from(ms.timestamp()).unwrap_or(0);
        let later = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, 0));
        assert!(later.to_string() > first, "{later} after {first}");
        let next = first_id_of(day.succ_opt().unwrap_or_default()).unwrap_or_default();
        assert!(later.to_string() < next);
        assert_eq!(first.len(), 36);
    }
}

//! Resolving a break: what a finance officer may decide for each type, and the ledger
//! entries each decision posts, recorded with who, when and why.

use super::postings::{self, Book, Entry};
use crate::store::recon::{self as rstore, BreakRow, Resolution};
use crate::store::{Db, StoreError};
use uuid::Uuid;

/// Every resolution, with what it means.
pub const RESOLUTIONS: [(&str, &str); 7] = [
    (
        "book_to_suspense",
        "money of unknown origin or destination is parked in suspense",
    ),
    (
        "suspense_to_premiums",
        "money identified as premiums: through suspense to premiums received",
    ),
    (
        "write_off_difference",
        "the difference between statement and payment is booked to fees",
    ),
    (
        "confirmed_paid",
        "the statement is right: the money moved; the books follow it",
    ),
    (
        "confirmed_not_paid",
        "our record is right: nothing moved; nothing to post",
    ),
    (
        "refund_requested",
        "the payer is refunded outside the gateway; nothing to post here",
    ),
    ("no_action", "investigated; nothing to post"),
];

/// The resolutions that make sense for a break type.
pub fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "unmatched_statement_line" => &["book_to_suspense", "suspense_to_premiums", "no_action"],
        "missing_from_statement" => &["confirmed_not_paid", "no_action"],
        "amount_mismatch" => &["write_off_difference", "no_action"],
        "currency_mismatch" => &["book_to_suspense", "no_action"],
        "status_conflict" | "callback_conflict" => {
            &["confirmed_paid", "confirmed_not_paid", "no_action"]
        }
        "duplicate" => &["book_to_suspense", "no_action"],
        "partial_payment" | "over_payment" => {
            &["suspense_to_premiums", "refund_requested", "no_action"]
        }
        _ => &["no_action"],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such break")]
    NotFound,
    #[error("the break is already resolved")]
    AlreadyResolved(Box<BreakRow>),
    #[error("a {kind} break may be resolved as: {}", allowed.join(", "))]
    NotAllowed {
        kind: String,
        allowed: &'static [&'static str],
    },
}

impl From<sqlx::Error> for ResolveError {
    fn from(e: sqlx::Error) -> Self {
        ResolveError::Store(e.into())
    }
}

fn money_minor(v: Option<&serde_json::Value>, currency: &str) -> Option<i64> {
    let c: crate::domain::Currency = currency.parse().ok()?;
    let s = v?.get("value")?.as_str()?;
    crate::domain::Money::parse(s, c).ok().map(|m| m.minor())
}

/// The rail account of a break that names none (an unmatched line of a statement uploaded
/// without `?rail=`).
const NO_RAIL: &str = "unassigned";

/// The entries a resolution posts for a break.
pub fn entries_for(b: &BreakRow, resolution: &str) -> Vec<Entry> {
    let (Some(amount), Some(currency)) = (
        b.amount_minor,
        b.currency
            .as_deref()
            .and_then(|c| c.parse::<crate::domain::Currency>().ok()),
    ) else {
        return Vec::new();
    };
    let book = Book {
        client: b.client_id,
        rail: b.rail.as_deref().unwrap_or(NO_RAIL),
        programme: b.programme.as_deref(),
        currency,
    };
    let code = currency.code();
    let money_in = b
        .detail
        .get("lines")
        .and_then(|l| l.get(0))
        .and_then(|l| l.get("direction"))
        .and_then(serde_json::Value::as_str)
        .map_or(b.kind != "missing_from_statement", |d| d == "credit");
    match resolution {
        "book_to_suspense" => {
            if money_in {
                vec![book.entry(
                    book.settlement(),
                    book.suspense(),
                    amount,
                    "statement line to suspense",
                )]
            } else {
                vec![book.entry(
                    book.suspense(),
                    book.settlement(),
                    amount,
                    "statement line to suspense",
                )]
            }
        }
        "suspense_to_premiums" => {
            // Partial and over-payments book what actually arrived.
            let received = money_minor(b.detail.get("received"), code).unwrap_or(amount);
            vec![
                book.entry(
                    book.settlement(),
                    book.suspense(),
                    received,
                    "money received parked in suspense",
                ),
                book.entry(
                    book.suspense(),
                    book.premiums(),
                    received,
                    "suspense identified as premiums",
                ),
            ]
        }
        "write_off_difference" => {
            let expected = money_minor(b.detail.get("expected"), code);
            let found = money_minor(b.detail.get("found"), code);
            match (expected, found) {
                (Some(e), Some(f)) if e != f => vec![book.entry(
                    book.fees(),
                    book.settlement(),
                    f.saturating_sub(e).saturating_abs(),
                    "difference between statement and payment written off to fees",
                )],
                _ => Vec::new(),
            }
        }
        "confirmed_paid" => {
            if money_in {
                vec![book.entry(
                    book.settlement(),
                    book.premiums(),
                    amount,
                    "the statement proves the premium received",
                )]
            } else {
                vec![book.entry(
                    book.benefits(),
                    book.settlement(),
                    amount,
                    "the statement proves the benefit paid",
                )]
            }
        }
        _ => Vec::new(),
    }
}

pub struct Decision<'a> {
    pub resolution: &'a str,
    pub reason: &'a str,
    pub owner: Option<&'a str>,
    pub resolved_by: &'a str,
}

pub async fn resolve(
    db: &Db,
    client_id: Option<Uuid>,
    id: Uuid,
    d: &Decision<'_>,
) -> Result<BreakRow, ResolveError> {
    let mut tx = db.begin().await?;
    let b = rstore::get_break(&mut tx, client_id, id)
        .await?
        .ok_or(ResolveError::NotFound)?;
    if b.status != "open" {
        return Err(ResolveError::AlreadyResolved(Box::new(b)));
    }
    let ok = allowed(&b.kind);
    if !ok.contains(&d.resolution) {
        return Err(ResolveError::NotAllowed {
            kind: b.kind.clone(),
            allowed: ok,
        });
    }
    let entries = entries_for(&b, d.resolution);
    postings::post(
        &mut tx,
        &format!("break:{id}"),
        &entries,
        &format!("reconciliation break {id} resolved as {}", d.resolution),
    )
    .await?;
    let entries_json = serde_json::to_value(&entries).unwrap_or(serde_json::json!([]));
    let done = rstore::resolve_break(
        &mut tx,
        id,
        &Resolution {
            resolution: d.resolution,
            reason: d.reason,
            owner: d.owner,
            resolved_by: d.resolved_by,
            entries: &entries_json,
        },
    )
    .await?;
    if !done {
        drop(tx);
        let mut conn = db.pool().acquire().await?;
        let now = rstore::get_break(&mut conn, client_id, id)
            .await?
            .ok_or(ResolveError::NotFound)?;
        return Err(ResolveError::AlreadyResolved(Box::new(now)));
    }
    let after = rstore::get_break(&mut tx, client_id, id)
        .await?
        .ok_or(ResolveError::NotFound)?;
    tx.commit().await?;
    metrics::counter!("railgate_recon_breaks_resolved_total").increment(1);
    Ok(after)
}

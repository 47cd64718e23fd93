//! The operator's queue: exceptions, contradictions and dead jobs, oldest first, in one list
//! paged by a keyset cursor (the time an item entered the queue, then its id).
//!
//! Each source is read after the cursor, one item more than the page, and the three are
//! merged; the page is the first `limit` of the merge. A client's key sees its own payments;
//! dead jobs belong to the gateway and are listed only to its operator.

use super::Actor;
use crate::domain::machine::{operator_may_act, was_sent};
use crate::domain::State;
use crate::store::exceptions::{self as source, After, PaymentSide};
use crate::store::{from_micros, Db, Result};
use serde::Serialize;
use serde_json::{json, Value};

/// The kinds of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An unknown outcome past its deadline.
    Exception,
    /// A rail contradicted what the payment holds.
    Conflict,
    /// A job the dispatcher gave up on.
    DeadJob,
}

impl ItemKind {
    pub fn parse(s: &str) -> Option<ItemKind> {
        match s {
            "exception" => Some(ItemKind::Exception),
            "conflict" => Some(ItemKind::Conflict),
            "dead_job" => Some(ItemKind::DeadJob),
            _ => None,
        }
    }
}

/// What may be done about an item, where it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `POST /v1/payments/{id}/inquiries`.
    AskRail,
    /// `POST /v1/payments/{id}/settlements`.
    Settle,
    /// `POST /v1/admin/jobs/dead/{id}/retry`.
    RetryJob,
    /// The payment is final: its reconciliation break is resolved (`/v1/reconciliation`).
    ResolveBreak,
}

/// One item of the queue.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: ItemKind,
    /// The payment's id (an exception), the contradiction's, or the job's.
    pub id: String,
    /// When it entered the queue, microseconds.
    pub since: i64,
    pub payment: Option<PaymentSide>,
    /// What happened, in a sentence.
    pub detail: Option<String>,
    /// What the rail claimed (a contradiction), or the job's kind (a dead job).
    pub what: Option<String>,
    /// Times a dead job was claimed, and failed in a row.
    pub tries: Option<(i64, i64)>,
    pub actions: Vec<Action>,
}

impl Item {
    fn key(&self) -> After {
        After {
            at: self.since,
            id: self.id.clone(),
        }
    }

    /// The item as the API and the console show it.
    pub fn view(&self) -> Value {
        let mut v = json!({
            "kind": self.kind,
            "id": self.id,
            "since": from_micros(self.since).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "detail": self.detail,
            "actions": self.actions,
        });
        if let Some(obj) = v.as_object_mut() {
            if let Some(p) = &self.payment {
                obj.insert("payment".into(), payment_view(p));
            }
            match self.kind {
                ItemKind::Conflict => {
                    obj.insert("claimed".into(), json!(self.what));
                }
                ItemKind::DeadJob => {
                    obj.insert("job_kind".into(), json!(self.what));
                    if let Some((tries, failures)) = self.tries {
                        obj.insert("tries".into(), json!(tries));
                        obj.insert("failures".into(), json!(failures));
                    }
                }
                ItemKind::Exception => {}
            }
        }
        v
    }
}

/// The payment an item is about, without its party (the console's page of the payment shows
/// the party, masked).
fn payment_view(p: &PaymentSide) -> Value {
    let amount = p
        .currency
        .parse::<crate::domain::Currency>()
        .map(|c| railgate_rail::money::format_minor(p.amount_minor, c))
        .ok();
    json!({
        "id": p.id,
        "reference": p.reference,
        "state": p.state,
        "direction": p.direction,
        "rail": p.rail,
        "amount": {"value": amount, "currency": p.currency},
        "exception": p.exception,
        "conflict": p.conflict,
    })
}

/// The actions a payment's state allows (the engine decides again under the payment's lock).
fn payment_actions(p: &PaymentSide) -> Vec<Action> {
    let Some(state) = State::parse(&p.state) else {
        return Vec::new();
    };
    if state.is_final() {
        return vec![Action::ResolveBreak];
    }
    if !operator_may_act(state, p.exception.is_some(), p.conflict.is_some()) {
        return Vec::new();
    }
    if was_sent(state) {
        vec![Action::AskRail, Action::Settle]
    } else {
        vec![Action::Settle]
    }
}

/// A page of the queue.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Item>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// Where a page starts: after the item this cursor names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(After);

impl Cursor {
    /// `{microseconds}.{id}` as [`Cursor::encode`] writes it; `None` for anything else.
    pub fn parse(s: &str) -> Option<Cursor> {
        let (at, id) = s.split_once('.')?;
        let at = at.parse::<i64>().ok()?;
        let valid = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        valid.then(|| {
            Cursor(After {
                at,
                id: id.to_owned(),
            })
        })
    }

    fn encode(after: &After) -> String {
        format!("{}.{}", after.at, after.id)
    }
}

/// A page of what `actor` may see, oldest first; only `kind` when given.
pub async fn list(
    db: &Db,
    actor: &Actor,
    kind: Option<ItemKind>,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<Page> {
    let limit = limit.clamp(1, 500);
    let after = cursor.map_or_else(After::start, |c| c.0.clone());
    let wanted = |k: ItemKind| kind.is_none_or(|w| w == k);
    let fetch = limit.saturating_add(1);
    let mut items = Vec::new();
    if wanted(ItemKind::Exception) {
        for r in source::exceptions(db, actor.client_id, &after, fetch).await? {
            items.push(Item {
                kind: ItemKind::Exception,
                id: r.payment.id.clone(),
                since: r.at,
                detail: r.payment.exception.clone(),
                what: None,
                tries: None,
                actions: payment_actions(&r.payment),
                payment: Some(r.payment),
            });
        }
    }
    if wanted(ItemKind::Conflict) {
        for r in source::conflicts(db, actor.client_id, &after, fetch).await? {
            let detail = match &r.detail {
                Some(d) => format!("{} (held {}): {d}", r.source, r.held_state),
                None => format!("{} (held {})", r.source, r.held_state),
            };
            items.push(Item {
                kind: ItemKind::Conflict,
                id: r.id,
                since: r.at,
                detail: Some(detail),
                what: Some(r.claimed),
                tries: None,
                actions: payment_actions(&r.payment),
                payment: Some(r.payment),
            });
        }
    }
    if actor.operator && wanted(ItemKind::DeadJob) {
        for r in source::dead_jobs(db, &after, fetch).await? {
            items.push(Item {
                kind: ItemKind::DeadJob,
                id: r.id,
                since: r.at,
                payment: None,
                detail: r.last_error,
                what: Some(r.kind),
                tries: Some((r.tries, r.failures)),
                actions: vec![Action::RetryJob],
            });
        }
    }
    items.sort_by_key(Item::key);
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = more
        .then(|| items.last().map(|i| Cursor::encode(&i.key())))
        .flatten();
    Ok(Page { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_wrote() {
        let after = After {
            at: 1_733_000_000_000_123,
            id: "0190c2d4-1111-7000-8000-000000000001".into(),
        };
        let c = Cursor::encode(&after);
        assert_eq!(Cursor::parse(&c), Some(Cursor(after)));
    }

    #[test]
    fn a_bad_cursor_is_refused() {
        for bad in ["", "12", "x.abc", "12.", "12.a b", "12.a'--"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}

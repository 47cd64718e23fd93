//! Running a decision's effects, in the change's transaction.

use crate::domain::machine::{AttemptStatus, AttemptWrite, Conflict, Effect};
use crate::domain::Payment;
use crate::store::attempts::{self, Status};
use crate::store::jobs::{self, JobKind};
use crate::store::Conn;
use crate::store::{now_micros, payrolls, Result};
use crate::{ledger, notify};
use serde_json::json;
use uuid::Uuid;

/// Runs the effects of a group of decisions, each for its payment as written: the kinds every
/// payment of a group has (attempt writes, ledger postings, events) a statement per kind for
/// the whole group, the rest payment by payment.
pub(super) async fn run_many(
    conn: &mut Conn,
    decided: &[(Payment, Vec<Effect>, String)],
    later: &mut super::Deferred,
) -> Result<()> {
    let mut statuses = Vec::new();
    let mut accepted = Vec::new();
    let mut postings = Vec::new();
    let mut events = Vec::new();
    // Payments whose job goes: a later `Dispatch` of the same payment in this batch keeps it.
    let mut stopped = std::collections::HashSet::new();
    for (p, effects, cause) in decided {
        for effect in effects {
            match effect {
                Effect::Attempt(AttemptWrite::Status {
                    attempt,
                    status,
                    rail_reference,
                    why,
                }) => {
                    let status = match status {
                        AttemptStatus::Completed => Status::Completed,
                        AttemptStatus::Failed => Status::Failed,
                        AttemptStatus::Unknown => Status::Unknown,
                    };
                    statuses.push(attempts::StatusWrite {
                        id: *attempt,
                        status,
                        rail_reference: rail_reference.clone(),
                        why: why.clone(),
                    });
                }
                Effect::Attempt(AttemptWrite::Accepted {
                    attempt,
                    rail_reference,
                }) => accepted.push((*attempt, rail_reference.clone())),
                Effect::Conflict(c) => conflict(conn, p, c, cause).await?,
                Effect::Recheck { attempt } => recheck(conn, p, *attempt).await?,
                Effect::Post { from, to } => postings.push(ledger::postings::Transition {
                    payment: p,
                    from: *from,
                    to: *to,
                    cause,
                }),
                Effect::Announce { to } => {
                    if let Some(kind) = notify::EventType::for_state(*to) {
                        events.push(notify::NewEvent {
                            client_id: p.client_id,
                            kind,
                            payment_id: Some(p.id),
                            payroll_id: p.payroll_id,
                            data: notify::events::payment_data(p),
                        });
                    }
                }
                Effect::AnnounceException => {
                    metrics::counter!("railgate_payment_exceptions_total").increment(1);
                    events.push(notify::NewEvent {
                        client_id: p.client_id,
                        kind: notify::EventType::PaymentException,
                        payment_id: Some(p.id),
                        payroll_id: p.payroll_id,
                        data: notify::events::payment_data(p),
                    });
                }
                Effect::PayrollProgress { payroll } => {
                    later.payrolls.insert(*payroll);
                }
                Effect::Dispatch => {
                    stopped.remove(&p.id);
                    jobs::schedule_payment(conn, p.client_id, p.id, now_micros()).await?
                }
                Effect::StopDriving => {
                    stopped.insert(p.id);
                }
            }
        }
    }
    attempts::set_status_many(conn, statuses).await?;
    attempts::mark_accepted_many(conn, accepted).await?;
    ledger::postings::on_transitions(conn, &postings).await?;
    notify::events::emit_many(conn, events).await?;
    jobs::stop_driving(conn, &stopped.into_iter().collect::<Vec<_>>()).await?;
    Ok(())
}

async fn conflict(conn: &mut Conn, p: &Payment, c: &Conflict, source: &str) -> Result<()> {
    let payment_id = p.id;
    if c.amount {
        tracing::warn!(payment = %payment_id, "Rail reported another amount; conflict recorded, not completed");
        metrics::counter!("railgate_amount_conflicts_total").increment(1);
    }
    crate::store::sql::query(
        "INSERT INTO conflicts (id, payment_id, held_state, claimed, source, detail, at, \
         client_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(payment_id.to_string())
    .bind(c.held.as_str())
    .bind(c.claimed)
    .bind(source)
    .bind(c.detail.as_deref())
    .bind(now_micros())
    .bind(p.client_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes the attempt's re-check job when its rail re-checks failures (`failure_rechecks`).
async fn recheck(conn: &mut Conn, p: &Payment, attempt_id: Uuid) -> Result<()> {
    let delay: Option<i64> = crate::store::sql::query_scalar(
        "SELECT f.delay_micros FROM failure_rechecks f JOIN attempts a ON a.rail = f.rail \
         WHERE a.id = $1",
    )
    .bind(attempt_id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(delay) = delay else {
        return Ok(());
    };
    let payload = json!({ "attempt_id": attempt_id }).to_string();
    jobs::insert(
        conn,
        JobKind::ConfirmFailure,
        Some(p.client_id),
        Some(p.id),
        Some(&payload),
        now_micros().saturating_add(delay),
    )
    .await?;
    Ok(())
}

/// Completes the payroll when no item of it is open any more, with the `payroll.completed`
/// event for the core (its counts and totals per state), inside the caller's transaction.
pub async fn settle_payroll(conn: &mut Conn, payroll_id: Uuid) -> Result<()> {
    if !payrolls::complete_if_done(conn, payroll_id).await? {
        return Ok(());
    }
    let Some(p) = payrolls::get_in(conn, None, payroll_id).await? else {
        return Ok(());
    };
    let counts = payrolls::counts_in(conn, payroll_id).await?;
    let mut states = serde_json::Map::new();
    for c in &counts {
        let entry = states
            .entry(c.state.as_str().to_owned())
            .or_insert_with(|| json!({"count": 0, "totals": []}));
        let n = entry["count"].as_i64().unwrap_or(0).saturating_add(c.count);
        entry["count"] = json!(n);
        if let Some(t) = entry["totals"].as_array_mut() {
            t.push(money_json(c.total_minor, &c.currency));
        }
    }
    let summary = json!({
        "name": p.name,
        "item_count": p.item_count,
        "states": states,
    });
    notify::events::payroll_completed(conn, p.client_id, payroll_id, summary).await?;
    tracing::info!(payroll = %payroll_id, items = p.item_count, "Payroll completed");
    metrics::counter!("railgate_payrolls_completed_total").increment(1);
    Ok(())
}

fn money_json(minor: i64, currency: &str) -> serde_json::Value {
    match currency.parse::<crate::domain::Currency>() {
        Ok(c) => {
            json!({"value": railgate_rail::money::format_minor(minor, c), "currency": currency})
        }
        Err(_) => json!({"minor": minor, "currency": currency}),
    }
}

//! Callbacks settled at the end of their group commit, many at once.
//!
//! Most callbacks name attempts of ours and say how they ended (completed, failed, accepted).
//! Such a callback needs nothing written before the batch's end: its part only hands it to
//! the tail (no statement, so no savepoint either), and the tail settles every such callback
//! of the batch together: their attempts and payments read by one statement each, their
//! event ids claimed by one, each event reviewed by its adapter in memory, the payment changes
//! applied with the batch's others, and the callbacks stored as received with their verdicts
//! by one more. What is rare (an id that is not an attempt's, an outcome that writes on its
//! own) takes the one-by-one path, in the same transaction and order.

use super::tail::Effect;
use super::{apply_event, refused, settle, unknown_attempt, Answer, InboxError, Raw};
use crate::domain::Payment;
use crate::rails::Rail;
use crate::store::attempts::{self, AttemptRow};
use crate::store::{callbacks as store, payments, Conn, Db};
use railgate_rail::{AttemptRef, CallbackOutcome, CallbackReply, InboundRequest};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Where a settled callback's answer is left for its caller (read after the commit).
pub(super) type AnswerCell = Arc<Mutex<Option<Answer>>>;

/// A callback whose events all name attempts, with no resend check or follow-up to write.
pub(super) struct Quick {
    pub(super) db: Db,
    pub(super) rail: Arc<Rail>,
    /// Its row id, chosen now; the row is written at the end with its verdict.
    pub(super) row: Uuid,
    pub(super) raw: Raw,
    pub(super) req: InboundRequest,
    pub(super) reply: CallbackReply,
    pub(super) answer: AnswerCell,
}

impl Quick {
    /// Whether a callback can be settled this way.
    pub(super) fn fits(rail: &Rail, req: &InboundRequest, reply: &CallbackReply) -> bool {
        !reply.events.is_empty()
            && reply.follow_ups.is_empty()
            && reply
                .events
                .iter()
                .all(|e| matches!(e.attempt, AttemptRef::Attempt(_)))
            && rail.adapter.idempotent_post(req).is_none()
    }
}

/// One settled callback: its row, as received, and what each of its events came to.
pub(super) struct Settled {
    pub(super) row: Uuid,
    pub(super) raw: Raw,
    pub(super) effects: Vec<Effect>,
}

/// How one event is taken, decided from the batch's reads.
enum Plan {
    /// It holds the claim at this index of the batch's claims.
    Claim(usize),
    /// Another event of the batch names the same callback id first.
    Repeat,
    /// The attempt is another rail's, or its payment is gone.
    Unknown,
    /// No attempt has this id (a reversal's, or nothing of ours): the one-by-one path.
    Alone,
}

/// Settles the batch's quick callbacks in `conn`'s transaction, in the order given. Review
/// refusals are left in `refusals` (rail, callback id, effect) for the tail's effects update.
pub(super) async fn settle_all(
    conn: &mut Conn,
    items: Vec<Quick>,
    refusals: &mut Vec<(String, String, &'static str)>,
) -> Result<Vec<Settled>, InboxError> {
    let kind = conn.kind();
    let mut ids: Vec<Uuid> = items
        .iter()
        .flat_map(|q| q.reply.events.iter())
        .filter_map(|e| match e.attempt {
            AttemptRef::Attempt(id) => Some(id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut found: HashMap<Uuid, AttemptRow> = attempts::get_many(conn, &ids).await?;
    let mut pids: Vec<Uuid> = found.values().map(|a| a.payment_id).collect();
    pids.sort_unstable();
    pids.dedup();
    let mut paid: HashMap<Uuid, Payment> = payments::get_many(conn, &pids).await?;

    // Every event's claim in one statement; within the batch the first to name an id has it.
    let mut plans: Vec<Vec<Plan>> = Vec::with_capacity(items.len());
    let mut claims = Vec::new();
    let mut named = HashSet::new();
    for q in &items {
        let mut plan = Vec::with_capacity(q.reply.events.len());
        for ev in &q.reply.events {
            let a = match ev.attempt {
                AttemptRef::Attempt(id) => found.get(&id),
                _ => None,
            };
            plan.push(match a {
                None => Plan::Alone,
                Some(a) if a.rail != q.rail.id || !paid.contains_key(&a.payment_id) => {
                    Plan::Unknown
                }
                Some(a) => {
                    if named.insert((q.rail.id.as_str(), ev.callback_id.as_str())) {
                        claims.push(store::Claim {
                            rail: &q.rail.id,
                            callback_id: &ev.callback_id,
                            row: q.row,
                            client_id: Some(a.client_id),
                            payment_id: Some(a.payment_id),
                        });
                        Plan::Claim(claims.len().saturating_sub(1))
                    } else {
                        Plan::Repeat
                    }
                }
            });
        }
        plans.push(plan);
    }
    let claimed = store::claim_events(conn, &claims).await?;
    let holds: Vec<bool> = claims
        .iter()
        .map(|c| claimed.contains(&(c.rail.to_owned(), c.callback_id.to_owned())))
        .collect();
    drop(claims);

    let mut out = Vec::with_capacity(items.len());
    for (q, plan) in items.into_iter().zip(plans) {
        let rail_id = q.rail.id.as_str();
        let mut effects = Vec::with_capacity(q.reply.events.len());
        let mut unknown = 0usize;
        for (ev, how) in q.reply.events.iter().zip(plan) {
            let AttemptRef::Attempt(id) = ev.attempt else {
                continue;
            };
            let effect = match how {
                Plan::Alone => {
                    let got = apply_event(conn, &q.db, q.rail.adapter.as_ref(), &q.req, q.row, ev)
                        .await?;
                    if matches!(got.as_slice(), [Effect::Known("unknown_attempt")]) {
                        unknown = unknown.saturating_add(1);
                    }
                    effects.extend(got);
                    continue;
                }
                Plan::Unknown => {
                    unknown = unknown.saturating_add(1);
                    unknown_attempt(rail_id)?
                }
                Plan::Claim(i) if holds.get(i).copied().unwrap_or(false) => {
                    // Read again if an earlier event of the batch wrote to this attempt.
                    let a = match found.get(&id) {
                        Some(a) => a.clone(),
                        None => match attempts::get(conn, id).await? {
                            Some(a) => a,
                            None => return Err(unknown_gone(id)),
                        },
                    };
                    let p = match paid.get(&a.payment_id) {
                        Some(p) => p.clone(),
                        None => match payments::row_in(conn, a.payment_id).await? {
                            Some(p) => p,
                            None => return Err(unknown_gone(a.payment_id)),
                        },
                    };
                    let rail_attempt = crate::dispatch::rail_attempt(&p, &a);
                    match q
                        .rail
                        .adapter
                        .review_callback(&rail_attempt, &q.req, ev.outcome.clone())
                    {
                        Err(e) => {
                            refused("review");
                            tracing::warn!(rail = rail_id, payment = %p.id, reason = %e, "Callback event refused on review");
                            refusals.push((rail_id.to_owned(), ev.callback_id.clone(), "refused"));
                            Effect::Known("refused")
                        }
                        Ok(outcome) => {
                            let writes = !matches!(
                                outcome,
                                CallbackOutcome::Completed(_)
                                    | CallbackOutcome::Failed(_)
                                    | CallbackOutcome::Pending
                            );
                            let effect = settle(
                                conn,
                                kind,
                                rail_id,
                                ev,
                                &ev.callback_id,
                                (a.client_id, a.payment_id),
                                Some(a.id),
                                outcome,
                            )
                            .await?;
                            if writes {
                                found.remove(&a.id);
                                paid.remove(&a.payment_id);
                            }
                            effect
                        }
                    }
                }
                Plan::Claim(_) | Plan::Repeat => {
                    refused("replay");
                    tracing::warn!(rail = rail_id, attempt = %id, "Callback id seen before; nothing changed");
                    Effect::Known("replayed")
                }
            };
            effects.push(effect);
        }
        let answer = if unknown > 0 && unknown == q.reply.events.len() {
            Answer::Refused {
                status: 404,
                reason: "the callback names no attempt we know".into(),
            }
        } else {
            Answer::Reply {
                status: q.reply.status,
                content_type: q.reply.content_type,
                body: q.reply.body,
            }
        };
        *q.answer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(answer);
        out.push(Settled {
            row: q.row,
            raw: q.raw,
            effects,
        });
    }
    Ok(out)
}

/// A row read at the start of the batch is gone within it: nothing deletes attempts or
/// payments, so the store is not what it should be.
fn unknown_gone(id: Uuid) -> InboxError {
    InboxError::Store(crate::store::StoreError::Corrupt(format!(
        "row {id} vanished within a transaction"
    )))
}

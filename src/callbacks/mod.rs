//! The callbacks inbox (DESIGN §6): every request a rail makes to `/rails/{rail}/...` is stored
//! raw first, then verified by the rail's adapter, then applied in one transaction.

use crate::engine::{self, Applied, Change};
use crate::ledger;
use crate::rails::Rails;
use crate::store::attempts::{self, Status};
use crate::store::group::{Group, GroupError};
use crate::store::jobs::{self, JobKind};
use crate::store::Conn;
use crate::store::{callbacks as store, now_micros, payments, reversals, Db, StoreError};
use railgate_rail::json::JsonFault;
use railgate_rail::{AttemptRef, CallbackError, CallbackOutcome, InboundRequest};

mod inbound;
mod quick;
mod tail;

pub use tail::CallbackTail;
use tail::Effect;

/// The group committer callbacks are stored and applied through.
pub type CallbackGroup = Group<CallbackTail>;

/// What the HTTP layer answers.
#[derive(Debug)]
pub enum Answer {
    /// The adapter's reply for the rail.
    Reply {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    Refused {
        status: u16,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("storing the callback failed: {0}")]
    Commit(String),
}

/// Headers worth keeping with the raw callback (never authorisation secrets in clear).
fn kept_headers(h: &http::HeaderMap) -> String {
    let mut out = serde_json::Map::new();
    for (name, value) in h {
        let n = name.as_str();
        if n == "authorization" || n == "cookie" {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out.insert(n.to_owned(), serde_json::Value::String(v.to_owned()));
        }
    }
    serde_json::Value::Object(out).to_string()
}

/// A JSON content type (`application/json`, Mojaloop's `...+json`), or a body that opens as
/// JSON whatever it is labelled.
fn looks_like_json(req: &InboundRequest) -> bool {
    let declared = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let essence = ct.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        });
    let opens = req
        .body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| matches!(b, b'{' | b'['));
    declared || opens
}

fn refused(reason: &'static str) {
    metrics::counter!("railgate_callbacks_refused_total", "reason" => reason).increment(1);
}

/// Takes one request a rail made: checks it, has its adapter read it, and stores it with
/// everything it settles in the next group commit (`store::group`); answers after that commit.
pub async fn receive(
    db: &Db,
    group: &CallbackGroup,
    rails: &Rails,
    wake: &tokio::sync::Notify,
    rail_id: &str,
    req: InboundRequest,
) -> Result<Answer, InboxError> {
    let Some(rail) = rails.get(rail_id).cloned() else {
        refused("unknown_rail");
        return Ok(Answer::Refused {
            status: 404,
            reason: "no such rail".into(),
        });
    };
    // Stored as received, whatever the verdict, so nothing a rail told us is ever lost; a
    // secret in the path is ours, not the rail's word, and is stored hidden (operators see
    // these rows).
    let raw = Raw {
        rail: rail_id.to_owned(),
        method: req.method.as_str().to_owned(),
        path: rail.adapter.redact_path(&req.path),
        headers: kept_headers(&req.headers),
        body: req.body.to_vec(),
    };
    // A JSON body with a repeated key reads differently to different parsers, and one with a
    // control character cannot be stored as text: refused like a forged one, before the
    // adapter sees it.
    // (Not JSON at all is left to the adapter, which knows what its rail sends.)
    if looks_like_json(&req) {
        if let Err(fault @ (JsonFault::DuplicateKey { .. } | JsonFault::ControlCharacter { .. })) =
            railgate_rail::json::check(&req.body)
        {
            refused("malformed");
            let reason = format!("malformed JSON: {fault}");
            tracing::warn!(rail = rail_id, verdict = "malformed", reason = %reason, "Callback refused");
            return store_refused(group, raw, 400, reason).await;
        }
    }
    let reply = match rail.adapter.callback(&req) {
        Ok(r) => r,
        Err(e) => {
            let (status, label) = match &e {
                CallbackError::Unauthenticated(_) => (401, "unauthenticated"),
                CallbackError::Stale(_) => (401, "stale"),
                CallbackError::Malformed(_) => (400, "malformed"),
                CallbackError::UnknownRoute => (404, "unknown_route"),
            };
            refused(label);
            // The reason may quote the body (a parser's error): it is kept with the row only,
            // and no control character of it reaches the store.
            tracing::warn!(rail = rail_id, verdict = label, "Callback refused");
            let reason: String = e.to_string().chars().filter(|c| !c.is_control()).collect();
            return store_refused(group, raw, status, reason).await;
        }
    };
    let db = db.clone();
    // One attempt's callbacks go through one committer (see `Db::writers`).
    let key = reply
        .events
        .first()
        .map_or_else(|| raw.path.clone(), |e| format!("{:?}", e.attempt));
    let answer = if quick::Quick::fits(&rail, &req, &reply) {
        // Settled with the rest of its batch at the commit's end (`quick`).
        let cell = quick::AnswerCell::default();
        let item = quick::Quick {
            db,
            rail,
            row: uuid::Uuid::now_v7(),
            raw,
            req,
            reply,
            answer: cell.clone(),
        };
        group
            .run(&key, move |conn, tail| {
                Box::pin(
                    async move { tail.leave_quick(conn, item).await.map_err(InboxError::from) },
                )
            })
            .await
            .map_err(|e| match e {
                GroupError::Work(e) => e,
                other => InboxError::Commit(other.to_string()),
            })?;
        let settled = cell
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        settled.ok_or_else(|| InboxError::Commit("the callback was not settled".into()))?
    } else {
        group
            .run(&key, move |conn, tail| {
                Box::pin(async move { record(conn, tail, &db, &rail, raw, &req, reply).await })
            })
            .await
            .map_err(|e| match e {
                GroupError::Work(e) => e,
                other => InboxError::Commit(other.to_string()),
            })?
    };
    wake.notify_one();
    Ok(answer)
}

/// A callback as it arrived, to be stored.
struct Raw {
    rail: String,
    method: String,
    path: String,
    headers: String,
    body: Vec<u8>,
}

async fn store_raw(conn: &mut Conn, raw: &Raw) -> Result<uuid::Uuid, InboxError> {
    Ok(store::store_raw(
        conn,
        &raw.rail,
        &raw.method,
        &raw.path,
        &raw.headers,
        &raw.body,
    )
    .await?)
}

/// Stores a refused callback with its verdict (in the next group commit) and answers so.
async fn store_refused(
    group: &CallbackGroup,
    raw: Raw,
    status: u16,
    reason: String,
) -> Result<Answer, InboxError> {
    let kept = reason.clone();
    let key = raw.path.clone();
    group
        .run(&key, move |conn, _tail| {
            Box::pin(async move {
                let row = store_raw(conn, &raw).await?;
                store::set_verdict(conn, row, "refused", Some(&kept)).await?;
                Ok::<_, InboxError>(())
            })
        })
        .await
        .map_err(|e| match e {
            GroupError::Work(e) => e,
            other => InboxError::Commit(other.to_string()),
        })?;
    Ok(Answer::Refused { status, reason })
}

/// Inside the group commit: stores the callback and resolves every event it carries; the
/// payment changes they settle are left to the commit's tail (`tail`), with the verdict.
async fn record(
    conn: &mut Conn,
    tail: &mut CallbackTail,
    db: &Db,
    rail: &crate::rails::Rail,
    raw: Raw,
    req: &InboundRequest,
    reply: railgate_rail::CallbackReply,
) -> Result<Answer, InboxError> {
    let rail_id = rail.id.as_str();
    let row = store_raw(conn, &raw).await?;
    let tx = conn;
    // A request the rail wants idempotent by its own id (Mojaloop's POST /quotes, /transfers):
    // a resend gets the first answer again, a modified one an error; neither applies anything.
    let (events, follow_ups, replay) = match rail.adapter.idempotent_post(req) {
        None => (reply.events.as_slice(), reply.follow_ups.clone(), None),
        Some(key) => {
            let first = inbound::remember(&mut *tx, rail_id, &key, row, &reply.follow_ups).await?;
            match first {
                inbound::Seen::First => (reply.events.as_slice(), reply.follow_ups.clone(), None),
                inbound::Seen::Duplicate(stored) => {
                    tracing::info!(rail = rail_id, row = %row, "Inbound request resent; answering as before");
                    metrics::counter!("railgate_inbound_resends_total", "rail" => rail_id.to_owned()).increment(1);
                    (&[][..], stored, Some("resent_answer"))
                }
                inbound::Seen::Modified => {
                    refused("modified_request");
                    tracing::warn!(rail = rail_id, row = %row, "Inbound request reuses an id with another body; refused");
                    let reply = rail.adapter.modified_request_reply(req);
                    (
                        &[][..],
                        reply.into_iter().collect(),
                        Some("modified_request"),
                    )
                }
            }
        }
    };
    let mut verdicts = Vec::new();
    let mut unknown = 0usize;
    for ev in events {
        let effects = apply_event(&mut *tx, db, rail.adapter.as_ref(), req, row, ev).await?;
        if matches!(effects.as_slice(), [Effect::Known("unknown_attempt")]) {
            unknown = unknown.saturating_add(1);
        }
        verdicts.extend(effects);
    }
    verdicts.extend(replay.map(Effect::Known));
    for f in &follow_ups {
        let payload = crate::dispatch::follow_up_payload(rail_id, f);
        // The rail's own work: the request it answers is not yet known to be any client's.
        jobs::insert(
            &mut *tx,
            JobKind::FollowUp,
            None,
            None,
            Some(&payload),
            now_micros(),
        )
        .await?;
    }
    tail.leave(&mut *tx, row, verdicts).await?;

    if unknown > 0 && unknown == events.len() {
        return Ok(Answer::Refused {
            status: 404,
            reason: "the callback names no attempt we know".into(),
        });
    }
    Ok(Answer::Reply {
        status: reply.status,
        content_type: reply.content_type,
        body: reply.body,
    })
}

/// Resolves the event's attempts (or, for pushed money, the expected collection) and applies
/// it to each; returns one effect per target.
async fn apply_event(
    tx: &mut Conn,
    db: &Db,
    rail: &dyn railgate_rail::RailAdapter,
    req: &InboundRequest,
    row: uuid::Uuid,
    ev: &railgate_rail::CallbackEvent,
) -> Result<Vec<Effect>, InboxError> {
    let rail_id = rail.id();
    let one = |e: Effect| vec![e];
    match &ev.attempt {
        AttemptRef::Attempt(id) => match attempts::get(tx, *id).await? {
            // A rail speaks only for its own attempts: another rail's secret or route must
            // not settle them (ours are UUIDs, so naming one is no proof of anything).
            Some(a) if a.rail != rail_id => Ok(one(unknown_attempt(rail_id)?)),
            Some(a) => Ok(one(apply_to(
                tx,
                db,
                rail,
                req,
                row,
                ev,
                &ev.callback_id,
                (a.client_id, a.payment_id),
                Some(a),
            )
            .await?)),
            None => match reversals::get(tx, *id).await? {
                // Reversal ids are ours too (the rail calls back naming them).
                Some(r) if r.rail == rail_id => Ok(one(Effect::Known(
                    apply_to_reversal(tx, db, rail_id, row, ev, r).await?,
                ))),
                _ => Ok(one(unknown_attempt(rail_id)?)),
            },
        },
        AttemptRef::RailReference(r) => {
            // One answer may serve several attempts waiting on the same reference (Mojaloop:
            // one party lookup); each claims the callback for itself, so a later attempt
            // waiting on an identical answer is not taken for a replay of an earlier one.
            let mut targets = attempts::waiting_by_rail_reference(tx, rail_id, r).await?;
            if targets.is_empty() {
                match attempts::find_by_rail_reference(tx, rail_id, r).await? {
                    Some(a) => targets.push(a),
                    None => return Ok(one(unknown_attempt(rail_id)?)),
                }
            }
            let mut effects = Vec::with_capacity(targets.len());
            for a in targets {
                let id = format!("{} @{}", ev.callback_id, a.id);
                let target = (a.client_id, a.payment_id);
                effects.push(apply_to(tx, db, rail, req, row, ev, &id, target, Some(a)).await?);
            }
            Ok(effects)
        }
        AttemptRef::Transaction {
            rail_reference,
            payment_reference,
        } => {
            // The attempt the rail linked the transaction to earlier (`Linked`) is paid by it;
            // without one, the money is matched as pushed money is.
            let resolved =
                match attempts::find_by_rail_reference(tx, rail_id, rail_reference).await? {
                    Some(a) => railgate_rail::CallbackEvent {
                        callback_id: ev.callback_id.clone(),
                        attempt: AttemptRef::Attempt(a.id),
                        outcome: ev.outcome.clone().for_linked_attempt(),
                    },
                    None => railgate_rail::CallbackEvent {
                        attempt: AttemptRef::PaymentReference(payment_reference.clone()),
                        ..ev.clone()
                    },
                };
            Box::pin(apply_event(tx, db, rail, req, row, &resolved)).await
        }
        AttemptRef::PaymentReference(r) => {
            match payments::find_by_payment_reference(tx, r, rail_id).await? {
                Some(target) => Ok(one(apply_to(
                    tx,
                    db,
                    rail,
                    req,
                    row,
                    ev,
                    &ev.callback_id,
                    target,
                    None,
                )
                .await?)),
                None => {
                    // Money that matches nothing: kept visibly for reconciliation (suspense).
                    tracing::warn!(
                        rail = rail_id,
                        "Money arrived with an unknown payment reference"
                    );
                    refused("unmatched_money");
                    if let CallbackOutcome::Received { amount, .. } = &ev.outcome {
                        ledger::postings::to_suspense(
                            tx,
                            None,
                            rail_id,
                            *amount,
                            &format!("callback:{rail_id}:{}", ev.callback_id),
                            &format!("rail {rail_id}: money with an unknown payment reference"),
                        )
                        .await?;
                    }
                    Ok(one(Effect::Known("unmatched")))
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)] // the callback, its event and the target it resolved to
async fn apply_to(
    tx: &mut Conn,
    db: &Db,
    rail: &dyn railgate_rail::RailAdapter,
    req: &InboundRequest,
    row: uuid::Uuid,
    ev: &railgate_rail::CallbackEvent,
    callback_id: &str,
    (client_id, payment_id): (uuid::Uuid, uuid::Uuid),
    attempt: Option<attempts::AttemptRow>,
) -> Result<Effect, InboxError> {
    let rail_id = rail.id();
    let kind = db.kind();
    let claim = store::Claim {
        rail: rail_id,
        callback_id,
        row,
        client_id: Some(client_id),
        payment_id: Some(payment_id),
    };
    if !store::claim_event(tx, &claim, "pending").await? {
        refused("replay");
        tracing::warn!(rail = rail_id, payment = %payment_id, "Callback id seen before; nothing changed");
        return Ok(Effect::Known("replayed"));
    }
    let attempt_id = attempt.as_ref().map(|a| a.id);
    // The adapter checks the event against what it sent (Mojaloop: fulfilment vs condition).
    let outcome = match &attempt {
        Some(a) => {
            let Some(p) = payments::row_in(tx, payment_id).await? else {
                return unknown_attempt(rail_id);
            };
            let rail_attempt = crate::dispatch::rail_attempt(&p, a);
            match rail.review_callback(&rail_attempt, req, ev.outcome.clone()) {
                Ok(o) => o,
                Err(e) => {
                    refused("review");
                    tracing::warn!(rail = rail_id, payment = %payment_id, reason = %e, "Callback event refused on review");
                    store::set_effect(tx, rail_id, callback_id, "refused").await?;
                    return Ok(Effect::Known("refused"));
                }
            }
        }
        None => ev.outcome.clone(),
    };
    settle(
        tx,
        kind,
        rail_id,
        ev,
        callback_id,
        (client_id, payment_id),
        attempt_id,
        outcome,
    )
    .await
}

/// What a claimed and reviewed event does: a payment change left for the commit's tail
/// (completed, failed, accepted), or what it came to at once (the other outcomes write here).
#[allow(clippy::too_many_arguments)] // the event, its target and its reviewed outcome
async fn settle(
    tx: &mut Conn,
    kind: crate::store::Kind,
    rail_id: &str,
    ev: &railgate_rail::CallbackEvent,
    callback_id: &str,
    (client_id, payment_id): (uuid::Uuid, uuid::Uuid),
    attempt_id: Option<uuid::Uuid>,
    outcome: CallbackOutcome,
) -> Result<Effect, InboxError> {
    let cause = format!("rail {rail_id}: callback {}", callback_id);
    // What settles the payment waits for the commit's tail, applied with the others' changes.
    let change = |c: Change| {
        Effect::Change(tail::Change {
            item: engine::Item {
                payment_id,
                change: c,
                cause: cause.clone(),
            },
            rail: rail_id.to_owned(),
            callback_id: callback_id.to_owned(),
        })
    };
    let applied = match &outcome {
        CallbackOutcome::Completed(s) => {
            return Ok(change(Change::Complete {
                attempt: attempt_id,
                settled: s.clone(),
            }))
        }
        CallbackOutcome::Failed(f) => {
            return Ok(change(Change::Fail {
                attempt: attempt_id,
                failure: f.clone(),
            }))
        }
        CallbackOutcome::Pending => match attempt_id {
            Some(a) => {
                return Ok(change(Change::Accept {
                    attempt: Some(a),
                    rail_reference: None,
                }))
            }
            None => Applied::Ignored,
        },
        CallbackOutcome::Linked { rail_reference } => match attempt_id {
            Some(a) => {
                // Kept even when the attempt is already accepted: what follows is matched by it.
                attempts::link_rail_reference(tx, a, rail_reference).await?;
                return Ok(change(Change::Accept {
                    attempt: Some(a),
                    rail_reference: None,
                }));
            }
            None => Applied::Ignored,
        },
        CallbackOutcome::Step { rail_state } => match attempt_id {
            Some(a) => {
                let held = payments::lock_state(tx, kind, payment_id).await?;
                if held.is_final() {
                    Applied::Ignored
                } else {
                    attempts::set_rail_state(tx, a, rail_state).await?;
                    attempts::set_status(tx, a, Status::Step, None, None).await?;
                    jobs::schedule_payment(tx, client_id, payment_id, now_micros()).await?;
                    Applied::Changed {
                        from: held,
                        to: held,
                    }
                }
            }
            None => Applied::Ignored,
        },
        CallbackOutcome::Received {
            amount, settled, ..
        } => {
            let p = payments::row_in(tx, payment_id).await?;
            match p {
                Some(p) if p.amount == *amount => {
                    // The ledger posts to the clearing account of the rail the money came by.
                    engine::set_rail_if_none(tx, payment_id, rail_id).await?;
                    let applied = engine::apply(
                        tx,
                        kind,
                        payment_id,
                        Change::Complete {
                            attempt: None,
                            settled: settled.clone(),
                        },
                        &cause,
                    )
                    .await?;
                    if matches!(applied, Applied::Duplicate | Applied::Conflict) {
                        // New money (a new callback id) the payment cannot take: paid twice,
                        // or after it ended. It is at the rail, so it is held in suspense.
                        ledger::postings::to_suspense(
                            tx,
                            Some(p.client_id),
                            rail_id,
                            *amount,
                            &format!("callback:{rail_id}:{}", ev.callback_id),
                            &format!("{cause}: money for a payment already {}", p.state),
                        )
                        .await?;
                    }
                    applied
                }
                Some(p) => {
                    let detail = format!("expected {} but received {}", p.amount, amount);
                    ledger::postings::to_suspense(
                        tx,
                        Some(p.client_id),
                        rail_id,
                        *amount,
                        &format!("callback:{rail_id}:{}", ev.callback_id),
                        &format!("{cause}: {detail}"),
                    )
                    .await?;
                    engine::apply(
                        tx,
                        kind,
                        payment_id,
                        Change::Contradict {
                            claimed: "received",
                            detail: Some(detail.clone()),
                        },
                        &cause,
                    )
                    .await?;
                    Applied::Conflict
                }
                None => Applied::Ignored,
            }
        }
    };
    if applied == Applied::Conflict {
        tracing::warn!(rail = rail_id, payment = %payment_id, "Callback contradicts the payment's final state; conflict recorded");
        metrics::counter!("railgate_callback_conflicts_total").increment(1);
    }
    store::set_effect(tx, rail_id, callback_id, applied.as_str()).await?;
    Ok(Effect::Known(applied.as_str()))
}

/// A callback about a reversal: the rail confirms it (the payment is reversed) or refuses it.
async fn apply_to_reversal(
    tx: &mut Conn,
    db: &Db,
    rail_id: &str,
    row: uuid::Uuid,
    ev: &railgate_rail::CallbackEvent,
    r: reversals::ReversalRow,
) -> Result<&'static str, InboxError> {
    let callback_id = &ev.callback_id;
    let claim = store::Claim {
        rail: rail_id,
        callback_id,
        row,
        client_id: Some(r.client_id),
        payment_id: Some(r.payment_id),
    };
    if !store::claim_event(tx, &claim, "pending").await? {
        refused("replay");
        tracing::warn!(rail = rail_id, reversal = %r.id, "Callback id seen before; nothing changed");
        return Ok("replayed");
    }
    let kind = db.kind();
    let cause = format!(
        "rail {rail_id}: callback {callback_id} about reversal {}",
        r.id
    );
    let applied = match &ev.outcome {
        CallbackOutcome::Completed(s) => {
            crate::reversals::confirmed(tx, kind, r.id, s, &cause).await?
        }
        CallbackOutcome::Failed(f) => crate::reversals::refused(tx, kind, r.id, f, &cause).await?,
        CallbackOutcome::Pending | CallbackOutcome::Linked { .. } => {
            reversals::set_status(tx, r.id, reversals::Status::Accepted, None, None).await?;
            Applied::Ignored
        }
        CallbackOutcome::Step { .. } | CallbackOutcome::Received { .. } => Applied::Ignored,
    };
    if applied == Applied::Conflict {
        tracing::warn!(rail = rail_id, reversal = %r.id, "Callback contradicts the reversal's outcome; conflict recorded");
    }
    store::set_effect(tx, rail_id, callback_id, applied.as_str()).await?;
    Ok(applied.as_str())
}

fn unknown_attempt(rail_id: &str) -> Result<Effect, InboxError> {
    refused("unknown_attempt");
    tracing::warn!(
        rail = rail_id,
        "Callback for an attempt we do not know; refused"
    );
    Ok(Effect::Known("unknown_attempt"))
}

//! What the hub says about our bulks: `PUT /bulkQuotes/{id}` and `PUT /bulkTransfers/{id}`
//! (and their `/error` forms), bound to a bulk this adapter sent and checked line by line
//! against it; `batch_results` from what they said, asking `GET /bulkTransfers/{id}` when a
//! bulk's answer is late; and the single-line inquiry of a bulk line.

use super::book::{Outcome, QuoteAnswer};
use super::wire::{BulkQuotesPut, BulkTransfersPut};
use crate::adapter::MojaloopAdapter;
use crate::callbacks::Route;
use crate::ilp;
use crate::wire::{
    self, attempt_of, derive_id, failure_of, id_string, parse_body, ErrorCode,
    ErrorInformationObject, IdPurpose, Resource, WireError,
};
use chrono::{DateTime, Utc};
use railgate_rail::{
    Attempt, BatchLineResult, BatchMembership, BatchPage, BatchState, CallbackError, CallbackReply,
    Failure, FailureCode, InboundRequest, RailError, RailStatus, Settled,
};
use uuid::Uuid;

fn malformed(e: WireError) -> CallbackError {
    CallbackError::Malformed(e.to_string())
}

fn answered() -> CallbackReply {
    CallbackReply {
        events: Vec::new(),
        status: 200,
        content_type: "application/json",
        body: Vec::new(),
        follow_ups: Vec::new(),
    }
}

impl MojaloopAdapter {
    /// A bulk callback: it names no attempt (the gateway applies nothing from it); what it
    /// says is kept in the book for `batch_results`. A bulk this adapter did not send, or an
    /// answer from an FSP the bulk did not go to, is refused.
    pub(crate) fn bulk_callback(
        &self,
        request: &InboundRequest,
        source: &str,
        route: Route,
    ) -> Result<CallbackReply, CallbackError> {
        let hub = self.config.hub_fsp_id.as_str();
        let not_ours = |what: &str| {
            CallbackError::Unauthenticated(format!(
                "not a {what} rail {} sent",
                self.config.rail_id
            ))
        };
        match route {
            Route::BulkQuotesPut { id, error } => {
                let (_, fsp) = self
                    .bulk
                    .bulk_quote_owner(&id)
                    .ok_or_else(|| not_ours("bulk quote"))?;
                let answer = if error {
                    if source != fsp && source != hub {
                        return Err(wrong_source(source, &fsp));
                    }
                    let e: ErrorInformationObject = parse_body(&request.body).map_err(malformed)?;
                    QuoteAnswer::Refused(failure_of(&e.error_information))
                } else {
                    if source != fsp {
                        return Err(wrong_source(source, &fsp));
                    }
                    let put: BulkQuotesPut = parse_body(&request.body).map_err(malformed)?;
                    QuoteAnswer::Terms {
                        source: source.to_owned(),
                        put,
                    }
                };
                if !self.bulk.answer_quote(&id, answer) {
                    tracing::info!(bulk_quote = %id, "Bulk quote answer with no upload waiting; the upload's retry asks again");
                }
            }
            Route::BulkTransfersPut { id, error } => {
                let (batch_id, fsp) = self
                    .bulk
                    .bulk_transfer_owner(&id)
                    .ok_or_else(|| not_ours("bulk transfer"))?;
                if source != fsp && source != hub {
                    return Err(wrong_source(source, &fsp));
                }
                if error {
                    let e: ErrorInformationObject = parse_body(&request.body).map_err(malformed)?;
                    self.bulk_error(batch_id, &fsp, &e, request.received_at);
                } else {
                    let put: BulkTransfersPut = parse_body(&request.body).map_err(malformed)?;
                    self.bulk_results_arrived(batch_id, &fsp, &put)?;
                }
            }
            _ => return Err(CallbackError::UnknownRoute),
        }
        Ok(answered())
    }

    /// `PUT /bulkTransfers/{id}`: each line's fulfilment must match the condition of its
    /// quote; a line that is not in this bulk is refused with the whole callback.
    fn bulk_results_arrived(
        &self,
        batch_id: Uuid,
        fsp: &str,
        put: &BulkTransfersPut,
    ) -> Result<(), CallbackError> {
        self.bulk
            .with(batch_id, |b| {
                let mut found = Vec::with_capacity(put.individual_transfer_results.len());
                for r in &put.individual_transfer_results {
                    let line = attempt_of(&r.transfer_id, IdPurpose::Transaction)
                        .and_then(|a| b.index.get(&a).copied())
                        .and_then(|i| b.lines.get(i))
                        .filter(|l| l.in_transfer && l.fsp_id.as_deref() == Some(fsp));
                    let Some(line) = line else {
                        return Err(CallbackError::Malformed(
                            "a result for a transfer this bulk does not carry".to_owned(),
                        ));
                    };
                    let outcome = match (&r.fulfilment, &r.error_information) {
                        (Some(f), None) => {
                            let condition = line.quoted.as_ref().map(|q| q.condition.as_str());
                            if condition.is_some_and(|c| ilp::fulfils(f, c)) {
                                Some(Outcome::Completed {
                                    transfer_id: r.transfer_id.clone(),
                                    fulfilment: f.clone(),
                                })
                            } else {
                                // Never a completion; the line stays open for its inquiry.
                                tracing::warn!(transfer = %r.transfer_id, "Bulk line fulfilment does not match its condition");
                                None
                            }
                        }
                        (None, Some(e)) => Some(Outcome::Failed(failure_of(e))),
                        _ => None,
                    };
                    found.push((line.attempt.attempt_id, outcome));
                }
                for (id, outcome) in found {
                    if let Some(o) = outcome {
                        b.record(id, o);
                    }
                }
                if put.bulk_transfer_state == super::wire::BulkTransferState::Rejected {
                    let f = Failure::new(
                        FailureCode::RailRejected,
                        "the hub rejected the bulk transfer",
                        None,
                    );
                    for i in b.lines_of(fsp) {
                        if let Some(l) = b.lines.get_mut(i) {
                            if l.in_transfer && l.outcomes.is_empty() {
                                l.outcomes.push(Outcome::Failed(f.clone()));
                            }
                        }
                    }
                }
                if let Some(p) = b.parts.get_mut(fsp) {
                    p.done |= put.bulk_transfer_state.is_final();
                }
                Ok(())
            })
            .unwrap_or(Ok(()))
    }

    /// `PUT /bulkTransfers/{id}/error`: "not found" is final only past the bulk's expiry
    /// plus grace (the POST may still be on its way); any other error failed the bulk whole.
    fn bulk_error(&self, batch_id: Uuid, fsp: &str, e: &ErrorInformationObject, at: DateTime<Utc>) {
        let grace = self.config.grace;
        self.bulk.with(batch_id, |b| {
            let Some(part) = b.parts.get(fsp) else {
                return;
            };
            let not_found = ErrorCode::parse(&e.error_information.error_code)
                == Some(ErrorCode::BulkTransferIdNotFound);
            let past_expiry = part
                .transfer_expiration
                .is_some_and(|x| at > wire::after(x, grace));
            if not_found && !past_expiry {
                return;
            }
            let f = if not_found {
                Failure::new(
                    FailureCode::Expired,
                    "the switch has no record of the bulk transfer after its expiry",
                    Some(e.error_information.error_code.clone()),
                )
            } else {
                failure_of(&e.error_information)
            };
            for i in b.lines_of(fsp) {
                if let Some(l) = b.lines.get_mut(i) {
                    if l.in_transfer && l.outcomes.is_empty() {
                        l.outcomes.push(Outcome::Failed(f.clone()));
                    }
                }
            }
            if let Some(p) = b.parts.get_mut(fsp) {
                p.done = true;
            }
        });
    }

    /// `batch_results`: every outcome the book holds, in one page (a bulk carries at most
    /// 1,000 lines). A bulk transfer whose answer is later than `bulk_answer_wait` is asked
    /// about first (`GET /bulkTransfers/{id}`; its answer comes as a callback).
    pub(crate) async fn bulk_page(&self, batch_ref: &str) -> Result<BatchPage, RailError> {
        let Some(batch_id) = self.bulk.batch_of_ref(batch_ref) else {
            // Not sent from here: nothing here can check what the hub says about it; each
            // line's own inquiry and deadline settle it.
            return Ok(BatchPage {
                lines: Vec::new(),
                next: None,
                state: BatchState::Open,
            });
        };
        self.ask_late_bulks(batch_id).await;
        let page = self.bulk.with(batch_id, |b| {
            let mut lines = Vec::new();
            let mut open = false;
            for l in &b.lines {
                if l.outcomes.is_empty() {
                    // Lines of a bulk the hub is done with are for their own inquiry.
                    let part_done = l
                        .fsp_id
                        .as_ref()
                        .and_then(|f| b.parts.get(f))
                        .is_some_and(|p| p.done);
                    open |= !part_done;
                }
                for o in &l.outcomes {
                    lines.push(line_result(&l.attempt, o));
                }
            }
            BatchPage {
                lines,
                next: None,
                state: if open {
                    BatchState::Open
                } else {
                    BatchState::Done
                },
            }
        });
        Ok(page.unwrap_or(BatchPage {
            lines: Vec::new(),
            next: None,
            state: BatchState::Open,
        }))
    }

    async fn ask_late_bulks(&self, batch_id: Uuid) {
        let now = Utc::now();
        let wait = self.config.bulk_answer_wait;
        let due: Vec<String> = self
            .bulk
            .with(batch_id, |b| {
                b.parts
                    .values_mut()
                    .filter(|p| !p.done && p.asked_at.is_some_and(|t| now > wire::after(t, wait)))
                    .map(|p| {
                        p.asked_at = Some(now);
                        p.bulk_transfer_id.clone()
                    })
                    .collect()
            })
            .unwrap_or_default();
        for id in due {
            tracing::info!(bulk_transfer = %id, "No answer to the bulk transfer yet; asking the hub");
            let uri = format!("/bulkTransfers/{id}");
            let asked = self
                .send(
                    http::Method::GET,
                    &self.config.endpoints.bulk_transfers,
                    &uri,
                    Resource::BulkTransfers,
                    None,
                    None,
                )
                .await;
            match asked {
                Ok(Ok(r)) if r.status().is_success() => {}
                Ok(Ok(r)) => {
                    let status = r.status();
                    let body = r.bytes().await.unwrap_or_default();
                    match parse_body::<ErrorInformationObject>(&body) {
                        Ok(e) => {
                            if let Some((b, fsp)) = self.bulk.bulk_transfer_owner(&id) {
                                self.bulk_error(b, &fsp, &e, Utc::now());
                            }
                        }
                        Err(_) => {
                            tracing::warn!(bulk_transfer = %id, status = %status, "Bulk transfer inquiry refused")
                        }
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(bulk_transfer = %id, error = %self.read_error(&e, "GET /bulkTransfers"), "Bulk transfer inquiry failed")
                }
                Err(e) => {
                    tracing::warn!(bulk_transfer = %id, error = %e, "Bulk transfer inquiry failed")
                }
            }
        }
    }

    /// `inquire` for a line that travelled in a bulk: what the book holds; a line of a bulk
    /// the hub is done with (or one this process did not send) is asked about on its own with
    /// `GET /transfers/{id}`, whose answer `review_callback` checks against the book.
    pub(crate) async fn inquire_bulk_line(
        &self,
        attempt: &Attempt,
        membership: &BatchMembership,
    ) -> Result<RailStatus, RailError> {
        // Not held here (sent by another process, or forgotten): the switch is asked.
        if let Some((line, part)) = self.bulk.line(membership.batch_id, attempt.attempt_id) {
            if let Some(o) = line.outcomes.first() {
                return Ok(status_of(&line.attempt, o));
            }
            let sent = line.in_transfer && part.as_ref().is_some_and(|p| p.asked_at.is_some());
            let done = part.as_ref().is_some_and(|p| p.done);
            if !sent || !done {
                return Ok(RailStatus::Pending);
            }
        }
        let id = derive_id(attempt.attempt_id, IdPurpose::Transaction)
            .map_err(crate::adapter::permanent)?;
        let uri = format!("/transfers/{}", id_string(id));
        let sent = self
            .send(
                http::Method::GET,
                &self.config.endpoints.transfers,
                &uri,
                Resource::Transfers,
                None,
                None,
            )
            .await?;
        let response = sent.map_err(|e| self.read_error(&e, "GET /transfers"))?;
        if response.status().is_success() {
            return Ok(RailStatus::Pending);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let code = parse_body::<ErrorInformationObject>(&body)
            .ok()
            .and_then(|e| ErrorCode::parse(&e.error_information.error_code));
        match (status.as_u16(), code) {
            // The switch never saw this transfer. Only a line no bulk of ours can still be
            // carrying may go on its own (same ids): one whose batch was never accepted.
            (400..=499, Some(ErrorCode::TransferIdNotFound))
                if membership.batch_ref.is_none()
                    && self.bulk.ref_of(membership.batch_id).is_none() =>
            {
                Ok(RailStatus::NotFound)
            }
            (400..=499, Some(ErrorCode::TransferIdNotFound)) => Ok(RailStatus::Pending),
            (500..=599, _) => Err(RailError::Retryable(format!(
                "inquiry: hub answered {status}"
            ))),
            _ => Err(RailError::Permanent(format!("inquiry refused: {status}"))),
        }
    }

    /// The condition a bulk line's fulfilment must match (for `review_callback`).
    pub(crate) fn bulk_condition(&self, transfer_id: &str) -> Option<String> {
        self.bulk.condition_of_transfer(transfer_id)
    }
}

fn wrong_source(source: &str, fsp: &str) -> CallbackError {
    CallbackError::Unauthenticated(format!("bulk answer from {source}, the bulk went to {fsp}"))
}

fn status_of(attempt: &Attempt, o: &Outcome) -> RailStatus {
    match o {
        Outcome::Completed {
            transfer_id,
            fulfilment,
        } => RailStatus::Completed(Settled {
            rail_reference: Some(transfer_id.clone()),
            receipt: Some(fulfilment.clone()),
            // The payee FSP's terms named this amount (checked when they arrived).
            amount: Some(attempt.amount),
        }),
        Outcome::Failed(f) => RailStatus::Failed(f.clone()),
        Outcome::OtherAmount { quoted } => RailStatus::Failed(Failure::new(
            FailureCode::RailRejected,
            format!(
                "the payee FSP quoted {quoted}, the instruction is {}; nothing was sent",
                attempt.amount
            ),
            None,
        )),
    }
}

fn line_result(attempt: &Attempt, o: &Outcome) -> BatchLineResult {
    BatchLineResult {
        attempt_id: attempt.attempt_id,
        status: status_of(attempt, o),
        amount: match o {
            Outcome::Completed { .. } => Some(attempt.amount),
            // Another amount than ours: the gateway records a conflict, never a completion.
            Outcome::OtherAmount { quoted } => Some(*quoted),
            Outcome::Failed(_) => None,
        },
    }
}

//! One upload: the lines' payee FSPs (`GET /parties`), then per payee FSP `POST /bulkQuotes`
//! and its answer, then per payee FSP `POST /bulkTransfers`. Nothing moves money before the
//! first `POST /bulkTransfers`, so until then every failure leaves the batch free to be tried
//! again (same ids, same bytes) or sent line by line; after it, an answer that is not a clear
//! acceptance or refusal makes the whole upload an unknown outcome.

use super::book::{Lookup, Outcome, QuoteAnswer, Quoted};
use super::wire::{
    bulk_id, BulkPurpose, BulkQuotesPost, BulkQuotesPut, BulkTransfersPost, IndividualQuote,
    IndividualTransfer, MAX_INDIVIDUAL,
};
use crate::adapter::{answer, note_of, permanent, Answer, MojaloopAdapter};
use crate::wire::{
    self, derive_id, failure_of, fspiop_datetime, id_string, parse_fspiop_datetime, to_body,
    AmountType, FspiopParty, IdPurpose, Initiator, InitiatorType, PartyIdInfo, Resource, Scenario,
    TransactionType,
};
use chrono::Utc;
use futures_util::StreamExt;
use railgate_rail::{Attempt, BatchAck, Direction, Failure, FailureCode, Money, RailError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// Party lookups of one upload in flight at once.
const LOOKUPS_IN_FLIGHT: usize = 32;

/// Why a line cannot travel in a Mojaloop bulk (it then goes on its own), if it cannot.
pub fn unfit(attempt: &Attempt) -> Option<String> {
    if attempt.direction != Direction::Disbursement {
        return Some("Mojaloop bulks carry disbursements only".to_owned());
    }
    if let Err(e) = derive_id(attempt.attempt_id, IdPurpose::Transaction) {
        return Some(e.to_string());
    }
    if let Err(e) = PartyIdInfo::from_party(&attempt.party, None) {
        return Some(e.to_string());
    }
    None
}

impl MojaloopAdapter {
    /// `submit_batch`: see the module doc. `Accepted` once every part's bulk transfer was
    /// taken by the hub (or every line already has an outcome).
    pub(crate) async fn submit_bulk(
        &self,
        batch_id: Uuid,
        lines: &[Attempt],
    ) -> Result<BatchAck, RailError> {
        if lines.is_empty() || lines.len() > MAX_INDIVIDUAL {
            return Err(RailError::Permanent(format!(
                "a Mojaloop bulk carries 1 to {MAX_INDIVIDUAL} lines, not {}",
                lines.len()
            )));
        }
        if let Some(why) = lines.iter().find_map(unfit) {
            return Err(RailError::Permanent(why));
        }
        self.bulk
            .open(batch_id, lines)
            .map_err(RailError::Permanent)?;
        self.resolve_payees(batch_id).await?;
        if let Some(refused) = self.quote_parts(batch_id).await? {
            return Ok(BatchAck::Refused(refused));
        }
        self.transfer_parts(batch_id).await?;
        let batch_ref = self
            .bulk
            .with(batch_id, |b| {
                let ids: Vec<&str> = b
                    .parts
                    .values()
                    .filter(|p| p.transfer_body.is_some())
                    .map(|p| p.bulk_transfer_id.as_str())
                    .collect();
                if ids.is_empty() {
                    batch_id.to_string()
                } else {
                    ids.join(",")
                }
            })
            .ok_or_else(|| RailError::Permanent("the bulk book lost the batch".to_owned()))?;
        self.bulk.set_ref(batch_id, &batch_ref);
        tracing::info!(batch = %batch_id, batch_ref = %batch_ref, lines = lines.len(), "Mojaloop bulk taken");
        Ok(BatchAck::Accepted { batch_ref })
    }

    /// The payee FSP of every line not yet resolved; a lookup refused ends its line.
    async fn resolve_payees(&self, batch_id: Uuid) -> Result<(), RailError> {
        let todo: BTreeMap<String, Attempt> = self
            .bulk
            .with(batch_id, |b| {
                b.lines
                    .iter()
                    .filter(|l| l.fsp_id.is_none() && l.outcomes.is_empty())
                    .map(|l| (l.party_ref.clone(), l.attempt.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if todo.is_empty() {
            return Ok(());
        }
        let waiting: Vec<_> = todo
            .keys()
            .map(|r| (r.clone(), self.bulk.await_lookup(r)))
            .collect();
        let sent: Vec<(String, Result<Answer, RailError>)> = futures_util::stream::iter(todo)
            .map(|(r, a)| async move {
                let answer = self.send_lookup(&a).await;
                (r, answer)
            })
            .buffer_unordered(LOOKUPS_IN_FLIGHT)
            .collect()
            .await;
        // A lookup whose request failed may still have been taken; its answer is kept if it
        // came, but not waited for. The others are waited for, so that what they find is kept
        // for the upload's next try and no answer arrives to nobody.
        let mut settled: HashMap<String, Lookup> = HashMap::with_capacity(waiting.len());
        let mut unsent = BTreeSet::new();
        let mut error = None;
        for (r, s) in sent {
            match s {
                Ok(Answer::Accepted) => {}
                Ok(Answer::Rejected(f)) => {
                    settled.insert(r, Lookup::Failed(f));
                }
                Err(e) => {
                    unsent.insert(r);
                    error.get_or_insert(e);
                }
            }
        }
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(self.config.bulk_quote_wait).unwrap_or(now);
        let mut unanswered = 0usize;
        for (r, mut rx) in waiting {
            if settled.contains_key(&r) {
                continue;
            }
            let got = if unsent.contains(&r) {
                rx.try_recv().ok()
            } else {
                tokio::time::timeout_at(deadline, rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
            };
            match got {
                Some(l) => {
                    settled.insert(r, l);
                }
                None => unanswered = unanswered.saturating_add(1),
            }
        }
        self.bulk.forget_lookups();
        // One pass over the lines, under the book's lock once.
        self.bulk.with(batch_id, |b| {
            for l in b.lines.iter_mut() {
                if !l.outcomes.is_empty() {
                    continue;
                }
                match settled.get(&l.party_ref) {
                    Some(Lookup::Found { fsp_id }) => l.fsp_id = Some(fsp_id.clone()),
                    Some(Lookup::Failed(f)) => l.outcomes.push(Outcome::Failed(f.clone())),
                    None => {}
                }
            }
        });
        if let Some(e) = error {
            // Nothing moved; the upload is tried again (the lookups answered are kept).
            return Err(e);
        }
        if unanswered > 0 {
            // Nothing moved; the upload is tried again (the lookups already answered are kept).
            return Err(RailError::Retryable(format!(
                "rail {}: {unanswered} party lookups of the bulk unanswered",
                self.config.rail_id
            )));
        }
        Ok(())
    }

    async fn send_lookup(&self, attempt: &Attempt) -> Result<Answer, RailError> {
        let info = PartyIdInfo::from_party(&attempt.party, None).map_err(permanent)?;
        let uri = format!(
            "/parties/{}/{}",
            info.party_id_type.as_str(),
            info.party_identifier
        );
        let sent = self
            .send(
                http::Method::GET,
                &self.config.endpoints.parties,
                &uri,
                Resource::Parties,
                None,
                None,
            )
            .await?;
        let response = sent.map_err(|e| self.read_error(&e, "GET /parties"))?;
        answer(response, false).await
    }

    /// One `POST /bulkQuotes` per payee FSP whose lines have no terms yet. Returns the
    /// refusal when the hub or a payee FSP refuses a bulk quote (nothing moved: the lines
    /// then go one by one).
    async fn quote_parts(&self, batch_id: Uuid) -> Result<Option<Failure>, RailError> {
        let fsps: Vec<String> = self
            .bulk
            .with(batch_id, |b| {
                let mut f: Vec<String> = b
                    .lines
                    .iter()
                    .filter(|l| l.outcomes.is_empty() && l.quoted.is_none())
                    .filter_map(|l| l.fsp_id.clone())
                    .collect();
                f.sort();
                f.dedup();
                f
            })
            .unwrap_or_default();
        for fsp in fsps {
            let quote_id = id_string(bulk_id(batch_id, BulkPurpose::Quote, &fsp));
            let transfer_id = id_string(bulk_id(batch_id, BulkPurpose::Transfer, &fsp));
            self.bulk.add_part(batch_id, &fsp, &quote_id, &transfer_id);
            let body = match self.bulk.with(batch_id, |b| {
                b.parts.get(&fsp).and_then(|p| p.quote_body.clone())
            }) {
                Some(Some(stored)) => stored,
                _ => {
                    let built = self.build_bulk_quote(batch_id, &fsp, &quote_id)?;
                    self.bulk.with(batch_id, |b| {
                        if let Some(p) = b.parts.get_mut(&fsp) {
                            p.quote_body = Some(built.clone());
                        }
                    });
                    built
                }
            };
            let rx = self.bulk.await_quote(&quote_id);
            let sent = self
                .send(
                    http::Method::POST,
                    &self.config.endpoints.bulk_quotes,
                    "/bulkQuotes",
                    Resource::BulkQuotes,
                    Some(&fsp),
                    Some(body),
                )
                .await?;
            let response = sent.map_err(|e| self.read_error(&e, "POST /bulkQuotes"))?;
            if let Answer::Rejected(f) = answer(response, false).await? {
                return Ok(Some(f));
            }
            let got = tokio::time::timeout(self.config.bulk_quote_wait, rx)
                .await
                .ok()
                .and_then(Result::ok);
            match got {
                None => {
                    return Err(RailError::Retryable(format!(
                        "rail {}: no answer to bulk quote {quote_id}",
                        self.config.rail_id
                    )))
                }
                Some(QuoteAnswer::Refused(f)) => return Ok(Some(f)),
                Some(QuoteAnswer::Terms { source, put }) => {
                    if source != fsp {
                        return Err(RailError::Permanent(format!(
                            "bulk quote {quote_id} answered by {source}, not by {fsp}"
                        )));
                    }
                    self.apply_terms(batch_id, &fsp, &put)?;
                }
            }
        }
        Ok(None)
    }

    fn build_bulk_quote(
        &self,
        batch_id: Uuid,
        fsp: &str,
        bulk_quote_id: &str,
    ) -> Result<Vec<u8>, RailError> {
        let attempts: Vec<Attempt> = self
            .bulk
            .with(batch_id, |b| {
                b.lines_of(fsp)
                    .into_iter()
                    .filter_map(|i| b.lines.get(i))
                    .filter(|l| l.outcomes.is_empty())
                    .map(|l| l.attempt.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut individual = Vec::with_capacity(attempts.len());
        for a in &attempts {
            individual.push(IndividualQuote {
                quote_id: id_string(derive_id(a.attempt_id, IdPurpose::Quote).map_err(permanent)?),
                transaction_id: id_string(
                    derive_id(a.attempt_id, IdPurpose::Transaction).map_err(permanent)?,
                ),
                payee: FspiopParty {
                    party_id_info: PartyIdInfo::from_party(&a.party, Some(fsp))
                        .map_err(permanent)?,
                    merchant_classification_code: None,
                    name: None,
                    personal_info: None,
                },
                // SEND, as for a single disbursement: the transfer amount is the instructed one.
                amount_type: AmountType::Send,
                amount: a.amount.into(),
                fees: None,
                transaction_type: TransactionType {
                    scenario: Scenario::Transfer,
                    sub_scenario: None,
                    initiator: Initiator::Payer,
                    initiator_type: InitiatorType::Business,
                },
                note: Some(note_of(a)),
                extension_list: None,
            });
        }
        let body = BulkQuotesPost {
            bulk_quote_id: bulk_quote_id.to_owned(),
            payer: self.own_party_id_info(None)?,
            expiration: Some(fspiop_datetime(wire::after(
                Utc::now(),
                self.config.quote_expiry,
            ))),
            individual_quotes: individual,
            extension_list: None,
        };
        to_body(&body).map_err(permanent)
    }

    /// The payee FSP's terms, line by line: a line quoted for another amount, or whose packet
    /// names another payment, is never sent; a line the answer leaves out or refuses fails.
    fn apply_terms(&self, batch_id: Uuid, fsp: &str, put: &BulkQuotesPut) -> Result<(), RailError> {
        let expiry = parse_fspiop_datetime(&put.expiration).map_err(permanent)?;
        let expired = expiry <= Utc::now();
        let lines: Vec<Attempt> = self
            .bulk
            .with(batch_id, |b| {
                b.lines_of(fsp)
                    .into_iter()
                    .filter_map(|i| b.lines.get(i))
                    .filter(|l| l.outcomes.is_empty() && l.quoted.is_none())
                    .map(|l| l.attempt.clone())
                    .collect()
            })
            .unwrap_or_default();
        // The first result for a quote id counts, as a search would find it.
        let mut by_quote: HashMap<&str, &super::wire::IndividualQuoteResult> =
            HashMap::with_capacity(put.individual_quote_results.len());
        for r in &put.individual_quote_results {
            by_quote.entry(r.quote_id.as_str()).or_insert(r);
        }
        let mut verdicts: Vec<(Uuid, Result<Quoted, Outcome>)> = Vec::with_capacity(lines.len());
        for a in &lines {
            let quote_id = derive_id(a.attempt_id, IdPurpose::Quote)
                .map(id_string)
                .map_err(permanent)?;
            let result = by_quote.get(quote_id.as_str()).copied();
            let verdict = match result {
                None => Err(Outcome::Failed(Failure::new(
                    FailureCode::RailRejected,
                    "the payee FSP's bulk quote left this line out",
                    None,
                ))),
                Some(_) if expired => Err(Outcome::Failed(Failure::new(
                    FailureCode::Expired,
                    "the bulk quote had expired when it arrived",
                    Some(wire::ErrorCode::QuoteExpired.code().to_owned()),
                ))),
                Some(r) => self.line_terms(a, r),
            };
            verdicts.push((a.attempt_id, verdict));
        }
        self.bulk.with(batch_id, |b| {
            for (id, v) in verdicts {
                match v {
                    Ok(q) => {
                        if let Some(l) = b.index.get(&id).copied().and_then(|i| b.lines.get_mut(i))
                        {
                            l.quoted = Some(q);
                        }
                    }
                    Err(o) => b.record(id, o),
                }
            }
            if let Some(p) = b.parts.get_mut(fsp) {
                p.quoted = true;
            }
        });
        Ok(())
    }

    fn line_terms(
        &self,
        attempt: &Attempt,
        r: &super::wire::IndividualQuoteResult,
    ) -> Result<Quoted, Outcome> {
        let refused = |why: &str| {
            Outcome::Failed(Failure::new(
                FailureCode::RailRejected,
                format!("the payee FSP's quote for this line {why}"),
                None,
            ))
        };
        if let Some(e) = &r.error_information {
            return Err(Outcome::Failed(failure_of(e)));
        }
        let (Some(amount), Some(packet), Some(condition)) =
            (&r.transfer_amount, &r.ilp_packet, &r.condition)
        else {
            return Err(refused("is incomplete"));
        };
        let Ok(quoted) = Money::try_from(amount) else {
            return Err(refused("carries an unreadable amount"));
        };
        if quoted != attempt.amount {
            return Err(Outcome::OtherAmount { quoted });
        }
        if !wire::is_ilp_digest(condition) {
            return Err(refused("carries a malformed condition"));
        }
        if let Err(e) = self.check_quote_packet(attempt, packet, condition, quoted) {
            return Err(refused(&e.to_string()));
        }
        Ok(Quoted {
            transfer_amount: amount.clone(),
            ilp_packet: packet.clone(),
            condition: condition.clone(),
        })
    }

    /// One `POST /bulkTransfers` per part with quoted lines, its bytes stored before sending.
    async fn transfer_parts(&self, batch_id: Uuid) -> Result<(), RailError> {
        let fsps: Vec<String> = self
            .bulk
            .with(batch_id, |b| {
                b.parts
                    .iter()
                    .filter(|(_, p)| p.asked_at.is_none())
                    .map(|(f, _)| f.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut moved = self
            .bulk
            .with(batch_id, |b| b.parts.values().any(|p| p.asked_at.is_some()))
            .unwrap_or(false);
        for fsp in fsps {
            let Some((bulk_transfer_id, body)) = self.stored_transfer(batch_id, &fsp)? else {
                continue;
            };
            tracing::info!(batch = %batch_id, bulk_transfer = %bulk_transfer_id, "Mojaloop bulk transfer");
            let sent = self
                .send(
                    http::Method::POST,
                    &self.config.endpoints.bulk_transfers,
                    "/bulkTransfers",
                    Resource::BulkTransfers,
                    Some(&fsp),
                    Some(body),
                )
                .await;
            let answered = match sent {
                Ok(Ok(response)) => answer(response, true).await,
                Ok(Err(e)) => Err(self.send_error(&e, "POST /bulkTransfers")),
                Err(e) => Err(e),
            };
            match answered {
                Ok(Answer::Accepted) => {
                    moved = true;
                    self.bulk.with(batch_id, |b| {
                        if let Some(p) = b.parts.get_mut(&fsp) {
                            p.asked_at = Some(Utc::now());
                        }
                    });
                }
                // Refused by the hub: nothing moved for these lines.
                Ok(Answer::Rejected(f)) => self.fail_part(batch_id, &fsp, &f),
                Err(RailError::Unknown(why)) => {
                    self.mark_asked(batch_id, &fsp);
                    return Err(RailError::Unknown(why));
                }
                // Another part already went: this one's lines end, the upload is not retried.
                Err(RailError::Retryable(why) | RailError::Permanent(why)) if moved => self
                    .fail_part(
                        batch_id,
                        &fsp,
                        &Failure::new(FailureCode::RailUnavailable, why, None),
                    ),
                Err(e) => {
                    // Nothing of the batch moved: forget the stored bytes' sending, keep them.
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn mark_asked(&self, batch_id: Uuid, fsp: &str) {
        self.bulk.with(batch_id, |b| {
            if let Some(p) = b.parts.get_mut(fsp) {
                p.asked_at = Some(Utc::now());
            }
        });
    }

    fn fail_part(&self, batch_id: Uuid, fsp: &str, f: &Failure) {
        self.bulk.with(batch_id, |b| {
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

    /// The part's `POST /bulkTransfers` bytes: stored ones, else built and stored now. `None`
    /// when no line of the part was quoted.
    fn stored_transfer(
        &self,
        batch_id: Uuid,
        fsp: &str,
    ) -> Result<Option<(String, Vec<u8>)>, RailError> {
        let (part, quoted) = self
            .bulk
            .with(batch_id, |b| {
                let quoted: Vec<(Uuid, Quoted)> = b
                    .lines_of(fsp)
                    .into_iter()
                    .filter_map(|i| b.lines.get(i))
                    .filter(|l| l.outcomes.is_empty())
                    .filter_map(|l| l.quoted.clone().map(|q| (l.attempt.attempt_id, q)))
                    .collect();
                (b.parts.get(fsp).cloned(), quoted)
            })
            .ok_or_else(|| RailError::Permanent("the bulk book lost the batch".to_owned()))?;
        let Some(part) = part else {
            return Ok(None);
        };
        if let Some(body) = part.transfer_body {
            return Ok(Some((part.bulk_transfer_id, body)));
        }
        if quoted.is_empty() {
            return Ok(None);
        }
        let mut transfers = Vec::with_capacity(quoted.len());
        for (attempt_id, q) in &quoted {
            transfers.push(IndividualTransfer {
                transfer_id: id_string(
                    derive_id(*attempt_id, IdPurpose::Transaction).map_err(permanent)?,
                ),
                transfer_amount: q.transfer_amount.clone(),
                ilp_packet: q.ilp_packet.clone(),
                condition: q.condition.clone(),
                extension_list: None,
            });
        }
        let expiration = wire::after(Utc::now(), self.config.transfer_expiry);
        let body = to_body(&BulkTransfersPost {
            bulk_transfer_id: part.bulk_transfer_id.clone(),
            bulk_quote_id: part.bulk_quote_id.clone(),
            payer_fsp: self.config.fsp_id.clone(),
            payee_fsp: fsp.to_owned(),
            individual_transfers: transfers,
            expiration: fspiop_datetime(expiration),
            extension_list: None,
        })
        .map_err(permanent)?;
        self.bulk.with(batch_id, |b| {
            for (id, _) in &quoted {
                if let Some(l) = b.index.get(id).copied().and_then(|i| b.lines.get_mut(i)) {
                    l.in_transfer = true;
                }
            }
            if let Some(p) = b.parts.get_mut(fsp) {
                p.transfer_body = Some(body.clone());
                p.transfer_expiration = Some(expiration);
            }
        });
        Ok(Some((part.bulk_transfer_id, body)))
    }
}

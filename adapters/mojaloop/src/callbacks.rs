//! The hub's calls to us: routing, authentication (addressed to us, known FSP, fresh `Date`,
//! `FSPIOP-Signature`), the mapping of each callback to an event, and the second look at an
//! event once the gateway has found its attempt (`review_callback`).

use crate::adapter::{duration, party_reference, MojaloopAdapter};
use crate::bulk::book::Lookup;
use crate::ilp;
use crate::jws::Protected;
use crate::state::RailState;
use crate::wire::{
    self, failure_of, parse_body, parse_fspiop_datetime, ErrorCode, ErrorInformationObject,
    IdPurpose, QuotesPut, Resource, TransactionRequestState, TransactionRequestsPut, TransferState,
    TransfersPut, WireError,
};
use railgate_rail::{
    Attempt, AttemptRef, CallbackError, CallbackEvent, CallbackOutcome, CallbackReply, Failure,
    FailureCode, InboundRequest, Money, Outbound, RailStatus, Settled,
};
use sha2::{Digest, Sha256};

/// The id of one callback delivery: identical resends share it, so the gateway answers them as
/// duplicates; a different body for the same object gets a different id.
fn delivery_id(request: &InboundRequest) -> String {
    let digest = hex::encode(Sha256::digest(&request.body));
    format!(
        "{} {} {}",
        request.method,
        request.path,
        digest.get(..24).unwrap_or(&digest)
    )
}

/// One FSPIOP route we answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    PartiesGet {
        id_type: String,
        id: String,
        sub: Option<String>,
    },
    PartiesPut {
        id_type: String,
        id: String,
        sub: Option<String>,
        error: bool,
    },
    QuotesPost,
    QuotesPut {
        id: String,
        error: bool,
    },
    TransfersPost,
    TransfersPut {
        id: String,
        error: bool,
    },
    TransfersPatch {
        id: String,
    },
    TransactionRequestsPut {
        id: String,
        error: bool,
    },
    BulkQuotesPut {
        id: String,
        error: bool,
    },
    BulkTransfersPut {
        id: String,
        error: bool,
    },
}

/// The path with the party identifier and sub-identifier of `/parties/{Type}/{ID}[/{SubId}]`
/// (and `/participants/...`) masked as `railgate_rail::mask` masks them; other paths as they are.
pub(crate) fn mask_party_path(path: &str) -> String {
    let mut seen = None::<usize>;
    path.split('/')
        .enumerate()
        .map(|(i, s)| {
            if seen.is_none() && (s == "parties" || s == "participants") {
                seen = Some(i);
            }
            match seen.map(|p| i.saturating_sub(p)) {
                Some(2) => railgate_rail::mask(s),
                Some(3) if s != "error" => railgate_rail::mask(s),
                _ => s.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub(crate) fn route(method: &http::Method, path: &str) -> Option<Route> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let owned = |s: &&str| (*s).to_owned();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["parties", t, id]) => Some(Route::PartiesGet {
            id_type: owned(t),
            id: owned(id),
            sub: None,
        }),
        ("GET", ["parties", t, id, sub]) => Some(Route::PartiesGet {
            id_type: owned(t),
            id: owned(id),
            sub: Some(owned(sub)),
        }),
        ("PUT", ["parties", t, id]) => Some(Route::PartiesPut {
            id_type: owned(t),
            id: owned(id),
            sub: None,
            error: false,
        }),
        ("PUT", ["parties", t, id, "error"]) => Some(Route::PartiesPut {
            id_type: owned(t),
            id: owned(id),
            sub: None,
            error: true,
        }),
        ("PUT", ["parties", t, id, sub]) => Some(Route::PartiesPut {
            id_type: owned(t),
            id: owned(id),
            sub: Some(owned(sub)),
            error: false,
        }),
        ("PUT", ["parties", t, id, sub, "error"]) => Some(Route::PartiesPut {
            id_type: owned(t),
            id: owned(id),
            sub: Some(owned(sub)),
            error: true,
        }),
        ("POST", ["quotes"]) => Some(Route::QuotesPost),
        ("PUT", ["quotes", id]) => Some(Route::QuotesPut {
            id: owned(id),
            error: false,
        }),
        ("PUT", ["quotes", id, "error"]) => Some(Route::QuotesPut {
            id: owned(id),
            error: true,
        }),
        ("POST", ["transfers"]) => Some(Route::TransfersPost),
        ("PUT", ["transfers", id]) => Some(Route::TransfersPut {
            id: owned(id),
            error: false,
        }),
        ("PUT", ["transfers", id, "error"]) => Some(Route::TransfersPut {
            id: owned(id),
            error: true,
        }),
        ("PATCH", ["transfers", id]) => Some(Route::TransfersPatch { id: owned(id) }),
        ("PUT", ["transactionRequests", id]) => Some(Route::TransactionRequestsPut {
            id: owned(id),
            error: false,
        }),
        ("PUT", ["transactionRequests", id, "error"]) => Some(Route::TransactionRequestsPut {
            id: owned(id),
            error: true,
        }),
        ("PUT", ["bulkQuotes", id]) => Some(Route::BulkQuotesPut {
            id: owned(id),
            error: false,
        }),
        ("PUT", ["bulkQuotes", id, "error"]) => Some(Route::BulkQuotesPut {
            id: owned(id),
            error: true,
        }),
        ("PUT", ["bulkTransfers", id]) => Some(Route::BulkTransfersPut {
            id: owned(id),
            error: false,
        }),
        ("PUT", ["bulkTransfers", id, "error"]) => Some(Route::BulkTransfersPut {
            id: owned(id),
            error: true,
        }),
        _ => None,
    }
}

/// `200` with no events.
fn answered() -> CallbackReply {
    CallbackReply {
        events: Vec::new(),
        status: 200,
        content_type: "application/json",
        body: Vec::new(),
        follow_ups: Vec::new(),
    }
}

pub(crate) fn header<'a>(request: &'a InboundRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

impl MojaloopAdapter {
    // -----------------------------------------------------------------------------------------
    // Inbound

    /// Checks who is calling: addressed to us, from an allowed FSP, fresh, and signed when JWS
    /// verification is on. Returns the caller's FSP id.
    pub(crate) fn authenticate(&self, request: &InboundRequest) -> Result<String, CallbackError> {
        let source = header(request, wire::H_SOURCE)
            .filter(|s| !s.is_empty() && s.chars().count() <= 32)
            .ok_or_else(|| CallbackError::Unauthenticated("missing FSPIOP-Source".to_owned()))?;
        let destination = header(request, wire::H_DESTINATION);
        if let Some(d) = destination {
            if d != self.config.fsp_id {
                return Err(CallbackError::Unauthenticated(format!(
                    "addressed to {d}, not to us"
                )));
            }
        }
        let is_hub = source == self.config.hub_fsp_id;
        if !is_hub
            && !self.config.peers.is_empty()
            && !self.config.peers.iter().any(|p| p == source)
        {
            return Err(CallbackError::Unauthenticated(format!(
                "FSPIOP-Source {source} is not a known FSP"
            )));
        }
        let date = header(request, "Date")
            .ok_or_else(|| CallbackError::Malformed("missing Date".to_owned()))?;
        let at = wire::parse_http_date(date)
            .ok_or_else(|| CallbackError::Malformed("unreadable Date".to_owned()))?;
        let skew = request.received_at.signed_duration_since(at).abs();
        if skew > duration(self.config.replay_window) {
            return Err(CallbackError::Stale(format!(
                "Date is {}s away from now",
                skew.num_seconds()
            )));
        }
        if let Some(jws) = self.config.jws.as_ref().filter(|j| j.verify_inbound) {
            if !request.body.is_empty() {
                match header(request, wire::H_SIGNATURE) {
                    None if is_hub && jws.accept_unsigned_from_hub => {}
                    None => {
                        return Err(CallbackError::Unauthenticated(
                            "missing FSPIOP-Signature".to_owned(),
                        ))
                    }
                    Some(sig) => {
                        let verifier = jws.peers.get(source).ok_or_else(|| {
                            CallbackError::Unauthenticated(format!("no JWS key for {source}"))
                        })?;
                        let protected = Protected {
                            method: request.method.as_str(),
                            uri: &request.path,
                            source,
                            destination,
                            date: Some(date),
                        };
                        verifier
                            .verify(sig, &protected, &request.body)
                            .map_err(|e| CallbackError::Unauthenticated(e.to_string()))?;
                    }
                }
            }
        }
        Ok(source.to_owned())
    }

    pub(crate) fn handle_callback(
        &self,
        request: &InboundRequest,
        source: &str,
        route: Route,
    ) -> Result<CallbackReply, CallbackError> {
        let malformed = |e: WireError| CallbackError::Malformed(e.to_string());
        let event = |attempt: AttemptRef, outcome: CallbackOutcome| CallbackEvent {
            callback_id: delivery_id(request),
            attempt,
            outcome,
        };
        let events = match route {
            Route::PartiesGet { id_type, id, sub } => {
                return Ok(self.answer_party_lookup(&id_type, &id, sub.as_deref(), source))
            }
            Route::QuotesPost => return self.answer_quote(request, source),
            Route::TransfersPost => return self.answer_transfer(request, source),
            // We always answer COMMITTED, never RESERVED, so a commit notice changes nothing.
            Route::TransfersPatch { .. } => Vec::new(),
            route @ (Route::BulkQuotesPut { .. } | Route::BulkTransfersPut { .. }) => {
                return self.bulk_callback(request, source, route)
            }
            Route::PartiesPut {
                id_type,
                id,
                sub,
                error,
            } => {
                let party_ref = party_reference(&id_type, &id, sub.as_deref());
                let reference = AttemptRef::RailReference(party_ref.clone());
                if error {
                    let e: ErrorInformationObject = parse_body(&request.body).map_err(malformed)?;
                    let failure = failure_of(&e.error_information);
                    if self
                        .bulk
                        .answer_lookup(&party_ref, &Lookup::Failed(failure.clone()))
                    {
                        // A bulk upload's lookup: its upload takes it, no attempt does.
                        Vec::new()
                    } else {
                        vec![event(reference, CallbackOutcome::Failed(failure))]
                    }
                } else {
                    let put: wire::PartiesPut = parse_body(&request.body).map_err(malformed)?;
                    let info = &put.party.party_id_info;
                    if info.party_id_type.as_str() != id_type || info.party_identifier != id {
                        return Err(CallbackError::Malformed(
                            "the party does not match the path".to_owned(),
                        ));
                    }
                    let fsp_id = info.fsp_id.clone().unwrap_or_else(|| source.to_owned());
                    let found = Lookup::Found {
                        fsp_id: fsp_id.clone(),
                    };
                    if self.bulk.answer_lookup(&party_ref, &found) {
                        return Ok(answered());
                    }
                    vec![event(
                        reference,
                        CallbackOutcome::Step {
                            rail_state: RailState::PartyFound { fsp_id }.to_value(),
                        },
                    )]
                }
            }
            Route::QuotesPut { id, error } => {
                let attempt = wire::attempt_of(&id, IdPurpose::Quote).ok_or_else(|| {
                    CallbackError::Malformed("not one of our quote ids".to_owned())
                })?;
                let reference = AttemptRef::Attempt(attempt);
                if error {
                    let e: ErrorInformationObject = parse_body(&request.body).map_err(malformed)?;
                    vec![event(
                        reference,
                        CallbackOutcome::Failed(failure_of(&e.error_information)),
                    )]
                } else {
                    let put: QuotesPut = parse_body(&request.body).map_err(malformed)?;
                    Money::try_from(&put.transfer_amount).map_err(malformed)?;
                    parse_fspiop_datetime(&put.expiration).map_err(malformed)?;
                    if !wire::is_ilp_digest(&put.condition) {
                        return Err(CallbackError::Malformed(
                            "condition is not 32 bytes base64url".to_owned(),
                        ));
                    }
                    let state = RailState::Quoted {
                        fsp_id: source.to_owned(),
                        transfer_amount: put.transfer_amount,
                        expiration: put.expiration,
                        ilp_packet: put.ilp_packet,
                        condition: put.condition,
                    };
                    vec![event(
                        reference,
                        CallbackOutcome::Step {
                            rail_state: state.to_value(),
                        },
                    )]
                }
            }
            Route::TransfersPut { id, error } => {
                let attempt = wire::attempt_of(&id, IdPurpose::Transaction).ok_or_else(|| {
                    CallbackError::Malformed("not one of our transfer ids".to_owned())
                })?;
                let reference = AttemptRef::Attempt(attempt);
                if error {
                    let e: ErrorInformationObject = parse_body(&request.body).map_err(malformed)?;
                    if ErrorCode::parse(&e.error_information.error_code)
                        == Some(ErrorCode::TransferIdNotFound)
                    {
                        // Not found (yet): says nothing final; `review_callback` decides by the
                        // transfer's expiry. Each answer is news (time passed since the last),
                        // so its delivery id is not the body's alone.
                        vec![CallbackEvent {
                            callback_id: format!(
                                "{} {}",
                                delivery_id(request),
                                request.received_at.timestamp_micros()
                            ),
                            attempt: reference,
                            outcome: CallbackOutcome::Pending,
                        }]
                    } else {
                        vec![event(
                            reference,
                            CallbackOutcome::Failed(failure_of(&e.error_information)),
                        )]
                    }
                } else {
                    let put: TransfersPut = parse_body(&request.body).map_err(malformed)?;
                    let outcome = match put.transfer_state {
                        TransferState::Committed => {
                            let fulfilment = put
                                .fulfilment
                                .filter(|f| wire::is_ilp_digest(f))
                                .ok_or_else(|| {
                                    CallbackError::Malformed(
                                        "COMMITTED without a valid fulfilment".to_owned(),
                                    )
                                })?;
                            // FSPIOP's PUT /transfers carries no amount: the fulfilment
                            // matching the condition we sent binds it to our quote.
                            CallbackOutcome::Completed(Settled {
                                rail_reference: Some(id.clone()),
                                receipt: Some(fulfilment),
                                amount: None,
                            })
                        }
                        TransferState::Received | TransferState::Reserved => {
                            CallbackOutcome::Pending
                        }
                        TransferState::Aborted => CallbackOutcome::Failed(Failure::new(
                            FailureCode::RailRejected,
                            "the transfer was aborted",
                            Some("ABORTED".to_owned()),
                        )),
                    };
                    vec![event(reference, outcome)]
                }
            }
            Route::TransactionRequestsPut { id, error } => {
                let attempt =
                    wire::attempt_of(&id, IdPurpose::TransactionRequest).ok_or_else(|| {
                        CallbackError::Malformed(
                            "not one of our transaction request ids".to_owned(),
                        )
                    })?;
                let reference = AttemptRef::Attempt(attempt);
                if error {
                    let e: ErrorInformationObject = parse_body(&request.body).map_err(malformed)?;
                    vec![event(
                        reference,
                        CallbackOutcome::Failed(failure_of(&e.error_information)),
                    )]
                } else {
                    let put: TransactionRequestsPut =
                        parse_body(&request.body).map_err(malformed)?;
                    let outcome = match put.transaction_request_state {
                        // Approval is not a callback: the payer's quote and transfer follow.
                        // The `transactionId` the payer FSP names is the spec's link to them
                        // (their `transactionRequestId` is optional): the gateway keeps it as
                        // the attempt's reference, which the transfer then names.
                        TransactionRequestState::Received
                        | TransactionRequestState::Pending
                        | TransactionRequestState::Accepted => {
                            match put.transaction_id.filter(|t| wire::is_correlation_id(t)) {
                                Some(t) => CallbackOutcome::Linked { rail_reference: t },
                                None => CallbackOutcome::Pending,
                            }
                        }
                        TransactionRequestState::Rejected => CallbackOutcome::Failed(Failure::new(
                            FailureCode::Declined,
                            "the payer rejected the request to pay",
                            Some("REJECTED".to_owned()),
                        )),
                    };
                    vec![event(reference, outcome)]
                }
            }
        };
        Ok(CallbackReply {
            events,
            ..answered()
        })
    }

    /// A PUT callback we send back to the hub, built now and sent later by the gateway through
    /// `send_follow_up`, which dates and signs it at sending time.
    pub(crate) fn follow_up(
        &self,
        resource: Resource,
        base: &str,
        uri: String,
        destination: &str,
        body: Vec<u8>,
    ) -> Outbound {
        let headers = vec![
            (
                "Content-Type".to_owned(),
                resource.media_type(&self.config.fspiop_version),
            ),
            (wire::H_SOURCE.to_owned(), self.config.fsp_id.clone()),
            (wire::H_DESTINATION.to_owned(), destination.to_owned()),
            (wire::H_URI.to_owned(), uri.clone()),
        ];
        Outbound {
            method: "PUT".to_owned(),
            url: format!("{}{uri}", base.trim_end_matches('/')),
            headers,
            body,
        }
    }

    pub(crate) fn review(
        &self,
        attempt: &Attempt,
        request: &InboundRequest,
        outcome: CallbackOutcome,
    ) -> Result<CallbackOutcome, CallbackError> {
        let Some(route) = route(&request.method, &request.path) else {
            return Ok(outcome);
        };
        let source = header(request, wire::H_SOURCE).unwrap_or_default();
        if railgate_rail::BatchMembership::of(attempt).is_some() {
            return self.review_bulk_line(route, outcome);
        }
        let state =
            RailState::from_value(attempt.rail_state.as_ref()).map_err(CallbackError::Malformed)?;
        let unexpected = |expected: &str| {
            Err(CallbackError::Unauthenticated(format!(
                "callback from {source}, the attempt deals with {expected}"
            )))
        };
        let hub = self.config.hub_fsp_id.as_str();
        match route {
            Route::QuotesPut { error, .. } => match &state {
                Some(
                    RailState::Quoting { fsp_id }
                    | RailState::PartyFound { fsp_id }
                    | RailState::Quoted { fsp_id, .. },
                ) => {
                    if source == fsp_id || (error && source == hub) {
                        Ok(outcome)
                    } else {
                        unexpected(fsp_id)
                    }
                }
                _ => Err(CallbackError::Unauthenticated(
                    "a quote for an attempt that asked for none".to_owned(),
                )),
            },
            Route::TransfersPut { error, .. } => {
                let Some(RailState::Quoted {
                    fsp_id, condition, ..
                }) = &state
                else {
                    return Err(CallbackError::Unauthenticated(
                        "a transfer result for an attempt that sent none".to_owned(),
                    ));
                };
                if source != fsp_id && source != hub {
                    return unexpected(fsp_id);
                }
                match outcome {
                    CallbackOutcome::Completed(settled) => {
                        let ok = settled
                            .receipt
                            .as_deref()
                            .is_some_and(|f| ilp::fulfils(f, condition));
                        if ok {
                            Ok(CallbackOutcome::Completed(settled))
                        } else {
                            Err(CallbackError::Unauthenticated(
                                "the fulfilment does not match the condition".to_owned(),
                            ))
                        }
                    }
                    CallbackOutcome::Pending if error => {
                        match self.transfer_not_found(attempt, request.received_at) {
                            RailStatus::Failed(f) => Ok(CallbackOutcome::Failed(f)),
                            RailStatus::Pending
                            | RailStatus::NotFound
                            | RailStatus::Completed(_) => Ok(CallbackOutcome::Pending),
                        }
                    }
                    other => Ok(other),
                }
            }
            Route::TransactionRequestsPut { .. } => match &state {
                Some(RailState::PartyFound { fsp_id }) if source == fsp_id || source == hub => {
                    Ok(outcome)
                }
                Some(RailState::PartyFound { fsp_id }) => unexpected(fsp_id),
                _ => Err(CallbackError::Unauthenticated(
                    "a transaction request result for an attempt that sent none".to_owned(),
                )),
            },
            // The payer's transfer for our request-to-pay must come from the FSP we asked.
            // And only a request-to-pay is paid by an inbound transfer: one naming a
            // disbursement (by a transaction id it reused) settles nothing.
            Route::TransfersPost => match &state {
                Some(RailState::PartyFound { fsp_id })
                    if attempt.direction == railgate_rail::Direction::Collection =>
                {
                    if source == fsp_id {
                        Ok(outcome)
                    } else {
                        unexpected(fsp_id)
                    }
                }
                _ => Err(CallbackError::Unauthenticated(
                    "a transfer for an attempt that asked for none".to_owned(),
                )),
            },
            Route::PartiesGet { .. }
            | Route::PartiesPut { .. }
            | Route::QuotesPost
            | Route::TransfersPatch { .. }
            | Route::BulkQuotesPut { .. }
            | Route::BulkTransfersPut { .. } => Ok(outcome),
        }
    }

    /// A single-transfer answer for a line that travelled in a bulk (the answer to its own
    /// `GET /transfers/{id}`): completed only with the fulfilment of the condition its bulk
    /// quote gave, which only the process that sent the bulk holds.
    fn review_bulk_line(
        &self,
        route: Route,
        outcome: CallbackOutcome,
    ) -> Result<CallbackOutcome, CallbackError> {
        let Route::TransfersPut { id, error } = route else {
            return Err(CallbackError::Unauthenticated(
                "only a transfer result can name a bulk line".to_owned(),
            ));
        };
        let Some(condition) = self.bulk_condition(&id) else {
            return Err(CallbackError::Unauthenticated(
                "a result for a bulk line whose condition is not known here".to_owned(),
            ));
        };
        match outcome {
            CallbackOutcome::Completed(settled) => {
                if settled
                    .receipt
                    .as_deref()
                    .is_some_and(|f| ilp::fulfils(f, &condition))
                {
                    Ok(CallbackOutcome::Completed(settled))
                } else {
                    Err(CallbackError::Unauthenticated(
                        "the fulfilment does not match the condition".to_owned(),
                    ))
                }
            }
            // "Not found" says nothing final about a line its bulk may still carry.
            CallbackOutcome::Pending if error => Ok(CallbackOutcome::Pending),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::mask_party_path;

    #[test]
    fn party_identifiers_are_masked_in_logged_paths() {
        assert_eq!(
            mask_party_path("/parties/MSISDN/255712345600"),
            "/parties/MSISDN/25********00"
        );
        assert_eq!(
            mask_party_path("/parties/MSISDN/255712345600/error"),
            "/parties/MSISDN/25********00/error"
        );
        assert_eq!(
            mask_party_path("/parties/ACCOUNT_ID/1234567890/SUB-00123"),
            "/parties/ACCOUNT_ID/12******90/SU*****23"
        );
        assert_eq!(mask_party_path("/transfers/abc"), "/transfers/abc");
    }
}

//! Railgate as the payee FSP: what we answer when a payer's FSP pays the scheme, either pushed
//! by the insuree (to the scheme's `BUSINESS`/`ALIAS` identifier, with the payment reference as
//! `partySubIdOrType`) or in answer to our request-to-pay.
//!
//! Stateless, as the adapter must be: the quote's ILP packet carries the transaction object,
//! and the fulfilment is regenerated from the packet and our secret when the transfer comes
//! (HMAC-SHA256, the API definition's §6.7.2.8), so nothing is kept between the quote and the
//! transfer. Every answer goes back as a follow-up PUT that the gateway sends durably.
//!
//! ## Idempotency of inbound POSTs (API definition §3.2.5)
//! The same `quoteId`/`transferId` with the same body must get the current result again; with
//! a different body, error `3106`. That needs memory, which is the gateway's: for every inbound
//! POST it calls [`inbound_post`], looks up the hash it stored for `(resource, id)` and asks
//! [`replay_of`]:
//! - `First`: store the hash with the reply, apply the reply's events, send its follow-ups;
//! - `Duplicate`: apply nothing, send again the follow-ups stored with the first reply;
//! - `Modified`: apply nothing, send [`MojaloopAdapter::modified_request_follow_up`].

use crate::adapter::MojaloopAdapter;
use crate::callbacks::header;
use crate::ilp;
use crate::wire::{
    self, failure_of, fspiop_datetime, id_string, is_correlation_id, parse_body,
    parse_fspiop_datetime, to_body, ErrorCode, ErrorInformationObject, Extension, ExtensionList,
    FspiopMoney, FspiopParty, FspiopPartyIdType, PartyIdInfo, QuotesPost, QuotesPut, Resource,
    TransferState, TransfersPost, TransfersPut,
};
use chrono::{DateTime, Utc};
use railgate_rail::{
    AttemptRef, CallbackError, CallbackEvent, CallbackOutcome, CallbackReply, InboundRequest,
    Money, Outbound, Settled,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The extension key under which the transaction object of a request-to-pay's quote carries
/// the `transactionRequestId`, so the transfer can be tied back to our attempt.
pub const TRANSACTION_REQUEST_KEY: &str = "transactionRequestId";

fn accepted(events: Vec<CallbackEvent>, follow_ups: Vec<Outbound>) -> CallbackReply {
    CallbackReply {
        events,
        status: 202,
        content_type: "application/json",
        body: Vec::new(),
        follow_ups,
    }
}

/// The identity of an inbound POST, for the gateway's idempotency check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPost {
    pub resource: Resource,
    /// `quoteId` or `transferId`.
    pub id: String,
    /// SHA-256 (hex) of the body's canonical JSON: whitespace and key order do not count, as
    /// the switch compares parsed bodies too.
    pub body_hash: String,
    /// The FSP that sent it (where an error goes back).
    pub source: String,
}

/// What an inbound POST is, if it is one we idempotency-check (`POST /quotes`, `POST /transfers`).
pub fn inbound_post(request: &InboundRequest) -> Option<InboundPost> {
    if request.method != http::Method::POST {
        return None;
    }
    let (resource, field) = match request.path.trim_end_matches('/') {
        "/quotes" => (Resource::Quotes, "quoteId"),
        "/transfers" => (Resource::Transfers, "transferId"),
        _ => return None,
    };
    let body: Value = serde_json::from_slice(&request.body).ok()?;
    let id = body.get(field)?.as_str()?.to_owned();
    let canonical = ilp::canonical_json(&body);
    Some(InboundPost {
        resource,
        id,
        body_hash: hex::encode(Sha256::digest(canonical.as_bytes())),
        source: header(request, wire::H_SOURCE)?.to_owned(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Never seen: process it.
    First,
    /// Seen with the same body: resend the current result, apply nothing.
    Duplicate,
    /// Seen with another body: answer `3106`, apply nothing.
    Modified,
}

/// Decides from the stored hash (if any) and the new one.
pub fn replay_of(stored_hash: Option<&str>, new_hash: &str) -> Replay {
    match stored_hash {
        None => Replay::First,
        Some(h) if h == new_hash => Replay::Duplicate,
        Some(_) => Replay::Modified,
    }
}

#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    description: String,
}

fn refuse(code: ErrorCode, description: impl Into<String>) -> Refusal {
    Refusal {
        code,
        description: description.into(),
    }
}

impl MojaloopAdapter {
    /// `PUT /{resource}/{id}/error` with `3106 Modified request`, for a POST that reused an id.
    pub fn modified_request_follow_up(&self, post: &InboundPost) -> Outbound {
        self.error_follow_up(
            post.resource,
            &format!("/{}/{}", post.resource.as_str(), post.id),
            &post.source,
            refuse(
                ErrorCode::ModifiedRequest,
                "the id was used before with another request",
            ),
        )
    }

    fn base_of(&self, resource: Resource) -> &str {
        match resource {
            Resource::Parties => &self.config.endpoints.parties,
            Resource::Quotes => &self.config.endpoints.quotes,
            Resource::Transfers => &self.config.endpoints.transfers,
            Resource::TransactionRequests => &self.config.endpoints.transaction_requests,
            Resource::BulkQuotes => &self.config.endpoints.bulk_quotes,
            Resource::BulkTransfers => &self.config.endpoints.bulk_transfers,
        }
    }

    fn error_follow_up(
        &self,
        resource: Resource,
        uri: &str,
        destination: &str,
        r: Refusal,
    ) -> Outbound {
        let body = to_body(&ErrorInformationObject::new(r.code, r.description)).unwrap_or_default();
        self.follow_up(
            resource,
            self.base_of(resource),
            format!("{uri}/error"),
            destination,
            body,
        )
    }

    fn own_party(&self, id_type: &str, id: &str) -> Option<&crate::config::OwnParty> {
        self.config.own_parties.iter().find(|p| {
            FspiopPartyIdType::try_from(p.id_type).is_ok_and(|t| t.as_str() == id_type)
                && p.id_value == id
        })
    }

    /// `GET /parties/{Type}/{ID}[/{SubId}]` for one of the scheme's own identifiers: we answer
    /// with our party (any sub-id: it is the payer's payment reference, matched later by the
    /// gateway); anything else is `3204`.
    pub(crate) fn answer_party_lookup(
        &self,
        id_type: &str,
        id: &str,
        sub: Option<&str>,
        source: &str,
    ) -> CallbackReply {
        let mut uri = format!("/parties/{id_type}/{id}");
        if let Some(s) = sub {
            uri.push('/');
            uri.push_str(s);
        }
        let follow_up = match (
            self.own_party(id_type, id),
            FspiopPartyIdType::parse(id_type),
        ) {
            (Some(own), Some(t)) => {
                let put = wire::PartiesPut {
                    party: FspiopParty {
                        party_id_info: PartyIdInfo {
                            party_id_type: t,
                            party_identifier: id.to_owned(),
                            party_sub_id_or_type: sub.map(str::to_owned),
                            fsp_id: Some(self.config.fsp_id.clone()),
                        },
                        merchant_classification_code: None,
                        name: Some(own.name.clone()),
                        personal_info: None,
                    },
                };
                let body = to_body(&put).unwrap_or_default();
                self.follow_up(
                    Resource::Parties,
                    &self.config.endpoints.parties,
                    uri,
                    source,
                    body,
                )
            }
            _ => self.error_follow_up(
                Resource::Parties,
                &uri,
                source,
                refuse(ErrorCode::PartyNotFound, "Party not found"),
            ),
        };
        accepted(Vec::new(), vec![follow_up])
    }

    /// `POST /quotes` from a payer FSP: we quote the amount without fees and return the ILP
    /// packet and condition; the fulfilment stays derivable from the packet.
    pub(crate) fn answer_quote(
        &self,
        request: &InboundRequest,
        source: &str,
    ) -> Result<CallbackReply, CallbackError> {
        let raw: Value = serde_json::from_slice(&request.body)
            .map_err(|e| CallbackError::Malformed(e.to_string()))?;
        let quote_id = raw
            .get("quoteId")
            .and_then(Value::as_str)
            .filter(|id| is_correlation_id(id))
            .ok_or_else(|| {
                CallbackError::Malformed("quoteId is missing or not a v1.1 id".to_owned())
            })?
            .to_owned();
        let uri = format!("/quotes/{quote_id}");
        let follow_up = match self.quote_terms(&raw, Utc::now()) {
            Ok(put) => {
                let body = to_body(&put).map_err(|e| CallbackError::Malformed(e.to_string()))?;
                self.follow_up(
                    Resource::Quotes,
                    &self.config.endpoints.quotes,
                    uri,
                    source,
                    body,
                )
            }
            Err(r) => {
                tracing::info!(code = r.code.code(), reason = %r.description, "Mojaloop quote refused");
                self.error_follow_up(Resource::Quotes, &uri, source, r)
            }
        };
        Ok(accepted(Vec::new(), vec![follow_up]))
    }

    fn quote_terms(&self, raw: &Value, now: DateTime<Utc>) -> Result<QuotesPut, Refusal> {
        let post: QuotesPost = serde_json::from_value(raw.clone())
            .map_err(|e| refuse(ErrorCode::MalformedSyntax, e.to_string()))?;
        if !is_correlation_id(&post.transaction_id) {
            return Err(refuse(
                ErrorCode::GenericValidationError,
                "transactionId is not a v1.1 id",
            ));
        }
        let payee = &post.payee.party_id_info;
        if payee
            .fsp_id
            .as_deref()
            .is_some_and(|f| f != self.config.fsp_id)
        {
            return Err(refuse(
                ErrorCode::DestinationFspError,
                "the payee is not at this FSP",
            ));
        }
        if self
            .own_party(payee.party_id_type.as_str(), &payee.party_identifier)
            .is_none()
        {
            return Err(refuse(ErrorCode::PartyNotFound, "Party not found"));
        }
        let amount = Money::try_from(&post.amount).map_err(|e| match e {
            wire::WireError::Invalid {
                field: "currency", ..
            } => refuse(ErrorCode::PayeeUnsupportedCurrency, e.to_string()),
            other => refuse(ErrorCode::GenericValidationError, other.to_string()),
        })?;
        let ours = wire::after(now, self.config.quote_expiry);
        let expiration = match &post.expiration {
            None => ours,
            Some(s) => {
                let theirs = parse_fspiop_datetime(s)
                    .map_err(|e| refuse(ErrorCode::GenericValidationError, e.to_string()))?;
                if theirs <= now {
                    return Err(refuse(
                        ErrorCode::QuoteExpired,
                        "the quote request has expired",
                    ));
                }
                theirs.min(ours)
            }
        };
        let expiration_text = fspiop_datetime(expiration);
        // No fees: the payee receives what the payer sends, whatever the amount type.
        let transfer_amount = FspiopMoney::from(amount);
        let mut tx = serde_json::Map::new();
        tx.insert("quoteId".to_owned(), Value::from(post.quote_id.clone()));
        tx.insert(
            "transactionId".to_owned(),
            Value::from(post.transaction_id.clone()),
        );
        for k in ["transactionType", "payee", "payer"] {
            if let Some(v) = raw.get(k) {
                tx.insert(k.to_owned(), v.clone());
            }
        }
        tx.insert(
            "expiration".to_owned(),
            Value::from(expiration_text.clone()),
        );
        tx.insert(
            "amount".to_owned(),
            serde_json::to_value(&transfer_amount).unwrap_or(Value::Null),
        );
        if let Some(note) = raw.get("note") {
            tx.insert("note".to_owned(), note.clone());
        }
        if let Some(trid) = &post.transaction_request_id {
            let ext = ExtensionList {
                extension: vec![Extension {
                    key: TRANSACTION_REQUEST_KEY.to_owned(),
                    value: trid.clone(),
                }],
            };
            tx.insert(
                "extensionList".to_owned(),
                serde_json::to_value(ext).unwrap_or(Value::Null),
            );
        }
        let tx = Value::Object(tx);
        let minor = u64::try_from(amount.minor())
            .map_err(|_| refuse(ErrorCode::GenericValidationError, "amount"))?;
        let address = ilp::v1_address(
            &self.config.fsp_id,
            payee.party_id_type.as_str(),
            &payee.party_identifier,
            payee.party_sub_id_or_type.as_deref(),
        );
        let q = ilp::quote_ilp(
            self.config.ilp_version,
            &self.ilp_key,
            &tx,
            minor,
            expiration,
            &address,
        );
        Ok(QuotesPut {
            transfer_amount: transfer_amount.clone(),
            payee_receive_amount: Some(transfer_amount),
            payee_fsp_fee: Some(FspiopMoney {
                amount: "0".to_owned(),
                currency: amount.currency().code().to_owned(),
            }),
            payee_fsp_commission: None,
            expiration: expiration_text,
            ilp_packet: q.packet,
            condition: q.condition,
            extension_list: None,
        })
    }

    /// `POST /transfers` from a payer FSP: the money arrives. We check that the packet is ours
    /// and matches the transfer, answer COMMITTED with the fulfilment, and tell the gateway.
    pub(crate) fn answer_transfer(
        &self,
        request: &InboundRequest,
        source: &str,
    ) -> Result<CallbackReply, CallbackError> {
        let post: TransfersPost =
            parse_body(&request.body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
        if !is_correlation_id(&post.transfer_id) {
            return Err(CallbackError::Malformed(
                "transferId is not a v1.1 id".to_owned(),
            ));
        }
        let uri = format!("/transfers/{}", post.transfer_id);
        let now = Utc::now();
        let accepted_transfer = if post.payer_fsp == source {
            self.accept_transfer(&post, now)
        } else {
            Err(refuse(
                ErrorCode::GenericValidationError,
                "FSPIOP-Source does not match payerFsp",
            ))
        };
        match accepted_transfer {
            Ok((fulfilment, attempt, outcome_of)) => {
                let put = TransfersPut {
                    fulfilment: Some(fulfilment.clone()),
                    completed_timestamp: Some(fspiop_datetime(now)),
                    transfer_state: TransferState::Committed,
                    extension_list: None,
                };
                let body = to_body(&put).map_err(|e| CallbackError::Malformed(e.to_string()))?;
                let settled = Settled {
                    rail_reference: Some(post.transfer_id.clone()),
                    receipt: Some(fulfilment),
                    // Checked against the quote's in `accept_transfer`, and by the gateway
                    // against the payment's.
                    amount: Money::try_from(&post.amount).ok(),
                };
                let event = CallbackEvent {
                    // One event per transfer id, whatever the delivery.
                    callback_id: format!("POST /transfers {}", post.transfer_id),
                    attempt,
                    outcome: outcome_of(settled),
                };
                let follow_up = self.follow_up(
                    Resource::Transfers,
                    &self.config.endpoints.transfers,
                    uri,
                    source,
                    body,
                );
                Ok(accepted(vec![event], vec![follow_up]))
            }
            Err(r) => {
                tracing::info!(code = r.code.code(), reason = %r.description, "Mojaloop inbound transfer refused");
                Ok(accepted(
                    Vec::new(),
                    vec![self.error_follow_up(Resource::Transfers, &uri, source, r)],
                ))
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn accept_transfer(
        &self,
        post: &TransfersPost,
        now: DateTime<Utc>,
    ) -> Result<
        (
            String,
            AttemptRef,
            Box<dyn FnOnce(Settled) -> CallbackOutcome>,
        ),
        Refusal,
    > {
        if post.payee_fsp != self.config.fsp_id {
            return Err(refuse(
                ErrorCode::DestinationFspError,
                "the payee FSP is not us",
            ));
        }
        let expiration = parse_fspiop_datetime(&post.expiration)
            .map_err(|e| refuse(ErrorCode::GenericValidationError, e.to_string()))?;
        if expiration <= now {
            return Err(refuse(
                ErrorCode::TransferExpired,
                "the transfer has expired",
            ));
        }
        let amount = Money::try_from(&post.amount)
            .map_err(|e| refuse(ErrorCode::GenericValidationError, e.to_string()))?;
        let invalid = |why: &str| refuse(ErrorCode::GenericValidationError, why.to_owned());
        let packet = ilp::decode_packet(&post.ilp_packet)
            .map_err(|_| invalid("the ILP packet cannot be decoded"))?;
        let fulfilment = ilp::regenerate_fulfilment(&self.ilp_key, &post.ilp_packet, &packet)
            .map_err(|_| invalid("the ILP packet is not ours"))?;
        // Only a packet we made with our secret yields a fulfilment matching its condition.
        if !ilp::fulfils(&fulfilment, &post.condition) {
            return Err(invalid("the condition does not match our ILP packet"));
        }
        if ilp::packet_condition(&packet).is_some_and(|c| c != post.condition) {
            return Err(invalid(
                "the packet's condition differs from the transfer's",
            ));
        }
        if packet.amount != u64::try_from(amount.minor()).unwrap_or(0) {
            return Err(invalid("the transfer amount differs from the quote"));
        }
        let tx = ilp::transaction_of(&packet)
            .map_err(|_| invalid("the ILP packet carries no transaction"))?;
        let quoted: Option<FspiopMoney> = tx
            .get("amount")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        if quoted.as_ref() != Some(&FspiopMoney::from(amount)) {
            return Err(invalid("the transfer amount differs from the quote"));
        }
        let s = |p: &str| tx.pointer(p).and_then(Value::as_str);
        // A quote is irrevocable but expires; its transfer must come before that.
        if s("/expiration")
            .and_then(|e| parse_fspiop_datetime(e).ok())
            .is_some_and(|e| e <= now)
        {
            return Err(refuse(ErrorCode::QuoteExpired, "the quote has expired"));
        }
        let transaction_request = tx
            .pointer("/extensionList/extension")
            .and_then(Value::as_array)
            .and_then(|exts| {
                exts.iter()
                    .find(|e| e.get("key").and_then(Value::as_str) == Some(TRANSACTION_REQUEST_KEY))
                    .and_then(|e| e.get("value").and_then(Value::as_str))
            })
            .and_then(|id| wire::attempt_of(id, wire::IdPurpose::TransactionRequest));
        if let Some(attempt) = transaction_request {
            return Ok((
                fulfilment,
                AttemptRef::Attempt(attempt),
                Box::new(CallbackOutcome::Completed),
            ));
        }
        // A pushed payment: the payment reference is the sub-id the payer paid to, else the note.
        let reference = s("/payee/partyIdInfo/partySubIdOrType")
            .or_else(|| s("/note"))
            .unwrap_or_default()
            .to_owned();
        let payer = tx
            .pointer("/payer/partyIdInfo")
            .and_then(|v| serde_json::from_value::<PartyIdInfo>(v.clone()).ok())
            .and_then(|info| info.to_party(s("/payer/name")));
        // A payer FSP that answered our request-to-pay without naming it (the field is
        // optional) still pays under the `transactionId` it gave in `PUT /transactionRequests`,
        // which the gateway keeps on the attempt; else this is a pushed payment.
        let attempt = match s("/transactionId") {
            Some(t) => AttemptRef::Transaction {
                rail_reference: t.to_owned(),
                payment_reference: reference,
            },
            None => AttemptRef::PaymentReference(reference),
        };
        Ok((
            fulfilment,
            attempt,
            Box::new(move |settled| CallbackOutcome::Received {
                amount,
                payer,
                settled,
            }),
        ))
    }
}

/// The `errorInformation` of an inbound error body as our failure (for tests and tools).
pub fn error_failure(body: &[u8]) -> Option<railgate_rail::Failure> {
    parse_body::<ErrorInformationObject>(body)
        .ok()
        .map(|e| failure_of(&e.error_information))
}

/// The FSPIOP id a request-to-pay's `transactionRequestId` is for the attempt.
pub fn transaction_request_id(attempt_id: uuid::Uuid) -> Option<String> {
    wire::derive_id(attempt_id, wire::IdPurpose::TransactionRequest)
        .ok()
        .map(id_string)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn replay_decisions() {
        assert_eq!(replay_of(None, "a"), Replay::First);
        assert_eq!(replay_of(Some("a"), "a"), Replay::Duplicate);
        assert_eq!(replay_of(Some("a"), "b"), Replay::Modified);
    }

    #[test]
    fn inbound_post_hash_ignores_whitespace_and_key_order() {
        let mk = |body: &str| InboundRequest {
            method: http::Method::POST,
            path: "/transfers".to_owned(),
            query: None,
            headers: {
                let mut h = http::HeaderMap::new();
                h.insert("FSPIOP-Source", http::HeaderValue::from_static("payerfsp"));
                h
            },
            body: bytes::Bytes::from(body.to_owned()),
            received_at: Utc::now(),
            peer: None,
        };
        let a = inbound_post(&mk(
            r#"{"transferId":"x","amount":{"amount":"1","currency":"USD"}}"#,
        ))
        .unwrap();
        let b = inbound_post(&mk(
            r#"{ "amount": {"currency":"USD","amount":"1"}, "transferId": "x" }"#,
        ))
        .unwrap();
        let c = inbound_post(&mk(
            r#"{"transferId":"x","amount":{"amount":"2","currency":"USD"}}"#,
        ))
        .unwrap();
        assert_eq!(a.id, "x");
        assert_eq!(a.resource, Resource::Transfers);
        assert_eq!(a.body_hash, b.body_hash);
        assert_ne!(a.body_hash, c.body_hash);
        assert_eq!(a.source, "payerfsp");
    }
}

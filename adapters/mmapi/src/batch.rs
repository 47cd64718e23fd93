//! Bulk disbursements through `POST /batchtransactions` (payrolls).
//!
//! How the gateway uses it:
//! 1. Choose a batch id (a UUID) and store it, with the ids of the attempts it carries, before
//!    sending; call [`MmapiAdapter::submit_batch`]. The batch id is the `X-CorrelationID`, so a
//!    resend after a lost answer is recognised and recovered, never executed twice.
//! 2. Each item's `requestingOrganisationTransactionReference` is its attempt id: that is the
//!    only field the completions and rejections lists give back, so it is how results find
//!    their attempts. The core's reference travels in the item's `metadata`.
//! 3. Learn when the batch is done, either from the callback on `/batches/{batch_id}` (read it
//!    with [`MmapiAdapter::batch_callback`]; `callback()` answers it with no events) or by
//!    polling [`MmapiAdapter::batch_progress`] with the server correlation id.
//! 4. Read the per-item outcomes with [`MmapiAdapter::batch_results`] and apply each like an
//!    inquiry result. Items missing from both lists are still pending.
//!
//! Batches with maker/checker approval stay `created` until the provider's checker approves
//! them; `batch_progress` reports that as `Created` and the gateway keeps waiting.

use crate::adapter::{no_content, read_error, MmapiAdapter};
use crate::wire::{
    failure_of, BatchCompletion, BatchObject, BatchRejection, BatchRequest, BatchStatus, ErrorCode,
    ErrorObject, KeyValue, RequestState, RequestStatus, Resource,
};
use railgate_rail::{
    Attempt, CallbackError, CallbackReply, Direction, Failure, FailureCode, InboundRequest,
    RailError, RailStatus, Settled, Submitted,
};
use reqwest::Method;
use uuid::Uuid;

/// Items per batch the gateway sends, at most (the API allows 999,999).
pub const MAX_ITEMS: usize = 10_000;

/// Items per page when reading completions and rejections back.
const PAGE: usize = 500;
/// Bound on pages read per list (5 million items).
const MAX_PAGES: usize = 10_000;

/// What the provider said to a batch submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSubmitted {
    /// Accepted for asynchronous processing; poll with this server correlation id.
    Accepted { server_correlation_id: String },
    /// Refused as a whole; nothing of it will run.
    Rejected(Failure),
}

/// Where a batch stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchProgress {
    /// Still being parsed or processed.
    Pending,
    /// Waiting for the provider's checker to approve it.
    Created { batch_ref: String },
    /// Finished: read the results.
    Completed {
        batch_ref: String,
        completed: Option<u64>,
        rejected: Option<u64>,
    },
    /// Refused as a whole.
    Failed(Failure),
}

/// The outcome of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItemResult {
    pub attempt_id: Uuid,
    pub status: RailStatus,
}

/// A verified batch callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchNotice {
    pub batch_id: Uuid,
    pub batch: Option<BatchObject>,
}

impl MmapiAdapter {
    /// Submits many disbursement attempts as one batch.
    pub async fn submit_batch(
        &self,
        batch_id: Uuid,
        title: &str,
        attempts: &[Attempt],
    ) -> Result<BatchSubmitted, RailError> {
        if attempts.is_empty() {
            return Err(RailError::Permanent(
                "a batch needs at least one item".into(),
            ));
        }
        let mut transactions = Vec::with_capacity(attempts.len());
        for attempt in attempts {
            if attempt.direction != Direction::Disbursement {
                return Err(RailError::Permanent(
                    "batches carry disbursements only".into(),
                ));
            }
            let mut item = self.transaction_body(attempt)?;
            item.kind = Some("disbursement".into());
            item.requesting_organisation_transaction_reference =
                Some(attempt.attempt_id.to_string());
            item.metadata = vec![KeyValue::new("reference", attempt.reference.clone())];
            transactions.push(item);
        }
        let body = BatchRequest {
            transactions,
            batch_title: Some(title.chars().take(256).collect()),
            batch_description: Some(format!("{} payments", attempts.len())),
            request_date: Some(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            ),
        };
        let body = serde_json::to_vec(&body).map_err(|e| RailError::Permanent(e.to_string()))?;
        let callback = match self.config.notification {
            crate::config::Notification::Callback => {
                Some(format!("{}/batches/{batch_id}", self.callback_prefix()))
            }
            crate::config::Notification::Polling => None,
        };
        match self
            .create("/batchtransactions", body, batch_id, callback)
            .await?
        {
            Submitted::Accepted {
                rail_reference: Some(scid),
            } => Ok(BatchSubmitted::Accepted {
                server_correlation_id: scid,
            }),
            Submitted::Rejected(f) => Ok(BatchSubmitted::Rejected(f)),
            Submitted::Accepted {
                rail_reference: None,
            }
            | Submitted::Completed(_)
            | Submitted::Step { .. } => Err(RailError::Unknown(
                "the provider answered the batch without a server correlation id".into(),
            )),
        }
    }

    /// Where the batch stands, by the server correlation id `submit_batch` returned.
    pub async fn batch_progress(
        &self,
        server_correlation_id: &str,
    ) -> Result<BatchProgress, RailError> {
        let reply = self
            .send(
                Method::GET,
                &format!("/requeststates/{server_correlation_id}"),
                None,
                None,
                None,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(read_error(&reply));
        }
        let rs: RequestState = reply.json()?;
        match rs.status {
            RequestStatus::Pending => Ok(BatchProgress::Pending),
            RequestStatus::Failed => Ok(BatchProgress::Failed(crate::wire::failure_of_state(&rs))),
            RequestStatus::Completed => {
                let Some(batch_ref) = rs.object_reference else {
                    return Err(RailError::Unknown(
                        "a completed batch request without its batch id".into(),
                    ));
                };
                self.batch_object_progress(&batch_ref).await
            }
        }
    }

    async fn batch_object_progress(&self, batch_ref: &str) -> Result<BatchProgress, RailError> {
        let reply = self
            .send(
                Method::GET,
                &format!("/batchtransactions/{batch_ref}"),
                None,
                None,
                None,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(read_error(&reply));
        }
        let batch: BatchObject = reply.json()?;
        Ok(match batch.batch_status {
            BatchStatus::Created | BatchStatus::Approved => BatchProgress::Created {
                batch_ref: batch.batch_id,
            },
            BatchStatus::Completed => BatchProgress::Completed {
                batch_ref: batch.batch_id,
                completed: batch.completed_count,
                rejected: batch.rejection_count,
            },
        })
    }

    /// The per-item outcomes of a finished batch (its completions and rejections).
    pub async fn batch_results(&self, batch_ref: &str) -> Result<Vec<BatchItemResult>, RailError> {
        let mut results = Vec::new();
        let completions: Vec<BatchCompletion> = self.read_pages(batch_ref, "completions").await?;
        for c in completions {
            let Some(attempt_id) =
                attempt_of(c.requesting_organisation_transaction_reference.as_deref())
            else {
                tracing::warn!(batch = %batch_ref, "Batch completion without an attempt id; skipped");
                continue;
            };
            results.push(BatchItemResult {
                attempt_id,
                // A batch completion object names no amount (the transaction it links to
                // does; the batch's upload and the item's inquiry are checked instead).
                status: RailStatus::Completed(Settled {
                    rail_reference: Some(c.transaction_reference.clone()),
                    receipt: Some(c.transaction_reference),
                    amount: None,
                }),
            });
        }
        let rejections: Vec<BatchRejection> = self.read_pages(batch_ref, "rejections").await?;
        for r in rejections {
            let Some(attempt_id) =
                attempt_of(r.requesting_organisation_transaction_reference.as_deref())
            else {
                tracing::warn!(batch = %batch_ref, "Batch rejection without an attempt id; skipped");
                continue;
            };
            results.push(BatchItemResult {
                attempt_id,
                status: RailStatus::Failed(failure_of_rejection(&r.rejection_reason)),
            });
        }
        Ok(results)
    }

    async fn read_pages<T: serde::de::DeserializeOwned>(
        &self,
        batch_ref: &str,
        list: &str,
    ) -> Result<Vec<T>, RailError> {
        let mut all = Vec::new();
        for page in 0..MAX_PAGES {
            let offset = page.saturating_mul(PAGE);
            let reply = self
                .send(
                    Method::GET,
                    &format!("/batchtransactions/{batch_ref}/{list}?offset={offset}&limit={PAGE}"),
                    None,
                    None,
                    None,
                )
                .await?;
            if reply.status == reqwest::StatusCode::NOT_FOUND {
                break;
            }
            if !reply.status.is_success() {
                return Err(read_error(&reply));
            }
            let items: Vec<T> = reply.json()?;
            let n = items.len();
            all.extend(items);
            if n < PAGE {
                break;
            }
        }
        Ok(all)
    }

    /// Authenticates and reads a batch callback (`/batches/{batch_id}`).
    pub fn batch_callback(&self, request: &InboundRequest) -> Result<BatchNotice, CallbackError> {
        let rest = self.authenticate(request)?;
        let ["batches", id] = rest.as_slice() else {
            return Err(CallbackError::UnknownRoute);
        };
        let batch_id = Uuid::parse_str(id)
            .map_err(|_| CallbackError::Malformed("batch id is not a UUID".into()))?;
        let batch = match Resource::sniff(&request.body).map_err(CallbackError::Malformed)? {
            Resource::Batch(b) => Some(b),
            Resource::RequestState(_) | Resource::Transaction(_) | Resource::Error(_) => None,
        };
        Ok(BatchNotice { batch_id, batch })
    }
}

/// `callback()` on a batch path: authenticated already; answered without events because the
/// per-item outcomes need reads the gateway does through `batch_results`.
pub(crate) fn batch_callback_reply(
    rest: &[&str],
    request: &InboundRequest,
) -> Result<CallbackReply, CallbackError> {
    let [_, id] = rest else {
        return Err(CallbackError::UnknownRoute);
    };
    Uuid::parse_str(id).map_err(|_| CallbackError::Malformed("batch id is not a UUID".into()))?;
    Resource::sniff(&request.body).map_err(CallbackError::Malformed)?;
    Ok(no_content(Vec::new()))
}

fn attempt_of(reference: Option<&str>) -> Option<Uuid> {
    reference.and_then(|r| Uuid::parse_str(r.trim()).ok())
}

/// `rejectionReason` is free text; providers often put an API error code in it.
fn failure_of_rejection(reason: &str) -> Failure {
    match ErrorCode::parse(reason.trim()) {
        ErrorCode::Unrecognised(_) => {
            Failure::new(FailureCode::RailRejected, reason, Some(reason.to_owned()))
        }
        _ => {
            let mut f = failure_of(&ErrorObject::new("businessRule", reason.trim(), reason));
            f.rail_code = Some(reason.to_owned());
            f
        }
    }
}

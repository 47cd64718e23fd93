//! Payrolls through Payment Hub EE's bulk API: the generic batch path (`crate::batches`)
//! with the `phee` rail's adapter, whose `plan_batches`/`submit_batch`/`batch_results` keep
//! PH-EE's quirks (one payment mode per file, no two equal lines in a file, size limits,
//! `TransactionExists` rows, a line listed twice) inside `railgate_mifos`.
//!
//! `submit_phee_bulk` is kept for callers that hold only the configuration: it builds the
//! rail's adapter (adapters hold no state, so this one behaves as the registry's) and hands
//! the payments to `crate::batches::submit`.

use crate::batches::{self, BatchError, Submission};
use crate::config::Config;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("rail '{0}' is not a configured rail with a bulk API")]
    NoBulk(String),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// One uploaded (or attempted) file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedBatch {
    pub correlation_id: Uuid,
    /// PH-EE's batch id; `None` when the upload failed.
    pub batch_id: Option<String>,
    pub lines: usize,
    /// Why the upload failed, when it did (its lines went to the dispatcher).
    pub error: Option<String>,
}

/// What `submit_phee_bulk` did with the payments it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkSubmission {
    pub batches: Vec<UploadedBatch>,
    /// Payments left to the dispatcher, one by one.
    pub single: Vec<Uuid>,
    /// Payments not taken: not queued, or not routed to this rail.
    pub skipped: Vec<Uuid>,
}

impl From<Submission> for BulkSubmission {
    fn from(s: Submission) -> Self {
        BulkSubmission {
            batches: s
                .batches
                .into_iter()
                .map(|b| UploadedBatch {
                    correlation_id: b.batch_id,
                    batch_id: b.batch_ref,
                    lines: b.lines,
                    error: b.error,
                })
                .collect(),
            single: s.single,
            skipped: s.skipped,
        }
    }
}

/// Sends queued payments routed to the rail `rail_id` (one with a batch API: PH-EE's bulk
/// API, for which this was written) through its bulk API, in chunks
/// of the rail's `batch_chunk` (or `bulk_chunk`) lines.
pub async fn submit_phee_bulk(
    db: &crate::store::Db,
    cfg: &Config,
    rail_id: &str,
    payment_ids: &[Uuid],
) -> Result<BulkSubmission, BulkError> {
    let rc = cfg
        .rails
        .iter()
        .find(|r| r.id == rail_id)
        .ok_or_else(|| BulkError::NoBulk(rail_id.to_owned()))?;
    let adapter = crate::adapters::build(rc, &format!("{}/rails/{}", cfg.public_url(), rc.id))?;
    if adapter.batch_support().is_none() {
        return Err(BulkError::NoBulk(rail_id.to_owned()));
    }
    Ok(batches::submit(db, rc, adapter.as_ref(), payment_ids)
        .await?
        .into())
}

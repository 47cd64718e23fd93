//! Batch APIs: many attempts sent to a rail in one upload, their outcomes read back per line.
//!
//! A rail with a batch API says so through [`crate::RailAdapter::batch_support`] and
//! implements `submit_batch` and `batch_results`; every other rail keeps the defaults, which
//! mean "no batch API". These are provided methods of the one adapter trait rather than a
//! second `BatchRail` trait because the gateway holds its adapters as `Arc<dyn RailAdapter>`:
//! a second trait would need an accessor on the first anyway (`fn as_batch(&self) ->
//! Option<&dyn BatchRail>`), and an adapter could then claim batches in `capabilities()` and
//! forget the accessor. One trait, with "no batch API" as its default, cannot disagree with
//! itself.
//!
//! The contract, whatever the wire format:
//! - each line is one [`Attempt`] whose `attempt_id` (our id, chosen and stored before
//!   sending) is the line's id at the rail, so the single-payment `inquire` works for any line
//!   and a line resent on its own cannot be paid twice;
//! - the batch id is ours too (stored before sending), so a lost upload answer can be asked
//!   about, never resent under a new id;
//! - `submit_batch` errors mean what they mean for `submit`: `Retryable` and `Permanent`
//!   moved nothing (the lines may go one by one under the same ids), `Unknown` may have moved
//!   anything (every line must be asked about);
//! - `batch_results` answers in pages; a line may be listed more than once (a duplicate is
//!   harmless, a contradiction is a conflict the gateway records), and a line not listed yet is
//!   still open.

use crate::{Attempt, Failure, Money, RailStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a rail's batch API takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSupport {
    /// Names the path in payment histories ("Payment Hub bulk", "MMAPI batch").
    pub name: &'static str,
    /// Most lines the rail takes in one upload.
    pub max_lines: usize,
    /// Whether payrolls go through the batch API when the rail's `batch` setting does not
    /// say (PH-EE's bulk API was always used for payrolls; the others' batches are opt-in).
    pub on_by_default: bool,
}

/// How a chunk of attempts is cut into uploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchPlan {
    pub batches: Vec<PlannedBatch>,
    /// Attempts that cannot travel in a batch of this rail; they go one by one.
    pub refused: Vec<(Uuid, String)>,
}

/// One upload: our batch id and the attempt ids it carries, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBatch {
    pub batch_id: Uuid,
    pub lines: Vec<Uuid>,
}

impl BatchPlan {
    /// Every attempt in order, `max_lines` per batch (what most rails need).
    pub fn chunked(attempts: &[Attempt], max_lines: usize) -> BatchPlan {
        BatchPlan {
            batches: attempts
                .chunks(max_lines.max(1))
                .map(|c| PlannedBatch {
                    batch_id: Uuid::now_v7(),
                    lines: c.iter().map(|a| a.attempt_id).collect(),
                })
                .collect(),
            refused: Vec::new(),
        }
    }
}

/// What the rail said to an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchAck {
    /// Taken; `batch_ref` is what `batch_results` is asked with.
    Accepted { batch_ref: String },
    /// Refused as a whole; nothing of it will run.
    Refused(Failure),
}

/// One page of a batch's per-line outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPage {
    pub lines: Vec<BatchLineResult>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<String>,
    /// The batch as a whole.
    pub state: BatchState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BatchState {
    /// Being processed (or waiting for an approval): lines not listed are still open.
    Open,
    /// Processed; lines not listed are for the single-line inquiry to settle.
    Done,
    /// Refused as a whole after it was accepted: nothing of it ran.
    Refused(Failure),
}

/// The rail's word on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLineResult {
    pub attempt_id: Uuid,
    pub status: RailStatus,
    /// The amount the rail recorded, where it says: another amount than ours is a conflict.
    pub amount: Option<Money>,
}

/// What the gateway stores in a batch line's `rail_state`, so that an adapter's single-line
/// `inquire` knows the attempt travelled in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMembership {
    pub batch_id: Uuid,
    /// The rail's reference for the batch, once it answered the upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_ref: Option<String>,
}

const MEMBERSHIP_KEY: &str = "batch";

impl BatchMembership {
    pub fn to_rail_state(&self) -> serde_json::Value {
        serde_json::json!({ MEMBERSHIP_KEY: self })
    }

    /// The batch the attempt travelled in, if it did.
    pub fn of(attempt: &Attempt) -> Option<BatchMembership> {
        attempt
            .rail_state
            .as_ref()
            .and_then(|s| s.get(MEMBERSHIP_KEY))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

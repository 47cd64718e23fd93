//! Rails that answer with files rather than callbacks (banks: pain.002 status reports and
//! camt.053/054 statements in an inbound folder). An adapter of such a rail declares it through
//! [`crate::RailAdapter::inbound_files`]; the gateway then polls the folder on the adapter's
//! interval and applies what it finds, whatever the rail.

use crate::{RailError, RailStatus};
use async_trait::async_trait;
use std::time::Duration;
use uuid::Uuid;

/// A file of the inbound folder, as read.
#[derive(Debug, Clone)]
pub struct InboundFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// One attempt's latest status in the rail's status reports.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStatus {
    /// The rail's status code as it wrote it (`ACSC`, `RJCT`).
    pub code: String,
    /// The rail's reason code, if it gave one (`AM04`).
    pub reason: Option<String>,
    /// Where the status was given: the transaction, its block, the whole file.
    pub level: String,
    /// What it means for the payment: `Failed` fails it; any other answer is the rail's
    /// interim word, recorded on the attempt while the payment waits for its booking.
    pub outcome: RailStatus,
}

/// What one read of the inbound folder found.
pub trait InboundRead: Send + Sync {
    /// The latest status the reports give an attempt, from what the gateway stores on it.
    fn status_of(
        &self,
        attempt_id: Uuid,
        rail_state: Option<&serde_json::Value>,
    ) -> Option<FileStatus>;
    /// The statements (camt.053/054) found, by name.
    fn statements(&self) -> &[InboundFile];
}

/// An inbound folder the gateway polls.
#[async_trait]
pub trait InboundFiles: Send + Sync {
    /// How often the folder is read.
    fn poll_every(&self) -> Duration;
    /// Reads the folder once; a sweep applies everything from one read.
    async fn read(&self) -> Result<Box<dyn InboundRead>, RailError>;
    /// The attempt an end-to-end id on a statement names, when it is one of ours.
    fn attempt_of(&self, end_to_end_id: &str) -> Option<Uuid>;
}

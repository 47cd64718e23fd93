//! New payments, written in group commits.
//!
//! Every create request hands its routed payment to one writer task. The writer takes
//! whatever payments are waiting, writes them all in one transaction, commits, and only then
//! answers each request: nothing is acknowledged before it is durable, and while one commit
//! is on its way to the disk the next requests gather behind it. On SQLite this writer is
//! also the one place creates take the write lock, so concurrent creates queue here instead
//! of sleeping in the database's busy handler.

use super::payments::view;
use crate::domain::Payment;
use crate::engine;
use crate::store::{idempotency, Db, StoreError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The most payments one commit takes.
const MAX_BATCH: usize = 256;

/// What became of one create.
#[derive(Debug)]
pub enum Written {
    Created(Box<Payment>),
    /// The client already has a payment with that reference (this id).
    Duplicate(Uuid),
}

struct Pending {
    payment: Payment,
    key: Option<String>,
    done: oneshot::Sender<Result<Written, String>>,
}

/// The handle the API gives new payments to.
#[derive(Clone, Debug)]
pub struct Intake {
    tx: mpsc::Sender<Pending>,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the payment writer has stopped")]
    Stopped,
    #[error("writing the payment failed: {0}")]
    Write(String),
}

impl Intake {
    /// Starts the writer; it runs until the last handle is dropped.
    pub fn start(db: Db) -> Intake {
        let (tx, rx) = mpsc::channel(MAX_BATCH.saturating_mul(4));
        tokio::spawn(write_loop(db, rx));
        Intake { tx }
    }

    /// Writes the payment (and completes the idempotency key with its view, in the same
    /// commit) and returns once it is durable.
    pub async fn write(
        &self,
        payment: Payment,
        key: Option<String>,
    ) -> Result<Written, IntakeError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { payment, key, done })
            .await
            .map_err(|_| IntakeError::Stopped)?;
        match wait.await {
            Ok(Ok(w)) => Ok(w),
            Ok(Err(e)) => Err(IntakeError::Write(e)),
            Err(_) => Err(IntakeError::Stopped),
        }
    }
}

async fn write_loop(db: Db, mut rx: mpsc::Receiver<Pending>) {
    while let Some(batch) = crate::store::group::next_batch(&mut rx, MAX_BATCH).await {
        metrics::histogram!("railgate_create_batch_size")
            .record(f64::from(u32::try_from(batch.len()).unwrap_or(u32::MAX)));
        match commit(&db, &batch).await {
            Ok(written) => {
                for (p, w) in batch.into_iter().zip(written) {
                    let _ = p.done.send(Ok(w));
                }
            }
            Err(e) if batch.len() == 1 => {
                for p in batch {
                    let _ = p.done.send(Err(e.to_string()));
                }
            }
            Err(e) => {
                // One payment must not hold back the others: each alone, in its own commit.
                tracing::warn!(error = %e, payments = batch.len(), "A batch of new payments failed; writing them one by one");
                for p in batch {
                    let r = commit(&db, std::slice::from_ref(&p)).await;
                    let r = r
                        .map_err(|e| e.to_string())
                        .and_then(|mut w| w.pop().ok_or_else(|| "nothing written".to_owned()));
                    let _ = p.done.send(r);
                }
            }
        }
    }
}

async fn commit(db: &Db, batch: &[Pending]) -> Result<Vec<Written>, StoreError> {
    let mut tx = db.begin().await?;
    let mut out = Vec::with_capacity(batch.len());
    let payments: Vec<&crate::domain::Payment> = batch.iter().map(|p| &p.payment).collect();
    let stored = engine::create_routed_many(&mut tx, &payments).await?;
    let mut keys = Vec::new();
    for (p, stored) in batch.iter().zip(stored) {
        let payment = &p.payment;
        if stored {
            if let Some(k) = &p.key {
                keys.push((payment.client_id, k.as_str(), view(payment).to_string()));
            }
            out.push(Written::Created(Box::new(payment.clone())));
        } else {
            let existing = crate::store::payments::find_by_reference_in(
                &mut tx,
                payment.client_id,
                payment.direction,
                &payment.reference,
            )
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("a new payment collided with no existing reference".into())
            })?;
            out.push(Written::Duplicate(existing));
        }
    }
    idempotency::complete_many(&mut tx, &keys, 201).await?;
    tx.commit().await?;
    Ok(out)
}

//! pain.002 statuses, applied to the attempts that still wait for an outcome.
//!
//! A rejection fails the payment. Any other status is the bank's interim word: it is recorded
//! on the attempt with its reason code (once per change), and the payment is held as accepted
//! by the bank (`pending`) until its booking appears on a statement.

use super::{Sweep, WatchError, MAX_OPEN};
use crate::engine::{self, Change};
use crate::store::{attempts, Db, StoreError};
use railgate_rail::inbound::InboundRead;
use railgate_rail::RailStatus;

pub async fn apply(
    db: &Db,
    rail: &str,
    inbound: &dyn InboundRead,
    out: &mut Sweep,
) -> Result<(), WatchError> {
    let open = {
        let mut conn = db.pool().acquire().await.map_err(StoreError::from)?;
        attempts::open_on_rail(&mut conn, rail, MAX_OPEN).await?
    };
    let kind = db.kind();
    for a in open {
        let Some(status) = inbound.status_of(a.id, a.rail_state.as_ref()) else {
            continue;
        };
        let (code, reason) = (status.code, status.reason);
        let cause = format!(
            "rail {rail}: pain.002 {code}{} ({} level) for attempt {}",
            reason
                .as_deref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default(),
            status.level,
            a.id
        );
        match status.outcome {
            RailStatus::Failed(f) => {
                let mut tx = db.begin().await?;
                attempts::set_rail_status(&mut tx, a.id, &code, reason.as_deref()).await?;
                let applied = engine::apply(
                    &mut tx,
                    kind,
                    a.payment_id,
                    Change::Fail {
                        attempt: Some(a.id),
                        failure: f.clone(),
                    },
                    &cause,
                )
                .await?;
                tx.commit().await.map_err(StoreError::from)?;
                out.count(applied, |s| &mut s.failed);
            }
            // Accepted, settled by the bank's own account, pending: none of it is a booking.
            RailStatus::Pending | RailStatus::Completed(_) | RailStatus::NotFound => {
                let unchanged = a.rail_status.as_deref() == Some(code.as_str())
                    && a.rail_status_reason == reason;
                if unchanged {
                    continue;
                }
                let mut tx = db.begin().await?;
                if attempts::set_rail_status(&mut tx, a.id, &code, reason.as_deref()).await? {
                    engine::apply(
                        &mut tx,
                        kind,
                        a.payment_id,
                        Change::Accept {
                            attempt: Some(a.id),
                            rail_reference: None,
                        },
                        &cause,
                    )
                    .await?;
                    out.accepted = out.accepted.saturating_add(1);
                }
                tx.commit().await.map_err(StoreError::from)?;
            }
        }
    }
    Ok(())
}

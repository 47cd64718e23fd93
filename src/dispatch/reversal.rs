//! Running a reversal job: send the stored reversal, or ask the rail about one whose answer we
//! do not have. As with payments, nothing is ever sent under a new id: a reversal whose send
//! may have reached the rail is asked about first, and sent again (same id) only when the rail
//! has no record of it.

use super::drive::DriveError;
use super::{backoff, Dispatcher};
use crate::domain::{Failure, FailureCode};
use crate::rails::Rail;
use crate::reversals as apply;
use crate::store::jobs::{self, Job};
use crate::store::reversals::{self, ReversalRow, Status};
use crate::store::{attempts, now_micros, payments, StoreError};
use railgate_rail::{RailError, RailStatus, Reversal, Submitted};
use std::time::Duration;
use uuid::Uuid;

type Result<T> = std::result::Result<T, DriveError>;

/// Sends refused with nothing moved before the reversal fails (the rail stays unavailable).
const MAX_SEND_TRIES: i64 = 8;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub async fn run(d: &Dispatcher, job: &Job) -> Result<()> {
    let id = job
        .payload
        .as_deref()
        .and_then(|p| Uuid::parse_str(p).ok())
        .ok_or_else(|| DriveError::Setup(format!("reversal job {} names no reversal", job.id)))?;
    let row = {
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        reversals::get(&mut conn, id).await?
    };
    let Some(row) = row else {
        return finish(d, job).await;
    };
    if row.status.is_final() || row.exception.is_some() {
        return finish(d, job).await;
    }
    let Some(rail) = d.rails.get(&row.rail).cloned() else {
        return Err(DriveError::Setup(format!(
            "rail '{}' is not configured",
            row.rail
        )));
    };
    let reversal = rail_reversal(d, &row).await?;
    match row.status {
        Status::Requested | Status::Retry => send(d, job, &rail, &row, &reversal).await,
        Status::Sending | Status::Accepted | Status::Unknown => {
            inquire(d, job, &rail, &row, &reversal).await
        }
        Status::Completed | Status::Failed => finish(d, job).await,
    }
}

/// The reversal as the adapter sees it: the payment's completed attempt, carrying the rail's
/// reference for the money that moved.
async fn rail_reversal(d: &Dispatcher, row: &ReversalRow) -> Result<Reversal> {
    let p = payments::row(&d.db, row.payment_id)
        .await?
        .ok_or_else(|| DriveError::Setup(format!("reversal {} has no payment", row.id)))?;
    let a = {
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        attempts::latest(&mut conn, p.id).await?
    }
    .ok_or_else(|| DriveError::Setup(format!("payment {} was never sent", p.id)))?;
    let mut original = super::rail_attempt(&p, &a);
    if let Some(r) = p.rail_reference.clone() {
        original.rail_reference = Some(r);
    }
    Ok(Reversal {
        reversal_id: row.id,
        original,
        rail_reference: row.rail_reference.clone(),
    })
}

async fn send(
    d: &Dispatcher,
    job: &Job,
    rail: &Rail,
    row: &ReversalRow,
    reversal: &Reversal,
) -> Result<()> {
    {
        // Marked before sending: a process that dies mid-send leaves it to be asked about.
        let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
        reversals::set_status(&mut conn, row.id, Status::Sending, None, None).await?;
    }
    let answer = {
        let _permit = rail.permit().await;
        tracing::info!(reversal = %row.id, payment = %row.payment_id, rail = %rail.id, "Asking the rail to reverse");
        match tokio::time::timeout(
            rail.request_timeout.saturating_add(Duration::from_secs(1)),
            rail.adapter.reverse(reversal),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RailError::Unknown(
                "no answer within the request timeout".into(),
            )),
        }
    };
    let kind = d.db.kind();
    let cause = format!("rail {}: answer to reversal {}", rail.id, row.id);
    let mut tx = d.db.begin().await?;
    match answer {
        Ok(Submitted::Completed(settled)) => {
            apply::confirmed(&mut tx, kind, row.id, &settled, &cause).await?;
            jobs::finish(&mut tx, job).await?;
        }
        Ok(Submitted::Rejected(f)) => {
            apply::refused(&mut tx, kind, row.id, &f, &cause).await?;
            jobs::finish(&mut tx, job).await?;
        }
        Ok(Submitted::Accepted { rail_reference }) | Ok(Submitted::Step { rail_reference, .. }) => {
            reversals::set_status(
                &mut tx,
                row.id,
                Status::Accepted,
                rail_reference.as_deref(),
                None,
            )
            .await?;
            let at = now_micros()
                .saturating_add(micros(rail.callback_grace))
                .min(row.deadline_at.saturating_add(1_000));
            jobs::retry_at(&mut tx, job, at, None).await?;
        }
        Err(RailError::Retryable(why)) if job.tries >= MAX_SEND_TRIES => {
            let f = Failure::new(
                FailureCode::RailUnavailable,
                format!(
                    "the rail refused {} times with nothing moved: {why}",
                    job.tries
                ),
                None,
            );
            apply::refused(&mut tx, kind, row.id, &f, &cause).await?;
            jobs::finish(&mut tx, job).await?;
        }
        Err(RailError::Retryable(why)) => {
            reversals::set_status(&mut tx, row.id, Status::Retry, None, Some(&why)).await?;
            let at = now_micros().saturating_add(backoff::micros(
                job.tries,
                Duration::from_millis(200),
                Duration::from_secs(300),
            ));
            jobs::retry_at(&mut tx, job, at, Some(&why)).await?;
        }
        Err(RailError::Permanent(why)) => {
            let f = Failure::new(FailureCode::InvalidRequest, why, None);
            apply::refused(&mut tx, kind, row.id, &f, &cause).await?;
            jobs::finish(&mut tx, job).await?;
        }
        Err(RailError::Unknown(why)) => {
            tracing::warn!(reversal = %row.id, rail = %rail.id, reason = %why, "Reversal outcome unknown; will ask the rail");
            reversals::set_status(&mut tx, row.id, Status::Unknown, None, Some(&why)).await?;
            jobs::retry_at(&mut tx, job, next_inquiry(job, row), Some(&why)).await?;
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

fn next_inquiry(job: &Job, row: &ReversalRow) -> i64 {
    now_micros()
        .saturating_add(backoff::micros(
            job.tries,
            Duration::from_millis(500),
            Duration::from_secs(300),
        ))
        .min(row.deadline_at.saturating_add(1_000))
}

async fn inquire(
    d: &Dispatcher,
    job: &Job,
    rail: &Rail,
    row: &ReversalRow,
    reversal: &Reversal,
) -> Result<()> {
    let past_deadline = now_micros() > row.deadline_at;
    let answer = {
        let _permit = rail.permit().await;
        match tokio::time::timeout(
            rail.request_timeout.saturating_add(Duration::from_secs(1)),
            rail.adapter.inquire_reversal(reversal),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(RailError::Unknown("no answer to the inquiry".into())),
        }
    };
    let kind = d.db.kind();
    let cause = format!("rail {}: inquiry about reversal {}", rail.id, row.id);
    let mut tx = d.db.begin().await?;
    match answer {
        Ok(RailStatus::NotFound) if !past_deadline => {
            // Nothing happened under this id: the same reversal (same id) goes again.
            tracing::info!(reversal = %row.id, "Rail has no record of the reversal; resending it");
            tx.rollback().await.map_err(StoreError::from)?;
            return send(d, job, rail, row, reversal).await;
        }
        Ok(RailStatus::Completed(s)) => {
            apply::confirmed(&mut tx, kind, row.id, &s, &cause).await?;
            jobs::finish(&mut tx, job).await?;
        }
        Ok(RailStatus::Failed(f)) => {
            apply::refused(&mut tx, kind, row.id, &f, &cause).await?;
            jobs::finish(&mut tx, job).await?;
        }
        _ if past_deadline => {
            let why = format!(
                "no final answer from rail {} about the reversal by its deadline: an operator must settle it",
                rail.id
            );
            tracing::error!(reversal = %row.id, payment = %row.payment_id, rail = %rail.id, "Reversal outcome unknown past its deadline");
            reversals::set_status(&mut tx, row.id, Status::Unknown, None, None).await?;
            reversals::set_exception(&mut tx, row.id, &why).await?;
            jobs::finish(&mut tx, job).await?;
        }
        Ok(RailStatus::Pending) | Ok(RailStatus::NotFound) => {
            jobs::retry_at(&mut tx, job, next_inquiry(job, row), None).await?;
        }
        Err(e) => {
            reversals::set_status(&mut tx, row.id, Status::Unknown, None, Some(&e.to_string()))
                .await?;
            jobs::retry_at(&mut tx, job, next_inquiry(job, row), Some(&e.to_string())).await?;
        }
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

async fn finish(d: &Dispatcher, job: &Job) -> Result<()> {
    let mut conn = d.db.pool().acquire().await.map_err(StoreError::from)?;
    jobs::finish(&mut conn, job).await?;
    Ok(())
}

#![allow(
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code
)]

use chrono::Utc;
use railgate_rail::{
    Attempt, Currency, Direction, Money, Party, PartyIdType, RailAdapter, RailError, RailStatus,
    Submitted,
};
use std::time::Duration;
use uuid::Uuid;

pub fn attempt(direction: Direction, party: Party, minor: i64, currency: Currency) -> Attempt {
    let id = Uuid::new_v4();
    Attempt {
        attempt_id: id,
        payment_id: Uuid::new_v4(),
        direction,
        amount: Money::from_minor(minor, currency).unwrap(),
        party,
        reference: format!("BEN-{}", &id.simple().to_string()[..8]),
        narrative: Some("Benefit, November".into()),
        rail_reference: None,
        rail_state: None,
        request: None,
        created_at: Utc::now(),
    }
}

pub fn msisdn(digits: u8) -> Party {
    Party::new(PartyIdType::Msisdn, &format!("2557123456{digits:02}"), None).unwrap()
}

/// What the gateway learned about an attempt, step by step.
#[derive(Debug, Default)]
pub struct Trace {
    pub submits: Vec<Result<Submitted, RailError>>,
    pub statuses: Vec<RailStatus>,
}

impl Trace {
    pub fn last(&self) -> Option<&RailStatus> {
        self.statuses.last()
    }
    pub fn saw_failed(&self) -> bool {
        self.statuses
            .iter()
            .any(|s| matches!(s, RailStatus::Failed(_)))
    }
}

/// Drives one attempt as the gateway would: resends the same attempt on a retryable error,
/// stops sending on an unknown outcome, then inquires until `stop` holds or `max_polls`.
pub async fn drive<A: RailAdapter + ?Sized>(
    adapter: &A,
    mut a: Attempt,
    stop: impl Fn(&RailStatus) -> bool,
    max_polls: usize,
) -> Trace {
    let mut t = Trace::default();
    for _ in 0..5 {
        let r = adapter.submit(&a).await;
        let again = matches!(r, Err(RailError::Retryable(_)));
        match &r {
            Ok(Submitted::Accepted { rail_reference }) => a.rail_reference = rail_reference.clone(),
            Ok(Submitted::Completed(s)) => t.statuses.push(RailStatus::Completed(s.clone())),
            Ok(Submitted::Rejected(f)) => t.statuses.push(RailStatus::Failed(f.clone())),
            _ => {}
        }
        t.submits.push(r);
        if !again {
            break;
        }
    }
    if t.last().is_some_and(&stop) {
        return t;
    }
    for _ in 0..max_polls {
        if let Ok(s) = adapter.inquire(&a).await {
            if t.statuses.last() != Some(&s) {
                t.statuses.push(s.clone());
            }
            if stop(&s) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t
}

pub fn is_final(s: &RailStatus) -> bool {
    matches!(s, RailStatus::Completed(_) | RailStatus::Failed(_))
}

pub fn completed(s: &RailStatus) -> bool {
    matches!(s, RailStatus::Completed(_))
}

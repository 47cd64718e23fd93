//! A large payroll's counts per state, reused for a while when counting them is dear.
//!
//! Each count reads every item of the payroll: a second or more for a million items, and
//! a client following a payroll asks every few seconds (the `payroll submit` command every
//! two). Counted afresh each time, those reads took a third of a 2-core machine in a
//! million-line run. So `GET /v1/payrolls/{id}` reuses a count that took at least
//! [`WORTH_REUSING`] for [`REUSE_FACTOR`] times as long as it took (at most [`MAX_AGE`]),
//! as long as the payroll's status is the one it was counted in: counting then costs at most
//! about a tenth of one database connection per payroll, however often it is asked for.
//! A small payroll's count (the tests', and most schemes') is never reused, and a payroll
//! that changed status (completed, paused, released) is counted afresh.

use crate::store::payrolls::{self, StateCount, Status};
use crate::store::{Db, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A count that took at least this long is worth reusing.
const WORTH_REUSING: Duration = Duration::from_millis(100);
/// A count is reused for this many times what it took.
const REUSE_FACTOR: u32 = 10;
/// The oldest count ever shown.
const MAX_AGE: Duration = Duration::from_secs(30);
/// The most payrolls held at once; when full, the outdated go, and if none was, all do.
const MAX_HELD: usize = 256;

/// Counts recently made, by payroll.
#[derive(Debug, Default)]
pub struct ProgressCache {
    held: Mutex<HashMap<Uuid, Held>>,
}

#[derive(Debug)]
struct Held {
    status: Status,
    at: Instant,
    cost: Duration,
    counts: Arc<Vec<StateCount>>,
}

impl ProgressCache {
    /// The payroll's counts: a recent count still good for `status`, or a new one.
    pub async fn counts(
        &self,
        db: &Db,
        id: Uuid,
        status: Status,
    ) -> Result<Arc<Vec<StateCount>>, StoreError> {
        let started = Instant::now();
        if let Some(counts) = self.reusable(id, status, started) {
            return Ok(counts);
        }
        let counts = Arc::new(payrolls::counts(db, id).await?);
        let cost = started.elapsed();
        if cost >= WORTH_REUSING {
            self.keep(id, status, started, cost, counts.clone());
        }
        Ok(counts)
    }

    fn reusable(&self, id: Uuid, status: Status, now: Instant) -> Option<Arc<Vec<StateCount>>> {
        let held = self.lock();
        let h = held.get(&id)?;
        (h.status == status && still_good(h.cost, now.saturating_duration_since(h.at)))
            .then(|| h.counts.clone())
    }

    fn keep(
        &self,
        id: Uuid,
        status: Status,
        at: Instant,
        cost: Duration,
        counts: Arc<Vec<StateCount>>,
    ) {
        let mut held = self.lock();
        if held.len() >= MAX_HELD && !held.contains_key(&id) {
            let now = Instant::now();
            held.retain(|_, h| still_good(h.cost, now.saturating_duration_since(h.at)));
            if held.len() >= MAX_HELD {
                held.clear();
            }
        }
        held.insert(
            id,
            Held {
                status,
                at,
                cost,
                counts,
            },
        );
    }

    /// The map is only touched in short sections that leave it whole: a poisoned lock still
    /// guards a consistent map.
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a count made `age` ago, which took `cost` to make, may still be shown.
fn still_good(cost: Duration, age: Duration) -> bool {
    cost >= WORTH_REUSING && age < cost.saturating_mul(REUSE_FACTOR).min(MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_cheap_count_is_never_reused() {
        assert!(!still_good(ms(99), ms(0)));
        assert!(!still_good(ms(5), ms(1)));
    }

    #[test]
    fn a_dear_count_is_reused_for_ten_times_its_cost() {
        assert!(still_good(ms(100), ms(0)));
        assert!(still_good(ms(2_000), ms(19_999)));
        assert!(!still_good(ms(2_000), ms(20_000)));
    }

    #[test]
    fn no_count_is_reused_past_the_maximum_age() {
        assert!(still_good(ms(10_000), ms(29_999)));
        assert!(!still_good(ms(10_000), ms(30_000)));
    }

    fn held_cache(id: Uuid, status: Status, at: Instant, cost: Duration) -> ProgressCache {
        let cache = ProgressCache::default();
        cache.keep(id, status, at, cost, Arc::new(Vec::new()));
        cache
    }

    #[test]
    fn a_count_is_reused_only_in_the_status_it_was_made_in() {
        let id = Uuid::now_v7();
        let at = Instant::now();
        let cache = held_cache(id, Status::Released, at, ms(1_000));
        assert!(cache.reusable(id, Status::Released, at + ms(500)).is_some());
        assert!(cache
            .reusable(id, Status::Completed, at + ms(500))
            .is_none());
        assert!(cache
            .reusable(id, Status::Released, at + ms(10_000))
            .is_none());
        assert!(cache
            .reusable(Uuid::now_v7(), Status::Released, at)
            .is_none());
    }

    #[test]
    fn a_full_cache_makes_room() {
        let at = Instant::now();
        let cache = ProgressCache::default();
        for _ in 0..MAX_HELD {
            cache.keep(
                Uuid::now_v7(),
                Status::Released,
                at,
                ms(1_000),
                Arc::new(Vec::new()),
            );
        }
        let id = Uuid::now_v7();
        cache.keep(id, Status::Released, at, ms(1_000), Arc::new(Vec::new()));
        assert!(cache.lock().len() <= MAX_HELD);
        assert!(cache.reusable(id, Status::Released, at).is_some());
    }
}

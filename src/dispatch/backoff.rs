//! Retry schedules from `backon`'s policies, turned into a time to store as `run_at`
//! so that a restart keeps the schedule.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// The delay before try number `tries + 1`, exponential with jitter between `min` and `max`.
pub fn delay(tries: i64, min: Duration, max: Duration) -> Duration {
    let n = usize::try_from(tries.max(1)).unwrap_or(usize::MAX).min(64);
    ExponentialBuilder::default()
        .with_min_delay(min)
        .with_max_delay(max)
        .with_jitter()
        .with_max_times(n)
        .build()
        .nth(n.saturating_sub(1))
        .unwrap_or(max)
}

pub fn micros(tries: i64, min: Duration, max: Duration) -> i64 {
    i64::try_from(delay(tries, min, max).as_micros()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_bounded() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        assert!(delay(1, min, max) >= min);
        assert!(delay(1, min, max) <= min * 2);
        assert!(delay(30, min, max) <= max * 2);
        assert!(delay(5, min, max) >= delay(1, min, max));
    }
}

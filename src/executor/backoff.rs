//! Delays between retries: exponential, capped, with jitter, and never shorter
//! than what the provider asked for with `Retry-After`.

use std::time::Duration;

/// The delay before attempt `attempt + 1`, after `attempt` (1-based) failed.
/// It doubles from `base` up to `max`; the jitter picks a point in the upper
/// half, so retries of many actions that failed together spread out.
pub(super) fn retry_delay(
    attempt: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    let ceiling = base.saturating_mul(doubling).min(max);
    let half = ceiling / 2;
    let jitter = half.mul_f64(random_fraction());
    (half + jitter).max(retry_after.unwrap_or_default())
}

/// A uniformly random number in [0, 1).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_within_jitter_and_stop_at_the_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for _ in 0..100 {
            let first = retry_delay(1, base, max, None);
            assert!(
                first >= Duration::from_millis(500) && first <= base,
                "{first:?}"
            );
            let fourth = retry_delay(4, base, max, None);
            assert!(
                fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8),
                "{fourth:?}"
            );
            let late = retry_delay(40, base, max, None);
            assert!(late >= Duration::from_secs(30) && late <= max, "{late:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let delay = retry_delay(
            1,
            Duration::from_secs(1),
            Duration::from_secs(60),
            Some(Duration::from_secs(20)),
        );
        assert_eq!(delay, Duration::from_secs(20));
    }
}

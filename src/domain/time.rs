//! Timestamps: UTC, with microsecond precision, stored as integers.

use chrono::{DateTime, SubsecRound, Utc};

/// The current time, truncated to what the database keeps (microseconds), so a
/// value read back equals the value written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Microseconds since the Unix epoch: the stored form.
pub fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The inverse of [`to_micros`]. Out-of-range values (which the gateway never
/// writes) clamp to the epoch rather than panic.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_exactly() {
        let at = now();
        assert_eq!(from_micros(to_micros(at)), at);
    }
}

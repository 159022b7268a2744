//! Time: timestamps (UTC, with microsecond precision, stored as integers) and
//! durations as people write them (`250ms`, `90s`, `30m`, `1h`, `7d`).

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

/// The current time, truncated to what the database keeps (microseconds), so a
/// value read back equals the value written.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Microseconds since the Unix epoch: the stored form.
pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The inverse of [`to_micros`]. Out-of-range values (which the gateway never
/// writes) clamp to the epoch rather than panic.
pub(crate) fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// The units a duration is written in, smallest first, in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Splits `text` into its leading digits and the unit after them
/// (`"512MiB"` → `("512", "MiB")`).
pub(crate) fn split_number(text: &str) -> (&str, &str) {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(split)
}

/// Parses a duration such as `250ms`, `90s`, `30m`, `1h` or `7d`; a bare
/// number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = split_number(text);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 10s"))?;
    let unit = if unit.is_empty() { "s" } else { unit };
    let millis = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, millis)| *millis)
        .ok_or_else(|| format!("'{text}': the unit is one of ms, s, m, h, d"))?;
    Ok(Duration::from_millis(number.saturating_mul(millis)))
}

/// Writes a duration the way [`parse_duration`] reads it, in the smallest
/// unit that gives a whole number below 100 (`60s`, `5m`, `250ms`), else in
/// the largest unit that gives a whole number.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    let whole = |unit: u64| millis.is_multiple_of(u128::from(unit));
    let (name, unit) = UNITS
        .iter()
        .find(|(_, unit)| whole(*unit) && millis / u128::from(*unit) < 100)
        .or_else(|| UNITS.iter().rev().find(|(_, unit)| whole(*unit)))
        .copied()
        .unwrap_or(UNITS[0]);
    format!("{}{name}", millis / u128::from(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn durations_are_written_as_they_are_read() {
        for (duration, text) in [
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_secs(60), "60s"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(7 * 86_400), "7d"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0ms"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text).unwrap(), duration);
        }
    }

    #[test]
    fn stored_form_round_trips_exactly() {
        let at = now();
        assert_eq!(from_micros(to_micros(at)), at);
    }
}

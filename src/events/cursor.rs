//! Event cursors: the opaque text clients pass back as `after`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::AppError;

/// The cursor text of event `seq`.
pub fn encode(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("e1:{seq}"))
}

/// The `seq` of a cursor made by [`encode`]; anything else is `BAD_USER_INPUT`
/// on `field`.
pub(crate) fn decode(field: &str, text: &str) -> Result<i64, AppError> {
    let invalid = || AppError::bad_input(field, format!("{field} is not an event cursor"));
    if text.len() > 64 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let plain = String::from_utf8(bytes).map_err(|_| invalid())?;
    let seq: i64 = plain
        .strip_prefix("e1:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(invalid)?;
    if seq < 1 {
        return Err(invalid());
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode("after", &encode(42)).unwrap(), 42);
        for bad in [
            "",
            "42",
            "ZTE6",
            &URL_SAFE_NO_PAD.encode("e1:-3"),
            &URL_SAFE_NO_PAD.encode("a1:c:1:x"),
        ] {
            assert!(decode("after", bad).is_err(), "{bad}");
        }
    }
}

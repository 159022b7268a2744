//! Checks shared by every free-text input.

use crate::error::AppError;

/// Checks that `value` is at most `max_chars` characters and holds no control
/// characters (line breaks and tabs only where `multiline`). A NUL byte in
/// particular is refused here: PostgreSQL cannot store one in text, and it
/// would otherwise surface as a database error.
pub(crate) fn check_text(
    field: &str,
    value: &str,
    max_chars: usize,
    multiline: bool,
) -> Result<(), AppError> {
    if value.chars().nth(max_chars).is_some() {
        return Err(AppError::bad_input(
            field,
            format!("{} is at most {max_chars} characters", leaf(field)),
        ));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(AppError::bad_input(
            field,
            format!("{} must not contain control characters", leaf(field)),
        ));
    }
    Ok(())
}

/// The last segment of a field path: `input.parameters[0].value` → `value`.
fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        assert!(check_text("f", &"é".repeat(10), 10, false).is_ok());
        assert!(check_text("f", &"é".repeat(11), 10, false).is_err());
    }

    #[test]
    fn control_characters_are_refused_except_line_breaks_where_allowed() {
        assert!(check_text("f", "a\0b", 10, true).is_err());
        assert!(check_text("f", "a\nb", 10, false).is_err());
        assert!(check_text("f", "a\nb\tc", 10, true).is_ok());
    }
}

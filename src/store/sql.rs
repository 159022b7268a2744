//! Joining statements into one for PostgreSQL: data-modifying CTEs make a
//! write of several rows one round trip, atomic like a transaction.

/// Shifts the `$n` placeholders of `sql` by `offset`, to join statements.
pub(super) fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut number = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                number.push(*d);
                chars.next();
            }
            let n: usize = number.parse().unwrap_or(0);
            out.push_str(&format!("${}", n + offset));
        } else {
            out.push(c);
        }
    }
    out
}

/// `INSERT … VALUES (…), (…)` as `INSERT … SELECT … FROM <cte>, (VALUES …)`,
/// so that the rows go in only when the CTE `cte` (a data-modifying statement
/// before it) produced a row.
pub(super) fn only_if_any(insert: &str, cte: &str) -> String {
    match insert.split_once(" VALUES ") {
        Some((head, rows)) => format!("{head} SELECT v.* FROM {cte}, (VALUES {rows}) AS v"),
        None => insert.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_shift_and_values_wait_for_the_cte() {
        assert_eq!(
            renumber("a = $1 AND b IN ($2, $10)", 3),
            "a = $4 AND b IN ($5, $13)"
        );
        assert_eq!(
            only_if_any("INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)", "moved"),
            "INSERT INTO t (a, b) SELECT v.* FROM moved, (VALUES ($1, $2), ($3, $4)) AS v"
        );
    }
}

//! Joining statements into one for PostgreSQL: data-modifying CTEs make a
//! write of several rows one round trip, atomic like a transaction.

use sea_orm::{Statement, Value};

/// The SQL of each of `statements`, its placeholders shifted past those of
/// the statements before it, and all their values in order: the parts of one
/// statement to be written around them.
pub(super) fn join<const N: usize>(statements: [Statement; N]) -> ([String; N], Vec<Value>) {
    let mut values = Vec::new();
    let sql = statements.map(|statement| {
        let sql = renumber(&statement.sql, values.len());
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        sql
    });
    (sql, values)
}

/// Shifts the `$n` placeholders of `sql` by `offset`, to join statements.
fn renumber(sql: &str, offset: usize) -> String {
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

/// `INSERT INTO t (a, b) VALUES (…), (…)` as `INSERT … SELECT v.* FROM
/// (VALUES …) AS v (a, b) WHERE v.<key> IN (SELECT id FROM <cte>)`, so that
/// a row goes in only when the CTE `cte` (a data-modifying statement before
/// it) returned its `key`.
pub(super) fn only_for_inserted(insert: &str, cte: &str, key: &str) -> String {
    let Some((head, rows)) = insert.split_once(" VALUES ") else {
        return insert.to_owned();
    };
    let columns = match (head.find('('), head.rfind(')')) {
        (Some(open), Some(close)) if open < close => &head[open..=close],
        _ => return insert.to_owned(),
    };
    format!(
        "{head} SELECT v.* FROM (VALUES {rows}) AS v {columns} \
         WHERE v.\"{key}\" IN (SELECT id FROM {cte})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_statements_number_their_placeholders_in_turn() {
        let statement = |sql: &str, values: Vec<Value>| {
            Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, values)
        };
        let ([first, second], values) = join([
            statement("a = $1 AND b = $2", vec![1.into(), 2.into()]),
            statement("c = $1", vec![3.into()]),
        ]);
        assert_eq!(first, "a = $1 AND b = $2");
        assert_eq!(second, "c = $3");
        assert_eq!(values, vec![Value::from(1), Value::from(2), Value::from(3)]);
    }

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
        assert_eq!(
            only_for_inserted(
                r#"INSERT INTO "t" ("a", "b") VALUES ($1, $2), ($3, $4)"#,
                "moved",
                "a"
            ),
            r#"INSERT INTO "t" ("a", "b") SELECT v.* FROM (VALUES ($1, $2), ($3, $4)) AS v ("a", "b") WHERE v."a" IN (SELECT id FROM moved)"#
        );
    }
}

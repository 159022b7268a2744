//! Turns an [`ActionFilter`] into a SQL condition on `actions`.
//!
//! Each field maps to an indexed column (see the migration): ids to the primary
//! key, `parameter` to a sub-select on `ix_action_parameters_lookup`, the others
//! to the `(tenant_id, column, created_at, id)` indexes, time bounds to the
//! `(tenant_id, created_at | last_action_at, id)` ones. A prefix is a range on
//! SQLite (whose text compares by code point, so the range is exact and the
//! index serves it) and `LIKE 'prefix%'` on PostgreSQL (exact under any
//! collation; the planner makes it an index range when the collation is C).

use sea_orm::sea_query::{Condition, Expr, ExprTrait, LikeExpr, Query};
use sea_orm::{ColumnTrait, DbBackend};

use super::entities::{action, parameter};
use crate::domain::filter::{ActionFilter, Comparison, Prefix, TextField, Timestamp};
use crate::domain::time::to_micros;

/// The condition for "actions of `tenant` that pass `filter`", in the SQL of
/// `backend`.
pub(super) fn tenant_condition(
    backend: DbBackend,
    tenant: &str,
    filter: &ActionFilter,
) -> Condition {
    let translation = Translation { backend, tenant };
    Condition::all()
        .add(action::Column::TenantId.eq(tenant))
        .add(translation.condition(filter))
}

/// What the translation of every node of a filter needs.
#[derive(Clone, Copy)]
struct Translation<'a> {
    backend: DbBackend,
    tenant: &'a str,
}

impl Translation<'_> {
    fn condition(self, f: &ActionFilter) -> Condition {
        let tenant = self.tenant;
        use action::Column as A;
        let mut c = Condition::all();
        if let Some(ids) = &f.ids {
            c = c.add(in_list(A::Id, ids.iter().copied()));
        }
        if let Some(statuses) = &f.statuses {
            c = c.add(in_list(A::Status, statuses.iter().map(|s| s.as_str())));
        }
        if let Some(names) = &f.names {
            c = c.add(in_list(A::Name, names.iter().copied()));
        }
        if let Some(providers) = &f.providers {
            c = c.add(in_list(A::Provider, providers.iter().cloned()));
        }
        if let Some(app_id) = &f.app_id {
            c = c.add(A::AppId.eq(app_id.as_str()));
        }
        if let Some(user) = &f.user {
            c = c.add(A::UserName.eq(user.as_str()));
        }
        if let Some(context) = &f.client_context {
            // IS NOT NULL keeps `not` exact: without it NOT (NULL = 'x') is NULL,
            // and actions without a clientContext would drop out of `not`.
            c = c.add(
                Condition::all()
                    .add(A::ClientContext.is_not_null())
                    .add(A::ClientContext.eq(context.as_str())),
            );
        }
        if let Some(p) = &f.parameter {
            use parameter::Column as P;
            c = c.add(
                A::Id.in_subquery(
                    Query::select()
                        .column(P::ActionId)
                        .from(parameter::Entity)
                        .and_where(P::TenantId.eq(tenant))
                        .and_where(P::Name.eq(p.name.as_str()))
                        .and_where(P::Value.eq(p.value.as_str()))
                        .to_owned(),
                ),
            );
        }
        for bound in &f.times {
            let column = match bound.timestamp {
                Timestamp::Created => A::CreatedAt,
                Timestamp::LastAction => A::LastActionAt,
            };
            let at = to_micros(bound.at);
            c = c.add(match bound.comparison {
                Comparison::Before => column.lt(at),
                Comparison::AtOrBefore => column.lte(at),
                Comparison::After => column.gt(at),
                Comparison::AtOrAfter => column.gte(at),
            });
        }
        for prefix in &f.prefixes {
            c = c.add(self.starts_with(prefix));
        }
        for sub in &f.and {
            c = c.add(self.condition(sub));
        }
        if let Some(or) = &f.or {
            c = c.add(match or.as_slice() {
                [] => never(),
                subs => subs
                    .iter()
                    .fold(Condition::any(), |any, sub| any.add(self.condition(sub))),
            });
        }
        if let Some(sub) = &f.not {
            c = c.add(self.condition(sub).not());
        }
        c
    }

    /// `column` starts with the prefix, and is not NULL (so `not` stays exact).
    fn starts_with(self, p: &Prefix) -> Condition {
        use action::Column as A;
        let column = match p.field {
            TextField::AppId => A::AppId,
            TextField::User => A::UserName,
            TextField::ClientContext => A::ClientContext,
            TextField::Provider => A::Provider,
        };
        let c = Condition::all().add(column.is_not_null());
        if p.prefix.is_empty() {
            return c;
        }
        match self.backend {
            DbBackend::Sqlite => {
                let c = c.add(column.gte(p.prefix.as_str()));
                match successor(&p.prefix) {
                    Some(end) => c.add(column.lt(end)),
                    None => c,
                }
            }
            _ => {
                let mut pattern = String::with_capacity(p.prefix.len() + 1);
                for ch in p.prefix.chars() {
                    if matches!(ch, '%' | '_' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(ch);
                }
                pattern.push('%');
                c.add(column.like(LikeExpr::new(pattern).escape('\\')))
            }
        }
    }
}

/// The least string greater than every string that starts with `prefix`, in
/// code-point order: the prefix with its last character (that has a next
/// one) moved on by one. `None` when every character is the last one.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `column IN (values)`, or a condition that holds for no row when the list is
/// empty (an empty list matches nothing).
pub(super) fn in_list<C, V, I>(column: C, values: I) -> Condition
where
    C: ColumnTrait,
    V: Into<sea_orm::Value>,
    I: IntoIterator<Item = V>,
{
    let values: Vec<sea_orm::Value> = values.into_iter().map(Into::into).collect();
    if values.is_empty() {
        never()
    } else {
        Condition::all().add(column.is_in(values))
    }
}

fn never() -> Condition {
    Condition::all().add(Expr::val(1).eq(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::action::Parameter;
    use crate::domain::status::ActionStatus;
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    fn sql(filter: &ActionFilter) -> String {
        Query::select()
            .column(action::Column::Id)
            .from(action::Entity)
            .cond_where(tenant_condition(DbBackend::Postgres, "t1", filter))
            .to_string(PostgresQueryBuilder)
    }

    fn sqlite(filter: &ActionFilter) -> String {
        Query::select()
            .column(action::Column::Id)
            .from(action::Entity)
            .cond_where(tenant_condition(DbBackend::Sqlite, "t1", filter))
            .to_string(SqliteQueryBuilder)
    }

    fn user_prefix(prefix: &str) -> ActionFilter {
        ActionFilter {
            prefixes: vec![Prefix {
                field: TextField::User,
                prefix: prefix.into(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_prefix_is_a_range_on_sqlite_and_like_on_postgres() {
        assert!(
            sqlite(&user_prefix("ab"))
                .contains(r#""actions"."user_name" >= 'ab' AND "actions"."user_name" < 'ac'"#),
            "{}",
            sqlite(&user_prefix("ab"))
        );
        let like = sql(&user_prefix("a%_\\b"));
        assert!(
            like.contains(r#""actions"."user_name" LIKE E'a\\%\\_\\\\b%' ESCAPE E'\\'"#),
            "{like}"
        );
    }

    #[test]
    fn the_successor_of_a_prefix_bounds_every_string_that_starts_with_it() {
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(successor("\u{10FFFF}"), None);
    }

    #[test]
    fn every_query_is_scoped_by_tenant() {
        assert!(sql(&ActionFilter::default()).contains(r#""actions"."tenant_id" = 't1'"#));
        let parameter = ActionFilter {
            parameter: Some(Parameter {
                name: "ip".into(),
                value: "10.0.0.1".into(),
            }),
            ..Default::default()
        };
        let text = sql(&parameter);
        assert_eq!(text.matches(r#""tenant_id" = 't1'"#).count(), 2, "{text}");
        assert!(
            text.contains(r#""action_parameters"."tenant_id" = 't1'"#),
            "{text}"
        );
    }

    #[test]
    fn empty_lists_and_empty_or_match_nothing() {
        let empty_status = ActionFilter {
            statuses: Some(vec![]),
            ..Default::default()
        };
        assert!(
            sql(&empty_status).contains("1 = 0"),
            "{}",
            sql(&empty_status)
        );
        let empty_or = ActionFilter {
            or: Some(vec![]),
            ..Default::default()
        };
        assert!(sql(&empty_or).contains("1 = 0"));
    }

    #[test]
    fn or_and_not_nest() {
        let filter = ActionFilter {
            not: Some(Box::new(ActionFilter {
                or: Some(vec![
                    ActionFilter {
                        statuses: Some(vec![ActionStatus::Failed]),
                        ..Default::default()
                    },
                    ActionFilter {
                        user: Some("bob".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            })),
            ..Default::default()
        };
        let text = Query::select()
            .column(action::Column::Id)
            .from(action::Entity)
            .cond_where(tenant_condition(DbBackend::Sqlite, "t1", &filter))
            .to_string(SqliteQueryBuilder);
        assert!(
            text.contains(
                r#"NOT ("actions"."status" IN ('Failed') OR "actions"."user_name" = 'bob')"#
            ),
            "{text}"
        );
    }
}

//! Turns an [`ActionFilter`] into a SQL condition on `actions`.
//!
//! Each field maps to an indexed column (see the migration): ids to the primary
//! key, `parameter` to a sub-select on `ix_action_parameters_lookup`, the others
//! to the `(tenant_id, column, created_at, id)` indexes.

use sea_orm::ColumnTrait;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Query};

use super::entities::{action, parameter};
use crate::domain::filter::ActionFilter;
use crate::domain::time::to_micros;

/// The condition for "actions of `tenant` that pass `filter`".
pub(super) fn tenant_condition(tenant: &str, filter: &ActionFilter) -> Condition {
    Condition::all()
        .add(action::Column::TenantId.eq(tenant))
        .add(filter_condition(tenant, filter))
}

fn filter_condition(tenant: &str, f: &ActionFilter) -> Condition {
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
    if let Some(after) = f.created_after {
        c = c.add(A::CreatedAt.gte(to_micros(after)));
    }
    if let Some(before) = f.created_before {
        c = c.add(A::CreatedAt.lt(to_micros(before)));
    }
    for sub in &f.and {
        c = c.add(filter_condition(tenant, sub));
    }
    if let Some(or) = &f.or {
        c = c.add(match or.as_slice() {
            [] => never(),
            subs => subs.iter().fold(Condition::any(), |any, sub| {
                any.add(filter_condition(tenant, sub))
            }),
        });
    }
    if let Some(sub) = &f.not {
        c = c.add(filter_condition(tenant, sub).not());
    }
    c
}

/// `column IN (values)`, or a condition that holds for no row when the list is
/// empty (an empty list matches nothing).
fn in_list<C, V, I>(column: C, values: I) -> Condition
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
            .cond_where(tenant_condition("t1", filter))
            .to_string(PostgresQueryBuilder)
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
            .cond_where(tenant_condition("t1", &filter))
            .to_string(SqliteQueryBuilder);
        assert!(
            text.contains(
                r#"NOT ("actions"."status" IN ('Failed') OR "actions"."user_name" = 'bob')"#
            ),
            "{text}"
        );
    }
}

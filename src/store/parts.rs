//! The parts of an action kept in other tables (its parameters and its
//! states), read in the same statement as the actions' rows: one JSON list
//! per part and row, aggregated by a correlated subquery, then decoded.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, SelectStatement};
use sea_orm::{DbBackend, QueryResult, QuerySelect, QueryTrait, Select};
use uuid::Uuid;

use super::entities::action;
use super::rows::status;
use crate::domain::action::{Parameter, StateChange};
use crate::domain::time::from_micros;
use crate::error::AppError;

/// Which parts of an action, kept in other tables, a read brings with the
/// actions' rows: in the same statement, as one JSON list per part and row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartsWanted {
    pub parameters: bool,
    pub states: bool,
}

impl PartsWanted {
    /// Only the actions' own rows.
    pub(crate) const NONE: PartsWanted = PartsWanted {
        parameters: false,
        states: false,
    };
}

/// The parts read with some actions, by action; `None` when not asked for.
/// An action asked for has an entry, empty when it has none.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    pub parameters: Option<HashMap<Uuid, Vec<Parameter>>>,
    pub states: Option<HashMap<Uuid, Vec<StateChange>>>,
}

impl Parts {
    /// No parts yet, of those `wanted`.
    pub(super) fn wanted(wanted: PartsWanted) -> Parts {
        Parts {
            parameters: wanted.parameters.then(HashMap::new),
            states: wanted.states.then(HashMap::new),
        }
    }

    /// Adds the parts of `action_id` that `row` (of a statement of
    /// [`with_parts`]) carries, those asked for.
    pub(super) fn read_from(&mut self, row: &QueryResult, action_id: Uuid) -> Result<(), AppError> {
        if let Some(by_action) = &mut self.parameters {
            let json: Option<String> = row.try_get("", PARAMETERS_JSON)?;
            by_action.insert(action_id, decode_parameters(json.as_deref())?);
        }
        if let Some(by_action) = &mut self.states {
            let json: Option<String> = row.try_get("", STATES_JSON)?;
            by_action.insert(action_id, decode_states(action_id, json.as_deref())?);
        }
        Ok(())
    }
}

/// `query` (of actions' columns, see `fields`) with the parts `wanted` as
/// extra columns: a correlated subquery per part, aggregating the part's rows
/// of each action into one JSON list, so the actions and their parts come in
/// one round trip.
/// Both backends evaluate the subqueries only for the rows the statement
/// returns (after its `LIMIT`).
pub(super) fn with_parts(
    backend: DbBackend,
    mut query: Select<action::Entity>,
    wanted: PartsWanted,
) -> SelectStatement {
    if wanted.parameters {
        query = query.expr_as(Expr::cust(parameters_json(backend)), PARAMETERS_JSON);
    }
    if wanted.states {
        query = query.expr_as(Expr::cust(states_json(backend)), STATES_JSON);
    }
    query.into_query()
}

/// The extra columns of [`with_parts`].
const PARAMETERS_JSON: &str = "parameters_json";
const STATES_JSON: &str = "states_json";

/// An action's parameters in position order, as a JSON list of
/// `[name, value]` (NULL or `[]` when it has none).
fn parameters_json(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            r#"(SELECT CAST(json_agg(json_build_array(p.name, p.value) ORDER BY p.position) AS TEXT) FROM action_parameters p WHERE p.action_id = "actions"."id" AND p.tenant_id = "actions"."tenant_id")"#
        }
        _ => {
            r#"(SELECT json_group_array(json_array(p.name, p.value) ORDER BY p.position) FROM action_parameters p WHERE p.action_id = "actions"."id" AND p.tenant_id = "actions"."tenant_id")"#
        }
    }
}

/// An action's state rows oldest first, as a JSON list of `[id, seq,
/// app_id, user_name, status, previous_status, occurred_at, detail]`.
fn states_json(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            r#"(SELECT CAST(json_agg(json_build_array(s.id, s.seq, s.app_id, s.user_name, s.status, s.previous_status, s.occurred_at, s.detail) ORDER BY s.id) AS TEXT) FROM action_states s WHERE s.action_id = "actions"."id" AND s.tenant_id = "actions"."tenant_id")"#
        }
        _ => {
            r#"(SELECT json_group_array(json_array(s.id, s.seq, s.app_id, s.user_name, s.status, s.previous_status, s.occurred_at, s.detail) ORDER BY s.id) FROM action_states s WHERE s.action_id = "actions"."id" AND s.tenant_id = "actions"."tenant_id")"#
        }
    }
}

fn malformed(part: &str, err: serde_json::Error) -> AppError {
    AppError::internal(format!(
        "the {part} read with an action are malformed: {err}"
    ))
}

fn decode_parameters(json: Option<&str>) -> Result<Vec<Parameter>, AppError> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let pairs: Vec<(String, String)> =
        serde_json::from_str(json).map_err(|e| malformed("parameters", e))?;
    Ok(pairs
        .into_iter()
        .map(|(name, value)| Parameter { name, value })
        .collect())
}

/// One element of [`states_json`].
type StateJson = (
    i64,
    Option<i64>,
    String,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
);

fn decode_states(action_id: Uuid, json: Option<&str>) -> Result<Vec<StateChange>, AppError> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let rows: Vec<StateJson> = serde_json::from_str(json).map_err(|e| malformed("states", e))?;
    rows.into_iter()
        .map(
            |(id, seq, app_id, user, now, previous, occurred_at, detail)| {
                Ok(StateChange {
                    id,
                    seq,
                    action_id,
                    app_id,
                    user,
                    status: status(&now)?,
                    previous_status: previous.as_deref().map(status).transpose()?,
                    occurred_at: from_micros(occurred_at),
                    detail,
                })
            },
        )
        .collect()
}

//! Conversions from rows to domain types.

use std::collections::HashSet;

use sea_orm::QueryResult;
use uuid::Uuid;

use crate::domain::action::{Action, ErrorInfo, Parameter, StateChange, VendorInformation};
use crate::domain::status::ActionStatus;
use crate::domain::time::from_micros;
use crate::error::AppError;

use super::entities::{action, parameter, state};

/// The ids in `column` of rows a statement returned (`RETURNING`).
pub(super) fn returned_ids(rows: &[QueryResult], column: &str) -> Result<HashSet<Uuid>, AppError> {
    rows.iter()
        .map(|row| row.try_get::<Uuid>("", column).map_err(AppError::from))
        .collect()
}

/// A status column that holds no known status: the database was written by
/// something else. Reported as an internal error, never guessed.
pub(super) fn status(value: &str) -> Result<ActionStatus, AppError> {
    ActionStatus::from_stored(value)
        .ok_or_else(|| AppError::internal(format!("unknown status '{value}' in the database")))
}

impl TryFrom<action::Model> for Action {
    type Error = AppError;

    fn try_from(row: action::Model) -> Result<Action, AppError> {
        Ok(Action {
            id: row.id,
            status: status(&row.status)?,
            tenant_id: row.tenant_id,
            app_id: row.app_id,
            user: row.user_name,
            name: row.name,
            action_reason: row.action_reason,
            vendor: VendorInformation {
                provider: row.provider,
                provider_version: row.provider_version,
                sub_provider: row.sub_provider,
                vendor: row.vendor,
            },
            client_context: row.client_context,
            error: row.error_code.map(|code| ErrorInfo {
                code,
                message: row.error_message.unwrap_or_default(),
                subcode: row.error_subcode,
            }),
            created_at: from_micros(row.created_at),
            last_action_at: from_micros(row.last_action_at),
            completed_at: row.completed_at.map(from_micros),
            cancel_requested_at: row.cancel_requested_at.map(from_micros),
            trace_context: row.trace_context,
        })
    }
}

impl From<parameter::Model> for Parameter {
    fn from(row: parameter::Model) -> Parameter {
        Parameter {
            name: row.name,
            value: row.value,
        }
    }
}

impl TryFrom<state::Model> for StateChange {
    type Error = AppError;

    fn try_from(row: state::Model) -> Result<StateChange, AppError> {
        Ok(StateChange {
            id: row.id,
            seq: row.seq,
            action_id: row.action_id,
            app_id: row.app_id,
            user: row.user_name,
            status: status(&row.status)?,
            previous_status: row.previous_status.as_deref().map(status).transpose()?,
            occurred_at: from_micros(row.occurred_at),
            detail: row.detail,
        })
    }
}

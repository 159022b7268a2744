//! Which of an action's own columns a page reads. A list usually shows a few
//! fields of each action, and decoding all of a row's columns, most of them
//! text, was a tenth of a page's gateway CPU: a page reads the columns that
//! identify, order and page its actions, and of the others those the caller
//! asks for. The executor's columns (`work`, the lease, the provider's
//! reference) are never read here.

use sea_orm::{EntityTrait, QueryResult, QuerySelect, Select};

use super::entities::action;
use super::rows::status;
use crate::domain::action::{Action, ErrorInfo, VendorInformation};
use crate::domain::time::from_micros;
use crate::error::AppError;

/// The parts of an action, beside those every page reads (id, tenant, name,
/// status and the two sort keys), that a page reads. A part not read is
/// left empty in the actions the page returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FieldsWanted {
    pub app_id: bool,
    pub user: bool,
    pub action_reason: bool,
    pub vendor: bool,
    pub client_context: bool,
    pub error: bool,
    pub completed_at: bool,
    pub cancel_requested_at: bool,
    pub trace_context: bool,
}

impl FieldsWanted {
    /// The whole action.
    pub(crate) const ALL: FieldsWanted = FieldsWanted {
        app_id: true,
        user: true,
        action_reason: true,
        vendor: true,
        client_context: true,
        error: true,
        completed_at: true,
        cancel_requested_at: true,
        trace_context: true,
    };

    /// The parts either asks for.
    pub(crate) fn or(self, other: FieldsWanted) -> FieldsWanted {
        FieldsWanted {
            app_id: self.app_id || other.app_id,
            user: self.user || other.user,
            action_reason: self.action_reason || other.action_reason,
            vendor: self.vendor || other.vendor,
            client_context: self.client_context || other.client_context,
            error: self.error || other.error,
            completed_at: self.completed_at || other.completed_at,
            cancel_requested_at: self.cancel_requested_at || other.cancel_requested_at,
            trace_context: self.trace_context || other.trace_context,
        }
    }

    /// The columns these parts are read from, after those every page reads.
    fn columns(self) -> impl Iterator<Item = action::Column> {
        use action::Column::*;
        let FieldsWanted {
            app_id,
            user,
            action_reason,
            vendor,
            client_context,
            error,
            completed_at,
            cancel_requested_at,
            trace_context,
        } = self;
        let by_part: [(bool, &[action::Column]); 9] = [
            (app_id, &[AppId]),
            (user, &[UserName]),
            (action_reason, &[ActionReason]),
            (vendor, &[Provider, ProviderVersion, SubProvider, Vendor]),
            (client_context, &[ClientContext]),
            (error, &[ErrorCode, ErrorMessage, ErrorSubcode]),
            (completed_at, &[CompletedAt]),
            (cancel_requested_at, &[CancelRequestedAt]),
            (trace_context, &[TraceContext]),
        ];
        by_part
            .into_iter()
            .filter(|(wanted, _)| *wanted)
            .flat_map(|(_, columns)| columns.iter().copied())
    }
}

/// The columns every page reads: what identifies its actions and what
/// orders and pages them.
const ALWAYS_READ: [action::Column; 6] = [
    action::Column::Id,
    action::Column::TenantId,
    action::Column::Name,
    action::Column::Status,
    action::Column::CreatedAt,
    action::Column::LastActionAt,
];

/// The actions, selecting the columns of the parts `wanted`.
pub(super) fn select(wanted: FieldsWanted) -> Select<action::Entity> {
    action::Entity::find()
        .select_only()
        .columns(ALWAYS_READ)
        .columns(wanted.columns())
}

/// The action in `row` (of a statement of [`select`] with the same
/// `wanted`), its parts not read left empty.
pub(super) fn action_from_row(row: &QueryResult, wanted: FieldsWanted) -> Result<Action, AppError> {
    let text = |column: &str| row.try_get::<String>("", column);
    let maybe_text = |column: &str| row.try_get::<Option<String>>("", column);
    let time = |column: &str| row.try_get::<i64>("", column).map(from_micros);
    let maybe_time =
        |column: &str| Ok::<_, AppError>(row.try_get::<Option<i64>>("", column)?.map(from_micros));
    let status_text = text("status")?;
    Ok(Action {
        id: row.try_get("", "id")?,
        tenant_id: text("tenant_id")?,
        name: text("name")?,
        status: status(&status_text)?,
        created_at: time("created_at")?,
        last_action_at: time("last_action_at")?,
        app_id: if wanted.app_id {
            text("app_id")?
        } else {
            String::new()
        },
        user: if wanted.user {
            text("user_name")?
        } else {
            String::new()
        },
        action_reason: if wanted.action_reason {
            maybe_text("action_reason")?
        } else {
            None
        },
        vendor: if wanted.vendor {
            VendorInformation {
                provider: text("provider")?,
                provider_version: maybe_text("provider_version")?,
                sub_provider: maybe_text("sub_provider")?,
                vendor: maybe_text("vendor")?,
            }
        } else {
            VendorInformation {
                provider: String::new(),
                provider_version: None,
                sub_provider: None,
                vendor: None,
            }
        },
        client_context: if wanted.client_context {
            maybe_text("client_context")?
        } else {
            None
        },
        error: if wanted.error {
            match row.try_get::<Option<i32>>("", "error_code")? {
                Some(code) => Some(ErrorInfo {
                    code,
                    message: maybe_text("error_message")?.unwrap_or_default(),
                    subcode: row.try_get("", "error_subcode")?,
                }),
                None => None,
            }
        } else {
            None
        },
        completed_at: if wanted.completed_at {
            maybe_time("completed_at")?
        } else {
            None
        },
        cancel_requested_at: if wanted.cancel_requested_at {
            maybe_time("cancel_requested_at")?
        } else {
            None
        },
        trace_context: if wanted.trace_context {
            maybe_text("trace_context")?
        } else {
            None
        },
    })
}

//! GraphQL output types. Each wraps a domain type; none is a database row.

use async_graphql::{ComplexObject, Context, Enum, ErrorExtensions, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

use std::sync::Arc;

use super::context::services;
use super::loaders::RequestLoaders;
use crate::domain::action::{Action, ErrorInfo, Parameter, StateChange, VendorInformation};
use crate::domain::catalog::{ActionDefinition, Verdict};
use crate::domain::status::ActionStatus;
use crate::error::AppError;
use crate::events::EventBatch;
use crate::events::feed::Delivered;

/// Where an action stands (Graph's `operationStatus`, plus `CANCELED`).
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "OperationStatus")]
pub enum OperationStatus {
    /// Stored, waiting for the executor.
    NotStarted,
    /// The provider is carrying it out (or, when a cancel was requested, lifting it).
    Running,
    /// The provider applied it.
    Completed,
    /// The provider refused it, or every attempt failed; see `errorInfo`.
    Failed,
    /// Canceled: it never ran, or its effect was lifted.
    Canceled,
}

impl From<ActionStatus> for OperationStatus {
    fn from(status: ActionStatus) -> Self {
        match status {
            ActionStatus::NotStarted => OperationStatus::NotStarted,
            ActionStatus::Running => OperationStatus::Running,
            ActionStatus::Completed => OperationStatus::Completed,
            ActionStatus::Failed => OperationStatus::Failed,
            ActionStatus::Canceled => OperationStatus::Canceled,
        }
    }
}

impl From<OperationStatus> for ActionStatus {
    fn from(status: OperationStatus) -> Self {
        match status {
            OperationStatus::NotStarted => ActionStatus::NotStarted,
            OperationStatus::Running => ActionStatus::Running,
            OperationStatus::Completed => ActionStatus::Completed,
            OperationStatus::Failed => ActionStatus::Failed,
            OperationStatus::Canceled => ActionStatus::Canceled,
        }
    }
}

/// A security action: an indicator to block or allow, on one provider.
pub(crate) struct SecurityAction {
    action: Arc<Action>,
    parts: Parts,
}

/// Where an action's parameters and states come from.
enum Parts {
    /// The request's batch loaders.
    Loaders,
    /// A subscription event: parameters read with it, states loaded once per
    /// event batch for all subscribers.
    Event {
        parameters: Arc<[Parameter]>,
        batch: Arc<EventBatch>,
    },
}

impl SecurityAction {
    pub(crate) fn new(action: Action) -> SecurityAction {
        SecurityAction {
            action: Arc::new(action),
            parts: Parts::Loaders,
        }
    }

    pub(crate) fn from_event(delivered: &Delivered) -> SecurityAction {
        SecurityAction {
            action: delivered.event.action.clone(),
            parts: Parts::Event {
                parameters: delivered.event.parameters.clone(),
                batch: delivered.batch.clone(),
            },
        }
    }
}

fn loaders<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestLoaders> {
    ctx.data::<RequestLoaders>()
        .map_err(|_| AppError::internal("no loaders in the request").extend())
}

#[Object]
impl SecurityAction {
    /// Made by the gateway.
    async fn id(&self) -> ID {
        ID(self.action.id.to_string())
    }

    /// The catalog action, e.g. `blockIp`.
    async fn name(&self) -> &str {
        &self.action.name
    }

    /// Why the analyst acted.
    async fn action_reason(&self) -> Option<&str> {
        self.action.action_reason.as_deref()
    }

    /// The action's parameters, e.g. `{name: "ip", value: "203.0.113.7"}`, with
    /// canonical names and values.
    async fn parameters(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<KeyValuePair>> {
        let parameters = match &self.parts {
            Parts::Event { parameters, .. } => parameters.to_vec(),
            Parts::Loaders => loaders(ctx)?
                .parameters
                .load_one(self.action.id)
                .await
                .map_err(|e| e.extend())?
                .unwrap_or_default(),
        };
        Ok(parameters.into_iter().map(KeyValuePair::from).collect())
    }

    /// The provider that executes it.
    async fn vendor_information(&self) -> SecurityVendorInformation {
        self.action.vendor.clone().into()
    }

    /// The caller's idempotency key.
    async fn client_context(&self) -> Option<&str> {
        self.action.client_context.as_deref()
    }

    /// The app that invoked it (`appid` of its token).
    async fn app_id(&self) -> &str {
        &self.action.app_id
    }

    /// The tenant it belongs to (`tid` of its token).
    async fn azure_tenant_id(&self) -> &str {
        &self.action.tenant_id
    }

    /// The user who invoked it.
    async fn user(&self) -> &str {
        &self.action.user
    }

    async fn status(&self) -> OperationStatus {
        self.action.status.into()
    }

    /// Why it failed, or why its revert failed.
    async fn error_info(&self) -> Option<ResultInfo> {
        self.action.error.clone().map(ResultInfo::from)
    }

    /// Every transition, oldest first.
    async fn states(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SecurityActionState>> {
        let states = match &self.parts {
            Parts::Event { batch, .. } => batch
                .states_of(&services(ctx).store, &self.action.tenant_id, self.action.id)
                .await
                .map_err(|e| e.extend())?,
            Parts::Loaders => loaders(ctx)?
                .states
                .load_one(self.action.id)
                .await
                .map_err(|e| e.extend())?
                .unwrap_or_default(),
        };
        Ok(states.into_iter().map(SecurityActionState).collect())
    }

    async fn created_date_time(&self) -> DateTime<Utc> {
        self.action.created_at
    }

    /// When the status last changed.
    async fn last_action_date_time(&self) -> DateTime<Utc> {
        self.action.last_action_at
    }

    /// When it reached `COMPLETED`, `FAILED` or `CANCELED`.
    async fn completed_date_time(&self) -> Option<DateTime<Utc>> {
        self.action.completed_at
    }

    /// When `cancelAction` was called on it.
    async fn cancel_requested_date_time(&self) -> Option<DateTime<Utc>> {
        self.action.cancel_requested_at
    }
}

/// The outcome of one input of `invokeActions`: the action (new, or the one
/// its `clientContext` stored before), or why this input was refused.
#[derive(SimpleObject)]
pub(crate) struct InvokeActionResult {
    pub action: Option<SecurityAction>,
    pub error: Option<ItemError>,
}

/// Why one item of a bulk call was refused; the other items are not affected.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct ItemError {
    /// The stable code, as `extensions.code` of a whole-call error.
    pub code: String,
    pub message: String,
    /// The input path that is wrong, for `BAD_USER_INPUT`: `inputs[3].parameters[0].value`.
    pub field: Option<String>,
}

impl ItemError {
    /// The error of item `index`; its detail, when internal, goes to the log.
    pub(crate) fn of_item(index: usize, error: &AppError) -> ItemError {
        error.log();
        let field = match error {
            AppError::BadUserInput { field, .. } => Some(match field.strip_prefix("input") {
                Some(rest) => format!("inputs[{index}]{rest}"),
                None => field.clone(),
            }),
            _ => None,
        };
        ItemError {
            code: error.code().to_owned(),
            message: error.to_string(),
            field,
        }
    }
}

/// A name and a value.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct KeyValuePair {
    pub name: String,
    pub value: String,
}

impl From<Parameter> for KeyValuePair {
    fn from(p: Parameter) -> Self {
        KeyValuePair {
            name: p.name,
            value: p.value,
        }
    }
}

/// Which provider executes an action.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct SecurityVendorInformation {
    /// The configured provider's name.
    pub provider: String,
    pub provider_version: Option<String>,
    pub sub_provider: Option<String>,
    pub vendor: Option<String>,
}

impl From<VendorInformation> for SecurityVendorInformation {
    fn from(v: VendorInformation) -> Self {
        SecurityVendorInformation {
            provider: v.provider,
            provider_version: v.provider_version,
            sub_provider: v.sub_provider,
            vendor: v.vendor,
        }
    }
}

/// Why something failed.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct ResultInfo {
    /// The provider's status code where it has one (an HTTP status), else a
    /// gateway code: 408 timed out, 502 provider unreachable, 500 provider error.
    pub code: i32,
    pub message: String,
    pub subcode: Option<i32>,
}

impl From<ErrorInfo> for ResultInfo {
    fn from(e: ErrorInfo) -> Self {
        ResultInfo {
            code: e.code,
            message: e.message,
            subcode: e.subcode,
        }
    }
}

/// One transition of an action.
pub(crate) struct SecurityActionState(pub StateChange);

#[Object]
impl SecurityActionState {
    /// The app that caused it (`actiongate` for the executor).
    async fn app_id(&self) -> &str {
        &self.0.app_id
    }

    /// The user that caused it (`executor` for the executor).
    async fn user(&self) -> &str {
        &self.0.user
    }

    /// The status it moved to.
    async fn status(&self) -> OperationStatus {
        self.0.status.into()
    }

    /// The status it moved from; null for the first state.
    async fn previous_status(&self) -> Option<OperationStatus> {
        self.0.previous_status.map(Into::into)
    }

    async fn updated_date_time(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }

    /// More about the transition, when there is more to say.
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
}

/// How many actions are in one status.
#[derive(SimpleObject, Clone, Debug)]
pub(crate) struct StatusCount {
    pub status: OperationStatus,
    pub count: i32,
}

impl StatusCount {
    /// One row per status, as the store counted them.
    pub(crate) fn list(counts: &[(ActionStatus, u64)]) -> Vec<StatusCount> {
        counts
            .iter()
            .map(|&(status, count)| StatusCount {
                status: status.into(),
                count: i32::try_from(count).unwrap_or(i32::MAX),
            })
            .collect()
    }
}

/// Whether an action blocks or allows its indicator.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActionVerdict {
    Block,
    Allow,
}

/// An action of the catalog.
#[derive(SimpleObject)]
#[graphql(complex, name = "ActionDefinition")]
pub(crate) struct ActionDefinitionType {
    /// Canonical name, e.g. `blockIp` (matched case-insensitively on input).
    pub name: &'static str,
    pub description: &'static str,
    pub verdict: ActionVerdict,
    /// The configured providers, available to the caller's tenant, that serve it.
    pub providers: Vec<String>,
    #[graphql(skip)]
    pub definition: &'static ActionDefinition,
}

#[ComplexObject]
impl ActionDefinitionType {
    /// The parameters it takes.
    async fn parameters(&self) -> Vec<ActionParameterDefinition> {
        self.definition
            .parameters
            .iter()
            .map(|p| ActionParameterDefinition {
                name: p.name,
                required: p.required,
                description: p.description,
            })
            .collect()
    }
}

impl ActionDefinitionType {
    pub(crate) fn new(definition: &'static ActionDefinition, providers: Vec<String>) -> Self {
        ActionDefinitionType {
            name: definition.name,
            description: definition.description,
            verdict: match definition.verdict {
                Verdict::Block => ActionVerdict::Block,
                Verdict::Allow => ActionVerdict::Allow,
            },
            providers,
            definition,
        }
    }
}

/// A parameter of a catalog action.
#[derive(SimpleObject)]
pub(crate) struct ActionParameterDefinition {
    /// Canonical name (matched case-insensitively on input).
    pub name: &'static str,
    pub required: bool,
    pub description: &'static str,
}

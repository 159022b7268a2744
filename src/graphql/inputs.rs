//! GraphQL input types and their conversion into validated domain types. Each
//! conversion error is `BAD_USER_INPUT` naming the input path in `field`.

use std::borrow::Cow;

use async_graphql::registry::Registry;
use async_graphql::{Enum, ID, InputObject, InputType, InputValueError, InputValueResult, Value};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::types::OperationStatus;
use crate::domain::action::{ActionRequest, VendorRequest};
use crate::domain::catalog::find_action;
use crate::domain::filter::{
    ActionFilter, Comparison, MAX_FILTER_DEPTH, MAX_FILTER_LIST, Prefix, TextField, TimeBound,
    Timestamp, filter_parameter, filter_text as text, too_deep,
};
use crate::domain::indicator::shorten;
use crate::domain::page::{ActionOrder, Direction, OrderField};
use crate::error::AppError;

/// A name and a value.
#[derive(InputObject, Clone, Debug)]
pub(crate) struct KeyValuePairInput {
    pub name: String,
    pub value: String,
}

/// The provider to execute an action.
#[derive(InputObject, Clone, Debug, Default)]
pub(crate) struct SecurityVendorInformationInput {
    /// A configured provider's name; may be omitted when a default provider is
    /// configured (or only one).
    pub provider: Option<String>,
    pub provider_version: Option<String>,
    pub sub_provider: Option<String>,
    pub vendor: Option<String>,
}

/// An action to invoke.
#[derive(InputObject, Clone, Debug)]
pub(crate) struct InvokeActionInput {
    /// A catalog action, matched case-insensitively (`BlockIp` works).
    pub name: String,
    /// Why; at most 1,000 characters.
    pub action_reason: Option<String>,
    /// The action's parameters; names match case-insensitively (`IP` works).
    pub parameters: Vec<KeyValuePairInput>,
    pub vendor_information: Option<SecurityVendorInformationInput>,
    /// An idempotency key of at most 256 characters, per tenant and app: the
    /// same key with the same input returns the existing action, with other
    /// input it is a `CONFLICT`.
    pub client_context: Option<String>,
}

impl From<InvokeActionInput> for ActionRequest {
    fn from(input: InvokeActionInput) -> Self {
        ActionRequest {
            name: input.name,
            action_reason: input.action_reason,
            parameters: input
                .parameters
                .into_iter()
                .map(|p| (p.name, p.value))
                .collect(),
            vendor: input.vendor_information.map(|v| VendorRequest {
                provider: v.provider,
                provider_version: v.provider_version,
                sub_provider: v.sub_provider,
                vendor: v.vendor,
            }),
            client_context: input.client_context,
        }
    }
}

/// Which actions to include. Every field given must hold; a list holds when the
/// action's value is in it (an empty list matches nothing). Each list (`ids`,
/// `status`, `name`, `provider`, `and`, `or`) holds at most 100 entries; more
/// is `BAD_USER_INPUT`.
#[derive(InputObject, Clone, Debug, Default)]
#[graphql(name = "ActionFilter")]
pub(crate) struct ActionFilterInput {
    pub ids: Option<Vec<ID>>,
    /// In subscriptions, the status an event moves to.
    pub status: Option<Vec<OperationStatus>>,
    /// Catalog action names, matched case-insensitively.
    pub name: Option<Vec<String>>,
    pub provider: Option<Vec<String>>,
    pub app_id: Option<String>,
    pub user: Option<String>,
    pub client_context: Option<String>,
    /// Has this parameter: name case-insensitive, value exact (indicators are
    /// compared in canonical form, e.g. lower-case hashes).
    pub parameter: Option<KeyValuePairInput>,
    /// Created at or after.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before.
    pub created_before: Option<DateTime<Utc>>,
    /// Status last changed at or after.
    pub last_action_after: Option<DateTime<Utc>>,
    /// Status last changed before.
    pub last_action_before: Option<DateTime<Utc>>,
    /// `clientContext` starts with this (case-sensitive).
    pub client_context_starts_with: Option<String>,
    /// `appId` starts with this (case-sensitive).
    pub app_id_starts_with: Option<String>,
    /// `user` starts with this (case-sensitive).
    pub user_starts_with: Option<String>,
    /// The provider's name starts with this (case-sensitive).
    pub provider_starts_with: Option<String>,
    /// All of these hold.
    pub and: Option<Vec<ActionFilterInput>>,
    /// At least one of these holds.
    pub or: Option<Vec<ActionFilterInput>>,
    /// This does not hold.
    pub not: Option<Box<ActionFilterInput>>,
}

/// The `filter` argument of queries and subscriptions: an `ActionFilter`
/// whose nesting is checked before it is parsed. Parsing an input object
/// recurses once per level of `and` / `or` / `not`, so a filter nested a
/// thousand deep is refused from its raw value, walked with a loop, before
/// parsing could overflow the stack.
pub(crate) struct FilterArgument(ActionFilterInput);

/// The argument's name, where errors in it point.
const FILTER_ARGUMENT: &str = "filter";

impl FilterArgument {
    /// Validates the filter: `None` when there is none.
    pub(crate) fn into_domain(filter: Option<FilterArgument>) -> Result<ActionFilter, AppError> {
        let Some(FilterArgument(input)) = filter else {
            return Ok(ActionFilter::default());
        };
        let filter = input.convert(FILTER_ARGUMENT)?;
        filter.check_limits(FILTER_ARGUMENT)?;
        Ok(filter)
    }
}

impl InputType for FilterArgument {
    type RawValueType = Self;

    fn type_name() -> Cow<'static, str> {
        ActionFilterInput::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        ActionFilterInput::create_type_info(registry)
    }

    fn parse(value: Option<Value>) -> InputValueResult<Self> {
        if let Some(value) = &value
            && let Err(err) = check_filter_depth(value)
        {
            let mut refused = InputValueError::custom(&err).with_extension("code", err.code());
            if let AppError::BadUserInput { field, .. } = err {
                refused = refused.with_extension("field", field);
            }
            return Err(refused);
        }
        ActionFilterInput::parse(value)
            .map(FilterArgument)
            .map_err(InputValueError::propagate)
    }

    fn to_value(&self) -> Value {
        self.0.to_value()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }
}

/// Refuses a raw filter value whose `and` / `or` / `not` nest deeper than
/// [`MAX_FILTER_DEPTH`], naming the first filter past it.
fn check_filter_depth(value: &Value) -> Result<(), AppError> {
    let mut pending: Vec<(&Value, String, usize)> = vec![(value, FILTER_ARGUMENT.into(), 1)];
    while let Some((value, field, depth)) = pending.pop() {
        let Value::Object(fields) = value else {
            continue;
        };
        if depth > MAX_FILTER_DEPTH {
            return Err(too_deep(&field));
        }
        if let Some(not) = fields.get("not") {
            pending.push((not, format!("{field}.not"), depth + 1));
        }
        for list in ["and", "or"] {
            if let Some(Value::List(items)) = fields.get(list) {
                pending.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| (item, format!("{field}.{list}[{i}]"), depth + 1)),
                );
            }
        }
    }
    Ok(())
}

impl ActionFilterInput {
    fn convert(self, field: &str) -> Result<ActionFilter, AppError> {
        // Sizes are checked before anything is parsed, so a huge list costs nothing.
        for (name, len) in [
            ("ids", self.ids.as_ref().map(Vec::len)),
            ("name", self.name.as_ref().map(Vec::len)),
            ("provider", self.provider.as_ref().map(Vec::len)),
            ("and", self.and.as_ref().map(Vec::len)),
            ("or", self.or.as_ref().map(Vec::len)),
        ] {
            if len.unwrap_or(0) > MAX_FILTER_LIST {
                return Err(AppError::bad_input(
                    format!("{field}.{name}"),
                    format!("{name} holds at most {MAX_FILTER_LIST} entries"),
                ));
            }
        }
        let ids = self
            .ids
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| parse_id(&format!("{field}.ids[{i}]"), id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let names = self
            .name
            .map(|names| {
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        find_action(name).map(|a| a.name).ok_or_else(|| {
                            AppError::bad_input(
                                format!("{field}.name[{i}]"),
                                format!("unknown action '{}'", shorten(name)),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let providers = self
            .provider
            .map(|providers| {
                providers
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| text(&format!("{field}.provider[{i}]"), p))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let parameter = self
            .parameter
            .map(|p| filter_parameter(&format!("{field}.parameter"), &p.name, p.value))
            .transpose()?;
        let bound = |timestamp, comparison, at: Option<DateTime<Utc>>| {
            at.map(|at| TimeBound {
                timestamp,
                comparison,
                at,
            })
        };
        let times = [
            bound(
                Timestamp::Created,
                Comparison::AtOrAfter,
                self.created_after,
            ),
            bound(Timestamp::Created, Comparison::Before, self.created_before),
            bound(
                Timestamp::LastAction,
                Comparison::AtOrAfter,
                self.last_action_after,
            ),
            bound(
                Timestamp::LastAction,
                Comparison::Before,
                self.last_action_before,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        let prefixes = [
            (
                "clientContextStartsWith",
                TextField::ClientContext,
                self.client_context_starts_with,
            ),
            ("appIdStartsWith", TextField::AppId, self.app_id_starts_with),
            ("userStartsWith", TextField::User, self.user_starts_with),
            (
                "providerStartsWith",
                TextField::Provider,
                self.provider_starts_with,
            ),
        ]
        .into_iter()
        .filter_map(|(name, text_field, prefix)| {
            prefix.map(|p| {
                text(&format!("{field}.{name}"), p).map(|prefix| Prefix {
                    field: text_field,
                    prefix,
                })
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
        let and = self
            .and
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, f)| f.convert(&format!("{field}.and[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let or = self
            .or
            .map(|or| {
                or.into_iter()
                    .enumerate()
                    .map(|(i, f)| f.convert(&format!("{field}.or[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let not = self
            .not
            .map(|f| f.convert(&format!("{field}.not")).map(Box::new))
            .transpose()?;
        Ok(ActionFilter {
            ids,
            statuses: self.status.map(|s| s.into_iter().map(Into::into).collect()),
            names,
            providers,
            app_id: self
                .app_id
                .map(|v| text(&format!("{field}.appId"), v))
                .transpose()?,
            user: self
                .user
                .map(|v| text(&format!("{field}.user"), v))
                .transpose()?,
            client_context: self
                .client_context
                .map(|v| text(&format!("{field}.clientContext"), v))
                .transpose()?,
            parameter,
            times,
            prefixes,
            and,
            or,
            not,
        })
    }
}

/// Parses an action id; anything but a UUID is `BAD_USER_INPUT` on `field`.
pub(crate) fn parse_id(field: &str, id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::bad_input(field, format!("{field} is not an action id")))
}

/// The timestamp to sort by.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ActionOrderField {
    CreatedDateTime,
    LastActionDateTime,
}

/// Ascending or descending.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderDirection {
    Asc,
    Desc,
}

/// How to sort actions; ties are broken by id. Default: newest first.
#[derive(InputObject, Clone, Copy, Debug)]
#[graphql(name = "ActionOrder")]
pub(crate) struct ActionOrderInput {
    pub field: ActionOrderField,
    pub direction: OrderDirection,
}

impl From<ActionOrderInput> for ActionOrder {
    fn from(input: ActionOrderInput) -> Self {
        ActionOrder {
            field: match input.field {
                ActionOrderField::CreatedDateTime => OrderField::CreatedAt,
                ActionOrderField::LastActionDateTime => OrderField::LastActionAt,
            },
            direction: match input.direction {
                OrderDirection::Asc => Direction::Asc,
                OrderDirection::Desc => Direction::Desc,
            },
        }
    }
}

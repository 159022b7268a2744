//! The action filter shared by `actions`, `actionCounts` and subscriptions.
//!
//! The store turns it into SQL; subscriptions evaluate it in memory with
//! [`ActionFilter::matches`]. Both read the same fields with the same meaning:
//! every field that is set must hold; a list field holds when the action's
//! value is in the list (so an empty list matches nothing); `and` holds when all
//! its filters hold, `or` when at least one does, `not` when its filter does not.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::action::{Action, Parameter};
use super::catalog::{CATALOG, ParameterKind};
use super::indicator::{Indicator, shorten};
use super::status::ActionStatus;
use super::text::check_text;
use crate::error::AppError;

/// Deepest nesting of `and` / `or` / `not`.
pub(crate) const MAX_FILTER_DEPTH: usize = 5;
/// Most filter objects in one filter, nested ones included.
pub(crate) const MAX_FILTER_NODES: usize = 50;
/// Longest list in one filter field.
pub(crate) const MAX_FILTER_LIST: usize = 100;
/// Longest string accepted in a filter.
pub(crate) const MAX_FILTER_TEXT: usize = 2048;

/// A validated action filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionFilter {
    pub ids: Option<Vec<Uuid>>,
    pub statuses: Option<Vec<ActionStatus>>,
    /// Canonical action names.
    pub names: Option<Vec<&'static str>>,
    pub providers: Option<Vec<String>>,
    pub app_id: Option<String>,
    pub user: Option<String>,
    pub client_context: Option<String>,
    /// Canonical parameter name and exact value.
    pub parameter: Option<Parameter>,
    /// Bounds on `createdDateTime` and `lastActionDateTime`; every one holds.
    pub times: Vec<TimeBound>,
    /// Text fields that start with a prefix (case-sensitive); every one holds.
    /// An action without the field (no `clientContext`) does not match.
    pub prefixes: Vec<Prefix>,
    pub and: Vec<ActionFilter>,
    pub or: Option<Vec<ActionFilter>>,
    pub not: Option<Box<ActionFilter>>,
}

/// A timestamp of an action that a filter can bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    /// `createdDateTime`
    Created,
    /// `lastActionDateTime`
    LastAction,
}

/// How a timestamp compares with the bound's instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Before,
    AtOrBefore,
    After,
    AtOrAfter,
}

/// One bound on a timestamp: `createdDateTime` before 2026-12-01, say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBound {
    pub timestamp: Timestamp,
    pub comparison: Comparison,
    pub at: DateTime<Utc>,
}

impl TimeBound {
    /// Whether `value` lies within the bound.
    pub fn holds_for(&self, value: DateTime<Utc>) -> bool {
        match self.comparison {
            Comparison::Before => value < self.at,
            Comparison::AtOrBefore => value <= self.at,
            Comparison::After => value > self.at,
            Comparison::AtOrAfter => value >= self.at,
        }
    }
}

/// A text field of an action that a filter can match by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    AppId,
    User,
    ClientContext,
    Provider,
}

/// "`field` starts with `prefix`", compared character by character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    pub field: TextField,
    pub prefix: String,
}

impl Prefix {
    /// The action's value of the field, if it has one.
    fn value_of<'a>(&self, action: &'a Action) -> Option<&'a str> {
        match self.field {
            TextField::AppId => Some(&action.app_id),
            TextField::User => Some(&action.user),
            TextField::ClientContext => action.client_context.as_deref(),
            TextField::Provider => Some(&action.vendor.provider),
        }
    }
}

impl ActionFilter {
    /// Checks the size limits; `field` is the path of this filter in the input.
    pub(crate) fn check_limits(&self, field: &str) -> Result<(), AppError> {
        let mut nodes = 0;
        self.check_node(field, 1, &mut nodes)
    }

    fn check_node(&self, field: &str, depth: usize, nodes: &mut usize) -> Result<(), AppError> {
        *nodes += 1;
        if depth > MAX_FILTER_DEPTH {
            return Err(too_deep(field));
        }
        if *nodes > MAX_FILTER_NODES {
            return Err(AppError::bad_input(
                field,
                format!("a filter holds at most {MAX_FILTER_NODES} filter objects"),
            ));
        }
        let lists = [
            ("ids", self.ids.as_ref().map(Vec::len)),
            ("status", self.statuses.as_ref().map(Vec::len)),
            ("name", self.names.as_ref().map(Vec::len)),
            ("provider", self.providers.as_ref().map(Vec::len)),
            ("times", Some(self.times.len())),
            ("prefixes", Some(self.prefixes.len())),
            ("and", Some(self.and.len())),
            ("or", self.or.as_ref().map(Vec::len)),
        ];
        for (name, len) in lists {
            if len.unwrap_or(0) > MAX_FILTER_LIST {
                return Err(AppError::bad_input(
                    format!("{field}.{name}"),
                    format!("{name} holds at most {MAX_FILTER_LIST} entries"),
                ));
            }
        }
        for (i, sub) in self.and.iter().enumerate() {
            sub.check_node(&format!("{field}.and[{i}]"), depth + 1, nodes)?;
        }
        for (i, sub) in self.or.iter().flatten().enumerate() {
            sub.check_node(&format!("{field}.or[{i}]"), depth + 1, nodes)?;
        }
        if let Some(sub) = &self.not {
            sub.check_node(&format!("{field}.not"), depth + 1, nodes)?;
        }
        Ok(())
    }

    /// Whether an action with these parameters, in `status`, passes the filter.
    pub(crate) fn matches(
        &self,
        action: &Action,
        parameters: &[Parameter],
        status: ActionStatus,
    ) -> bool {
        in_list(&self.ids, &action.id)
            && in_list(&self.statuses, &status)
            && self
                .names
                .as_ref()
                .is_none_or(|names| names.contains(&action.name.as_str()))
            && in_list(&self.providers, &action.vendor.provider)
            && self.app_id.as_ref().is_none_or(|a| *a == action.app_id)
            && self.user.as_ref().is_none_or(|u| *u == action.user)
            && self
                .client_context
                .as_ref()
                .is_none_or(|c| Some(c) == action.client_context.as_ref())
            && self
                .parameter
                .as_ref()
                .is_none_or(|p| parameters.contains(p))
            && self.times.iter().all(|bound| {
                bound.holds_for(match bound.timestamp {
                    Timestamp::Created => action.created_at,
                    Timestamp::LastAction => action.last_action_at,
                })
            })
            && self.prefixes.iter().all(|p| {
                p.value_of(action)
                    .is_some_and(|value| value.starts_with(p.prefix.as_str()))
            })
            && self
                .and
                .iter()
                .all(|f| f.matches(action, parameters, status))
            && self
                .or
                .as_ref()
                .is_none_or(|or| or.iter().any(|f| f.matches(action, parameters, status)))
            && self
                .not
                .as_ref()
                .is_none_or(|f| !f.matches(action, parameters, status))
    }
}

/// Checks a string to filter by: at most [`MAX_FILTER_TEXT`] characters, no
/// control characters.
pub(crate) fn filter_text(field: &str, value: String) -> Result<String, AppError> {
    check_text(field, &value, MAX_FILTER_TEXT, false)?;
    Ok(value)
}

/// A parameter to filter by, found at `field` of the input: the name made
/// canonical, and an indicator value brought to the canonical form it is
/// stored in (a value that is no valid indicator is kept as given, and
/// matches nothing).
pub(crate) fn filter_parameter(
    field: &str,
    name: &str,
    value: String,
) -> Result<Parameter, AppError> {
    check_text(&format!("{field}.name"), name, 64, false)?;
    check_text(&format!("{field}.value"), &value, MAX_FILTER_TEXT, false)?;
    let definition = CATALOG
        .iter()
        .flat_map(|a| a.parameters.iter())
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            AppError::bad_input(
                format!("{field}.name"),
                format!("no action takes a parameter '{}'", shorten(name)),
            )
        })?;
    let value = match definition.kind {
        ParameterKind::Indicator(kind) => Indicator::parse(kind, value.trim())
            .map(|i| i.to_string())
            .unwrap_or(value),
        ParameterKind::ExpirationDateTime => value,
    };
    Ok(Parameter {
        name: definition.name.to_owned(),
        value,
    })
}

/// The error of a filter at `field` that is nested past [`MAX_FILTER_DEPTH`].
pub(crate) fn too_deep(field: &str) -> AppError {
    AppError::bad_input(
        field,
        format!("filters nest at most {MAX_FILTER_DEPTH} deep"),
    )
}

/// Whether `value` is in `list`, when there is a list.
fn in_list<T: PartialEq>(list: &Option<Vec<T>>, value: &T) -> bool {
    list.as_ref().is_none_or(|l| l.contains(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::action::VendorInformation;

    fn action() -> Action {
        let now = crate::domain::time::now();
        Action {
            id: Uuid::now_v7(),
            tenant_id: "t".into(),
            app_id: "app".into(),
            user: "alice".into(),
            name: "blockIp".into(),
            action_reason: None,
            vendor: VendorInformation {
                provider: "blocklist".into(),
                provider_version: None,
                sub_provider: None,
                vendor: None,
            },
            client_context: Some("ctx".into()),
            status: ActionStatus::NotStarted,
            error: None,
            created_at: now,
            last_action_at: now,
            completed_at: None,
            cancel_requested_at: None,
            trace_context: None,
        }
    }

    fn ip(value: &str) -> Parameter {
        Parameter {
            name: "ip".into(),
            value: value.into(),
        }
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        assert!(ActionFilter::default().matches(&action(), &[], ActionStatus::Running));
    }

    #[test]
    fn fields_combine_with_and_and_nest_with_or_and_not() {
        let a = action();
        let params = [ip("10.0.0.1")];
        let running = ActionFilter {
            statuses: Some(vec![ActionStatus::Running]),
            ..Default::default()
        };
        let bob = ActionFilter {
            user: Some("bob".into()),
            ..Default::default()
        };
        assert!(running.matches(&a, &params, ActionStatus::Running));
        assert!(!running.matches(&a, &params, ActionStatus::Completed));
        let either = ActionFilter {
            or: Some(vec![running.clone(), bob.clone()]),
            ..Default::default()
        };
        assert!(either.matches(&a, &params, ActionStatus::Running));
        assert!(!either.matches(&a, &params, ActionStatus::Failed));
        let not_bob = ActionFilter {
            not: Some(Box::new(bob)),
            ..Default::default()
        };
        assert!(not_bob.matches(&a, &params, ActionStatus::Failed));
        let by_param = ActionFilter {
            parameter: Some(ip("10.0.0.1")),
            ..Default::default()
        };
        assert!(by_param.matches(&a, &params, ActionStatus::Failed));
        assert!(!by_param.matches(&a, &[ip("10.0.0.2")], ActionStatus::Failed));
    }

    #[test]
    fn empty_lists_match_nothing() {
        let none = ActionFilter {
            or: Some(vec![]),
            ..Default::default()
        };
        assert!(!none.matches(&action(), &[], ActionStatus::Running));
        let no_ids = ActionFilter {
            ids: Some(vec![]),
            ..Default::default()
        };
        assert!(!no_ids.matches(&action(), &[], ActionStatus::Running));
    }

    #[test]
    fn time_bounds_compare_strictly_or_inclusively() {
        let a = action();
        let bound = |timestamp, comparison| ActionFilter {
            times: vec![TimeBound {
                timestamp,
                comparison,
                at: a.created_at,
            }],
            ..Default::default()
        };
        for timestamp in [Timestamp::Created, Timestamp::LastAction] {
            assert!(bound(timestamp, Comparison::AtOrAfter).matches(&a, &[], a.status));
            assert!(bound(timestamp, Comparison::AtOrBefore).matches(&a, &[], a.status));
            assert!(!bound(timestamp, Comparison::Before).matches(&a, &[], a.status));
            assert!(!bound(timestamp, Comparison::After).matches(&a, &[], a.status));
        }
    }

    #[test]
    fn prefixes_are_case_sensitive_and_a_missing_value_never_matches() {
        let mut a = action();
        let prefix = |field, prefix: &str| ActionFilter {
            prefixes: vec![Prefix {
                field,
                prefix: prefix.into(),
            }],
            ..Default::default()
        };
        assert!(prefix(TextField::User, "ali").matches(&a, &[], a.status));
        assert!(!prefix(TextField::User, "Ali").matches(&a, &[], a.status));
        assert!(prefix(TextField::Provider, "block").matches(&a, &[], a.status));
        assert!(prefix(TextField::AppId, "").matches(&a, &[], a.status));
        assert!(prefix(TextField::ClientContext, "c").matches(&a, &[], a.status));
        a.client_context = None;
        assert!(!prefix(TextField::ClientContext, "").matches(&a, &[], a.status));
    }

    #[test]
    fn filter_parameters_are_canonical() {
        let p = filter_parameter("f", "IP", " 10.0.0.1 ".into()).unwrap();
        assert_eq!(p, ip("10.0.0.1"));
        assert!(filter_parameter("f", "port", "80".into()).is_err());
    }

    #[test]
    fn deep_or_wide_filters_are_refused() {
        let mut deep = ActionFilter::default();
        for _ in 0..MAX_FILTER_DEPTH {
            deep = ActionFilter {
                not: Some(Box::new(deep)),
                ..Default::default()
            };
        }
        assert!(deep.check_limits("filter").is_err());
        let wide = ActionFilter {
            and: vec![ActionFilter::default(); MAX_FILTER_NODES],
            ..Default::default()
        };
        assert!(wide.check_limits("filter").is_err());
        let fine = ActionFilter {
            and: vec![ActionFilter::default(); 10],
            ..Default::default()
        };
        assert!(fine.check_limits("filter").is_ok());
    }
}

//! What a parsed `$filter` means: its translation into the domain's
//! [`ActionFilter`], the same filter the GraphQL API builds, which the store
//! turns into its one indexed SQL and subscriptions evaluate in memory.
//!
//! | property | operators |
//! |---|---|
//! | `id` | `eq`, `ne`, `in` |
//! | `status`, `name` | `eq`, `ne`, `in`, `startswith` (matched against the known values, any casing) |
//! | `clientContext`, `appId`, `user`, `vendorInformation/provider` | `eq`, `ne`, `in`, `startswith` |
//! | `createdDateTime`, `lastActionDateTime` | `eq`, `ne`, `gt`, `ge`, `lt`, `le` |
//! | `parameters` | `any(p: p/name eq '…' and p/value eq '…')` |
//!
//! Anything else is `BAD_USER_INPUT` on `$filter`, quoting the expression.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::odata::{CompareOp, Expr, Literal, Path};
use crate::domain::catalog::{CATALOG, find_action};
use crate::domain::filter::{
    ActionFilter, Comparison, MAX_FILTER_LIST, Prefix, TextField, TimeBound, Timestamp,
    filter_parameter, filter_text,
};
use crate::domain::indicator::shorten;
use crate::domain::status::ActionStatus;
use crate::error::AppError;

/// The input field every error of a `$filter` names.
const FIELD: &str = "$filter";

/// A property that `$filter` can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Property {
    Id,
    Status,
    Name,
    Text(TextField),
    Time(Timestamp),
    Parameters,
}

impl Property {
    fn of(path: &Path) -> Option<Property> {
        let text = path.text();
        let is = |name: &str| text.eq_ignore_ascii_case(name);
        Some(if is("id") {
            Property::Id
        } else if is("status") {
            Property::Status
        } else if is("name") {
            Property::Name
        } else if is("clientContext") {
            Property::Text(TextField::ClientContext)
        } else if is("appId") {
            Property::Text(TextField::AppId)
        } else if is("user") {
            Property::Text(TextField::User)
        } else if is("vendorInformation/provider") {
            Property::Text(TextField::Provider)
        } else if is("createdDateTime") {
            Property::Time(Timestamp::Created)
        } else if is("lastActionDateTime") {
            Property::Time(Timestamp::LastAction)
        } else if is("parameters") {
            Property::Parameters
        } else {
            return None;
        })
    }
}

/// Translates the parsed `$filter` (whose text is `source`) into a domain
/// filter and checks the domain's size limits.
pub(super) fn to_domain(expr: &Expr, source: &str) -> Result<ActionFilter, AppError> {
    let filter = Translator { source }.expr(expr)?;
    filter.check_limits(FIELD)?;
    Ok(filter)
}

struct Translator<'a> {
    source: &'a str,
}

fn bad(message: String) -> AppError {
    AppError::bad_input(FIELD, message)
}

impl Translator<'_> {
    fn quote(&self, span: &std::ops::Range<usize>) -> String {
        format!("\"{}\"", shorten(&self.source[span.clone()]))
    }

    fn expr(&self, expr: &Expr) -> Result<ActionFilter, AppError> {
        match expr {
            Expr::And(terms) => Ok(ActionFilter {
                and: self.list(terms)?,
                ..ActionFilter::default()
            }),
            Expr::Or(terms) => Ok(ActionFilter {
                or: Some(self.list(terms)?),
                ..ActionFilter::default()
            }),
            Expr::Not(inner) => Ok(negate(self.expr(inner)?)),
            Expr::Compare {
                path,
                op,
                value,
                span,
            } => self.compare(path, *op, value, span),
            Expr::In { path, values, span } => self.is_in(path, values, span),
            Expr::StartsWith { path, prefix, span } => self.starts_with(path, prefix, span),
            Expr::Any {
                collection,
                variable,
                body,
                span,
            } => self.any(collection, variable, body, span),
        }
    }

    fn list(&self, terms: &[Expr]) -> Result<Vec<ActionFilter>, AppError> {
        if terms.len() > MAX_FILTER_LIST {
            return Err(bad(format!(
                "$filter joins at most {MAX_FILTER_LIST} conditions with one and / or"
            )));
        }
        terms.iter().map(|t| self.expr(t)).collect()
    }

    fn property(&self, path: &Path, span: &std::ops::Range<usize>) -> Result<Property, AppError> {
        Property::of(path).ok_or_else(|| {
            bad(format!(
                "filtering on '{}' is not supported (in {}); $filter reads id, status, name, clientContext, appId, user, vendorInformation/provider, createdDateTime, lastActionDateTime and parameters/any",
                shorten(&path.text()),
                self.quote(span)
            ))
        })
    }

    fn compare(
        &self,
        path: &Path,
        op: CompareOp,
        value: &Literal,
        span: &std::ops::Range<usize>,
    ) -> Result<ActionFilter, AppError> {
        let property = self.property(path, span)?;
        let equal = match (property, op) {
            (Property::Time(timestamp), _) => {
                let at = self.instant(value, span)?;
                let bound = |comparison| TimeBound {
                    timestamp,
                    comparison,
                    at,
                };
                let times = match op {
                    CompareOp::Eq | CompareOp::Ne => {
                        vec![bound(Comparison::AtOrAfter), bound(Comparison::AtOrBefore)]
                    }
                    CompareOp::Gt => vec![bound(Comparison::After)],
                    CompareOp::Ge => vec![bound(Comparison::AtOrAfter)],
                    CompareOp::Lt => vec![bound(Comparison::Before)],
                    CompareOp::Le => vec![bound(Comparison::AtOrBefore)],
                };
                ActionFilter {
                    times,
                    ..ActionFilter::default()
                }
            }
            (_, CompareOp::Eq | CompareOp::Ne) => self.equals(property, &[value], span)?,
            (_, op) => {
                return Err(bad(format!(
                    "the operator '{}' is not supported on '{}' (in {}); gt, ge, lt and le compare createdDateTime and lastActionDateTime",
                    op.keyword(),
                    path.text(),
                    self.quote(span)
                )));
            }
        };
        Ok(if op == CompareOp::Ne {
            negate(equal)
        } else {
            equal
        })
    }

    fn is_in(
        &self,
        path: &Path,
        values: &[Literal],
        span: &std::ops::Range<usize>,
    ) -> Result<ActionFilter, AppError> {
        if values.len() > MAX_FILTER_LIST {
            return Err(bad(format!(
                "in lists at most {MAX_FILTER_LIST} values (in {})",
                self.quote(span)
            )));
        }
        let property = self.property(path, span)?;
        if let Property::Time(_) = property {
            return Err(bad(format!(
                "in is not supported on '{}' (in {}); compare it with ge and lt",
                path.text(),
                self.quote(span)
            )));
        }
        let values: Vec<&Literal> = values.iter().collect();
        self.equals(property, &values, span)
    }

    /// The property equals one of `values`.
    fn equals(
        &self,
        property: Property,
        values: &[&Literal],
        span: &std::ops::Range<usize>,
    ) -> Result<ActionFilter, AppError> {
        let mut filter = ActionFilter::default();
        match property {
            Property::Id => {
                filter.ids = Some(
                    values
                        .iter()
                        .map(|v| self.id(v, span))
                        .collect::<Result<_, _>>()?,
                );
            }
            Property::Status => {
                filter.statuses = Some(
                    values
                        .iter()
                        .map(|v| self.status(v, span))
                        .collect::<Result<_, _>>()?,
                );
            }
            Property::Name => {
                filter.names = Some(
                    values
                        .iter()
                        .map(|v| {
                            let name = self.text(v, span)?;
                            find_action(&name).map(|a| a.name).ok_or_else(|| {
                                bad(format!(
                                    "unknown action '{}' (in {}); the catalog's actions are {}",
                                    shorten(&name),
                                    self.quote(span),
                                    catalog_names()
                                ))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                );
            }
            Property::Text(TextField::Provider) => {
                filter.providers = Some(
                    values
                        .iter()
                        .map(|v| self.text(v, span))
                        .collect::<Result<_, _>>()?,
                );
            }
            Property::Text(field) => {
                let mut each = values
                    .iter()
                    .map(|v| {
                        let value = self.text(v, span)?;
                        let mut one = ActionFilter::default();
                        match field {
                            TextField::AppId => one.app_id = Some(value),
                            TextField::User => one.user = Some(value),
                            _ => one.client_context = Some(value),
                        }
                        Ok(one)
                    })
                    .collect::<Result<Vec<_>, AppError>>()?;
                filter = if each.len() == 1 {
                    each.pop().expect("one value")
                } else {
                    ActionFilter {
                        or: Some(each),
                        ..ActionFilter::default()
                    }
                };
            }
            Property::Time(_) | Property::Parameters => {
                return Err(bad(format!(
                    "'parameters' is tested with any (in {}): parameters/any(p: p/name eq 'ip' and p/value eq '203.0.113.7')",
                    self.quote(span)
                )));
            }
        }
        Ok(filter)
    }

    fn starts_with(
        &self,
        path: &Path,
        prefix: &Literal,
        span: &std::ops::Range<usize>,
    ) -> Result<ActionFilter, AppError> {
        let property = self.property(path, span)?;
        let prefix = self.text(prefix, span)?;
        let lower = prefix.to_lowercase();
        Ok(match property {
            Property::Status => ActionFilter {
                statuses: Some(
                    ActionStatus::ALL
                        .into_iter()
                        .filter(|s| s.as_str().to_lowercase().starts_with(&lower))
                        .collect(),
                ),
                ..ActionFilter::default()
            },
            Property::Name => ActionFilter {
                names: Some(
                    CATALOG
                        .iter()
                        .map(|a| a.name)
                        .filter(|name| name.to_lowercase().starts_with(&lower))
                        .collect(),
                ),
                ..ActionFilter::default()
            },
            Property::Text(field) => ActionFilter {
                prefixes: vec![Prefix { field, prefix }],
                ..ActionFilter::default()
            },
            _ => {
                return Err(bad(format!(
                    "startswith is not supported on '{}' (in {}); it reads status, name, clientContext, appId, user and vendorInformation/provider",
                    path.text(),
                    self.quote(span)
                )));
            }
        })
    }

    /// `parameters/any(p: p/name eq 'ip' and p/value eq '…')`, in either order.
    fn any(
        &self,
        collection: &Path,
        variable: &str,
        body: &Expr,
        span: &std::ops::Range<usize>,
    ) -> Result<ActionFilter, AppError> {
        if self.property(collection, span)? != Property::Parameters {
            return Err(bad(format!(
                "any is supported on parameters only (in {})",
                self.quote(span)
            )));
        }
        let shape = || {
            bad(format!(
                "parameters/any takes exactly {variable}/name eq '…' and {variable}/value eq '…' (in {})",
                self.quote(span)
            ))
        };
        let Expr::And(terms) = body else {
            return Err(shape());
        };
        let (mut name, mut value) = (None, None);
        for term in terms {
            let Expr::Compare {
                path,
                op: CompareOp::Eq,
                value: literal,
                ..
            } = term
            else {
                return Err(shape());
            };
            let [var, member] = path.0.as_slice() else {
                return Err(shape());
            };
            if var != variable {
                return Err(shape());
            }
            let slot = if member.eq_ignore_ascii_case("name") {
                &mut name
            } else if member.eq_ignore_ascii_case("value") {
                &mut value
            } else {
                return Err(shape());
            };
            if slot.replace(self.text(literal, span)?).is_some() {
                return Err(shape());
            }
        }
        let (Some(name), Some(value)) = (name, value) else {
            return Err(shape());
        };
        Ok(ActionFilter {
            parameter: Some(filter_parameter("$filter.parameters", &name, value)?),
            ..ActionFilter::default()
        })
    }

    fn text(&self, literal: &Literal, span: &std::ops::Range<usize>) -> Result<String, AppError> {
        match literal {
            Literal::Text(t) | Literal::Enum(t) => filter_text(FIELD, t.clone()),
            other => Err(bad(format!(
                "expected a quoted string, not {} (in {})",
                shorten(&other.describe()),
                self.quote(span)
            ))),
        }
    }

    fn id(&self, literal: &Literal, span: &std::ops::Range<usize>) -> Result<Uuid, AppError> {
        match literal {
            Literal::Guid(g) => Ok(*g),
            Literal::Text(t) => Uuid::parse_str(t).map_err(|_| {
                bad(format!(
                    "'{}' is not an action id (in {})",
                    shorten(t),
                    self.quote(span)
                ))
            }),
            other => Err(bad(format!(
                "{} is not an action id (in {})",
                shorten(&other.describe()),
                self.quote(span)
            ))),
        }
    }

    fn status(
        &self,
        literal: &Literal,
        span: &std::ops::Range<usize>,
    ) -> Result<ActionStatus, AppError> {
        let text = self.text(literal, span)?;
        ActionStatus::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(&text))
            .ok_or_else(|| {
                bad(format!(
                    "'{}' is not a status (in {}); statuses are NotStarted, Running, Completed, Failed and Canceled",
                    shorten(&text),
                    self.quote(span)
                ))
            })
    }

    fn instant(
        &self,
        literal: &Literal,
        span: &std::ops::Range<usize>,
    ) -> Result<DateTime<Utc>, AppError> {
        match literal {
            Literal::DateTime(at) => Ok(*at),
            Literal::Text(t) => DateTime::parse_from_rfc3339(t)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    bad(format!(
                        "'{}' is not a date-time (in {}); write 2026-12-01T10:00:00Z",
                        shorten(t),
                        self.quote(span)
                    ))
                }),
            other => Err(bad(format!(
                "{} is not a date-time (in {}); write 2026-12-01T10:00:00Z",
                shorten(&other.describe()),
                self.quote(span)
            ))),
        }
    }
}

/// The filter that holds where `filter` does not.
fn negate(filter: ActionFilter) -> ActionFilter {
    ActionFilter {
        not: Some(Box::new(filter)),
        ..ActionFilter::default()
    }
}

fn catalog_names() -> String {
    CATALOG
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::rest::odata::parse;

    fn translate(source: &str) -> Result<ActionFilter, String> {
        let expr = parse(source).map_err(|e| e.0)?;
        to_domain(&expr, source).map_err(|e| e.to_string())
    }

    #[test]
    fn equality_on_list_properties_fills_their_lists() {
        let f = translate("status eq 'running'").unwrap();
        assert_eq!(f.statuses, Some(vec![ActionStatus::Running]));
        let f = translate("name in ('BlockIp', 'blockurl')").unwrap();
        assert_eq!(f.names, Some(vec!["blockIp", "blockUrl"]));
        let f = translate("vendorInformation/provider eq 'blocklist'").unwrap();
        assert_eq!(f.providers, Some(vec!["blocklist".to_owned()]));
        let f = translate("status eq microsoft.graph.operationStatus'Failed'").unwrap();
        assert_eq!(f.statuses, Some(vec![ActionStatus::Failed]));
    }

    #[test]
    fn ne_is_the_negation_of_eq() {
        let f = translate("user ne 'bob'").unwrap();
        assert_eq!(
            f.not.as_deref().and_then(|n| n.user.as_deref()),
            Some("bob")
        );
    }

    #[test]
    fn in_on_single_valued_properties_is_an_or() {
        let f = translate("appId in ('a', 'b')").unwrap();
        let or = f.or.unwrap();
        assert_eq!(or.len(), 2);
        assert_eq!(or[1].app_id.as_deref(), Some("b"));
    }

    #[test]
    fn time_comparisons_become_bounds() {
        let f = translate("createdDateTime eq 2026-01-01T00:00:00Z").unwrap();
        assert_eq!(f.times.len(), 2);
        let f = translate("lastActionDateTime lt '2026-01-01T00:00:00Z'").unwrap();
        assert_eq!(f.times[0].timestamp, Timestamp::LastAction);
        assert_eq!(f.times[0].comparison, Comparison::Before);
    }

    #[test]
    fn startswith_on_status_and_name_expands_to_known_values() {
        let f = translate("startswith(status, 'c')").unwrap();
        assert_eq!(
            f.statuses,
            Some(vec![ActionStatus::Completed, ActionStatus::Canceled])
        );
        let f = translate("startswith(name, 'zzz')").unwrap();
        assert_eq!(f.names, Some(vec![]));
        let f = translate("startswith(clientContext, 'ticket-')").unwrap();
        assert_eq!(f.prefixes[0].field, TextField::ClientContext);
    }

    #[test]
    fn parameters_any_takes_name_and_value_in_either_order() {
        let f = translate("parameters/any(x: x/value eq '10.0.0.1' and x/name eq 'IP')").unwrap();
        let p = f.parameter.unwrap();
        assert_eq!((p.name.as_str(), p.value.as_str()), ("ip", "10.0.0.1"));
        for wrong in [
            "parameters/any(p: p/name eq 'ip')",
            "parameters/any(p: p/name eq 'ip' or p/value eq '1')",
            "parameters/any(p: q/name eq 'ip' and p/value eq '1')",
            "parameters/any(p: p/name eq 'ip' and p/name eq 'url')",
            "states/any(p: p/name eq 'ip' and p/value eq '1')",
        ] {
            assert!(translate(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn unsupported_expressions_are_named_in_the_error() {
        for (source, quoted) in [
            ("actionReason eq 'x'", "actionReason"),
            ("name gt 'a'", "name gt 'a'"),
            ("createdDateTime in (2026-01-01)", "createdDateTime in"),
            (
                "startswith(createdDateTime, '2026')",
                "startswith(createdDateTime",
            ),
            ("status eq 'Paused'", "Paused"),
            ("name eq 'blockFoo'", "blockFoo"),
            ("id eq 'not-a-guid'", "not-a-guid"),
            ("clientContext eq null", "null"),
            ("createdDateTime ge 'yesterday'", "yesterday"),
        ] {
            let message = translate(source).unwrap_err();
            assert!(message.contains(quoted), "{source}: {message}");
        }
    }

    #[test]
    fn nesting_past_the_domain_limit_is_refused() {
        let deep = "not (not (not (not (not (status eq 'Running')))))";
        assert!(translate(deep).unwrap_err().contains("nest"));
    }
}

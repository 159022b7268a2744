//! Security actions: the request to invoke one, its validated form, and the
//! stored action as the rest of the gateway reads it.

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

use super::catalog::{ActionDefinition, ParameterKind, find_action};
use super::indicator::{Indicator, shorten};
use super::providers::ProviderDirectory;
use super::status::ActionStatus;
use super::text::check_text;
use crate::error::AppError;

/// Most parameters one action may carry.
pub(crate) const MAX_PARAMETERS: usize = 20;
/// Longest parameter value, in characters.
pub(crate) const MAX_PARAMETER_VALUE: usize = 2048;
/// Longest `actionReason`, in characters.
pub(crate) const MAX_ACTION_REASON: usize = 1000;
/// Longest `clientContext`, in characters.
pub(crate) const MAX_CLIENT_CONTEXT: usize = 256;
/// Most actions one bulk invoke takes (Defender's import takes as many).
pub(crate) const MAX_BULK_INVOKE: usize = 500;
/// Longest vendor information field, in characters.
pub(crate) const MAX_VENDOR_FIELD: usize = 256;

/// Who makes a change: a caller of the API (from its token) or the executor.
/// Every change is scoped to the actor's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Actor {
    pub tenant_id: String,
    pub app_id: String,
    pub user: String,
}

/// The app and user of the executor's state rows.
pub const EXECUTOR_APP: &str = "actiongate";
pub const EXECUTOR_USER: &str = "executor";

impl Actor {
    /// The executor, acting in `tenant`; its state rows name it.
    pub(crate) fn executor(tenant_id: &str) -> Actor {
        Actor {
            tenant_id: tenant_id.to_owned(),
            app_id: EXECUTOR_APP.to_owned(),
            user: EXECUTOR_USER.to_owned(),
        }
    }
}

/// A request to invoke an action, as the caller sent it: nothing checked yet.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActionRequest {
    pub name: String,
    pub action_reason: Option<String>,
    pub parameters: Vec<(String, String)>,
    pub vendor: Option<VendorRequest>,
    pub client_context: Option<String>,
}

/// The caller's choice of provider, as sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct VendorRequest {
    pub provider: Option<String>,
    pub provider_version: Option<String>,
    pub sub_provider: Option<String>,
    pub vendor: Option<String>,
}

/// A name and a value, as in Graph's `keyValuePair`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Parameter {
    pub name: String,
    pub value: String,
}

/// Which provider executes an action, as in Graph's `securityVendorInformation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorInformation {
    pub provider: String,
    pub provider_version: Option<String>,
    pub sub_provider: Option<String>,
    pub vendor: Option<String>,
}

/// Why an action failed, as in Graph's `resultInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: i32,
    pub message: String,
    pub subcode: Option<i32>,
}

/// An action that passed validation, ready to be stored. Nothing downstream
/// checks it again.
#[derive(Debug, Clone)]
pub(crate) struct NewAction {
    pub definition: &'static ActionDefinition,
    pub action_reason: Option<String>,
    /// Canonical names and values, in the caller's order.
    pub parameters: Vec<Parameter>,
    pub vendor: VendorInformation,
    pub client_context: Option<String>,
    /// A digest of everything above: the same input gives the same digest, so a
    /// reused `clientContext` can be told a replay or a conflict.
    pub fingerprint: String,
    /// The trace context of the invoking request (see [`Action`]): none
    /// after validation, set by the service that stores the action. Not
    /// part of the input, so not of the fingerprint.
    pub trace_context: Option<String>,
}

impl NewAction {
    /// Validates a request against the catalog and the configured providers.
    /// Each error names the input field that is wrong.
    pub(crate) fn validate(
        request: ActionRequest,
        tenant: &str,
        providers: &ProviderDirectory,
        now: DateTime<Utc>,
    ) -> Result<NewAction, AppError> {
        check_text("input.name", &request.name, 64, false)?;
        let definition = find_action(&request.name).ok_or_else(|| {
            AppError::bad_input(
                "input.name",
                format!(
                    "unknown action '{}'; actionCatalog lists the actions",
                    shorten(&request.name)
                ),
            )
        })?;

        let action_reason = match request.action_reason {
            Some(reason) => {
                check_text("input.actionReason", &reason, MAX_ACTION_REASON, true)?;
                Some(reason)
            }
            None => None,
        };
        let client_context = match request.client_context {
            Some(context) => {
                check_text("input.clientContext", &context, MAX_CLIENT_CONTEXT, false)?;
                if context.is_empty() {
                    return Err(AppError::bad_input(
                        "input.clientContext",
                        "clientContext must not be empty; omit it instead",
                    ));
                }
                Some(context)
            }
            None => None,
        };

        let parameters = validate_parameters(definition, request.parameters, now)?;
        let vendor = validate_vendor(definition, request.vendor, tenant, providers)?;
        let fingerprint = fingerprint(definition, &action_reason, &parameters, &vendor);
        Ok(NewAction {
            definition,
            action_reason,
            parameters,
            vendor,
            client_context,
            fingerprint,
            trace_context: None,
        })
    }
}

/// The parameters in canonical form: the indicator well-formed, the expiry
/// in the future, each parameter once, the indicator present.
fn validate_parameters(
    definition: &ActionDefinition,
    raw: Vec<(String, String)>,
    now: DateTime<Utc>,
) -> Result<Vec<Parameter>, AppError> {
    if raw.is_empty() {
        return Err(AppError::bad_input(
            "input.parameters",
            format!(
                "parameters must not be empty: {} takes '{}'",
                definition.name,
                definition.indicator_parameter().name
            ),
        ));
    }
    if raw.len() > MAX_PARAMETERS {
        return Err(AppError::bad_input(
            "input.parameters",
            format!("at most {MAX_PARAMETERS} parameters are allowed"),
        ));
    }
    let mut parameters = Vec::with_capacity(raw.len());
    let mut has_indicator = false;
    for (i, (name, value)) in raw.into_iter().enumerate() {
        let name_field = format!("input.parameters[{i}].name");
        let value_field = format!("input.parameters[{i}].value");
        check_text(&name_field, &name, 64, false)?;
        check_text(&value_field, &value, MAX_PARAMETER_VALUE, false)?;
        let known = definition.parameter(&name).ok_or_else(|| {
            let names: Vec<_> = definition.parameters.iter().map(|p| p.name).collect();
            AppError::bad_input(
                &name_field,
                format!(
                    "{} takes no parameter '{}' (it takes {})",
                    definition.name,
                    shorten(&name),
                    names.join(", ")
                ),
            )
        })?;
        if parameters.iter().any(|p: &Parameter| p.name == known.name) {
            return Err(AppError::bad_input(
                &name_field,
                format!("parameter '{}' is given twice", known.name),
            ));
        }
        let canonical = match known.kind {
            ParameterKind::Indicator(kind) => {
                let parsed = Indicator::parse(kind, value.trim())
                    .map_err(|msg| AppError::bad_input(&value_field, msg))?;
                has_indicator = true;
                parsed.to_string()
            }
            ParameterKind::ExpirationDateTime => {
                let at = DateTime::parse_from_rfc3339(value.trim())
                    .map_err(|_| {
                        AppError::bad_input(
                            &value_field,
                            "expirationDateTime must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z",
                        )
                    })?
                    .with_timezone(&Utc);
                if at <= now {
                    return Err(AppError::bad_input(
                        &value_field,
                        "expirationDateTime must be in the future",
                    ));
                }
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            }
        };
        parameters.push(Parameter {
            name: known.name.to_owned(),
            value: canonical,
        });
    }
    if !has_indicator {
        return Err(AppError::bad_input(
            "input.parameters",
            format!(
                "{} requires the parameter '{}'",
                definition.name,
                definition.indicator_parameter().name
            ),
        ));
    }
    Ok(parameters)
}

fn validate_vendor(
    definition: &ActionDefinition,
    request: Option<VendorRequest>,
    tenant: &str,
    providers: &ProviderDirectory,
) -> Result<VendorInformation, AppError> {
    let request = request.unwrap_or_default();
    for (field, value) in [
        ("input.vendorInformation.provider", &request.provider),
        (
            "input.vendorInformation.providerVersion",
            &request.provider_version,
        ),
        ("input.vendorInformation.subProvider", &request.sub_provider),
        ("input.vendorInformation.vendor", &request.vendor),
    ] {
        if let Some(value) = value {
            check_text(field, value, MAX_VENDOR_FIELD, false)?;
        }
    }
    let provider = providers.resolve(request.provider.as_deref(), definition, tenant)?;
    Ok(VendorInformation {
        provider: provider.name.clone(),
        provider_version: request
            .provider_version
            .or_else(|| provider.version.clone()),
        sub_provider: request.sub_provider,
        vendor: request.vendor.or_else(|| Some(provider.vendor.clone())),
    })
}

fn fingerprint(
    definition: &ActionDefinition,
    reason: &Option<String>,
    parameters: &[Parameter],
    vendor: &VendorInformation,
) -> String {
    let mut sorted: Vec<_> = parameters.iter().map(|p| (&p.name, &p.value)).collect();
    sorted.sort();
    let canonical = serde_json::json!({
        "name": definition.name,
        "actionReason": reason,
        "parameters": sorted,
        "provider": vendor.provider,
        "providerVersion": vendor.provider_version,
        "subProvider": vendor.sub_provider,
        "vendor": vendor.vendor,
    });
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored action, as every reader of the store sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub id: Uuid,
    pub tenant_id: String,
    pub app_id: String,
    pub user: String,
    pub name: String,
    pub action_reason: Option<String>,
    pub vendor: VendorInformation,
    pub client_context: Option<String>,
    pub status: ActionStatus,
    pub error: Option<ErrorInfo>,
    pub created_at: DateTime<Utc>,
    pub last_action_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// The trace context of the request that invoked it (or that asked for
    /// its revert), as `telemetry::trace` stored it (opaque here): the
    /// executor's attempts continue that trace and pass it on to the provider.
    pub trace_context: Option<String>,
}

/// One entry of an action's state history.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The row id: increases with every state row of the database.
    pub id: i64,
    /// The event cursor, once the event relay has numbered the row.
    pub seq: Option<i64>,
    pub action_id: Uuid,
    pub app_id: String,
    pub user: String,
    pub status: ActionStatus,
    pub previous_status: Option<ActionStatus>,
    pub occurred_at: DateTime<Utc>,
    /// Why, when the transition has more to say (a revert that failed).
    pub detail: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::providers::ProviderEntry;

    fn providers() -> ProviderDirectory {
        ProviderDirectory::new(vec![ProviderEntry::blocklist_default()])
    }

    fn request(name: &str, params: &[(&str, &str)]) -> ActionRequest {
        ActionRequest {
            name: name.to_owned(),
            parameters: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..ActionRequest::default()
        }
    }

    fn field_of(result: Result<NewAction, AppError>) -> String {
        match result {
            Err(AppError::BadUserInput { field, .. }) => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn the_graph_docs_example_is_accepted_in_canonical_form() {
        let action = NewAction::validate(
            request("BlockIp", &[("IP", "1.2.3.4")]),
            "t",
            &providers(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(action.definition.name, "blockIp");
        assert_eq!(
            action.parameters,
            vec![Parameter {
                name: "ip".into(),
                value: "1.2.3.4".into()
            }]
        );
        assert_eq!(action.vendor.provider, "blocklist");
    }

    #[test]
    fn each_invalid_field_is_named() {
        let now = Utc::now();
        let p = providers();
        let field = |name: &str, params: &[(&str, &str)]| {
            field_of(NewAction::validate(request(name, params), "t", &p, now))
        };
        assert_eq!(field("blockFoo", &[("ip", "1.2.3.4")]), "input.name");
        assert_eq!(field("blockIp", &[]), "input.parameters");
        assert_eq!(
            field("blockIp", &[("ip", "1.2.3")]),
            "input.parameters[0].value"
        );
        assert_eq!(
            field("blockIp", &[("ip", "1.2.3.4"), ("port", "80")]),
            "input.parameters[1].name"
        );
        assert_eq!(
            field("blockIp", &[("expirationDateTime", "2999-01-01T00:00:00Z")]),
            "input.parameters"
        );
        assert_eq!(
            field("blockIp", &[("ip", "1.2.3.4"), ("IP", "1.2.3.5")]),
            "input.parameters[1].name"
        );
        assert_eq!(
            field(
                "blockIp",
                &[
                    ("ip", "1.2.3.4"),
                    ("expirationDateTime", "2001-01-01T00:00:00Z")
                ]
            ),
            "input.parameters[1].value"
        );
        let mut long_reason = request("blockIp", &[("ip", "1.2.3.4")]);
        long_reason.action_reason = Some("r".repeat(MAX_ACTION_REASON + 1));
        assert_eq!(
            field_of(NewAction::validate(long_reason, "t", &p, now)),
            "input.actionReason"
        );
        let mut long_context = request("blockIp", &[("ip", "1.2.3.4")]);
        long_context.client_context = Some("c".repeat(MAX_CLIENT_CONTEXT + 1));
        assert_eq!(
            field_of(NewAction::validate(long_context, "t", &p, now)),
            "input.clientContext"
        );
        let mut unknown_provider = request("blockIp", &[("ip", "1.2.3.4")]);
        unknown_provider.vendor = Some(VendorRequest {
            provider: Some("nope".into()),
            ..Default::default()
        });
        assert_eq!(
            field_of(NewAction::validate(unknown_provider, "t", &p, now)),
            "input.vendorInformation.provider"
        );
    }

    #[test]
    fn limits_are_inclusive() {
        let now = Utc::now();
        let mut ok = request("blockIp", &[("ip", "1.2.3.4")]);
        ok.action_reason = Some("r".repeat(MAX_ACTION_REASON));
        ok.client_context = Some("c".repeat(MAX_CLIENT_CONTEXT));
        assert!(NewAction::validate(ok, "t", &providers(), now).is_ok());
    }

    #[test]
    fn the_fingerprint_ignores_parameter_order_and_spelling_but_not_values() {
        let now = Utc::now();
        let p = providers();
        let a = NewAction::validate(
            request(
                "blockIp",
                &[
                    ("ip", "10.0.0.1"),
                    ("expirationDateTime", "2999-01-01T00:00:00Z"),
                ],
            ),
            "t",
            &p,
            now,
        )
        .unwrap();
        let b = NewAction::validate(
            request(
                "BLOCKIP",
                &[
                    ("expirationdatetime", "2999-01-01T00:00:00+00:00"),
                    ("IP", "10.0.0.1"),
                ],
            ),
            "t",
            &p,
            now,
        )
        .unwrap();
        let c =
            NewAction::validate(request("blockIp", &[("ip", "10.0.0.2")]), "t", &p, now).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }
}

//! Graph's JSON representation of a `securityAction`: the entity as the face
//! writes it, `$select` over it, and the body of a create as it reads it.
//!
//! The types double as the OpenAPI schemas of the face, so the document and
//! the answers come from the same code.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::action::{
    Action, ActionRequest, ErrorInfo, Parameter, StateChange, VendorRequest,
};
use crate::domain::status::ActionStatus;
use crate::error::AppError;

/// Where an action stands, as Graph's `operationStatus` writes it, plus
/// `Canceled`.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[schema(as = operationStatus)]
pub(super) enum OperationStatus {
    NotStarted,
    Running,
    Completed,
    Failed,
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

/// A name and a value (Graph's `keyValuePair`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = keyValuePair)]
pub(super) struct KeyValuePair {
    pub name: String,
    pub value: String,
}

/// Which provider executes an action (Graph's `securityVendorInformation`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = securityVendorInformation)]
pub(super) struct SecurityVendorInformation {
    pub provider: String,
    pub provider_version: Option<String>,
    pub sub_provider: Option<String>,
    pub vendor: Option<String>,
}

/// Why an action failed (Graph's `resultInfo`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = resultInfo)]
pub(super) struct ResultInfo {
    pub code: i32,
    pub message: String,
    pub subcode: Option<i32>,
}

/// One transition of an action (Graph's `securityActionState`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = securityActionState)]
pub(super) struct SecurityActionState {
    pub app_id: String,
    pub status: OperationStatus,
    pub updated_date_time: DateTime<Utc>,
    pub user: String,
}

/// A security action, as Graph's `securityAction` writes it. With `$select`
/// only the selected properties are present.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = securityAction)]
pub(super) struct SecurityAction {
    /// The `@odata.context` of a single entity; absent inside a collection.
    #[serde(rename = "@odata.context", skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub odata_context: Option<String>,
    #[schema(required = false)]
    pub id: Uuid,
    #[schema(required = false)]
    pub name: String,
    #[schema(required = false)]
    pub action_reason: Option<String>,
    /// From the caller's token.
    #[schema(required = false)]
    pub app_id: String,
    /// From the caller's token.
    #[schema(required = false)]
    pub azure_tenant_id: String,
    #[schema(required = false)]
    pub client_context: Option<String>,
    #[schema(required = false)]
    pub completed_date_time: Option<DateTime<Utc>>,
    #[schema(required = false)]
    pub created_date_time: DateTime<Utc>,
    #[schema(required = false)]
    pub error_info: Option<ResultInfo>,
    #[schema(required = false)]
    pub last_action_date_time: DateTime<Utc>,
    #[schema(required = false)]
    pub parameters: Vec<KeyValuePair>,
    #[schema(required = false)]
    pub states: Vec<SecurityActionState>,
    #[schema(required = false)]
    pub status: OperationStatus,
    /// From the caller's token.
    #[schema(required = false)]
    pub user: String,
    #[schema(required = false)]
    pub vendor_information: SecurityVendorInformation,
}

/// Every property of the entity, in the order Graph documents them.
pub(super) const PROPERTIES: [&str; 15] = [
    "id",
    "name",
    "actionReason",
    "appId",
    "azureTenantId",
    "clientContext",
    "completedDateTime",
    "createdDateTime",
    "errorInfo",
    "lastActionDateTime",
    "parameters",
    "states",
    "status",
    "user",
    "vendorInformation",
];

impl SecurityAction {
    pub(super) fn new(
        action: Action,
        parameters: Vec<Parameter>,
        states: Vec<StateChange>,
    ) -> Self {
        SecurityAction {
            odata_context: None,
            id: action.id,
            name: action.name,
            action_reason: action.action_reason,
            app_id: action.app_id,
            azure_tenant_id: action.tenant_id,
            client_context: action.client_context,
            completed_date_time: action.completed_at,
            created_date_time: action.created_at,
            error_info: action.error.map(|e: ErrorInfo| ResultInfo {
                code: e.code,
                message: e.message,
                subcode: e.subcode,
            }),
            last_action_date_time: action.last_action_at,
            parameters: parameters
                .into_iter()
                .map(|p| KeyValuePair {
                    name: p.name,
                    value: p.value,
                })
                .collect(),
            states: states
                .into_iter()
                .map(|s| SecurityActionState {
                    app_id: s.app_id,
                    status: s.status.into(),
                    updated_date_time: s.occurred_at,
                    user: s.user,
                })
                .collect(),
            status: action.status.into(),
            user: action.user,
            vendor_information: SecurityVendorInformation {
                provider: action.vendor.provider,
                provider_version: action.vendor.provider_version,
                sub_provider: action.vendor.sub_provider,
                vendor: action.vendor.vendor,
            },
        }
    }

    /// The JSON object, with only the `selected` properties when given.
    pub(super) fn to_json(&self, selected: Option<&[&'static str]>) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(selected), Value::Object(map)) = (selected, &mut value) {
            map.retain(|key, _| key.starts_with('@') || selected.contains(&key.as_str()));
        }
        value
    }
}

/// A page of actions (an OData collection).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = securityActionCollectionResponse)]
pub(super) struct SecurityActionCollection {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    /// With `$count=true`: how many actions pass `$filter`, on every page.
    #[serde(rename = "@odata.count", skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub odata_count: Option<u64>,
    /// The actions, each with the selected properties only.
    #[schema(value_type = Vec<SecurityAction>)]
    pub value: Vec<Value>,
    /// The absolute URL of the next page, when there is one.
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub odata_next_link: Option<String>,
}

/// The body of a create: Graph's `securityAction` with the properties a
/// caller sets. `appId`, `azureTenantId` and `user` come from the token, and
/// the read-only properties from the gateway: when sent, they are ignored.
#[derive(Debug, ToSchema)]
#[schema(as = securityActionCreate, rename_all = "camelCase")]
#[allow(dead_code)] // The schema of the body; `action_request` reads it.
pub(super) struct SecurityActionCreate {
    /// A catalog action, matched case-insensitively (`BlockIp` works).
    name: String,
    /// Why; at most 1,000 characters.
    action_reason: Option<String>,
    /// Names match case-insensitively (`IP` works).
    parameters: Vec<KeyValuePair>,
    vendor_information: Option<VendorInformationInput>,
    /// An idempotency key of at most 256 characters, per tenant and app.
    client_context: Option<String>,
}

/// The provider to execute an action; `provider` may be omitted when a
/// default provider is configured (or only one).
#[derive(Debug, ToSchema)]
#[schema(as = securityVendorInformationInput, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct VendorInformationInput {
    provider: Option<String>,
    provider_version: Option<String>,
    sub_provider: Option<String>,
    vendor: Option<String>,
}

/// Properties a create body may carry that the gateway sets itself.
const IGNORED_ON_CREATE: [&str; 10] = [
    "id",
    "appId",
    "azureTenantId",
    "user",
    "status",
    "states",
    "errorInfo",
    "createdDateTime",
    "lastActionDateTime",
    "completedDateTime",
];

/// Reads a create body into the domain's request. Each error names the
/// property (`parameters[0].value`); OData annotations (`@odata.type`) and
/// the properties the gateway sets are ignored; any other property is refused.
pub(super) fn action_request(body: &Value) -> Result<ActionRequest, AppError> {
    let object = body.as_object().ok_or_else(|| {
        AppError::bad_input(
            "body",
            "the body must be a securityAction object: {\"name\": \"blockIp\", \"parameters\": [{\"name\": \"ip\", \"value\": \"…\"}]}",
        )
    })?;
    check_properties(
        object,
        "",
        &[
            "name",
            "actionReason",
            "parameters",
            "vendorInformation",
            "clientContext",
        ],
        &IGNORED_ON_CREATE,
    )?;
    let name = match object.get("name") {
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Err(wrong_type("name", "a string")),
        None => return Err(AppError::bad_input("name", "name is required")),
    };
    let parameters = match object.get("parameters") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("parameters[{i}]");
                let pair = item
                    .as_object()
                    .ok_or_else(|| wrong_type(&path, "a {\"name\", \"value\"} object"))?;
                check_properties(pair, &path, &["name", "value"], &[])?;
                Ok((
                    required_string(pair, &path, "name")?,
                    required_string(pair, &path, "value")?,
                ))
            })
            .collect::<Result<Vec<_>, AppError>>()?,
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(wrong_type("parameters", "an array")),
    };
    let vendor = match object.get("vendorInformation") {
        Some(Value::Object(v)) => {
            check_properties(
                v,
                "vendorInformation",
                &["provider", "providerVersion", "subProvider", "vendor"],
                &[],
            )?;
            Some(VendorRequest {
                provider: optional_string(v, "vendorInformation", "provider")?,
                provider_version: optional_string(v, "vendorInformation", "providerVersion")?,
                sub_provider: optional_string(v, "vendorInformation", "subProvider")?,
                vendor: optional_string(v, "vendorInformation", "vendor")?,
            })
        }
        Some(Value::Null) | None => None,
        Some(_) => return Err(wrong_type("vendorInformation", "an object")),
    };
    Ok(ActionRequest {
        name,
        action_reason: optional_string(object, "", "actionReason")?,
        parameters,
        vendor,
        client_context: optional_string(object, "", "clientContext")?,
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn wrong_type(path: &str, expected: &str) -> AppError {
    AppError::bad_input(path, format!("{path} must be {expected}"))
}

/// Refuses a property outside `known` and `ignored`; annotations pass.
fn check_properties(
    object: &Map<String, Value>,
    path: &str,
    known: &[&str],
    ignored: &[&str],
) -> Result<(), AppError> {
    for key in object.keys() {
        if key.starts_with('@') || known.contains(&key.as_str()) || ignored.contains(&key.as_str())
        {
            continue;
        }
        let property = join(path, key);
        return Err(AppError::bad_input(
            &property,
            format!(
                "'{}' is not a property of securityAction that can be set",
                crate::domain::indicator::shorten(&property)
            ),
        ));
    }
    Ok(())
}

fn required_string(object: &Map<String, Value>, path: &str, key: &str) -> Result<String, AppError> {
    optional_string(object, path, key)?.ok_or_else(|| {
        let property = join(path, key);
        AppError::bad_input(&property, format!("{property} is required"))
    })
}

fn optional_string(
    object: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, AppError> {
    match object.get(key) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Null) | None => Ok(None),
        Some(_) => Err(wrong_type(&join(path, key), "a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(result: Result<ActionRequest, AppError>) -> String {
        match result {
            Err(AppError::BadUserInput { field, .. }) => field,
            other => panic!("expected BAD_USER_INPUT, got {other:?}"),
        }
    }

    #[test]
    fn graphs_own_example_body_is_read() {
        let request = action_request(&json!({
            "@odata.type": "#microsoft.graph.securityAction",
            "name": "BlockIp",
            "actionReason": "Test",
            "parameters": [{"@odata.type": "microsoft.graph.keyValuePair", "name": "IP", "value": "1.2.3.4"}],
            "vendorInformation": {"provider": "blocklist", "vendor": "Contoso"},
            "appId": "ignored", "azureTenantId": "ignored", "user": "ignored", "status": "Completed"
        }))
        .unwrap();
        assert_eq!(request.name, "BlockIp");
        assert_eq!(request.parameters, vec![("IP".into(), "1.2.3.4".into())]);
        assert_eq!(
            request.vendor.unwrap().provider.as_deref(),
            Some("blocklist")
        );
    }

    #[test]
    fn each_wrong_property_is_named() {
        assert_eq!(field_of(action_request(&json!([]))), "body");
        assert_eq!(field_of(action_request(&json!({}))), "name");
        assert_eq!(field_of(action_request(&json!({"name": 1}))), "name");
        assert_eq!(
            field_of(action_request(
                &json!({"name": "blockIp", "parameters": [{"name": "ip"}]})
            )),
            "parameters[0].value"
        );
        assert_eq!(
            field_of(action_request(
                &json!({"name": "blockIp", "parameters": [{"name": "ip", "value": 5}]})
            )),
            "parameters[0].value"
        );
        assert_eq!(
            field_of(action_request(&json!({"name": "blockIp", "color": "red"}))),
            "color"
        );
        assert_eq!(
            field_of(action_request(
                &json!({"name": "blockIp", "vendorInformation": {"region": "x"}})
            )),
            "vendorInformation.region"
        );
    }

    #[test]
    fn select_keeps_only_the_chosen_properties_and_annotations() {
        let action = SecurityAction {
            odata_context: Some("ctx".into()),
            id: Uuid::nil(),
            name: "blockIp".into(),
            action_reason: None,
            app_id: "a".into(),
            azure_tenant_id: "t".into(),
            client_context: None,
            completed_date_time: None,
            created_date_time: Utc::now(),
            error_info: None,
            last_action_date_time: Utc::now(),
            parameters: vec![],
            states: vec![],
            status: OperationStatus::NotStarted,
            user: "u".into(),
            vendor_information: SecurityVendorInformation {
                provider: "p".into(),
                provider_version: None,
                sub_provider: None,
                vendor: None,
            },
        };
        let all = action.to_json(None);
        assert_eq!(all.as_object().unwrap().len(), PROPERTIES.len() + 1);
        assert_eq!(all["status"], "NotStarted");
        let some = action.to_json(Some(&["status", "id"]));
        let keys: Vec<_> = some.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["@odata.context", "id", "status"]);
    }
}

//! `POST /beta/security/securityActions/$batch`: many actions in one request,
//! as `invokeActions` does in GraphQL. The body is a JSON array of create
//! bodies; the answer is shaped like Graph's JSON batching answer: one
//! response per item, in order, each with the `id` (the item's index), the
//! status and the body a single create would have answered.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::endpoints::{context_url, json_body, read_options, represent};
use super::errors::{RestError, graph_code};
use super::options::QueryOptions;
use super::representation::{SecurityAction, SecurityActionCreate, action_request};
use super::{Access, base_url, serve};
use crate::domain::action::MAX_BULK_INVOKE;
use crate::error::AppError;
use crate::http::HttpState;
use crate::store::Invoked;

/// The answer to a batch: one response per item, in the items' order.
#[derive(Debug, ToSchema)]
#[schema(as = securityActionBatchAnswer)]
#[allow(dead_code)] // The schema of the answer; `invoke_batch` writes it.
pub(super) struct BatchAnswer {
    responses: Vec<BatchItemResponse>,
}

/// The outcome of one item.
#[derive(Debug, ToSchema)]
#[schema(as = securityActionBatchResponse)]
#[allow(dead_code)]
pub(super) struct BatchItemResponse {
    /// The item's index in the request, as a string.
    id: String,
    /// What a single create would have answered: 201 (stored), 200 (its
    /// `clientContext` replayed), 400 or 409.
    status: u16,
    /// The action, or the item's error.
    body: BatchItemBody,
}

/// A response's body.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = securityActionBatchResponseBody)]
#[serde(untagged)]
#[allow(dead_code)]
pub(super) enum BatchItemBody {
    Action(Box<SecurityAction>),
    Error(BatchItemError),
}

/// Why one item was refused; the others are not affected.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = securityActionBatchError)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchItemError {
    error: BatchItemErrorDetail,
}

/// Graph's name of the status, the message, and the gateway's stable code.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = securityActionBatchErrorDetail)]
pub(super) struct BatchItemErrorDetail {
    code: String,
    message: String,
    inner_error: BatchInnerError,
}

/// The gateway's stable code, as `extensions.code` in GraphQL.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = securityActionBatchInnerError)]
pub(super) struct BatchInnerError {
    code: String,
}

/// `POST /beta/security/securityActions/$batch`: invokes up to 500 actions.
/// 200 with one response per item; an item that is invalid fails alone.
#[utoipa::path(
    post,
    path = "/beta/security/securityActions/$batch",
    operation_id = "securityActions.batchCreate",
    tag = "securityActions",
    request_body(content = Vec<SecurityActionCreate>, content_type = "application/json"),
    responses((status = 200, description = "One response per item, in order", body = BatchAnswer)),
)]
pub(super) async fn invoke_batch(
    State(state): State<HttpState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (state, headers) = (&state, &headers);
    serve(state, headers, Access::Write, |caller| async move {
        read_options(state, &query, &[])?;
        let items = match json_body(headers, body)? {
            Some(Value::Array(items)) => items,
            _ => {
                return Err(RestError::bad_request(format!(
                    "the body must be a JSON array of at most {MAX_BULK_INVOKE} securityAction objects"
                )));
            }
        };
        let requests = items.iter().map(action_request).collect();
        let outcomes = state.services.invoke_many(&caller, requests).await?;

        let mut actions = Vec::new();
        let mut statuses = Vec::with_capacity(outcomes.len());
        let mut errors = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(Invoked::Created(action)) => {
                    statuses.push(Ok(StatusCode::CREATED));
                    actions.push(action);
                }
                Ok(Invoked::Replayed(action)) => {
                    statuses.push(Ok(StatusCode::OK));
                    actions.push(action);
                }
                Err(error) => {
                    statuses.push(Err(()));
                    errors.push(RestError::from(error));
                }
            }
        }
        let store = &state.services.store;
        let options = QueryOptions::default();
        let mut entities = represent(store, &caller.tenant_id, actions, &options)
            .await?
            .into_iter();
        let mut errors = errors.into_iter();
        let context = context_url(&base_url(state, headers), None, true);
        let mut responses = Vec::with_capacity(statuses.len());
        for (index, status) in statuses.into_iter().enumerate() {
            let (status, body) = match status {
                Ok(status) => {
                    let mut entity = entities
                        .next()
                        .ok_or_else(|| AppError::internal("an action without its representation"))?;
                    entity.odata_context = Some(context.clone());
                    (status, entity.to_json(None))
                }
                Err(()) => {
                    let error = errors
                        .next()
                        .ok_or_else(|| AppError::internal("an item without its error"))?;
                    (error.status, item_error(error))
                }
            };
            responses.push(json!({
                "id": index.to_string(),
                "status": status.as_u16(),
                "body": body,
            }));
        }
        Ok(Json(json!({ "responses": responses })).into_response())
    })
    .await
}

/// The body of an item's error.
fn item_error(error: RestError) -> Value {
    let body = BatchItemError {
        error: BatchItemErrorDetail {
            code: graph_code(error.status).to_owned(),
            message: error.message,
            inner_error: BatchInnerError {
                code: error.code.to_owned(),
            },
        },
    };
    serde_json::to_value(body).unwrap_or_default()
}

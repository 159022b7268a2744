//! GraphQL over HTTP: `POST /graphql` and, for queries only, `GET /graphql`.
//!
//! Follows the GraphQL-over-HTTP spec: a client that accepts
//! `application/graphql-response+json` gets that type and HTTP 400 for a
//! request that could not execute; one that accepts only `application/json`
//! gets 200 with the errors in the body. A missing or bad token is HTTP 401.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpState;
use super::admission::{admit, refusal_status};
use crate::auth::Principal;
use crate::error::codes;
use crate::graphql::execute::{Arrival, GraphqlBody, OperationLabel, Refusal, RequestId};
use crate::telemetry::{metrics, trace};

/// The media type of the GraphQL-over-HTTP spec.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";

/// `POST /graphql`
pub(crate) async fn post(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let request_id = RequestId::fresh();
    let span = trace::request_span!("graphql", "POST", request_id.0);
    let caller = trace::sent_by_caller(&headers);
    let format = ResponseFormat::from_accept(&headers);
    let response = trace::traced(span, caller, async move {
        if !is_json_content_type(&headers) {
            return error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::UNSUPPORTED_MEDIA_TYPE,
                "send the request as Content-Type: application/json",
                request_id,
            );
        }
        let body = match body {
            Ok(body) => body,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    codes::PAYLOAD_TOO_LARGE,
                    "the request body is too large",
                    request_id,
                );
            }
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "the request body could not be read",
                    request_id,
                );
            }
        };
        let principal = match authenticate(&state, &headers).await {
            Ok(principal) => principal,
            Err(response) => return response.with_request_id(request_id),
        };
        let request = match request_of_body(&body) {
            Ok(request) => request,
            Err(BodyRefusal::Batch) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    codes::BATCH_NOT_SUPPORTED,
                    "send one operation per request; batches are not accepted",
                    request_id,
                );
            }
            Err(BodyRefusal::NotGraphql) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    codes::BAD_REQUEST,
                    "the body is not a GraphQL request: {\"query\": \"…\", \"variables\": {…}}",
                    request_id,
                );
            }
        };
        execute(
            &state,
            request,
            principal,
            format,
            request_id,
            Arrival::Post,
        )
        .await
    })
    .await;
    format.applied_to(response)
}

/// Why a POST body is not one GraphQL request.
pub(crate) enum BodyRefusal {
    /// A JSON array: a batch.
    Batch,
    /// Not `{"query": …}` in JSON.
    NotGraphql,
}

/// The GraphQL request in a POST body.
pub(crate) fn request_of_body(body: &[u8]) -> Result<async_graphql::Request, BodyRefusal> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(BodyRefusal::Batch);
    }
    serde_json::from_slice::<GraphqlBody>(body)
        .map(GraphqlBody::into_request)
        .map_err(|_| BodyRefusal::NotGraphql)
}

/// `GET /graphql?query=…&variables=…&operationName=…`: queries only, so that a
/// link or an image tag can never change anything.
pub(crate) async fn get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let request_id = RequestId::fresh();
    let span = trace::request_span!("graphql", "GET", request_id.0);
    let caller = trace::sent_by_caller(&headers);
    let format = ResponseFormat::from_accept(&headers);
    let response = trace::traced(span, caller, async move {
        let principal = match authenticate(&state, &headers).await {
            Ok(principal) => principal,
            Err(response) => return response.with_request_id(request_id),
        };
        let Some(query) = params.get("query") else {
            return error_response(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "the query parameter 'query' is required",
                request_id,
            );
        };
        let mut request = async_graphql::Request::new(query.clone());
        if let Some(name) = params.get("operationName") {
            request = request.operation_name(name.clone());
        }
        if let Some(variables) = params.get("variables") {
            match serde_json::from_str(variables) {
                Ok(variables) => request = request.variables(variables),
                Err(_) => {
                    return error_response(
                        StatusCode::BAD_REQUEST,
                        codes::BAD_REQUEST,
                        "'variables' is not a JSON object",
                        request_id,
                    );
                }
            }
        }
        execute(&state, request, principal, format, request_id, Arrival::Get).await
    })
    .await;
    format.applied_to(response)
}

async fn authenticate(state: &HttpState, headers: &HeaderMap) -> Result<Principal, Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = state
        .auth
        .authenticate_header(header)
        .await
        .map_err(|err| {
            let mut response = error_body(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHENTICATED,
                &err.to_string(),
                None,
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        })?;
    trace::record_tenant(&principal.tenant_id);
    Ok(principal)
}

async fn execute(
    state: &HttpState,
    mut request: async_graphql::Request,
    principal: Principal,
    format: ResponseFormat,
    request_id: RequestId,
    arrival: Arrival,
) -> Response {
    if let Err(refusal) = admit(state, &principal, &mut request, arrival) {
        metrics::operation_refused(refusal.code);
        return refusal_response(&refusal, request_id);
    }
    let label = OperationLabel::of(&mut request);
    let Ok(executed) = state.graphql.execute(request, principal, request_id).await else {
        return error_response(
            StatusCode::GATEWAY_TIMEOUT,
            codes::TIMEOUT,
            "the request took longer than the gateway allows and was stopped",
            request_id,
        );
    };
    let status = match format {
        ResponseFormat::GraphqlResponseJson if executed.failed => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = if executed.request_error {
        serde_json::to_vec(&serde_json::json!({ "errors": executed.response.errors }))
    } else {
        serde_json::to_vec(&executed.response)
    };
    let body = match body {
        Ok(body) => body,
        Err(_) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                codes::INTERNAL_SERVER_ERROR,
                "internal server error",
                request_id,
            );
        }
    };
    let mut http = (status, body).into_response();
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // For the access log.
    http.extensions_mut().insert(label);
    http.with_request_id(request_id)
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media_type = value.split(';').next().unwrap_or("").trim();
    media_type.eq_ignore_ascii_case("application/json")
        || media_type.eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON)
}

/// Which media type the response is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseFormat {
    Json,
    GraphqlResponseJson,
}

impl ResponseFormat {
    fn from_accept(headers: &HeaderMap) -> ResponseFormat {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let wants_spec_type = accept.split(',').any(|part| {
            part.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(GRAPHQL_RESPONSE_JSON)
        });
        if wants_spec_type {
            ResponseFormat::GraphqlResponseJson
        } else {
            ResponseFormat::Json
        }
    }

    /// A response answered before execution (401, 413, 415, …) in the media
    /// type the client accepts, so a client that asked for
    /// `application/graphql-response+json` reads its errors too.
    fn applied_to(self, mut response: Response) -> Response {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == b"application/json");
        if is_json {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type()),
            );
        }
        response
    }

    fn content_type(self) -> &'static str {
        match self {
            ResponseFormat::Json => "application/json",
            ResponseFormat::GraphqlResponseJson => GRAPHQL_RESPONSE_JSON,
        }
    }
}

/// The response to a refused operation.
fn refusal_response(refusal: &Refusal, request_id: RequestId) -> Response {
    let status = refusal_status(refusal);
    let mut response = error_response(status, refusal.code, &refusal.message, request_id);
    if let Some(wait) = refusal.retry_after {
        let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    response
}

/// An error response in GraphQL form, before execution.
pub(crate) fn error_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: RequestId,
) -> Response {
    error_body(status, code, message, Some(request_id)).with_request_id(request_id)
}

fn error_body(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: Option<RequestId>,
) -> Response {
    let mut extensions = serde_json::json!({ "code": code });
    if let Some(id) = request_id {
        extensions["requestId"] = serde_json::Value::String(id.0.to_string());
    }
    let body = serde_json::json!({ "errors": [{ "message": message, "extensions": extensions }] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

trait WithRequestId {
    fn with_request_id(self, id: RequestId) -> Self;
}

impl WithRequestId for Response {
    fn with_request_id(mut self, id: RequestId) -> Response {
        if let Ok(value) = HeaderValue::from_str(&id.0.to_string()) {
            self.headers_mut().insert("x-request-id", value);
        }
        self
    }
}

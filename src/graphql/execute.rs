//! The one request pipeline of the GraphQL API, whatever carries it: check an
//! operation before anything runs (size, method, operation limits,
//! introspection), run it with the caller and per-request loaders attached,
//! within the request deadline, and give every error a stable
//! `extensions.code`.
//!
//! `http::graphql` (POST and GET `/graphql`) and `http::ws` (each WebSocket
//! operation) are its two transports; they add what is theirs (reading the
//! request, the caller's rate limits, the response format).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerError, Value};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use super::ActionSchema;
use super::documents::ParsedDocuments;
use super::limits::{
    LimitExceeded, OperationLimits, asks_for_introspection, check_document, check_size,
};
use super::loaders::RequestLoaders;
use super::nesting::{self, MAX_NESTING};
use crate::auth::Principal;
use crate::error::codes;
use crate::service::Services;
use crate::telemetry::{metrics, trace};

/// A GraphQL request as JSON: the body of a POST (per the GraphQL-over-HTTP
/// spec) and the payload of a WebSocket `subscribe`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GraphqlBody {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<async_graphql::Variables>,
    #[serde(default)]
    extensions: Option<async_graphql::Extensions>,
}

impl GraphqlBody {
    pub(crate) fn into_request(self) -> Request {
        let mut request = Request::new(self.query);
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(variables) = self.variables {
            request = request.variables(variables);
        }
        if let Some(extensions) = self.extensions {
            request.extensions = extensions;
        }
        request
    }
}

/// The id of one request (or WebSocket operation), in logs and in the
/// `extensions.requestId` of internal errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestId(pub Uuid);

impl RequestId {
    /// A new id, unique and rising in time.
    pub(crate) fn fresh() -> RequestId {
        RequestId(Uuid::now_v7())
    }
}

/// Which operation `request` runs, for logs and metrics.
#[derive(Clone, Debug)]
pub(crate) struct OperationLabel {
    /// `query`, `mutation` or `subscription`; `unknown` when the document
    /// does not parse or names no operation that it has.
    pub kind: &'static str,
    /// The operation's name as the client gave it; `None` when anonymous.
    pub name: Option<String>,
}

impl OperationLabel {
    /// The operation `request` asks for, or the only one of its document
    /// (parsed once: [`Pipeline::check`] parsed it already).
    pub(crate) fn of(request: &mut Request) -> OperationLabel {
        let asked = request.operation_name.clone();
        let Ok(document) = request.parsed_query() else {
            return OperationLabel {
                kind: "unknown",
                name: asked,
            };
        };
        let (ty, name) = match &document.operations {
            DocumentOperations::Single(op) => (Some(op.node.ty), asked),
            DocumentOperations::Multiple(ops) => match asked {
                Some(name) => (ops.get(name.as_str()).map(|op| op.node.ty), Some(name)),
                None if ops.len() == 1 => ops
                    .iter()
                    .next()
                    .map(|(name, op)| (Some(op.node.ty), Some(name.to_string())))
                    .unwrap_or((None, None)),
                None => (None, None),
            },
        };
        let kind = match ty {
            Some(OperationType::Query) => "query",
            Some(OperationType::Mutation) => "mutation",
            Some(OperationType::Subscription) => "subscription",
            None => "unknown",
        };
        OperationLabel { kind, name }
    }
}

/// How an operation arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    Post,
    Get,
    WebSocket,
}

/// Why an operation may not run.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    pub code: &'static str,
    pub message: String,
    /// For `RATE_LIMITED`: when to try again.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<LimitExceeded> for Refusal {
    fn from(exceeded: LimitExceeded) -> Refusal {
        Refusal::new(exceeded.code, exceeded.message)
    }
}

/// A response whose errors all carry a code.
pub(crate) struct Executed {
    pub response: Response,
    /// Whether the operation could not run at all (no data, only errors): a
    /// document that does not parse or validate, or a resolver error at the root.
    pub failed: bool,
    /// Whether it failed before execution began (the document does not parse
    /// or validate, or its variables do not fit): the response then has no
    /// `data` at all, per the GraphQL spec.
    pub request_error: bool,
}

/// The operation was still running at the request deadline and was stopped.
#[derive(Debug)]
pub(crate) struct DeadlinePassed;

/// The schema with the checks and the deadline every operation runs under.
pub(crate) struct Pipeline {
    schema: ActionSchema,
    services: Arc<Services>,
    limits: OperationLimits,
    /// Whether `__schema` and `__type` may be asked for.
    introspection: bool,
    /// The deadline of a query or mutation (a subscription's lives on).
    request_timeout: Duration,
    /// The documents parsed before, by their text.
    documents: ParsedDocuments,
}

impl Pipeline {
    pub(crate) fn new(
        schema: ActionSchema,
        services: Arc<Services>,
        limits: OperationLimits,
        introspection: bool,
        request_timeout: Duration,
    ) -> Pipeline {
        Pipeline {
            schema,
            services,
            limits,
            introspection,
            request_timeout,
            documents: ParsedDocuments::default(),
        }
    }

    /// Checks `request` before anything runs; see [`check_request`].
    pub(crate) fn check(
        &self,
        request: &mut Request,
        arrival: Arrival,
    ) -> Result<Option<OperationType>, Refusal> {
        check_request(
            request,
            arrival,
            &self.limits,
            self.introspection,
            &self.documents,
        )
    }

    /// Runs a checked request to its one response, within the deadline.
    pub(crate) async fn execute(
        &self,
        mut request: Request,
        principal: Principal,
        request_id: RequestId,
    ) -> Result<Executed, DeadlinePassed> {
        let operation = OperationLabel::of(&mut request);
        trace::record_operation(operation.kind, operation.name.as_deref());
        let shape = Shape::of(&mut request, &self.documents);
        let started = Instant::now();
        let request = self.attach(request, principal, request_id);
        let executed =
            match tokio::time::timeout(self.request_timeout, self.schema.execute(request)).await {
                Ok(response) => Ok(label(shape.apply(response), request_id)),
                Err(_) => {
                    tracing::warn!(timeout = ?self.request_timeout, "request deadline passed");
                    Err(DeadlinePassed)
                }
            };
        record(&operation, "http", &executed, started);
        executed
    }

    /// Runs a checked request of type `kind` as a stream of responses: one
    /// for a query or mutation, which has the deadline; one per event for a
    /// subscription, which waits for events as long as it lives.
    pub(crate) fn execute_stream(
        &self,
        mut request: Request,
        principal: Principal,
        request_id: RequestId,
        kind: Option<OperationType>,
    ) -> impl Stream<Item = Result<Executed, DeadlinePassed>> + Send + 'static {
        let operation = OperationLabel::of(&mut request);
        trace::record_operation(operation.kind, operation.name.as_deref());
        let shape = Shape::of(&mut request, &self.documents);
        let started = Instant::now();
        let mut recorded = false;
        let mut responses = self
            .schema
            .execute_stream(self.attach(request, principal, request_id));
        let deadline = (kind != Some(OperationType::Subscription)).then_some(self.request_timeout);
        async_stream::stream! {
            loop {
                let next = match deadline {
                    Some(limit) => match tokio::time::timeout(limit, responses.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            tracing::warn!(timeout = ?limit, "request deadline passed");
                            record(&operation, "websocket", &Err(DeadlinePassed), started);
                            yield Err(DeadlinePassed);
                            return;
                        }
                    },
                    None => responses.next().await,
                };
                let Some(response) = next else { return };
                let executed = Ok(label(shape.apply(response), request_id));
                if !recorded {
                    // A subscription is timed to its first response; it then
                    // lives as long as its client wants.
                    record(&operation, "websocket", &executed, started);
                    recorded = true;
                }
                yield executed;
            }
        }
    }

    /// Attaches what resolvers need of this request: the caller, loaders
    /// scoped to the caller's tenant, and the request id.
    fn attach(&self, request: Request, principal: Principal, request_id: RequestId) -> Request {
        let loaders = RequestLoaders::new(&self.services.store, &principal.tenant_id);
        request.data(principal).data(loaders).data(request_id)
    }
}

/// What a response is put in the shape of: the request's document and the
/// operation it runs (see `order`).
struct Shape {
    document: Option<Arc<ExecutableDocument>>,
    operation_name: Option<String>,
}

impl Shape {
    fn of(request: &mut Request, documents: &ParsedDocuments) -> Shape {
        let document = match documents.kept(&request.query) {
            Some(kept) => Some(kept),
            None => request.parsed_query().ok().cloned().map(Arc::new),
        };
        Shape {
            document,
            operation_name: request.operation_name.clone(),
        }
    }

    /// Puts the response's fields in selection order.
    fn apply(&self, mut response: Response) -> Response {
        if let Some(document) = &self.document {
            super::order::in_selection_order(
                &mut response.data,
                document,
                self.operation_name.as_deref(),
            );
        }
        response
    }
}

/// Counts and times an operation by its outcome and error codes.
fn record(
    operation: &OperationLabel,
    transport: &'static str,
    executed: &Result<Executed, DeadlinePassed>,
    started: Instant,
) {
    let codes: Vec<&str> = match executed {
        Ok(executed) => executed
            .response
            .errors
            .iter()
            .filter_map(|error| match error.extensions.as_ref()?.get("code") {
                Some(Value::String(code)) => Some(code.as_str()),
                _ => None,
            })
            .collect(),
        Err(DeadlinePassed) => vec![codes::TIMEOUT],
    };
    metrics::graphql_operation(
        transport,
        operation.kind,
        operation.name.as_deref(),
        &codes,
        started.elapsed(),
    );
}

/// Checks `request` before anything runs: the size of its text, how deep it
/// nests, the method (no mutation or subscription over GET), the operation
/// `limits` and, unless allowed, introspection. Returns the type of the
/// operation that will run, when the document parses and names one; a
/// document that does not parse is left to execution, which reports it.
/// The document is parsed once its text has passed the checks that bound
/// the parser, or taken from the `documents` parsed before.
pub(crate) fn check_request(
    request: &mut Request,
    arrival: Arrival,
    limits: &OperationLimits,
    introspection: bool,
    documents: &ParsedDocuments,
) -> Result<Option<OperationType>, Refusal> {
    check_size(&request.query, limits)?;
    // Before anything recurses through the document or the variables.
    nesting::check_text(&request.query, MAX_NESTING)?;
    nesting::check_variables(&request.variables, MAX_NESTING)?;
    let operation_name = request.operation_name.clone();
    let variables = request.variables.clone();
    documents.parse_into(request);
    let Ok(document) = request.parsed_query() else {
        return Ok(None);
    };
    nesting::check_fragments(document, MAX_NESTING)?;
    let selected = match &document.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        DocumentOperations::Multiple(ops) => match &operation_name {
            Some(name) => ops.get(name.as_str()).map(|op| op.node.ty),
            None if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
            None => None,
        },
    };
    if arrival == Arrival::Get
        && matches!(
            selected,
            Some(OperationType::Mutation | OperationType::Subscription)
        )
    {
        return Err(Refusal::new(
            codes::METHOD_NOT_ALLOWED,
            "mutations and subscriptions are not accepted over GET: use POST (or the WebSocket for subscriptions)",
        ));
    }
    check_document(document, &variables, limits)?;
    if !introspection && asks_for_introspection(document) {
        return Err(Refusal::new(
            codes::INTROSPECTION_DISABLED,
            "introspection is turned off on this gateway (--introspection)",
        ));
    }
    Ok(selected)
}

fn label(mut response: Response, request_id: RequestId) -> Executed {
    let failed = response.data == Value::Null && !response.errors.is_empty();
    // Parse, validation and variable errors belong to no field: no path.
    let request_error = failed && response.errors.iter().all(|e| e.path.is_empty());
    for error in &mut response.errors {
        label_error(error, failed, request_id);
    }
    Executed {
        response,
        failed,
        request_error,
    }
}

/// Gives every error a stable code: errors from resolvers carry theirs; the
/// rest come from parsing or validating the document (or its variables).
/// Internal errors also carry the request id, to find their log lines.
fn label_error(error: &mut ServerError, request_failed: bool, request_id: RequestId) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    let code = match extensions.get("code") {
        Some(Value::String(code)) => code.clone(),
        _ => {
            let code = if request_failed {
                codes::GRAPHQL_VALIDATION_FAILED
            } else {
                codes::BAD_USER_INPUT
            };
            extensions.set("code", code);
            code.to_owned()
        }
    };
    if code == codes::INTERNAL_SERVER_ERROR {
        extensions.set("requestId", request_id.0.to_string());
    }
}

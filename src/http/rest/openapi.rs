//! The OpenAPI 3.1 document of the face, generated from the handlers'
//! `#[utoipa::path]` attributes and the representation types, and served at
//! `/beta/openapi.json`.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::batch::{
    BatchAnswer, BatchInnerError, BatchItemBody, BatchItemError, BatchItemErrorDetail,
    BatchItemResponse,
};
use super::errors::{InnerError, MainError, ODataError};
use super::representation::{
    KeyValuePair, OperationStatus, ResultInfo, SecurityAction, SecurityActionCollection,
    SecurityActionCreate, SecurityActionState, SecurityVendorInformation, VendorInformationInput,
};
use super::{CANCEL, COLLECTION, QUALIFIED_CANCEL, batch, endpoints};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "actiongate: Microsoft Graph securityAction",
        description = "Graph's beta securityAction resource, served by actiongate over the same store, tokens, tenancy and validation as its GraphQL API. Tokens carry the tenant (tid) and the roles SecurityActions.Read.All or SecurityActions.ReadWrite.All.",
    ),
    paths(
        endpoints::list,
        endpoints::create,
        batch::invoke_batch,
        endpoints::count,
        endpoints::get,
        endpoints::cancel,
    ),
    components(schemas(
        SecurityAction,
        SecurityActionCollection,
        SecurityActionCreate,
        BatchAnswer,
        BatchItemResponse,
        BatchItemBody,
        BatchItemError,
        BatchItemErrorDetail,
        BatchInnerError,
        VendorInformationInput,
        SecurityActionState,
        SecurityVendorInformation,
        KeyValuePair,
        ResultInfo,
        OperationStatus,
        ODataError,
        MainError,
        InnerError,
    )),
    modifiers(&ErrorAnswers),
    security(("bearer" = [])),
)]
pub(crate) struct GraphFaceApi;

/// Adds the bearer scheme, and to every operation the error answers it can
/// give, each with Graph's error body.
struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // The qualified name of the cancel is the same operation.
        let cancel = format!("{COLLECTION}/{{id}}/{CANCEL}");
        if let Some(mut item) = openapi.paths.paths.get(&cancel).cloned() {
            if let Some(op) = item.post.as_mut() {
                op.operation_id = Some(format!("securityActions.{QUALIFIED_CANCEL}"));
            }
            openapi
                .paths
                .paths
                .insert(format!("{COLLECTION}/{{id}}/{QUALIFIED_CANCEL}"), item);
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let is_item = path.contains("{id}");
            if let Some(op) = item.get.as_mut() {
                add_errors(op, is_item, false);
            }
            if let Some(op) = item.post.as_mut() {
                add_errors(op, is_item, true);
            }
        }
    }
}

fn add_errors(operation: &mut Operation, is_item: bool, is_change: bool) {
    let mut answers = vec![
        (
            "400",
            "Invalid input; the message names the property or query option",
        ),
        ("401", "No token, or one that does not verify"),
        ("403", "The token lacks the role"),
        ("405", "Another method on this resource"),
        ("429", "Rate limited; Retry-After says when to try again"),
        ("500", "Internal error; the log has its request-id"),
        ("504", "Past the request deadline"),
    ];
    if is_item {
        answers.push(("404", "No action with this id in the caller's tenant"));
    }
    if is_change {
        answers.push((
            "409",
            "A clientContext used before with another body, or a cancel of a failed action",
        ));
        answers.push(("413", "The body is over the limit"));
        answers.push(("415", "The body is not application/json"));
    }
    for (status, description) in answers {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::content::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("ODataError"))))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .insert(status.to_owned(), RefOr::T(response));
    }
}

/// The document as JSON text, made once.
pub(crate) fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        GraphFaceApi::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

/// `GET /beta/openapi.json`
pub(crate) async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

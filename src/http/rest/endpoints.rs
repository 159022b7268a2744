//! The handlers of the face, one per row of the resource's table. Each reads
//! the request into domain types, calls the same services and store
//! functions as GraphQL, and writes Graph's representation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::errors::RestError;
use super::options::{QueryOption, QueryOptions};
use super::representation::{
    SecurityAction, SecurityActionCollection, SecurityActionCreate, action_request,
};
use super::{Access, COLLECTION, base_url, serve};
use crate::domain::action::Action;
use crate::domain::page::{Cursor, PageRequest};
use crate::error::{AppError, codes};
use crate::http::HttpState;
use crate::store::{FieldsWanted, Invoked, PartsWanted, Store};

/// `GET /beta/security/securityActions`: a page of the caller's tenant's
/// actions.
#[utoipa::path(
    get,
    path = "/beta/security/securityActions",
    operation_id = "securityActions.list",
    tag = "securityActions",
    params(
        ("$filter" = Option<String>, Query, description = "eq, ne, in, startswith on status, name, clientContext, appId, user, vendorInformation/provider (and id); eq, ne, gt, ge, lt, le on createdDateTime and lastActionDateTime; parameters/any(p: p/name eq '…' and p/value eq '…'); and, or, not, parentheses"),
        ("$top" = Option<u64>, Query, description = "Page size: 20 by default; above 100 served as 100, with @odata.nextLink for the rest"),
        ("$skip" = Option<u64>, Query, description = "Rows to pass over, at most 500; page further with @odata.nextLink"),
        ("$skiptoken" = Option<String>, Query, description = "The keyset cursor of @odata.nextLink"),
        ("$orderby" = Option<String>, Query, description = "createdDateTime or lastActionDateTime, asc (default) or desc; without it newest first"),
        ("$count" = Option<bool>, Query, description = "true adds @odata.count: the actions that pass $filter, on every page"),
        ("$select" = Option<String>, Query, description = "Comma-separated properties to return"),
    ),
    responses((status = 200, description = "A page of actions", body = SecurityActionCollection)),
)]
pub(super) async fn list(
    State(state): State<HttpState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (state, headers) = (&state, &headers);
    serve(state, headers, Access::Read, |caller| async move {
        let options = read_options(state, &query, &QueryOption::ALL)?;
        let filter = options.domain_filter();
        let order = options.order();
        let request = PageRequest::forward(
            order,
            options.page_size(),
            options.skip,
            options.skiptoken.as_deref().map(|t| ("$skiptoken", t)),
        )?;
        let store = &state.services.store;
        let tenant = &caller.tenant_id;
        let page = store
            .list_actions(
                tenant,
                &filter,
                order,
                &request,
                FieldsWanted::ALL,
                PartsWanted::NONE,
                options.count,
            )
            .await?;
        // Read with the page when the counters answer the filter.
        let count = match (options.count, page.total) {
            (true, Some(count)) => Some(count),
            (true, None) => Some(store.count_actions(tenant, &filter).await?),
            (false, _) => None,
        };
        let base = base_url(state, headers);
        let next_link = match page.actions.last() {
            Some(last) if page.has_more && request.size > 0 => Some(format!(
                "{base}{COLLECTION}?{}",
                options.next_page_query(&Cursor::of(last, order.field).encode())
            )),
            _ => None,
        };
        let selected = options.selected();
        let value = represent(store, tenant, page.actions, &options)
            .await?
            .iter()
            .map(|a| a.to_json(selected))
            .collect();
        let body = SecurityActionCollection {
            odata_context: context_url(&base, selected, false),
            odata_count: count,
            value,
            odata_next_link: next_link,
        };
        Ok(Json(body).into_response())
    })
    .await
}

/// `GET /beta/security/securityActions/$count`: how many actions pass
/// `$filter`, as text.
#[utoipa::path(
    get,
    path = "/beta/security/securityActions/$count",
    operation_id = "securityActions.count",
    tag = "securityActions",
    params(("$filter" = Option<String>, Query, description = "As on the list")),
    responses((status = 200, description = "The number of actions", body = u64, content_type = "text/plain")),
)]
pub(super) async fn count(
    State(state): State<HttpState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (state, headers) = (&state, &headers);
    serve(state, headers, Access::Read, |caller| async move {
        let options = read_options(state, &query, &[QueryOption::Filter])?;
        let count = state
            .services
            .store
            .count_actions(&caller.tenant_id, &options.domain_filter())
            .await?;
        Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            count.to_string(),
        )
            .into_response())
    })
    .await
}

/// `GET /beta/security/securityActions/{id}`: one action; 404 when the
/// caller's tenant has none with this id.
#[utoipa::path(
    get,
    path = "/beta/security/securityActions/{id}",
    operation_id = "securityActions.get",
    tag = "securityActions",
    params(
        ("id" = Uuid, Path, description = "The action's id"),
        ("$select" = Option<String>, Query, description = "Comma-separated properties to return"),
    ),
    responses((status = 200, description = "The action", body = SecurityAction)),
)]
pub(super) async fn get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (state, headers) = (&state, &headers);
    serve(state, headers, Access::Read, |caller| async move {
        let options = read_options(state, &query, &[QueryOption::Select])?;
        let id = parse_id(&id)?;
        let store = &state.services.store;
        let action = store
            .action(&caller.tenant_id, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let base = base_url(state, headers);
        let mut entity = represent(store, &caller.tenant_id, vec![action], &options)
            .await?
            .pop()
            .ok_or_else(|| AppError::internal("an action without its representation"))?;
        entity.odata_context = Some(context_url(&base, options.selected(), true));
        Ok(Json(entity.to_json(options.selected())).into_response())
    })
    .await
}

/// `POST /beta/security/securityActions`: invokes an action. 201 with the
/// action and its `Location`; a `clientContext` used before returns that
/// action (200) when the body is the same, and 409 when it differs.
#[utoipa::path(
    post,
    path = "/beta/security/securityActions",
    operation_id = "securityActions.create",
    tag = "securityActions",
    request_body(content = SecurityActionCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The action, stored NotStarted", body = SecurityAction,
            headers(("Location" = String, description = "The action's absolute URL"))),
        (status = 200, description = "The action stored before under the same clientContext and body", body = SecurityAction),
    ),
)]
pub(super) async fn create(
    State(state): State<HttpState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (state, headers) = (&state, &headers);
    serve(state, headers, Access::Write, |caller| async move {
        read_options(state, &query, &[])?;
        let body = json_body(headers, body)?.ok_or_else(|| {
            RestError::bad_request("the body must be a securityAction object".to_owned())
        })?;
        let request = action_request(&body)?;
        let (status, action) = match state.services.invoke(&caller, request).await? {
            Invoked::Created(action) => (StatusCode::CREATED, action),
            Invoked::Replayed(action) => (StatusCode::OK, action),
        };
        let base = base_url(state, headers);
        let location = format!("{base}{COLLECTION}/{}", action.id);
        let store = &state.services.store;
        let mut entity = represent(
            store,
            &caller.tenant_id,
            vec![action],
            &QueryOptions::default(),
        )
        .await?
        .pop()
        .ok_or_else(|| AppError::internal("an action without its representation"))?;
        entity.odata_context = Some(context_url(&base, None, true));
        let mut response = (status, Json(entity.to_json(None))).into_response();
        if status == StatusCode::CREATED
            && let Ok(value) = HeaderValue::from_str(&location)
        {
            response.headers_mut().insert(header::LOCATION, value);
        }
        Ok(response)
    })
    .await
}

/// `POST /beta/security/securityActions/{id}/cancelSecurityAction` (or
/// `…/microsoft.graph.cancelSecurityAction`, as some SDKs call it): 200 with
/// an empty body, as Graph answers; the cancel then proceeds as
/// `cancelAction` does. A failed action is 409.
#[utoipa::path(
    post,
    path = "/beta/security/securityActions/{id}/cancelSecurityAction",
    operation_id = "securityActions.cancelSecurityAction",
    tag = "securityActions",
    params(("id" = Uuid, Path, description = "The action's id")),
    responses((status = 200, description = "The cancel is under way (or done); no body")),
)]
pub(super) async fn cancel(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (state, headers) = (&state, &headers);
    serve(state, headers, Access::Write, |caller| async move {
        read_options(state, &query, &[])?;
        // Graph's action takes no body; an empty JSON object is fine too.
        if let Some(body) = json_body(headers, body)? {
            let empty = body
                .as_object()
                .is_some_and(|o| o.keys().all(|k| k.starts_with('@')));
            if !empty {
                return Err(RestError::bad_request(
                    "cancelSecurityAction takes no parameters; send no body".to_owned(),
                ));
            }
        }
        let id = parse_id(&id)?;
        state.services.cancel(&caller, id).await?;
        Ok(StatusCode::OK.into_response())
    })
    .await
}

/// The query options of `query`, of which an endpoint takes `allowed`.
pub(super) fn read_options(
    state: &HttpState,
    query: &Option<String>,
    allowed: &[QueryOption],
) -> Result<QueryOptions, RestError> {
    QueryOptions::parse(query.as_deref(), allowed, state.rest.max_query_bytes)
}

/// The JSON body of a POST, `None` when there is none. Over the body limit:
/// 413; a body that is not `application/json`: 415; not JSON: 400.
pub(super) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Option<Value>, RestError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RestError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
        } else {
            RestError::bad_request("the request body could not be read".to_owned())
        }
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "send the body as Content-Type: application/json",
        ));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|_| RestError::bad_request("the body is not valid JSON".to_owned()))
}

fn parse_id(id: &str) -> Result<Uuid, RestError> {
    Uuid::parse_str(id).map_err(|_| {
        RestError::bad_request(format!(
            "'{}' is not an action id",
            crate::domain::indicator::shorten(id)
        ))
    })
}

fn not_found(id: Uuid) -> RestError {
    RestError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        format!("no action with id {id}"),
    )
}

/// `@odata.context`: the entity set, narrowed to the selected properties,
/// and `/$entity` for one entity.
pub(super) fn context_url(base: &str, selected: Option<&[&str]>, entity: bool) -> String {
    let selection = selected.map_or(String::new(), |s| format!("({})", s.join(",")));
    let entity = if entity { "/$entity" } else { "" };
    format!("{base}/beta/$metadata#security/securityActions{selection}{entity}")
}

/// The representations of `actions`, with their parameters and states read
/// in one query each, and only when the selection has them.
pub(super) async fn represent(
    store: &Store,
    tenant: &str,
    actions: Vec<Action>,
    options: &QueryOptions,
) -> Result<Vec<SecurityAction>, AppError> {
    let ids: Vec<Uuid> = actions.iter().map(|a| a.id).collect();
    let mut parameters = match options.wants("parameters") {
        true => store.parameters_of(tenant, &ids).await?,
        false => Default::default(),
    };
    let mut states = match options.wants("states") {
        true => store.states_of(tenant, &ids).await?,
        false => Default::default(),
    };
    Ok(actions
        .into_iter()
        .map(|action| {
            let id = action.id;
            SecurityAction::new(
                action,
                parameters.remove(&id).unwrap_or_default(),
                states.remove(&id).unwrap_or_default(),
            )
        })
        .collect())
}

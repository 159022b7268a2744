//! A local Microsoft Defender for Endpoint: its token endpoint and indicator
//! API (submit, list, delete, import, batch delete), checking tokens and
//! bodies as the real one does and enforcing its documented limits exactly —
//! or smaller ones a test chooses, with windows shorter than a minute — with
//! a 429 and `Retry-After` past them. It records every call.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const DEFENDER_CLIENT_ID: &str = "client-1";
pub const DEFENDER_CLIENT_SECRET: &str = "client-secret-1";

/// The limits the fake enforces, and the gateway is configured with.
#[derive(Clone, Copy, Debug)]
pub struct DefenderLimits {
    /// Calls of any kind per `minute`.
    pub calls_per_minute: usize,
    /// Calls of any kind per `hour`.
    pub calls_per_hour: usize,
    /// Calls to import per `minute`, and (separately) to batch delete.
    pub imports_per_minute: usize,
    pub minute: Duration,
    pub hour: Duration,
    /// Most indicators the tenant holds.
    pub max_active: usize,
}

/// Most indicators one import or batch delete takes.
pub const MAX_BATCH: usize = 500;

impl DefenderLimits {
    /// What Microsoft documents.
    pub fn documented() -> DefenderLimits {
        DefenderLimits {
            calls_per_minute: 100,
            calls_per_hour: 1_500,
            imports_per_minute: 30,
            minute: Duration::from_secs(60),
            hour: Duration::from_secs(3_600),
            max_active: 15_000,
        }
    }

    /// The provider keys that configure the gateway with these limits.
    fn provider_keys(&self) -> String {
        format!(
            "calls_per_minute = {}\ncalls_per_hour = {}\nimports_per_minute = {}\nbudget_minute = \"{}ms\"\nbudget_hour = \"{}ms\"\nmax_active_indicators = {}\n",
            self.calls_per_minute,
            self.calls_per_hour,
            self.imports_per_minute,
            self.minute.as_millis(),
            self.hour.as_millis(),
            self.max_active,
        )
    }
}

/// One API call the fake answered.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub token: String,
    pub at: Instant,
    pub status: u16,
    /// Indicators (import) or ids (batch delete) it carried.
    pub items: usize,
}

/// Which window a call counts in besides the calls of any kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Endpoint {
    Other,
    Import,
    BatchDelete,
}

struct FakeState {
    limits: DefenderLimits,
    /// Tokens issued, in order.
    issued: Mutex<Vec<String>>,
    /// Tokens that the API refuses as expired.
    expired: Mutex<HashSet<String>>,
    indicators: Mutex<BTreeMap<u64, Value>>,
    /// The id of each indicator by value and type (Defender keeps one each).
    ids: Mutex<HashMap<(String, String), u64>>,
    next_id: Mutex<u64>,
    /// Every API call, in order, with the endpoint it counts for.
    calls: Mutex<Vec<(Call, Endpoint)>>,
    /// Imports apply their indicators and then never answer (the gateway is
    /// to die meanwhile).
    hang_imports: AtomicBool,
    /// Values the API refuses, with the reason it gives.
    refused: Mutex<BTreeMap<String, String>>,
}

/// A Microsoft Defender for Endpoint indicator API with its token endpoint.
pub struct FakeDefender {
    pub base: String,
    state: Arc<FakeState>,
    server: JoinHandle<()>,
}

impl Drop for FakeDefender {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeDefender {
    /// A fake with the documented limits.
    pub async fn start() -> FakeDefender {
        FakeDefender::with_limits(DefenderLimits::documented()).await
    }

    pub async fn with_limits(limits: DefenderLimits) -> FakeDefender {
        let state = Arc::new(FakeState {
            limits,
            issued: Mutex::default(),
            expired: Mutex::default(),
            indicators: Mutex::default(),
            ids: Mutex::default(),
            next_id: Mutex::default(),
            calls: Mutex::default(),
            hang_imports: AtomicBool::new(false),
            refused: Mutex::default(),
        });
        let router = Router::new()
            .route("/oauth2/token", post(issue_token))
            .route(
                "/api/indicators",
                post(submit_indicator).get(list_indicators),
            )
            .route("/api/indicators/import", post(import_indicators))
            .route("/api/indicators/BatchDelete", post(batch_delete))
            .route("/api/indicators/{id}", delete(delete_indicator))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeDefender {
            base,
            state,
            server,
        }
    }

    /// The provider configuration for this fake, named `mde`, with the
    /// budget and cap set to the fake's limits. A call may take 8 s (within
    /// the test executor's 10 s lease): an import of 500 on a loaded test
    /// machine takes longer than the test executor's 2 s.
    pub fn provider_toml(&self) -> String {
        format!(
            "{}{}",
            self.provider_toml_with_defaults(),
            self.state.limits.provider_keys()
        )
    }

    /// The same without budget keys: the gateway runs on its defaults.
    pub fn provider_toml_with_defaults(&self) -> String {
        format!(
            "[[providers]]\nname = \"mde\"\nkind = \"defender\"\napi_base = \"{base}\"\ntoken_url = \"{base}/oauth2/token\"\nclient_id = \"{DEFENDER_CLIENT_ID}\"\nclient_secret = \"{DEFENDER_CLIENT_SECRET}\"\ntimeout = \"8s\"\n",
            base = self.base,
        )
    }

    pub fn indicators(&self) -> Vec<Value> {
        self.state
            .indicators
            .lock()
            .unwrap()
            .values()
            .cloned()
            .collect()
    }

    pub fn tokens_issued(&self) -> Vec<String> {
        self.state.issued.lock().unwrap().clone()
    }

    /// From now on the API refuses `token` as expired.
    pub fn expire(&self, token: &str) {
        self.state.expired.lock().unwrap().insert(token.to_owned());
    }

    /// Whether imports hang after applying their indicators.
    pub fn hang_imports(&self, hang: bool) {
        self.state.hang_imports.store(hang, Ordering::SeqCst);
    }

    /// From now on the API refuses indicators of `value`, saying `reason`.
    pub fn refuse(&self, value: &str, reason: &str) {
        self.state
            .refused
            .lock()
            .unwrap()
            .insert(value.to_owned(), reason.to_owned());
    }

    /// Removes the indicator of `value` as someone in Defender's portal
    /// would: the gateway is not told.
    pub fn remove_by_hand(&self, value: &str) {
        let mut indicators = self.state.indicators.lock().unwrap();
        let gone: Vec<u64> = indicators
            .iter()
            .filter(|(_, i)| i["indicatorValue"] == value)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.state.forget(&mut indicators, id);
        }
    }

    /// Every API call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|(call, _)| call.clone())
            .collect()
    }

    /// The calls with `method` to `path`.
    pub fn calls_to(&self, method: &str, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    }

    /// The calls answered 429.
    pub fn throttled(&self) -> usize {
        self.calls().iter().filter(|c| c.status == 429).count()
    }

    /// The most accepted calls that `select` picks inside any window of
    /// length `window`: what the limits are checked against.
    pub fn most_in_any_window(&self, window: Duration, select: impl Fn(&Call) -> bool) -> usize {
        let times: Vec<Instant> = self
            .calls()
            .into_iter()
            .filter(|c| c.status != 429 && select(c))
            .map(|c| c.at)
            .collect();
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t - times[i] < window)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }
}

impl FakeState {
    /// Checks the bearer token and the limits, and records the call: `Err`
    /// is the answer when the call is refused (401 or 429).
    fn admit(
        &self,
        headers: &HeaderMap,
        method: &str,
        path: &str,
        endpoint: Endpoint,
        items: usize,
    ) -> Result<usize, Box<Response>> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let now = Instant::now();
        let mut calls = self.calls.lock().unwrap();
        let known = self.issued.lock().unwrap().contains(&token);
        let expired = self.expired.lock().unwrap().contains(&token);
        let mut call = Call {
            method: method.into(),
            path: path.into(),
            token,
            at: now,
            status: 200,
            items,
        };
        if !known || expired {
            call.status = 401;
            calls.push((call, endpoint));
            return Err(Box::new(
                (
                    StatusCode::UNAUTHORIZED,
                    json!({"error": {"code": "Unauthorized"}}).to_string(),
                )
                    .into_response(),
            ));
        }
        // The wait until the oldest accepted call of a full window leaves it.
        let limits = &self.limits;
        let wait = |window: Duration, limit: usize, counts: &dyn Fn(Endpoint) -> bool| {
            let inside: Vec<Instant> = calls
                .iter()
                .filter(|(c, e)| c.status != 429 && c.status != 401 && counts(*e))
                .map(|(c, _)| c.at)
                .filter(|at| now.duration_since(*at) < window)
                .collect();
            (inside.len() >= limit)
                .then(|| window - now.duration_since(inside[inside.len() - limit]))
        };
        let waits = [
            wait(limits.minute, limits.calls_per_minute, &|_| true),
            wait(limits.hour, limits.calls_per_hour, &|_| true),
            match endpoint {
                Endpoint::Other => None,
                batch => wait(limits.minute, limits.imports_per_minute, &|e| e == batch),
            },
        ];
        if let Some(wait) = waits.into_iter().flatten().max() {
            call.status = 429;
            calls.push((call, endpoint));
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": {"code": "TooManyRequests"}}).to_string(),
            )
                .into_response();
            response
                .headers_mut()
                .insert("retry-after", seconds.max(1).to_string().parse().unwrap());
            return Err(Box::new(response));
        }
        calls.push((call, endpoint));
        Ok(calls.len() - 1)
    }

    /// Removes indicator `id` from `indicators` and the index; whether it was there.
    fn forget(&self, indicators: &mut BTreeMap<u64, Value>, id: u64) -> bool {
        let Some(removed) = indicators.remove(&id) else {
            return false;
        };
        let key = (
            removed["indicatorValue"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            removed["indicatorType"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        self.ids.lock().unwrap().remove(&key);
        true
    }

    /// Sets the status of admitted call `index` (refused for its body).
    fn answered(&self, index: usize, status: StatusCode) {
        if let Some((call, _)) = self.calls.lock().unwrap().get_mut(index) {
            call.status = status.as_u16();
        }
    }

    /// Stores `indicator` (a new one, or an update of the one with the same
    /// value and type): its id, or why not.
    fn store(&self, mut indicator: Value) -> Result<u64, String> {
        if !valid(&indicator) {
            return Err("InvalidRequestBody".into());
        }
        let value = indicator["indicatorValue"].as_str().unwrap_or_default();
        if let Some(reason) = self.refused.lock().unwrap().get(value) {
            return Err(reason.clone());
        }
        let mut indicators = self.indicators.lock().unwrap();
        let mut ids = self.ids.lock().unwrap();
        // Submitting the same value and type again updates the indicator.
        let key = (
            value.to_owned(),
            indicator["indicatorType"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        let existing = ids.get(&key).copied();
        if existing.is_none() && indicators.len() >= self.limits.max_active {
            return Err("The tenant has reached its limit of active indicators".into());
        }
        let id = existing.unwrap_or_else(|| {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            *next
        });
        ids.insert(key, id);
        indicator["id"] = json!(id.to_string());
        indicators.insert(id, indicator);
        Ok(id)
    }
}

fn valid(indicator: &Value) -> bool {
    let types = [
        "IpAddress",
        "Url",
        "DomainName",
        "FileSha1",
        "FileSha256",
        "FileMd5",
    ];
    let actions = [
        "Warn",
        "Block",
        "Audit",
        "Alert",
        "AlertAndBlock",
        "BlockAndRemediate",
        "Allowed",
    ];
    let text = |k: &str| {
        indicator[k]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    text("indicatorValue").is_some()
        && text("indicatorType").is_some_and(|t| types.contains(&t.as_str()))
        && text("action").is_some_and(|a| actions.contains(&a.as_str()))
        && text("title").is_some()
        && text("description").is_some()
        && ["Informational", "Low", "Medium", "High"]
            .contains(&indicator["severity"].as_str().unwrap_or("High"))
}

fn bad_request(code: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": code}}).to_string(),
    )
        .into_response()
}

async fn issue_token(
    State(state): State<Arc<FakeState>>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials")
        || field("client_id") != Some(DEFENDER_CLIENT_ID)
        || field("client_secret") != Some(DEFENDER_CLIENT_SECRET)
        || field("scope").is_none()
    {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client"}).to_string(),
        )
            .into_response();
    }
    let mut issued = state.issued.lock().unwrap();
    let token = format!("token-{}", issued.len() + 1);
    issued.push(token.clone());
    json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token})
        .to_string()
        .into_response()
}

async fn submit_indicator(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let call = match state.admit(&headers, "POST", "/api/indicators", Endpoint::Other, 1) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let Ok(indicator) = serde_json::from_str::<Value>(&body) else {
        state.answered(call, StatusCode::BAD_REQUEST);
        return bad_request("InvalidRequestBody");
    };
    match state.store(indicator) {
        Ok(id) => state.indicators.lock().unwrap()[&id]
            .to_string()
            .into_response(),
        Err(reason) => {
            state.answered(call, StatusCode::BAD_REQUEST);
            bad_request(&reason)
        }
    }
}

async fn import_indicators(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let indicators = parsed["Indicators"].as_array().cloned();
    let items = indicators.as_ref().map_or(0, Vec::len);
    let call = match state.admit(
        &headers,
        "POST",
        "/api/indicators/import",
        Endpoint::Import,
        items,
    ) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let Some(indicators) = indicators.filter(|i| !i.is_empty() && i.len() <= MAX_BATCH) else {
        state.answered(call, StatusCode::BAD_REQUEST);
        return bad_request("InvalidRequestBody");
    };
    let value: Vec<Value> = indicators
        .into_iter()
        .map(|indicator| {
            let shown = indicator["indicatorValue"].clone();
            match state.store(indicator) {
                Ok(id) => json!({"id": id.to_string(), "indicator": shown, "isFailed": false, "failureReason": null}),
                Err(reason) => json!({"id": null, "indicator": shown, "isFailed": true, "failureReason": reason}),
            }
        })
        .collect();
    if state.hang_imports.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    json!({ "value": value }).to_string().into_response()
}

async fn list_indicators(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Err(refused) = state.admit(&headers, "GET", "/api/indicators", Endpoint::Other, 0) {
        return *refused;
    }
    let wanted = query
        .get("$filter")
        .and_then(|f| f.strip_prefix("indicatorValue eq '"))
        .and_then(|f| f.strip_suffix('\''))
        .map(|v| v.replace("''", "'"));
    let value: Vec<Value> = state
        .indicators
        .lock()
        .unwrap()
        .values()
        .filter(|i| wanted.as_deref().is_none_or(|w| i["indicatorValue"] == w))
        .cloned()
        .collect();
    json!({ "value": value }).to_string().into_response()
}

async fn delete_indicator(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/indicators/{id}");
    let call = match state.admit(&headers, "DELETE", &path, Endpoint::Other, 1) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let removed = id.parse::<u64>().ok().is_some_and(|id| {
        let mut indicators = state.indicators.lock().unwrap();
        state.forget(&mut indicators, id)
    });
    match removed {
        true => StatusCode::NO_CONTENT.into_response(),
        false => {
            state.answered(call, StatusCode::NOT_FOUND);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// As documented: 204 when every id existed and was deleted, 400 for an
/// empty or too long list, 404 when any id was not found (the others are
/// deleted).
async fn batch_delete(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let ids: Option<Vec<String>> = parsed["IndicatorIds"].as_array().map(|ids| {
        ids.iter()
            .filter_map(|i| i.as_str().map(String::from))
            .collect()
    });
    let items = ids.as_ref().map_or(0, Vec::len);
    let call = match state.admit(
        &headers,
        "POST",
        "/api/indicators/BatchDelete",
        Endpoint::BatchDelete,
        items,
    ) {
        Ok(call) => call,
        Err(refused) => return *refused,
    };
    let Some(ids) = ids.filter(|i| !i.is_empty() && i.len() <= MAX_BATCH) else {
        state.answered(call, StatusCode::BAD_REQUEST);
        return bad_request("InvalidRequestBody");
    };
    let mut indicators = state.indicators.lock().unwrap();
    let mut missing = false;
    for id in ids {
        let removed = id
            .parse::<u64>()
            .ok()
            .is_some_and(|id| state.forget(&mut indicators, id));
        missing |= !removed;
    }
    drop(indicators);
    if missing {
        state.answered(call, StatusCode::NOT_FOUND);
        StatusCode::NOT_FOUND.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

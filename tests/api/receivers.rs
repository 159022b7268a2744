//! Local stand-ins for what providers talk to: a webhook receiver that records
//! and verifies what it gets and answers per a script, and a Defender for
//! Endpoint server that checks tokens and bodies as the real one does.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The webhook secret of tests.
pub const WEBHOOK_SECRET: &str = "webhook-test-secret";

async fn serve(router: Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, server)
}

/// One request the webhook receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub operation: String,
    pub action_id: String,
    pub idempotency_key: String,
    pub signature_valid: bool,
    /// The W3C `traceparent` header, if sent.
    pub traceparent: Option<String>,
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub retry_after: Option<&'static str>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
            retry_after: None,
        }
    }

    pub fn slow(status: u16, delay: Duration) -> Reply {
        Reply {
            status,
            delay,
            retry_after: None,
        }
    }
}

/// Decides the reply to a request, given how many requests with the same
/// idempotency key came before it (0 for the first).
type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

struct ReceiverState {
    requests: Mutex<Vec<Received>>,
    script: Box<Script>,
}

/// A webhook receiver on a local port.
pub struct WebhookReceiver {
    pub url: String,
    state: Arc<ReceiverState>,
    server: JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl WebhookReceiver {
    /// A receiver that answers every request 200.
    pub async fn ok() -> WebhookReceiver {
        WebhookReceiver::start(|_, _| Reply::status(200)).await
    }

    /// A receiver whose first request of each key hangs for a minute (the
    /// gateway instance is to die or stop meanwhile); later ones succeed.
    pub async fn hanging_first() -> WebhookReceiver {
        WebhookReceiver::start(|_, before| {
            if before == 0 {
                Reply::slow(200, Duration::from_secs(60))
            } else {
                Reply::status(200)
            }
        })
        .await
    }

    pub async fn start(
        script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> WebhookReceiver {
        let state = Arc::new(ReceiverState {
            requests: Mutex::new(Vec::new()),
            script: Box::new(script),
        });
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let (base, server) = serve(router).await;
        WebhookReceiver {
            url: format!("{base}/hook"),
            state,
            server,
        }
    }

    /// The provider configuration for this receiver, named `hook`.
    pub fn provider_toml(&self, timeout: &str) -> String {
        format!(
            "[[providers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{WEBHOOK_SECRET}\"\ntimeout = \"{timeout}\"\n",
            self.url
        )
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests for `action_id` with `operation`.
    pub fn count(&self, action_id: &str, operation: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.action_id == action_id && r.operation == operation)
            .count()
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, WEBHOOK_SECRET.as_bytes());
    let expected: String = aws_lc_rs::hmac::sign(&key, body.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature = headers
        .get("x-actiongate-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let received = Received {
        operation: parsed["operation"].as_str().unwrap_or_default().to_owned(),
        action_id: parsed["action"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        signature_valid: signature == format!("sha256={expected}"),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: parsed,
        at: std::time::Instant::now(),
    };
    let reply = {
        let mut requests = state.requests.lock().unwrap();
        let before = requests
            .iter()
            .filter(|r| r.idempotency_key == received.idempotency_key)
            .count();
        requests.push(received.clone());
        (state.script)(&received, before)
    };
    tokio::time::sleep(reply.delay).await;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        json!({"reference": format!("hook-{}", received.action_id)}).to_string(),
    )
        .into_response();
    if let Some(wait) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", wait.parse().unwrap());
    }
    response
}

/// A Microsoft Defender for Endpoint indicator API with its token endpoint.
pub struct FakeDefender {
    pub base: String,
    state: Arc<DefenderState>,
    server: JoinHandle<()>,
}

impl Drop for FakeDefender {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Default)]
struct DefenderState {
    /// Tokens issued, in order.
    issued: Mutex<Vec<String>>,
    /// Tokens that the API refuses as expired.
    expired: Mutex<HashSet<String>>,
    indicators: Mutex<BTreeMap<u64, Value>>,
    next_id: Mutex<u64>,
    /// Every API call: method, path, token.
    calls: Mutex<Vec<(String, String, String)>>,
}

pub const DEFENDER_CLIENT_ID: &str = "client-1";
pub const DEFENDER_CLIENT_SECRET: &str = "client-secret-1";

impl FakeDefender {
    pub async fn start() -> FakeDefender {
        let state = Arc::new(DefenderState::default());
        let router = Router::new()
            .route("/oauth2/token", post(issue_token))
            .route(
                "/api/indicators",
                post(submit_indicator).get(list_indicators),
            )
            .route("/api/indicators/{id}", delete(delete_indicator))
            .with_state(state.clone());
        let (base, server) = serve(router).await;
        FakeDefender {
            base,
            state,
            server,
        }
    }

    pub fn provider_toml(&self) -> String {
        format!(
            "[[providers]]\nname = \"mde\"\nkind = \"defender\"\napi_base = \"{base}\"\ntoken_url = \"{base}/oauth2/token\"\nclient_id = \"{DEFENDER_CLIENT_ID}\"\nclient_secret = \"{DEFENDER_CLIENT_SECRET}\"\n",
            base = self.base
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

    pub fn calls(&self) -> Vec<(String, String, String)> {
        self.state.calls.lock().unwrap().clone()
    }
}

async fn issue_token(
    State(state): State<Arc<DefenderState>>,
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

/// Checks the bearer token of a request: `None` when the server issued it and
/// it has not expired, else the 401 to answer.
fn check_token(
    state: &DefenderState,
    headers: &HeaderMap,
    method: &str,
    path: &str,
) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    state
        .calls
        .lock()
        .unwrap()
        .push((method.into(), path.into(), token.clone()));
    let known = state.issued.lock().unwrap().contains(&token);
    let expired = state.expired.lock().unwrap().contains(&token);
    if !known || expired {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": {"code": "Unauthorized"}}).to_string(),
            )
                .into_response(),
        );
    }
    None
}

async fn submit_indicator(
    State(state): State<Arc<DefenderState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = check_token(&state, &headers, "POST", "/api/indicators") {
        return refused;
    }
    let Ok(mut indicator) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
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
    let valid = text("indicatorValue").is_some()
        && text("indicatorType").is_some_and(|t| types.contains(&t.as_str()))
        && text("action").is_some_and(|a| actions.contains(&a.as_str()))
        && text("title").is_some()
        && text("description").is_some()
        && ["Informational", "Low", "Medium", "High"]
            .contains(&indicator["severity"].as_str().unwrap_or("High"));
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "InvalidRequestBody"}}).to_string(),
        )
            .into_response();
    }
    let mut indicators = state.indicators.lock().unwrap();
    // Submitting the same value and type again updates the indicator.
    let existing = indicators
        .iter()
        .find(|(_, i)| {
            i["indicatorValue"] == indicator["indicatorValue"]
                && i["indicatorType"] == indicator["indicatorType"]
        })
        .map(|(id, _)| *id);
    let id = existing.unwrap_or_else(|| {
        let mut next = state.next_id.lock().unwrap();
        *next += 1;
        *next
    });
    indicator["id"] = json!(id.to_string());
    indicators.insert(id, indicator.clone());
    indicator.to_string().into_response()
}

async fn list_indicators(
    State(state): State<Arc<DefenderState>>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(refused) = check_token(&state, &headers, "GET", "/api/indicators") {
        return refused;
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
    State(state): State<Arc<DefenderState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = check_token(&state, &headers, "DELETE", &format!("/api/indicators/{id}"))
    {
        return refused;
    }
    let removed = id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.indicators.lock().unwrap().remove(&id));
    match removed {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

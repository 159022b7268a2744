//! A local stand-in for what the webhook provider talks to: a receiver that
//! records and verifies what it gets and answers per a script. (Defender's
//! stand-in is `defender_fake`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
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

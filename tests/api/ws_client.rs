//! A WebSocket client for the tests, speaking either GraphQL protocol by hand,
//! so the tests see every message and close code as a client would.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, eventually};

pub const TRANSPORT: &str = "graphql-transport-ws";
pub const LEGACY: &str = "graphql-ws";

pub const WATCH: &str = "subscription($filter: ActionFilter, $after: String) {
    actionStatusChanged(filter: $filter, after: $after) {
        cursor status previousStatus occurredDateTime
        action { id name azureTenantId parameters { name value } }
    }
}";

pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub protocol: &'static str,
}

/// What the server did next.
#[derive(Debug)]
pub enum Next {
    Message(Value),
    Closed(u16, String),
}

impl WsClient {
    /// Opens a socket to `/graphql/ws` with `protocol`.
    pub async fn open(app: &TestApp, protocol: &'static str) -> WsClient {
        WsClient::try_open(app, protocol)
            .await
            .expect("the upgrade succeeds")
    }

    /// Opens a socket to `/graphql/ws` with `protocol`; `None` when the
    /// gateway refuses the upgrade.
    pub async fn try_open(app: &TestApp, protocol: &'static str) -> Option<WsClient> {
        let mut request = format!("ws://{}/graphql/ws", app.address)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocol.parse().unwrap());
        let (socket, response) = tokio_tungstenite::connect_async(request).await.ok()?;
        assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
        Some(WsClient { socket, protocol })
    }

    /// Opens a socket and completes `connection_init` with `token`.
    pub async fn connect(app: &TestApp, protocol: &'static str, token: &str) -> WsClient {
        let mut client = WsClient::open(app, protocol).await;
        client.send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})).await;
        let ack = client.next_message().await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
    }

    /// Starts an operation with id `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == TRANSPORT {
            "subscribe"
        } else {
            "start"
        };
        self.send(
            json!({"type": kind, "id": id, "payload": {"query": query, "variables": variables}}),
        )
        .await;
    }

    /// Stops operation `id`.
    pub async fn stop(&mut self, id: &str) {
        let kind = if self.protocol == TRANSPORT {
            "complete"
        } else {
            "stop"
        };
        self.send(json!({"type": kind, "id": id})).await;
    }

    /// The next message or close, within `wait`; `None` when nothing came.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Next> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .ok()?;
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(Next::Message(serde_json::from_str(&text).unwrap()));
                }
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((u16::from(CloseCode::Status), String::new()));
                    return Some(Next::Closed(code, reason));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Next::Closed(1006, "connection lost".into())),
            }
        }
    }

    /// The next message (within 30 s), answering and skipping keep-alives.
    pub async fn next_message(&mut self) -> Value {
        loop {
            match self.next_within(Duration::from_secs(30)).await {
                Some(Next::Message(message)) => match message["type"].as_str() {
                    Some("ping") => self.send(json!({"type": "pong"})).await,
                    Some("ka") => {}
                    _ => return message,
                },
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next `ActionStatusEvent` of operation `id`.
    pub async fn next_event(&mut self, id: &str) -> Value {
        let message = self.next_message().await;
        let data_type = if self.protocol == TRANSPORT {
            "next"
        } else {
            "data"
        };
        assert_eq!(message["type"], data_type, "{message}");
        assert_eq!(message["id"], id, "{message}");
        assert!(message["payload"].get("errors").is_none(), "{message}");
        message["payload"]["data"]["actionStatusChanged"].clone()
    }

    /// Events of `id` until `n` have come.
    pub async fn events(&mut self, id: &str, n: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            events.push(self.next_event(id).await);
        }
        events
    }

    /// Asserts that no message (but keep-alives) comes within `wait`.
    pub async fn assert_quiet(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                None => return,
                Some(Next::Message(m)) if m["type"] == "ping" || m["type"] == "ka" => continue,
                Some(other) => panic!("expected quiet, got {other:?}"),
            }
        }
    }

    /// Waits for the server to close the socket; returns the code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            match self.next_within(Duration::from_secs(30)).await {
                Some(Next::Closed(code, reason)) => return (code, reason),
                Some(Next::Message(m))
                    if m["type"] == "ping"
                        || m["type"] == "ka"
                        || m["type"] == "connection_error" => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

/// The statuses of `events`, in order.
pub fn event_statuses(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["status"].as_str().expect("a status"))
        .collect()
}

/// The action ids of `events`, in order.
pub fn event_ids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"]["id"].as_str().expect("an action id"))
        .collect()
}

/// Subscribes with `WATCH`, and waits until the subscription's feed is
/// attached to `app`'s event fan-out: from then on it misses no event.
pub async fn watch(app: &TestApp, client: &mut WsClient, id: &str, variables: Value) {
    let attached = app.events.subscribers();
    client.subscribe(id, WATCH, variables).await;
    eventually(format!("subscription {id} to be attached"), || async {
        app.events.subscribers() > attached
    })
    .await;
}

//! A small `graphql-transport-ws` client: open a socket, authenticate in
//! `connection_init`, start subscriptions, and read status events cheaply
//! (typed parsing of only the fields the bench selects).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PROTOCOL: &str = "graphql-transport-ws";

/// `ws://host/graphql/ws` for the HTTP base `http://host`.
pub fn endpoint(base: &str) -> Result<String, String> {
    let base = base.trim_end_matches('/');
    if let Some(rest) = base.strip_prefix("http://") {
        Ok(format!("ws://{rest}/graphql/ws"))
    } else if base.starts_with("https://") {
        Err(
            "subscriptions are measured over plain ws:// only: give the gateway's http:// address"
                .into(),
        )
    } else {
        Err(format!("--url {base} is not an http:// URL"))
    }
}

/// Opens a socket and completes `connection_init` / `connection_ack`.
pub async fn open(endpoint: &str, token: &str, timeout: Duration) -> Result<Socket, String> {
    let opening = async {
        let mut request = endpoint
            .into_client_request()
            .map_err(|e| format!("{endpoint}: {e}"))?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
        // Small buffers: thousands of sockets each read short JSON messages.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), true)
                .await
                .map_err(|e| format!("connecting to {endpoint}: {e}"))?;
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
        send_json(&mut socket, &init).await?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text)
                        .map_err(|_| "the gateway sent a message that is not JSON".to_owned())?;
                    match message["type"].as_str() {
                        Some("connection_ack") => return Ok(socket),
                        Some("ping") => send_pong(&mut socket).await?,
                        other => {
                            return Err(format!("expected connection_ack, got {other:?}"));
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map_or("no reason".to_owned(), |f| {
                        format!("{} {}", u16::from(f.code), f.reason)
                    });
                    return Err(format!("the gateway closed the socket: {reason}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("reading the socket: {e}")),
                None => return Err("the gateway closed the socket".to_owned()),
            }
        }
    };
    tokio::time::timeout(timeout, opening)
        .await
        .map_err(|_| format!("no connection_ack within {timeout:?}"))?
}

/// Starts subscription `id` with `query`.
pub async fn subscribe(socket: &mut Socket, id: &str, query: &str) -> Result<(), String> {
    let message = json!({"type": "subscribe", "id": id, "payload": {"query": query}});
    send_json(socket, &message).await
}

pub async fn send_pong(socket: &mut Socket) -> Result<(), String> {
    socket
        .send(Message::text(r#"{"type":"pong"}"#))
        .await
        .map_err(|e| format!("writing the socket: {e}"))
}

async fn send_json(socket: &mut Socket, message: &Value) -> Result<(), String> {
    socket
        .send(Message::text(message.to_string()))
        .await
        .map_err(|e| format!("writing the socket: {e}"))
}

/// A message from the gateway, as far as the bench cares.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A status event of subscription `id`.
    Event { id: String, event: StatusEvent },
    /// The gateway ended subscription `id`, or reported an error in it.
    Ended { id: Option<String>, error: bool },
    /// The gateway's keep-alive; answer with a pong.
    Ping,
    /// Anything else (pongs, unknown types).
    Other,
}

/// The fields of `actionStatusChanged` the bench selects.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusEvent {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub occurred_date_time: Option<String>,
    pub action: ActionRef,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActionRef {
    pub id: String,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    errors: Option<Vec<serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    #[serde(default)]
    action_status_changed: Option<StatusEvent>,
}

/// Reads one text message. Only events take the typed path; anything that
/// does not fit it (an `error` message carries a list) is read as plain JSON.
pub fn classify(text: &str) -> Incoming {
    if let Ok(envelope) = serde_json::from_str::<Envelope>(text) {
        match envelope.kind.as_str() {
            "next" => {
                let payload = envelope.payload;
                let failed = payload.as_ref().is_some_and(|p| p.errors.is_some());
                let event = payload
                    .and_then(|p| p.data)
                    .and_then(|d| d.action_status_changed);
                return match (envelope.id, event, failed) {
                    (Some(id), Some(event), false) => Incoming::Event { id, event },
                    (id, _, _) => Incoming::Ended { id, error: true },
                };
            }
            "ping" => return Incoming::Ping,
            "complete" => {
                return Incoming::Ended {
                    id: envelope.id,
                    error: false,
                };
            }
            "error" => {
                return Incoming::Ended {
                    id: envelope.id,
                    error: true,
                };
            }
            _ => return Incoming::Other,
        }
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) if value["type"] == "error" => Incoming::Ended {
            id: value["id"].as_str().map(str::to_owned),
            error: true,
        },
        _ => Incoming::Other,
    }
}

/// Microseconds since the epoch of an RFC 3339 time.
pub fn micros_of(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_http_base() {
        assert_eq!(
            endpoint("http://127.0.0.1:8080/").unwrap(),
            "ws://127.0.0.1:8080/graphql/ws"
        );
        assert!(endpoint("https://gw.example").is_err());
        assert!(endpoint("gw.example").is_err());
    }

    #[test]
    fn events_errors_and_pings_are_told_apart() {
        let next = r#"{"type":"next","id":"3","payload":{"data":{"actionStatusChanged":{"cursor":"ZTE6NDI","occurredDateTime":"2026-12-01T10:00:00.123456Z","action":{"id":"a"}}}}}"#;
        match classify(next) {
            Incoming::Event { id, event } => {
                assert_eq!(id, "3");
                assert_eq!(event.action.id, "a");
                assert_eq!(event.cursor.as_deref(), Some("ZTE6NDI"));
                assert_eq!(
                    micros_of(event.occurred_date_time.as_deref().unwrap()),
                    Some(1_796_119_200_123_456)
                );
            }
            other => panic!("not an event: {other:?}"),
        }
        let failed =
            r#"{"type":"next","id":"3","payload":{"data":null,"errors":[{"message":"too slow"}]}}"#;
        assert_eq!(
            classify(failed),
            Incoming::Ended {
                id: Some("3".into()),
                error: true
            }
        );
        let error = r#"{"type":"error","id":"4","payload":[{"message":"no"}]}"#;
        assert_eq!(
            classify(error),
            Incoming::Ended {
                id: Some("4".into()),
                error: true
            }
        );
        assert_eq!(classify(r#"{"type":"ping"}"#), Incoming::Ping);
        assert_eq!(
            classify(r#"{"type":"complete","id":"1"}"#),
            Incoming::Ended {
                id: Some("1".into()),
                error: false
            }
        );
        assert_eq!(classify(r#"{"type":"pong"}"#), Incoming::Other);
    }
}

//! The two GraphQL-over-WebSocket protocols and what the server says in each:
//! `graphql-transport-ws` (the `graphql-ws` library, GraphiQL) and the legacy
//! `graphql-ws` (subscriptions-transport-ws). They share the shape of a
//! message, `{"type", "id", "payload"}`, and differ in names: a keep-alive is
//! `ping` or `ka`, a result `next` or `data`, and an error's payload a list
//! or one error.

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::codes;

/// The subprotocol of the `graphql-ws` library.
pub(super) const TRANSPORT_WS: &str = "graphql-transport-ws";
/// The subprotocol of subscriptions-transport-ws.
pub(super) const LEGACY_WS: &str = "graphql-ws";

/// The protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    Transport,
    Legacy,
}

impl Protocol {
    /// The protocol of the negotiated subprotocol: the legacy one by its
    /// name, otherwise the modern one.
    pub(super) fn negotiated(subprotocol: Option<&str>) -> Protocol {
        match subprotocol {
            Some(LEGACY_WS) => Protocol::Legacy,
            _ => Protocol::Transport,
        }
    }

    /// The server's keep-alive.
    pub(super) fn keep_alive(self) -> Value {
        match self {
            Protocol::Transport => json!({"type": "ping"}),
            Protocol::Legacy => json!({"type": "ka"}),
        }
    }

    /// The type of a message carrying a result.
    pub(super) fn result_type(self) -> &'static str {
        match self {
            Protocol::Transport => "next",
            Protocol::Legacy => "data",
        }
    }

    /// An error of operation `id`, before it ran or when it stopped.
    pub(super) fn error(self, id: &str, code: &str, text: &str) -> Value {
        let error = json!({"message": text, "extensions": {"code": code}});
        match self {
            Protocol::Transport => json!({"type": "error", "id": id, "payload": [error]}),
            Protocol::Legacy => json!({"type": "error", "id": id, "payload": error}),
        }
    }

    /// Why `connection_init` was refused, where the protocol says it before
    /// closing (only the legacy one does).
    pub(super) fn connection_error(self, message: String) -> Option<Value> {
        (self == Protocol::Legacy)
            .then(|| json!({"type": "connection_error", "payload": {"message": message}}))
    }

    /// `{"type": kind, "id": id, "payload": payload}` as text, serialised
    /// straight from `payload`.
    pub(super) fn envelope(self, kind: &str, id: &str, payload: &impl Serialize) -> String {
        #[derive(Serialize)]
        struct Envelope<'a, P> {
            #[serde(rename = "type")]
            kind: &'a str,
            id: &'a str,
            payload: P,
        }
        serde_json::to_string(&Envelope { kind, id, payload }).unwrap_or_else(|_| {
            let text = "the result could not be serialised";
            self.error(id, codes::INTERNAL_SERVER_ERROR, text)
                .to_string()
        })
    }
}

/// The server accepted `connection_init`.
pub(super) fn connection_ack() -> Value {
    json!({"type": "connection_ack"})
}

/// The answer to a client's `ping`.
pub(super) fn pong() -> Value {
    json!({"type": "pong"})
}

/// Operation `id` sent all it had.
pub(super) fn complete(id: &str) -> Value {
    json!({"type": "complete", "id": id})
}

/// How a connection ends: a close code and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Close(pub u16, pub &'static str);

impl Close {
    pub(super) const TERMINATED: Close = Close(1000, "Terminated");
    pub(super) const SHUTTING_DOWN: Close = Close(1001, "The gateway is shutting down");
    pub(super) const MESSAGE_TOO_BIG: Close = Close(1009, "Message too big");
    pub(super) const EVICTED: Close = Close(
        1013,
        "Too many connections are waiting to initialise; try again",
    );
    pub(super) const INVALID_MESSAGE: Close = Close(4400, "Invalid message");
    pub(super) const BINARY_MESSAGE: Close = Close(4400, "Binary messages are not accepted");
    pub(super) const MISSING_ID: Close = Close(4400, "A subscription needs an id");
    pub(super) const UNAUTHORIZED: Close = Close(4401, "Unauthorized");
    pub(super) const TOKEN_EXPIRED: Close = Close(4401, "Token expired");
    pub(super) const FORBIDDEN: Close = Close(4403, "Forbidden");
    pub(super) const INIT_TIMEOUT: Close = Close(4408, "Connection initialisation timeout");
    pub(super) const DUPLICATE_ID: Close = Close(4409, "Subscriber for this id already exists");
    pub(super) const TOO_MANY_INITS: Close = Close(4429, "Too many initialisation requests");
}

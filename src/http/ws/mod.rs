//! GraphQL over WebSocket at `/graphql/ws`, in both protocols clients speak:
//! `graphql-transport-ws` (the `graphql-ws` library, GraphiQL) and the legacy
//! `graphql-ws` (subscriptions-transport-ws).
//!
//! The token comes in `connection_init`'s payload (`Authorization`,
//! `authorization` or `authToken`). A bad token closes the socket with 4401,
//! one without the read role with 4403, no `connection_init` within the
//! timeout with 4408, and the token's expiry with 4401. The server pings on an
//! interval (`ping`, or `ka` in the legacy protocol) so idle proxies keep the
//! socket open. Connections and subscriptions per connection are capped; at
//! the cap of sockets waiting for `connection_init`, the one that has waited
//! longest gives way (1013). A message over the size limit closes with 1009.
//!
//! This module is the connection loop; `protocol` holds the two protocols'
//! messages and close codes, `pending` the sockets waiting for
//! `connection_init`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tracing::{Instrument, debug, info_span};
use uuid::Uuid;

use super::HttpState;
use super::admission::admit;
use super::graphql::error_response;
use crate::auth::Principal;
use crate::error::codes;
use crate::graphql::execute::{Arrival, DeadlinePassed, Executed, GraphqlBody, RequestId};
use crate::telemetry::{metrics, trace};
use pending::Pending;
pub(crate) use pending::PendingSockets;
use protocol::{Close, LEGACY_WS, Protocol, TRANSPORT_WS, complete, connection_ack, pong};

mod pending;
mod protocol;
/// Messages queued for one connection's socket; a subscription whose client
/// reads slowly waits here, and its feed catches up from the database.
const OUTBOX: usize = 32;
/// Largest message a client may send.
const MAX_MESSAGE: usize = 64 * 1024;
/// Longest a write to a client may wait.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of the WebSocket endpoint.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// How long a client has to send `connection_init`.
    pub init_timeout: Duration,
    /// How often the server pings.
    pub ping_interval: Duration,
    /// Most WebSocket connections at once.
    pub max_connections: usize,
    /// Most connections at once that have not yet sent `connection_init`;
    /// past it, the one that has waited longest is closed (1013).
    pub max_pending_connections: usize,
    /// Most subscriptions one connection may hold.
    pub max_subscriptions: usize,
}

impl WsOptions {
    /// The defaults, also those of the command line.
    pub(crate) const DEFAULT: WsOptions = WsOptions {
        init_timeout: Duration::from_secs(10),
        ping_interval: Duration::from_secs(15),
        max_connections: 20_000,
        max_pending_connections: 1_000,
        max_subscriptions: 100,
    };
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions::DEFAULT
    }
}

/// Adds one to a gauge while it lives (open connections, subscriptions).
struct Counted(fn(f64));

impl Counted {
    fn new(gauge: fn(f64)) -> Counted {
        gauge(1.0);
        Counted(gauge)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        (self.0)(-1.0);
    }
}

/// A connection slot, given back when the connection ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /graphql/ws`: the upgrade.
pub(crate) async fn upgrade(State(state): State<HttpState>, ws: WebSocketUpgrade) -> Response {
    let open = state.ws_connections.fetch_add(1, Ordering::AcqRel);
    let slot = Slot(state.ws_connections.clone());
    if open >= state.ws.max_connections {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TOO_MANY_CONNECTIONS,
            "the gateway holds as many WebSocket connections as it allows; try again later",
            RequestId::fresh(),
        );
    }
    let pending = state.ws_pending.admit();
    ws.protocols([TRANSPORT_WS, LEGACY_WS])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            let _open = Counted::new(metrics::ws_connections);
            let protocol = Protocol::negotiated(socket.protocol().and_then(|p| p.to_str().ok()));
            let id = Uuid::now_v7();
            Connection::new(socket, protocol, state, Some(pending))
                .run()
                .instrument(info_span!("ws", connection = %id, ?protocol))
                .await
        })
        .into_response()
}

struct Connection {
    socket: WebSocket,
    protocol: Protocol,
    state: HttpState,
    /// Its place among the sockets waiting for `connection_init`, until that
    /// arrives.
    pending: Option<Pending>,
}

impl Connection {
    fn new(
        socket: WebSocket,
        protocol: Protocol,
        state: HttpState,
        pending: Option<Pending>,
    ) -> Connection {
        Connection {
            socket,
            protocol,
            state,
            pending,
        }
    }

    async fn run(mut self) {
        let init = tokio::time::timeout(self.state.ws.init_timeout, self.await_init()).await;
        self.pending = None;
        let close = match init {
            Err(_) => Some(Close::INIT_TIMEOUT),
            Ok(Err(close)) => Some(close),
            Ok(Ok(None)) => None,
            Ok(Ok(Some(principal))) => self.serve(principal).await,
        };
        if let Some(Close(code, reason)) = close {
            debug!(code, reason, "closing");
            let _ = self
                .socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
    }

    /// Sends `message`; `false` when the client is gone or has not read for
    /// [`WRITE_TIMEOUT`] (a client that stops reading does not hold the
    /// connection's loop, and with it its expiry and pings).
    async fn send(&mut self, message: Value) -> bool {
        let write = self.socket.send(Message::Text(message.to_string().into()));
        matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
    }

    /// Sends `first` and whatever else the operations have queued by now, in
    /// one write: under load a burst of events costs one system call, not
    /// one per message.
    async fn send_queued(&mut self, first: String, queue: &mut mpsc::Receiver<String>) -> bool {
        let socket = &mut self.socket;
        let write = async move {
            socket.feed(Message::Text(first.into())).await?;
            for _ in 1..OUTBOX {
                match queue.try_recv() {
                    Ok(text) => socket.feed(Message::Text(text.into())).await?,
                    Err(_) => break,
                }
            }
            socket.flush().await
        };
        matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
    }

    /// Waits for `connection_init` and verifies its token. `Ok(None)`: the
    /// client went away.
    async fn await_init(&mut self) -> Result<Option<Principal>, Close> {
        loop {
            let next = match &self.pending {
                Some(pending) => tokio::select! {
                    next = self.socket.next() => next,
                    () = pending.evicted() => return Err(Close::EVICTED),
                },
                None => self.socket.next().await,
            };
            let text = match next {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(err)) => return too_big(err).map_or(Ok(None), Err),
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
            };
            let message: Value = serde_json::from_str(&text).map_err(|_| Close::INVALID_MESSAGE)?;
            match message["type"].as_str() {
                Some("connection_init") => {
                    // It is no longer idle: no newer socket can evict it
                    // while its token is checked.
                    self.pending = None;
                    let principal = self.authenticate(&message["payload"]).await?;
                    self.send(connection_ack()).await;
                    return Ok(Some(principal));
                }
                Some("ping") if self.protocol == Protocol::Transport => {
                    self.send(pong()).await;
                }
                Some("subscribe" | "start") => return Err(Close::UNAUTHORIZED),
                _ => return Err(Close::INVALID_MESSAGE),
            }
        }
    }

    async fn authenticate(&mut self, payload: &Value) -> Result<Principal, Close> {
        let header = ["Authorization", "authorization", "authToken"]
            .iter()
            .find_map(|key| payload.get(*key).and_then(Value::as_str))
            .map(|value| {
                if value
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
                {
                    value.to_owned()
                } else {
                    format!("Bearer {value}")
                }
            });
        let principal = match self.state.auth.authenticate_header(header.as_deref()).await {
            Ok(principal) => principal,
            Err(err) => {
                if let Some(message) = self.protocol.connection_error(err.to_string()) {
                    self.send(message).await;
                }
                return Err(Close::UNAUTHORIZED);
            }
        };
        if let Err(err) = principal.require_read() {
            if let Some(message) = self.protocol.connection_error(err.to_string()) {
                self.send(message).await;
            }
            return Err(Close::FORBIDDEN);
        }
        Ok(principal)
    }

    /// Serves subscriptions until the client leaves, the token expires or the
    /// gateway stops.
    async fn serve(&mut self, principal: Principal) -> Option<Close> {
        let (outbox, mut outgoing) = mpsc::channel::<String>(OUTBOX);
        let mut running: HashMap<String, AbortHandle> = HashMap::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        let until_expiry = (principal.expires_at - chrono::Utc::now())
            .to_std()
            .unwrap_or_default();
        let expiry = tokio::time::sleep(until_expiry);
        tokio::pin!(expiry);
        let period = self.state.ws.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let stop = self.state.stop.clone();
        let close = loop {
            tokio::select! {
                _ = stop.cancelled() => break Some(Close::SHUTTING_DOWN),
                _ = &mut expiry => break Some(Close::TOKEN_EXPIRED),
                _ = ping.tick() => {
                    if !self.send(self.protocol.keep_alive()).await {
                        break None;
                    }
                }
                Some(message) = outgoing.recv() => {
                    if !self.send_queued(message, &mut outgoing).await {
                        break None;
                    }
                }
                Some(done) = tasks.join_next_with_id() => {
                    // Only the task that ended leaves: the id may be taken by
                    // a newer operation already.
                    if let Ok((task, id)) = done
                        && running.get(&id).is_some_and(|h| h.id() == task)
                    {
                        running.remove(&id);
                    }
                }
                incoming = self.socket.next() => {
                    let text = match incoming {
                        None | Some(Ok(Message::Close(_))) => break None,
                        Some(Err(err)) => break too_big(err),
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => break Some(Close::BINARY_MESSAGE),
                        Some(Ok(_)) => continue,
                    };
                    let Ok(message) = serde_json::from_str::<Value>(&text) else {
                        break Some(Close::INVALID_MESSAGE);
                    };
                    match self.handle(message, &principal, &outbox, &mut running, &mut tasks).await {
                        Ok(()) => {}
                        Err(close) => break close,
                    }
                }
            }
        };
        tasks.abort_all();
        close
    }

    /// One client message after `connection_init`.
    async fn handle(
        &mut self,
        message: Value,
        principal: &Principal,
        outbox: &mpsc::Sender<String>,
        running: &mut HashMap<String, AbortHandle>,
        tasks: &mut JoinSet<String>,
    ) -> Result<(), Option<Close>> {
        let kind = message["type"].as_str().unwrap_or_default();
        let id = message["id"].as_str().map(str::to_owned);
        match (self.protocol, kind) {
            (Protocol::Transport, "ping") => {
                self.send(pong()).await;
            }
            (Protocol::Transport, "pong") => {}
            (Protocol::Transport, "connection_init") => {
                return Err(Some(Close::TOO_MANY_INITS));
            }
            (Protocol::Legacy, "connection_init") => {}
            (Protocol::Legacy, "connection_terminate") => {
                return Err(Some(Close::TERMINATED));
            }
            (Protocol::Transport, "subscribe") | (Protocol::Legacy, "start") => {
                let Some(id) = id else {
                    return Err(Some(Close::MISSING_ID));
                };
                if running.contains_key(&id) {
                    if self.protocol == Protocol::Transport {
                        return Err(Some(Close::DUPLICATE_ID));
                    }
                    self.send(self.protocol.error(
                        &id,
                        codes::BAD_REQUEST,
                        "a subscription with this id is running",
                    ))
                    .await;
                    return Ok(());
                }
                if running.len() >= self.state.ws.max_subscriptions {
                    let text = format!(
                        "a connection holds at most {} subscriptions",
                        self.state.ws.max_subscriptions
                    );
                    self.send(
                        self.protocol
                            .error(&id, codes::TOO_MANY_SUBSCRIPTIONS, &text),
                    )
                    .await;
                    return Ok(());
                }
                let Ok(body) = serde_json::from_value::<GraphqlBody>(message["payload"].clone())
                else {
                    self.send(self.protocol.error(
                        &id,
                        codes::BAD_REQUEST,
                        "the payload is not a GraphQL request",
                    ))
                    .await;
                    return Ok(());
                };
                let mut request = body.into_request();
                let operation =
                    match admit(&self.state, principal, &mut request, Arrival::WebSocket) {
                        Ok(operation) => operation,
                        Err(refusal) => {
                            metrics::operation_refused(refusal.code);
                            let refused = self.protocol.error(&id, refusal.code, &refusal.message);
                            self.send(refused).await;
                            return Ok(());
                        }
                    };
                let handle = tasks.spawn(run_operation(
                    self.state.clone(),
                    self.protocol,
                    id.clone(),
                    request,
                    operation,
                    principal.clone(),
                    outbox.clone(),
                ));
                running.insert(id, handle);
            }
            (Protocol::Transport, "complete") | (Protocol::Legacy, "stop") => {
                if let Some(id) = id
                    && let Some(handle) = running.remove(&id)
                {
                    handle.abort();
                    // The legacy protocol confirms a stop; the modern one does not.
                    if self.protocol == Protocol::Legacy {
                        self.send(complete(&id)).await;
                    }
                }
            }
            _ => return Err(Some(Close::INVALID_MESSAGE)),
        }
        Ok(())
    }
}

/// The close of a socket whose read failed because the message was over the
/// size limit; other failures (the client went away, a broken frame) get none.
fn too_big(err: axum::Error) -> Option<Close> {
    let err = err.into_inner();
    matches!(
        err.downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
    .then_some(Close::MESSAGE_TOO_BIG)
}

/// Runs one operation and sends its results; returns its id when done.
async fn run_operation(
    state: HttpState,
    protocol: Protocol,
    id: String,
    request: async_graphql::Request,
    kind: Option<OperationType>,
    principal: Principal,
    outbox: mpsc::Sender<String>,
) -> String {
    let request_id = RequestId::fresh();
    let span = trace::request_span!("ws", "GET", request_id.0);
    trace::traced(span, opentelemetry::Context::new(), async move {
        trace::record_tenant(&principal.tenant_id);
        let responses = state
            .graphql
            .execute_stream(request, principal, request_id, kind);
        send_results(protocol, id, kind, responses, outbox).await
    })
    .await
}

/// Sends the results of one operation; returns its id when done.
async fn send_results(
    protocol: Protocol,
    id: String,
    kind: Option<OperationType>,
    responses: impl futures_util::Stream<Item = Result<Executed, DeadlinePassed>>,
    outbox: mpsc::Sender<String>,
) -> String {
    let _running =
        (kind == Some(OperationType::Subscription)).then(|| Counted::new(metrics::subscriptions));
    let mut responses = std::pin::pin!(responses);
    let mut first = true;
    while let Some(next) = responses.next().await {
        let executed = match next {
            Ok(executed) => executed,
            Err(DeadlinePassed) => {
                let timeout = protocol.error(
                    &id,
                    codes::TIMEOUT,
                    "the operation took longer than the gateway allows and was stopped",
                );
                let _ = outbox.send(timeout.to_string()).await;
                return id;
            }
        };
        let message = if first && executed.failed {
            // The operation could not start: an error message, and no complete.
            let _ = outbox
                .send(protocol.envelope("error", &id, &executed.response.errors))
                .await;
            return id;
        } else {
            // Serialised straight from the response: one event goes to many
            // subscribers, so no intermediate JSON tree per delivery.
            protocol.envelope(protocol.result_type(), &id, &executed.response)
        };
        first = false;
        if outbox.send(message).await.is_err() {
            return id;
        }
    }
    let _ = outbox.send(complete(&id).to_string()).await;
    id
}

//! The WebSocket endpoint under abuse: a flood of sockets that never send
//! `connection_init` does not keep real subscribers out, and a message over
//! the size limit gets a close code rather than a dropped connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp, reader, writer};
use crate::ws_client::{Next, TRANSPORT, WATCH, WsClient};

/// Connects and completes `connection_init`, as `graphql-ws` does: a refused
/// upgrade or a close before the acknowledgement is tried again, at most
/// `attempts` times.
async fn connect_with_retries(app: &TestApp, token: &str, attempts: usize) -> Option<WsClient> {
    for _ in 0..attempts {
        let Some(mut client) = WsClient::try_open(app, TRANSPORT).await else {
            continue;
        };
        client
            .send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}))
            .await;
        match client.next_within(Duration::from_secs(10)).await {
            Some(Next::Message(message)) if message["type"] == "connection_ack" => {
                return Some(client);
            }
            _ => continue,
        }
    }
    None
}

async fn a_flood_of_idle_sockets_does_not_keep_subscribers_out(backend: Backend) {
    const CAP: usize = 50;
    let app = Arc::new(
        TestApp::builder(backend)
            .configure(|c| {
                c.ws.max_pending_connections = CAP;
                // Long enough that idle sockets would hold their places for
                // the whole test if nothing took them away.
                c.ws.init_timeout = Duration::from_secs(60);
            })
            .spawn()
            .await,
    );
    // Twice the cap of sockets that never initialise, each opened again as
    // soon as the gateway closes it or refuses it.
    let flooding = Arc::new(AtomicBool::new(true));
    let opened = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::new();
    for _ in 0..2 * CAP {
        let (app, flooding, opened) = (app.clone(), flooding.clone(), opened.clone());
        flood.push(tokio::spawn(async move {
            while flooding.load(Ordering::Relaxed) {
                match WsClient::try_open(&app, TRANSPORT).await {
                    Some(mut socket) => {
                        opened.fetch_add(1, Ordering::Relaxed);
                        // Idle until the gateway closes it.
                        while !matches!(
                            socket.next_within(Duration::from_secs(120)).await,
                            Some(Next::Closed(..))
                        ) {}
                    }
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    crate::helpers::eventually("the flood to fill the waiting sockets", || async {
        opened.load(Ordering::Relaxed) >= 2 * CAP
    })
    .await;

    // Ten subscribers connect during the flood, each with at most three
    // tries, and all hear an action.
    let subscribers = futures_util::future::join_all((0..10).map(|_| {
        let app = app.clone();
        async move { connect_with_retries(&app, &reader("tenant-a"), 3).await }
    }))
    .await;
    let connected = subscribers.iter().filter(|s| s.is_some()).count();
    assert_eq!(connected, 10, "subscribers that got in during the flood");
    let mut subscribers: Vec<WsClient> = subscribers.into_iter().flatten().collect();
    let attached = app.events.subscribers();
    for client in &mut subscribers {
        client.subscribe("s", WATCH, json!({})).await;
    }
    crate::helpers::eventually("the subscriptions to attach", || async {
        app.events.subscribers() >= attached + 10
    })
    .await;
    let id = app
        .invoke(&writer("tenant-a"), "blockIp", "ip", "203.0.113.7")
        .await;
    for client in &mut subscribers {
        let event = client.next_event("s").await;
        assert_eq!(event["action"]["id"], id.as_str());
    }
    flooding.store(false, Ordering::Relaxed);
    for task in flood {
        task.abort();
    }
}

async fn an_idle_socket_that_gives_way_is_closed_with_1013(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.ws.max_pending_connections = 2)
        .spawn()
        .await;
    let mut oldest = WsClient::open(&app, TRANSPORT).await;
    let _second = WsClient::open(&app, TRANSPORT).await;
    let _third = WsClient::open(&app, TRANSPORT).await;
    assert_eq!(oldest.closed().await.0, 1013);
}

async fn messages_over_the_size_limit_are_closed_with_1009(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = reader("tenant-a");
    let padding = "x".repeat(80 * 1024);

    let mut client = WsClient::open(&app, TRANSPORT).await;
    client
        .send(json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}"), "padding": padding}}))
        .await;
    assert_eq!(
        client.closed().await.0,
        1009,
        "an oversized connection_init"
    );

    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    client
        .subscribe("big", WATCH, json!({"padding": padding}))
        .await;
    assert_eq!(client.closed().await.0, 1009, "an oversized subscribe");

    // The gateway goes on.
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    client.subscribe("fine", WATCH, json!({})).await;
    client.assert_quiet(Duration::from_millis(200)).await;
}

crate::on_both_backends!(
    a_flood_of_idle_sockets_does_not_keep_subscribers_out,
    an_idle_socket_that_gives_way_is_closed_with_1013,
    messages_over_the_size_limit_are_closed_with_1009,
);

//! `actionStatusChanged` over WebSocket: live events in order, tenant scope,
//! resume without loss, close codes, both protocols, slow consumers, and
//! events across replicas.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use actiongate::{READ_ROLE, TokenSpec, mint};
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TEST_SECRET, TestApp, eventually, published, reader, token_with, writer,
};
use crate::ws_client::{
    LEGACY, Next, TRANSPORT, WATCH, WsClient, event_ids, event_statuses, watch,
};

async fn block(app: &TestApp, token: &str, ip: &str) -> String {
    app.invoke(token, "blockIp", "ip", ip).await
}

async fn a_subscriber_sees_a_block_go_not_started_running_completed(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&app, TRANSPORT, &reader("tenant-a")).await;
    watch(&app, &mut client, "1", json!({})).await;

    let id = block(&app, &token, "203.0.113.7").await;
    let events = client.events("1", 3).await;

    assert_eq!(
        event_statuses(&events),
        ["NOT_STARTED", "RUNNING", "COMPLETED"]
    );
    assert_eq!(event_ids(&events), [id.as_str(); 3]);
    assert!(events[0]["previousStatus"].is_null());
    assert_eq!(events[1]["previousStatus"], "NOT_STARTED");
    assert_eq!(events[2]["previousStatus"], "RUNNING");
    assert_eq!(
        events[0]["action"]["parameters"],
        json!([{"name": "ip", "value": "203.0.113.7"}])
    );
    let cursors: HashSet<&str> = events
        .iter()
        .map(|e| e["cursor"].as_str().unwrap())
        .collect();
    assert_eq!(cursors.len(), 3, "each event has its own cursor");
    client.assert_quiet(Duration::from_millis(300)).await;
}

async fn a_tenant_hears_nothing_of_another_tenant(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let mut b_client = WsClient::connect(&app, TRANSPORT, &reader("tenant-b")).await;
    watch(&app, &mut b_client, "b", json!({})).await;

    let a_action = block(&app, &writer("tenant-a"), "203.0.113.7").await;
    app.wait_for_status(&writer("tenant-a"), &a_action, "COMPLETED")
        .await;
    let b_action = block(&app, &writer("tenant-b"), "203.0.113.8").await;
    let events = b_client.events("b", 3).await;

    assert_eq!(
        event_ids(&events),
        [b_action.as_str(); 3],
        "only tenant B's own action"
    );
    assert!(
        events
            .iter()
            .all(|e| e["action"]["azureTenantId"] == "tenant-b")
    );
    b_client.assert_quiet(Duration::from_millis(300)).await;
}

async fn a_subscriber_resumes_from_its_cursor_with_exactly_the_missed_events(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    watch(&app, &mut client, "1", json!({})).await;
    let first = block(&app, &token, "10.0.0.1").await;
    let seen = client.events("1", 3).await;
    let cursor = seen[2]["cursor"].clone();
    client.close().await;

    let mut missed = Vec::new();
    for i in 2..=4 {
        missed.push(block(&app, &token, &format!("10.0.0.{i}")).await);
    }
    for id in &missed {
        app.wait_for_status(&token, id, "COMPLETED").await;
    }

    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    client.subscribe("2", WATCH, json!({"after": cursor})).await;
    let replayed = client.events("2", 9).await;

    assert!(
        !event_ids(&replayed).contains(&first.as_str()),
        "nothing from before the cursor"
    );
    for id in &missed {
        let of_action: Vec<&Value> = replayed
            .iter()
            .filter(|e| e["action"]["id"] == id.as_str())
            .collect();
        let s: Vec<&str> = of_action
            .iter()
            .map(|e| e["status"].as_str().unwrap())
            .collect();
        assert_eq!(s, ["NOT_STARTED", "RUNNING", "COMPLETED"], "action {id}");
    }
    // Then live, with no duplicate at the seam.
    let live = block(&app, &token, "10.0.0.5").await;
    let after_seam = client.events("2", 3).await;
    assert_eq!(event_ids(&after_seam), [live.as_str(); 3]);
    let all: Vec<&str> = replayed
        .iter()
        .chain(&after_seam)
        .map(|e| e["cursor"].as_str().unwrap())
        .collect();
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "no event twice"
    );
    client.assert_quiet(Duration::from_millis(300)).await;
}

async fn a_filter_by_ids_and_status_selects_events(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let token = writer("tenant-a");
    let watched = block(&app, &token, "10.0.0.1").await;
    app.wait_for_status(&token, &watched, "COMPLETED").await;
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    watch(
        &app,
        &mut client,
        "ids",
        json!({"filter": {"ids": [watched], "status": ["CANCELED"]}}),
    )
    .await;

    let other = block(&app, &token, "10.0.0.2").await;
    app.wait_for_status(&token, &other, "COMPLETED").await;
    app.cancel(&token, &other).await;
    app.cancel(&token, &watched).await;

    let event = client.next_event("ids").await;
    assert_eq!(event["action"]["id"], watched.as_str());
    assert_eq!(event["status"], "CANCELED");
    assert_eq!(event["previousStatus"], "COMPLETED");
    client.assert_quiet(Duration::from_millis(500)).await;
}

async fn a_malformed_or_unknown_cursor_is_bad_user_input(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    let other_tenant = block(&app, &writer("tenant-b"), "10.0.0.1").await;
    let _ = other_tenant;
    // A well-formed cursor (made beneath the API) of another tenant's event.
    let unknown = app.events.cursors().encode("tenant-a", 1);
    for (id, after) in [("bad", json!("not-a-cursor")), ("unknown", json!(unknown))] {
        client.subscribe(id, WATCH, json!({"after": after})).await;
        let message = client.next_message().await;
        assert_eq!(message["type"], "error", "{message}");
        assert_eq!(message["id"], id);
        assert_eq!(
            message["payload"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{message}"
        );
        assert_eq!(message["payload"][0]["extensions"]["field"], "after");
    }
}

async fn event_cursors_tell_a_tenant_nothing_of_other_tenants(backend: Backend) {
    use base64::Engine;
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let (a, b) = (writer("tenant-a"), writer("tenant-b"));
    let mut client = WsClient::connect(&app, TRANSPORT, &a).await;
    watch(&app, &mut client, "a", json!({})).await;
    let first = block(&app, &a, "10.0.3.1").await;
    let first_events = client.events("a", 3).await;
    // Over a hundred events of another tenant in between.
    let mut between = Vec::new();
    for i in 0..40 {
        between.push(block(&app, &b, &format!("10.0.4.{i}")).await);
    }
    for id in &between {
        app.wait_for_status(&b, id, "COMPLETED").await;
    }
    let second = block(&app, &a, "10.0.3.2").await;
    let second_events = client.events("a", 3).await;
    assert_eq!(event_ids(&first_events), [first.as_str(); 3]);
    assert_eq!(event_ids(&second_events), [second.as_str(); 3]);

    // The event numbers, which count every tenant's events, are nowhere in
    // the cursor's bytes.
    let numbers: Vec<i64> = app
        .store
        .events_after("tenant-a", 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(numbers.len(), 6);
    for event in first_events.iter().chain(&second_events) {
        let text = event["cursor"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec());
        for seq in &numbers {
            for needle in [
                seq.to_string().into_bytes(),
                seq.to_be_bytes().to_vec(),
                seq.to_le_bytes().to_vec(),
            ] {
                // (Shorter needles turn up in random bytes by chance.)
                assert!(
                    needle.len() < 3 || !bytes.windows(needle.len()).any(|w| w == needle),
                    "cursor {text} carries the event number {seq}"
                );
            }
        }
    }

    // Another tenant cannot use them.
    let mut other = WsClient::connect(&app, TRANSPORT, &b).await;
    other
        .subscribe("b", WATCH, json!({"after": first_events[0]["cursor"]}))
        .await;
    let refused = other.next_message().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["field"], "after");

    // Their own tenant resumes with them.
    let mut again = WsClient::connect(&app, TRANSPORT, &a).await;
    again
        .subscribe("r", WATCH, json!({"after": first_events[2]["cursor"]}))
        .await;
    let replayed = again.events("r", 3).await;
    assert_eq!(event_ids(&replayed), [second.as_str(); 3]);
    assert_eq!(replayed, second_events);
}

fn expiring_token(tenant: &str, ttl: Duration) -> String {
    let spec = TokenSpec {
        tenant: tenant.into(),
        app: "app-1".into(),
        user: "u".into(),
        roles: vec![READ_ROLE.into()],
        ttl,
        issuer: None,
        audience: None,
    };
    mint(TEST_SECRET.as_bytes(), &spec).unwrap()
}

async fn bad_tokens_missing_roles_silence_and_expiry_close_the_socket_with_their_codes(
    backend: Backend,
) {
    let app = TestApp::builder(backend)
        .configure(|c| c.ws.init_timeout = Duration::from_millis(500))
        .spawn()
        .await;
    for protocol in [TRANSPORT, LEGACY] {
        let mut bad = WsClient::open(&app, protocol).await;
        bad.send(json!({"type": "connection_init", "payload": {"Authorization": "Bearer nope"}}))
            .await;
        assert_eq!(bad.closed().await.0, 4401, "{protocol}: bad token");

        let mut no_role = WsClient::open(&app, protocol).await;
        let token = token_with("tenant-a", "app-1", "u", &[]);
        no_role.send(json!({"type": "connection_init", "payload": {"authorization": format!("Bearer {token}")}})).await;
        assert_eq!(no_role.closed().await.0, 4403, "{protocol}: no read role");

        let mut odd = WsClient::open(&app, protocol).await;
        let odd_token = json!({"Authorization": "aaaaaaé-not-a-token"});
        odd.send(json!({"type": "connection_init", "payload": odd_token}))
            .await;
        assert_eq!(odd.closed().await.0, 4401, "{protocol}: a non-ASCII token");

        let mut silent = WsClient::open(&app, protocol).await;
        assert_eq!(
            silent.closed().await.0,
            4408,
            "{protocol}: no connection_init"
        );

        let mut expiring = WsClient::open(&app, protocol).await;
        let token = expiring_token("tenant-a", Duration::from_secs(2));
        expiring
            .send(json!({"type": "connection_init", "payload": {"authToken": token}}))
            .await;
        assert_eq!(expiring.next_message().await["type"], "connection_ack");
        assert_eq!(expiring.closed().await.0, 4401, "{protocol}: token expired");
    }
    let mut early = WsClient::open(&app, TRANSPORT).await;
    early.subscribe("1", WATCH, json!({})).await;
    assert_eq!(
        early.closed().await.0,
        4401,
        "subscribing before connection_init"
    );
}

async fn the_server_pings_and_the_legacy_protocol_works(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.ws.ping_interval = Duration::from_millis(300))
        .spawn()
        .await;
    let token = writer("tenant-a");

    let mut modern = WsClient::connect(&app, TRANSPORT, &token).await;
    match modern.next_within(Duration::from_secs(5)).await {
        Some(Next::Message(m)) => assert_eq!(m["type"], "ping"),
        other => panic!("expected a ping, got {other:?}"),
    }
    modern.send(json!({"type": "ping"})).await;
    assert_eq!(modern.next_message().await["type"], "pong");

    let mut legacy = WsClient::connect(&app, LEGACY, &token).await;
    match legacy.next_within(Duration::from_secs(5)).await {
        Some(Next::Message(m)) => assert_eq!(m["type"], "ka"),
        other => panic!("expected a keep-alive, got {other:?}"),
    }
    watch(&app, &mut legacy, "1", json!({})).await;
    let id = block(&app, &token, "10.0.0.1").await;
    let events = legacy.events("1", 3).await;
    assert_eq!(
        event_statuses(&events),
        ["NOT_STARTED", "RUNNING", "COMPLETED"]
    );
    assert_eq!(event_ids(&events), [id.as_str(); 3]);
    legacy.stop("1").await;
    assert_eq!(legacy.next_message().await["type"], "complete");
}

async fn duplicate_ids_and_too_many_subscriptions_are_refused(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.ws.max_subscriptions = 2)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    client.subscribe("1", WATCH, json!({})).await;
    client.subscribe("2", WATCH, json!({})).await;
    client.subscribe("3", WATCH, json!({})).await;
    let refused = client.next_message().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["id"], "3");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "TOO_MANY_SUBSCRIPTIONS"
    );
    client.subscribe("1", WATCH, json!({})).await;
    assert_eq!(client.closed().await.0, 4409);
}

async fn queries_and_mutations_also_run_over_the_socket(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    client
        .subscribe(
            "m",
            "mutation { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: \"10.0.0.1\"}]}) { status } }",
            json!({}),
        )
        .await;
    let result = client.next_message().await;
    assert_eq!(result["type"], "next");
    assert_eq!(
        result["payload"]["data"]["invokeAction"]["status"],
        "NOT_STARTED"
    );
    assert_eq!(client.next_message().await["type"], "complete");
}

async fn a_feed_that_falls_behind_catches_up_from_the_database(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.event_buffer = 2)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let feed = actiongate::event_feed::watch(
        app.events.clone(),
        "tenant-a".into(),
        Default::default(),
        None,
        u64::MAX,
    );
    let mut feed = Box::pin(feed);
    // The first poll subscribes; nothing is there yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), feed.next())
            .await
            .is_err()
    );

    // Without being read, the feed falls far behind a two-batch buffer.
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(block(&app, &token, &format!("10.0.1.{i}")).await);
    }
    for id in &ids {
        app.wait_for_status(&token, id, "COMPLETED").await;
    }

    let mut per_action: HashMap<String, Vec<String>> = HashMap::new();
    let mut last_seq = 0;
    for _ in 0..60 {
        let delivered = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("an event")
            .expect("the feed goes on")
            .unwrap_or_else(|_| panic!("the feed failed"));
        assert!(delivered.event.seq > last_seq, "in cursor order, each once");
        last_seq = delivered.event.seq;
        per_action
            .entry(delivered.event.action.id.to_string())
            .or_default()
            .push(delivered.event.change.status.to_string());
    }
    assert_eq!(per_action.len(), 20);
    assert!(
        per_action
            .values()
            .all(|s| s == &["NotStarted", "Running", "Completed"])
    );
}

async fn a_feed_too_far_behind_ends_with_the_cursor_to_resume_from(backend: Backend) {
    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| {
            c.event_buffer = 1;
            c.subscriber_max_lag = 5;
        })
        .spawn()
        .await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&app, TRANSPORT, &token).await;
    let first = block(&app, &token, "10.0.2.0").await;
    app.wait_for_status(&token, &first, "COMPLETED").await;
    published(&app).await;
    let oldest = app.store.events_after("tenant-a", 0, 1).await.unwrap()[0].seq;
    let feed = actiongate::event_feed::watch(
        app.events.clone(),
        "tenant-a".into(),
        Default::default(),
        Some(oldest),
        5,
    );
    let mut feed = Box::pin(feed);
    // One event read (the feed is past it), then the reader stalls.
    let read = feed
        .next()
        .await
        .unwrap()
        .unwrap_or_else(|_| panic!("an event"));
    assert!(read.event.seq > oldest);
    // One action at a time, each published before the next: many batches
    // for a buffer of one.
    for i in 1..10 {
        let id = block(&app, &token, &format!("10.0.2.{i}")).await;
        app.wait_for_status(&token, &id, "COMPLETED").await;
        published(&app).await;
    }
    let mut ended = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .unwrap()
    {
        if let Err(actiongate::event_feed::FeedError::TooSlow { cursor }) = item {
            ended = Some(cursor);
            break;
        }
    }
    let resume_from = ended
        .expect("the feed ends as too slow")
        .expect("with a cursor of the tenant's own");
    // The cursor is one the API accepts: subscribing with it replays what came after.
    client
        .subscribe(
            "r",
            WATCH,
            json!({"after": app.events.cursors().encode("tenant-a", resume_from)}),
        )
        .await;
    let replayed = client.next_event("r").await;
    assert!(replayed["cursor"].is_string());
}

async fn many_concurrent_writers_and_a_reader_that_sees_every_state_row(backend: Backend) {
    let app = TestApp::builder(backend).with_executor().spawn().await;
    let writers = (0..8).map(|w| {
        let app = &app;
        async move {
            let token = writer(&format!("tenant-{w}"));
            for i in 0..25 {
                block(app, &token, &format!("10.{w}.0.{i}")).await;
            }
        }
    });
    let reading = async {
        // 8 writers × 25 actions × 3 states, read with the cursor only moving forward.
        let seen: RefCell<Vec<(i64, i64)>> = RefCell::default();
        eventually("the reader to see 600 state rows", || async {
            let cursor = seen.borrow().last().map_or(0, |(seq, _)| *seq);
            let events = app.store.all_tenants_events_after(cursor, 50).await;
            let mut seen = seen.borrow_mut();
            seen.extend(events.unwrap().iter().map(|e| (e.seq, e.change.id)));
            if seen.len() >= 600 {
                Ok(())
            } else {
                Err(format!("{} rows", seen.len()))
            }
        })
        .await;
        seen.into_inner()
    };
    let (_, seen) = tokio::join!(futures_util::future::join_all(writers), reading);

    let db = Database::connect(app.database.url.as_str()).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id, seq FROM action_states ORDER BY seq",
        ))
        .await
        .unwrap();
    let all: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get::<Option<i64>>("", "seq")
                    .unwrap()
                    .expect("numbered"),
                r.try_get("", "id").unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, all, "the reader saw every row, once, in cursor order");
    let seqs: Vec<i64> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (1..=600).collect::<Vec<i64>>(),
        "cursors have no gaps"
    );
    db.close().await.ok();
}

async fn a_subscriber_on_one_replica_hears_every_event_of_another(backend: Backend) {
    let listening = TestApp::spawn(backend.clone()).await;
    let working = TestApp::builder(backend)
        .with_executor()
        .on_database(&listening.database)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let mut client = WsClient::connect(&listening, TRANSPORT, &token).await;
    watch(&listening, &mut client, "1", json!({})).await;

    let invoking = async {
        let mut ids = Vec::new();
        for chunk in 0..10 {
            let batch = (0..20).map(|i| {
                let (working, token) = (&working, &token);
                async move { block(working, token, &format!("10.3.{chunk}.{i}")).await }
            });
            ids.extend(futures_util::future::join_all(batch).await);
        }
        ids
    };
    let receiving = client.events("1", 600);
    let (ids, events) = tokio::join!(invoking, receiving);

    let mut per_action: HashMap<&str, Vec<&str>> = HashMap::new();
    for event in &events {
        per_action
            .entry(event["action"]["id"].as_str().unwrap())
            .or_default()
            .push(event["status"].as_str().unwrap());
    }
    assert_eq!(per_action.len(), 200);
    for id in &ids {
        assert_eq!(
            per_action[id.as_str()],
            ["NOT_STARTED", "RUNNING", "COMPLETED"],
            "{id}"
        );
    }
    let cursors: HashSet<&str> = events
        .iter()
        .map(|e| e["cursor"].as_str().unwrap())
        .collect();
    assert_eq!(cursors.len(), 600, "each event exactly once");
    client.assert_quiet(Duration::from_millis(500)).await;
}

async fn a_cancel_through_one_replica_stops_an_attempt_running_on_another(backend: Backend) {
    let receiver = crate::receivers::WebhookReceiver::start(|r, _| match r.operation.as_str() {
        "execute" => crate::receivers::Reply::slow(200, Duration::from_secs(120)),
        _ => crate::receivers::Reply::status(200),
    })
    .await;
    let slow = |c: &mut actiongate::Config| {
        c.executor.lease = Duration::from_secs(120);
        c.executor.provider_timeout = Duration::from_secs(100);
    };
    let working = TestApp::builder(backend.clone())
        .with_executor()
        .configure(slow)
        .providers(&receiver.provider_toml("100s"))
        .spawn()
        .await;
    let serving = TestApp::builder(backend)
        .configure(slow)
        .providers(&receiver.provider_toml("100s"))
        .on_database(&working.database)
        .spawn()
        .await;
    let token = writer("tenant-a");
    let id = block(&serving, &token, "10.4.0.1").await;
    eventually("the execute request", || async {
        receiver.count(&id, "execute") > 0
    })
    .await;

    serving.cancel(&token, &id).await;

    // Well before the attempt's 100 s timeout.
    serving.wait_for_status(&token, &id, "CANCELED").await;
    assert_eq!(receiver.count(&id, "revert"), 1);
}

async fn graphiql_has_the_subscription_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let settings: Value = app.get_json("/ui/settings").await;
    assert_eq!(settings["websocketPath"], "/graphql/ws");
}

crate::on_both_backends!(
    a_subscriber_sees_a_block_go_not_started_running_completed,
    a_tenant_hears_nothing_of_another_tenant,
    a_subscriber_resumes_from_its_cursor_with_exactly_the_missed_events,
    a_filter_by_ids_and_status_selects_events,
    a_malformed_or_unknown_cursor_is_bad_user_input,
    event_cursors_tell_a_tenant_nothing_of_other_tenants,
    bad_tokens_missing_roles_silence_and_expiry_close_the_socket_with_their_codes,
    the_server_pings_and_the_legacy_protocol_works,
    duplicate_ids_and_too_many_subscriptions_are_refused,
    queries_and_mutations_also_run_over_the_socket,
    a_feed_that_falls_behind_catches_up_from_the_database,
    a_feed_too_far_behind_ends_with_the_cursor_to_resume_from,
    many_concurrent_writers_and_a_reader_that_sees_every_state_row,
    a_subscriber_on_one_replica_hears_every_event_of_another,
    graphiql_has_the_subscription_endpoint,
);

// A cancel reaches another replica through PostgreSQL's NOTIFY; SQLite runs
// one process.
crate::on_postgres!(postgres_replicas: a_cancel_through_one_replica_stops_an_attempt_running_on_another);

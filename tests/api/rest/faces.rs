//! One store behind two faces: what REST creates GraphQL and subscriptions
//! see, what GraphQL invokes REST sees; and tenants never see each other.

use serde_json::json;

use super::odata::encode;
use super::{ACTIONS, Graph};
use crate::helpers::{Backend, TestApp, reader, writer};
use crate::ws_client::{TRANSPORT, WsClient, watch};

async fn an_action_created_over_rest_is_seen_by_graphql_and_a_live_subscription(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let mut client = WsClient::connect(&app, TRANSPORT, &reader("contoso")).await;
    watch(&app, &mut client, "1", json!({})).await;

    let rest = graph.block_ip(&token, "198.51.100.77").await;
    let id = rest["id"].as_str().unwrap();
    let event = client.next_event("1").await;

    assert_eq!(event["action"]["id"], id);
    assert_eq!(event["status"], "NOT_STARTED");
    assert_eq!(event["action"]["azureTenantId"], "contoso");
    assert_eq!(
        event["action"]["parameters"],
        json!([{"name": "ip", "value": "198.51.100.77"}])
    );
    let seen = app.action(&token, id).await;
    assert_eq!(seen["id"], id);
    assert_eq!(seen["name"], "blockIp");
    assert_eq!(seen["status"], "NOT_STARTED");
    client.close().await;
}

async fn an_action_invoked_over_graphql_is_seen_and_canceled_over_rest(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let id = app.block_ip(&token, "203.0.113.9").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let read = graph.get(&format!("{ACTIONS}/{id}"), &token).await;
    let listed = graph.get(ACTIONS, &token).await;
    let canceled = graph
        .post(
            &format!("{ACTIONS}/{id}/cancelSecurityAction"),
            &token,
            None,
        )
        .await;
    let after = app.action(&token, &id).await;

    assert_eq!(read.status, 200);
    let action = read.json();
    assert_eq!(action["status"], "NotStarted");
    assert_eq!(
        action["parameters"],
        json!([{"name": "ip", "value": "203.0.113.9"}])
    );
    assert_eq!(action["appId"], "app-1");
    assert_eq!(listed.ids(), vec![id.clone()]);
    assert_eq!(canceled.status, 200);
    assert_eq!(after["status"], "CANCELED", "GraphQL sees the REST cancel");
    assert!(after["cancelRequestedDateTime"].is_string());
}

async fn another_tenant_is_invisible_to_every_endpoint(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let a = writer("tenant-a");
    let b = writer("tenant-b");
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            graph.block_ip(&a, &format!("203.0.113.{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mine = graph.block_ip(&b, "198.51.100.1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let missing = "00000000-0000-7000-8000-000000000000";

    let read = graph.get(&format!("{ACTIONS}/{}", ids[0]), &b).await;
    let read_missing = graph.get(&format!("{ACTIONS}/{missing}"), &b).await;
    let cancel = graph
        .post(
            &format!("{ACTIONS}/{}/cancelSecurityAction", ids[0]),
            &b,
            None,
        )
        .await;
    let list = graph.get(&format!("{ACTIONS}?$count=true"), &b).await;
    let count = graph.get(&format!("{ACTIONS}/$count"), &b).await;
    let by_id = graph
        .get(
            &format!(
                "{ACTIONS}?$filter={}",
                encode(&format!("id eq '{}'", ids[0]))
            ),
            &b,
        )
        .await;
    let by_parameter = graph
        .get(
            &format!(
                "{ACTIONS}/$count?$filter={}",
                encode("parameters/any(p: p/name eq 'ip' and p/value eq '203.0.113.0')")
            ),
            &b,
        )
        .await;
    // A cursor from tenant A's list reads only tenant B's rows.
    let a_page = graph.get(&format!("{ACTIONS}?$top=1"), &a).await.json();
    let a_link = a_page["@odata.nextLink"].as_str().unwrap();
    let foreign_cursor = &a_link[format!("http://{}", app.address).len()..];
    let with_foreign_cursor = graph.get(foreign_cursor, &b).await;

    assert_eq!(read.status, 404);
    assert_eq!(cancel.status, 404);
    assert_eq!(
        read.graph_error().1.replace(&ids[0], "<id>"),
        read_missing.graph_error().1.replace(missing, "<id>"),
        "the same answer as for an id that does not exist"
    );
    assert_eq!(list.ids(), vec![mine.clone()]);
    assert_eq!(list.json()["@odata.count"], 1);
    assert_eq!(count.text, "1");
    assert!(by_id.ids().is_empty());
    assert_eq!(by_parameter.text, "0");
    assert!(with_foreign_cursor.ids().iter().all(|id| *id == mine));
    let untouched = app.action(&a, &ids[0]).await;
    assert_eq!(
        untouched["status"], "NOT_STARTED",
        "B's cancel changed nothing"
    );
    assert_eq!(graph.get(&format!("{ACTIONS}/$count"), &a).await.text, "3");
}

crate::on_both_backends!(
    an_action_created_over_rest_is_seen_by_graphql_and_a_live_subscription,
    an_action_invoked_over_graphql_is_seen_and_canceled_over_rest,
    another_tenant_is_invisible_to_every_endpoint,
);

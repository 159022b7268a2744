//! Every row of the resource's table: create, get, list, count, cancel.

use actiongate::READ_WRITE_ROLE;
use serde_json::{Value, json};

use super::{ACTIONS, Graph};
use crate::helpers::{Backend, TestApp, token_with, writer};

/// Graph's properties of a `securityAction`, and the entity's context.
const PROPERTIES: [&str; 16] = [
    "@odata.context",
    "actionReason",
    "appId",
    "azureTenantId",
    "clientContext",
    "completedDateTime",
    "createdDateTime",
    "errorInfo",
    "id",
    "lastActionDateTime",
    "name",
    "parameters",
    "states",
    "status",
    "user",
    "vendorInformation",
];

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

async fn create_answers_201_with_location_and_graphs_representation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = token_with(
        "contoso",
        "soar-app",
        "alice@contoso.com",
        &[READ_WRITE_ROLE],
    );

    let created = graph
        .post(
            super::ACTIONS,
            &token,
            Some(json!({
                "@odata.type": "#microsoft.graph.securityAction",
                "name": "BlockIp",
                "actionReason": "seen in a phishing campaign",
                "parameters": [{"name": "IP", "value": "203.0.113.7"}],
                "vendorInformation": {"provider": "blocklist", "vendor": "Contoso"},
                "clientContext": "ticket-4711",
                "appId": "forged-app", "azureTenantId": "forged-tenant", "user": "forged-user"
            })),
        )
        .await;

    assert_eq!(created.status, 201, "{}", created.text);
    let action = created.json();
    let id = action["id"].as_str().unwrap();
    assert_eq!(
        created.header("location").unwrap(),
        format!("http://{}{ACTIONS}/{id}", app.address)
    );
    assert_eq!(keys(&action), PROPERTIES.to_vec());
    assert_eq!(
        action["@odata.context"],
        format!(
            "http://{}/beta/$metadata#security/securityActions/$entity",
            app.address
        )
    );
    assert_eq!(action["name"], "blockIp");
    assert_eq!(action["status"], "NotStarted");
    assert_eq!(action["appId"], "soar-app", "from the token, not the body");
    assert_eq!(action["azureTenantId"], "contoso");
    assert_eq!(action["user"], "alice@contoso.com");
    assert_eq!(
        action["parameters"],
        json!([{"name": "ip", "value": "203.0.113.7"}])
    );
    assert_eq!(action["vendorInformation"]["provider"], "blocklist");
    assert_eq!(action["vendorInformation"]["vendor"], "Contoso");
    assert_eq!(action["clientContext"], "ticket-4711");
    assert!(action["errorInfo"].is_null() && action["completedDateTime"].is_null());
    assert_eq!(
        action["states"],
        json!([{"appId": "soar-app", "status": "NotStarted", "user": "alice@contoso.com",
                "updatedDateTime": action["createdDateTime"]}])
    );

    let read = graph.get(&format!("{ACTIONS}/{id}"), &token).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json(), action, "GET answers what POST created");
}

async fn the_same_client_context_replays_with_200_and_another_body_conflicts_with_409(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let body = json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "198.51.100.9"}], "clientContext": "run-1"});

    let first = graph.post(ACTIONS, &token, Some(body.clone())).await;
    let again = graph.post(ACTIONS, &token, Some(body)).await;
    let other = graph
        .post(
            ACTIONS,
            &token,
            Some(json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "198.51.100.10"}], "clientContext": "run-1"})),
        )
        .await;

    assert_eq!(first.status, 201);
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(again.header("location").is_none());
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(other.status, 409);
    let (code, message, inner) = other.graph_error();
    assert_eq!((code.as_str(), inner.as_str()), ("Conflict", "CONFLICT"));
    assert!(message.contains("clientContext"), "{message}");
    assert_eq!(
        graph.get(&format!("{ACTIONS}/$count"), &token).await.text,
        "1"
    );
}

async fn get_of_an_unknown_id_is_404_and_of_a_malformed_one_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");

    let missing = graph
        .get(
            &format!("{ACTIONS}/00000000-0000-7000-8000-000000000000"),
            &token,
        )
        .await;
    let malformed = graph.get(&format!("{ACTIONS}/not-an-id"), &token).await;

    assert_eq!(missing.status, 404);
    assert_eq!(missing.graph_error().0, "NotFound");
    assert_eq!(malformed.status, 400);
    assert!(malformed.graph_error().1.contains("not-an-id"));
}

async fn the_list_pages_counts_and_selects(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let mut created = Vec::new();
    for i in 0..3 {
        created.push(graph.block_ip(&token, &format!("192.0.2.{i}")).await["id"].clone());
    }

    let list = graph.get(ACTIONS, &token).await;
    let counted = graph
        .get(&format!("{ACTIONS}?$count=true&$top=2"), &token)
        .await;
    let count = graph.get(&format!("{ACTIONS}/$count"), &token).await;
    let filtered_count = graph
        .get(
            &format!("{ACTIONS}/$count?$filter=parameters/any(p:p/name eq 'ip' and p/value eq '192.0.2.1')"),
            &token,
        )
        .await;
    let selected = graph
        .get(&format!("{ACTIONS}?$select=id,Status&$top=1"), &token)
        .await;
    let one_selected = graph
        .get(
            &format!("{ACTIONS}/{}?$select=name", created[0].as_str().unwrap()),
            &token,
        )
        .await;
    let everything = graph.get(&format!("{ACTIONS}?$select=*"), &token).await;

    assert_eq!(list.status, 200);
    let body = list.json();
    assert_eq!(
        body["@odata.context"],
        format!(
            "http://{}/beta/$metadata#security/securityActions",
            app.address
        )
    );
    assert!(body.get("@odata.count").is_none() && body.get("@odata.nextLink").is_none());
    let newest_first: Vec<Value> = created.iter().rev().cloned().collect();
    assert_eq!(list.ids(), newest_first);
    let mut item_keys = keys(&body["value"][0]);
    item_keys.insert(0, "@odata.context");
    assert_eq!(
        item_keys,
        PROPERTIES.to_vec(),
        "no context inside a collection"
    );

    let body = counted.json();
    assert_eq!(body["@odata.count"], 3);
    assert_eq!(counted.ids().len(), 2);
    assert!(
        body["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("$count=true")
    );

    assert_eq!(count.status, 200);
    assert!(
        count
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(count.text, "3");
    assert_eq!(filtered_count.text, "1");

    let body = selected.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("#security/securityActions(id,status)")
    );
    assert_eq!(keys(&body["value"][0]), ["id", "status"]);
    let body = one_selected.json();
    assert_eq!(keys(&body), ["@odata.context", "name"]);
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("securityActions(name)/$entity")
    );
    assert_eq!(
        keys(&everything.json()["value"][0]).len(),
        PROPERTIES.len() - 1
    );
}

async fn cancel_answers_200_with_an_empty_body_and_cancels(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let a = graph.block_ip(&token, "192.0.2.10").await;
    let b = graph.block_ip(&token, "192.0.2.11").await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let canceled = graph
        .post(&format!("{ACTIONS}/{a}/cancelSecurityAction"), &token, None)
        .await;
    let qualified = graph
        .post(
            &format!("{ACTIONS}/{b}/microsoft.graph.cancelSecurityAction"),
            &token,
            Some(json!({})),
        )
        .await;
    let again = graph
        .post(&format!("{ACTIONS}/{a}/cancelSecurityAction"), &token, None)
        .await;
    let with_parameters = graph
        .post(
            &format!("{ACTIONS}/{a}/cancelSecurityAction"),
            &token,
            Some(json!({"reason": "x"})),
        )
        .await;

    for answer in [&canceled, &qualified, &again] {
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.text, "", "Graph's contract: no body");
    }
    assert_eq!(with_parameters.status, 400);
    for id in [a, b] {
        let action = graph.get(&format!("{ACTIONS}/{id}"), &token).await.json();
        assert_eq!(action["status"], "Canceled");
        assert_eq!(action["states"][1]["status"], "Canceled");
        assert!(action["completedDateTime"].is_string());
    }
}

crate::on_both_backends!(
    create_answers_201_with_location_and_graphs_representation,
    the_same_client_context_replays_with_200_and_another_body_conflicts_with_409,
    get_of_an_unknown_id_is_404_and_of_a_malformed_one_400,
    the_list_pages_counts_and_selects,
    cancel_answers_200_with_an_empty_body_and_cancels,
);

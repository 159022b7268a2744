//! `$batch`: many creates in one request, each answered as a single create.

use serde_json::{Value, json};

use super::{ACTIONS, Graph};
use crate::helpers::{Backend, TestApp, total_count, writer};

fn block_ip(ip: &str) -> Value {
    json!({"name": "blockIp", "parameters": [{"name": "ip", "value": ip}]})
}

async fn a_batch_answers_each_item_as_a_create_would(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("tenant-a");
    let batch = format!("{ACTIONS}/$batch");
    let mut replayed = block_ip("10.0.0.1");
    replayed["clientContext"] = json!("feed-1");
    let first = graph.post(&batch, &token, Some(json!([replayed]))).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let first_id = first.json()["responses"][0]["body"]["id"].clone();

    let answer = graph
        .post(
            &batch,
            &token,
            Some(json!([
                block_ip("10.0.0.2"),
                replayed,
                block_ip("not-an-ip"),
                "not an object",
                block_ip("10.0.0.3"),
            ])),
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let responses = answer.json()["responses"].as_array().unwrap().clone();
    let ids: Vec<&str> = responses
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0", "1", "2", "3", "4"]);
    let statuses: Vec<u64> = responses
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [201, 200, 400, 400, 201]);
    assert_eq!(responses[0]["body"]["parameters"][0]["value"], "10.0.0.2");
    assert_eq!(responses[0]["body"]["status"], "NotStarted");
    assert_eq!(responses[1]["body"]["id"], first_id);
    assert_eq!(responses[2]["body"]["error"]["code"], "BadRequest");
    assert_eq!(
        responses[2]["body"]["error"]["innerError"]["code"],
        "BAD_USER_INPUT"
    );
    let message = responses[2]["body"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("parameters[0].value"), "{message}");
    assert_eq!(responses[4]["body"]["parameters"][0]["value"], "10.0.0.3");
    assert_eq!(total_count(&app, &token).await, 3);
}

async fn a_batch_of_more_than_500_or_not_an_array_is_400_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("tenant-a");
    let batch = format!("{ACTIONS}/$batch");
    let items: Vec<Value> = (0..501)
        .map(|i| block_ip(&format!("10.0.{}.{}", i / 256, i % 256)))
        .collect();

    let too_many = graph.post(&batch, &token, Some(json!(items))).await;
    let object = graph.post(&batch, &token, Some(block_ip("10.0.0.1"))).await;

    assert_eq!(too_many.status, 400, "{}", too_many.text);
    assert_eq!(too_many.graph_error().2, "BAD_USER_INPUT");
    assert_eq!(object.status, 400, "{}", object.text);
    assert_eq!(total_count(&app, &token).await, 0);
}

crate::on_both_backends!(
    a_batch_answers_each_item_as_a_create_would,
    a_batch_of_more_than_500_or_not_an_array_is_400_and_stores_nothing,
);

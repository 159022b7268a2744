//! Every error status of the face, each with Graph's body, and the limits it
//! shares with `/graphql`: body size, rate limits, the request deadline, CORS.

use std::time::Duration;

use actiongate::{Rate, RateLimits};
use reqwest::Method;
use serde_json::json;

use super::{ACTIONS, Graph};
use crate::hardening::hold_lock;
use crate::helpers::{Backend, TestApp, reader, token_with, writer};
use crate::receivers::{Reply, WebhookReceiver};

const MISSING: &str = "00000000-0000-7000-8000-000000000000";

fn block(ip: &str) -> serde_json::Value {
    json!({"name": "blockIp", "parameters": [{"name": "ip", "value": ip}]})
}

async fn each_refusal_has_its_status_and_graphs_error_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let id = graph.block_ip(&token, "192.0.2.1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let item = format!("{ACTIONS}/{id}");
    let send = |method: Method, path: String, token: Option<String>| {
        let graph = &graph;
        async move { graph.send(method, &path, token.as_deref(), None, &[]).await }
    };

    let cases = [
        (send(Method::GET, ACTIONS.into(), None).await, 401, "InvalidAuthenticationToken", "UNAUTHENTICATED"),
        (send(Method::GET, ACTIONS.into(), Some("not-a-jwt".into())).await, 401, "InvalidAuthenticationToken", "UNAUTHENTICATED"),
        (send(Method::GET, ACTIONS.into(), Some(token_with("contoso", "a", "u", &[]))).await, 403, "Forbidden", "FORBIDDEN"),
        (graph.post(ACTIONS, &reader("contoso"), Some(block("192.0.2.2"))).await, 403, "Forbidden", "FORBIDDEN"),
        (graph.post(&format!("{item}/cancelSecurityAction"), &reader("contoso"), None).await, 403, "Forbidden", "FORBIDDEN"),
        (send(Method::GET, format!("{ACTIONS}/{MISSING}"), Some(token.clone())).await, 404, "NotFound", "NOT_FOUND"),
        (graph.post(&format!("{ACTIONS}/{MISSING}/cancelSecurityAction"), &token, None).await, 404, "NotFound", "NOT_FOUND"),
        (send(Method::GET, "/beta/security/alerts".into(), Some(token.clone())).await, 404, "NotFound", "NOT_FOUND"),
        (send(Method::DELETE, item.clone(), Some(token.clone())).await, 405, "MethodNotAllowed", "METHOD_NOT_ALLOWED"),
        (send(Method::PATCH, item.clone(), Some(token.clone())).await, 405, "MethodNotAllowed", "METHOD_NOT_ALLOWED"),
        (send(Method::GET, format!("{item}/cancelSecurityAction"), Some(token.clone())).await, 405, "MethodNotAllowed", "METHOD_NOT_ALLOWED"),
        (send(Method::PUT, ACTIONS.into(), Some(token.clone())).await, 405, "MethodNotAllowed", "METHOD_NOT_ALLOWED"),
        (graph.post(ACTIONS, &token, Some(json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "1.2.3"}]}))).await, 400, "BadRequest", "BAD_USER_INPUT"),
    ];
    for (answer, status, code, inner) in &cases {
        assert_eq!(answer.status, *status, "{}", answer.text);
        let (c, _, i) = answer.graph_error();
        assert_eq!((c.as_str(), i.as_str()), (*code, *inner), "{}", answer.text);
    }
    assert_eq!(
        cases[0].0.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(cases[8].0.header("allow"), Some("GET"));
    assert_eq!(cases[11].0.header("allow"), Some("GET, POST"));
    let invalid = cases[12].0.graph_error().1;
    assert!(
        invalid.contains("parameters[0].value"),
        "names the property: {invalid}"
    );
    let bad_bodies = [
        (
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "192.0.2.3"}], "colour": "red"}),
            "colour",
        ),
        (
            json!({"name": "blockFoo", "parameters": [{"name": "ip", "value": "192.0.2.3"}]}),
            "name",
        ),
        (json!({"name": "blockIp", "parameters": []}), "parameters"),
        (
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "192.0.2.3"}], "clientContext": "c".repeat(257)}),
            "clientContext",
        ),
        (
            json!({"name": "blockIp", "parameters": [{"name": "ip", "value": "192.0.2.3"}], "vendorInformation": {"provider": "nope"}}),
            "vendorInformation.provider",
        ),
    ];
    for (body, property) in bad_bodies {
        let answer = graph.post(ACTIONS, &token, Some(body)).await;
        assert_eq!(answer.status, 400);
        let message = answer.graph_error().1;
        assert!(message.contains(property), "{property}: {message}");
    }
    assert_eq!(
        graph.get(&format!("{ACTIONS}/$count"), &token).await.text,
        "1",
        "no refused request stored anything"
    );
}

async fn the_client_request_id_is_echoed_and_every_answer_names_its_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");

    let ok = graph
        .send(
            Method::GET,
            ACTIONS,
            Some(&token),
            None,
            &[("client-request-id", "run-42")],
        )
        .await;
    let failed = graph
        .send(
            Method::GET,
            &format!("{ACTIONS}/{MISSING}"),
            Some(&token),
            None,
            &[("client-request-id", "run-43")],
        )
        .await;

    assert_eq!(ok.header("client-request-id"), Some("run-42"));
    assert!(uuid::Uuid::parse_str(ok.header("request-id").unwrap()).is_ok());
    assert_eq!(failed.header("client-request-id"), Some("run-43"));
    assert_eq!(
        failed.json()["error"]["innerError"]["client-request-id"],
        "run-43"
    );
    assert_ne!(ok.header("request-id"), failed.header("request-id"));
}

async fn bodies_over_the_limit_are_413_and_bodies_not_json_415(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.http.max_body_bytes = 1024)
        .spawn()
        .await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let mut big = block("192.0.2.1");
    big["actionReason"] = json!("r".repeat(2000));

    let too_large = graph.post(ACTIONS, &token, Some(big)).await;
    let form = graph
        .send(
            Method::POST,
            ACTIONS,
            Some(&token),
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    let text = app
        .client
        .post(app.url(ACTIONS))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(block("192.0.2.1").to_string())
        .send()
        .await
        .unwrap();
    let not_json = app
        .client
        .post(app.url(ACTIONS))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();

    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.graph_error().0, "RequestEntityTooLarge");
    assert_eq!(form.status, 400, "an empty body is no securityAction");
    assert_eq!(text.status(), 415);
    let body: serde_json::Value = text.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UnsupportedMediaType");
    assert_eq!(not_json.status(), 400);
    assert_eq!(
        graph.get(&format!("{ACTIONS}/$count"), &token).await.text,
        "0"
    );
}

async fn rate_limits_answer_429_with_retry_after(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.http.rate_limits = RateLimits {
                requests: Rate {
                    per_second: 5.0,
                    burst: 6.0,
                },
                mutations: Rate {
                    per_second: 1.0,
                    burst: 2.0,
                },
            };
        })
        .spawn()
        .await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");

    let created: Vec<u16> = [
        graph
            .post(ACTIONS, &token, Some(block("192.0.2.1")))
            .await
            .status,
        graph
            .post(ACTIONS, &token, Some(block("192.0.2.2")))
            .await
            .status,
    ]
    .to_vec();
    let limited = graph.post(ACTIONS, &token, Some(block("192.0.2.3"))).await;
    let mut reads = Vec::new();
    for _ in 0..6 {
        reads.push(graph.get(ACTIONS, &token).await);
    }

    assert_eq!(created, [201, 201]);
    assert_eq!(limited.status, 429);
    let (code, _, inner) = limited.graph_error();
    assert_eq!(
        (code.as_str(), inner.as_str()),
        ("TooManyRequests", "RATE_LIMITED")
    );
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    let refused = reads
        .iter()
        .find(|a| a.status == 429)
        .expect("the request limit is reached");
    assert!(refused.header("retry-after").is_some());
    let other_tenant = graph.get(ACTIONS, &writer("fabrikam")).await;
    assert_eq!(other_tenant.status, 200);
}

async fn the_request_deadline_answers_504(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| {
            c.store.statement_timeout = Duration::from_secs(20);
            c.http.request_timeout = Duration::from_millis(300);
            c.store.max_connections = 4;
        })
        .spawn()
        .await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let lock = hold_lock(&app).await;

    let answer = graph.post(ACTIONS, &token, Some(block("192.0.2.1"))).await;

    assert_eq!(answer.status, 504, "{}", answer.text);
    let (code, _, inner) = answer.graph_error();
    assert_eq!(
        (code.as_str(), inner.as_str()),
        ("GatewayTimeout", "TIMEOUT")
    );
    lock.rollback().await.unwrap();
}

async fn canceling_a_failed_action_is_409(backend: Backend) {
    let receiver = WebhookReceiver::start(|_, _| Reply::status(400)).await;
    let app = TestApp::builder(backend)
        .with_executor()
        .providers(&receiver.provider_toml("2s"))
        .spawn()
        .await;
    let graph = Graph::new(&app).await;
    let token = writer("contoso");
    let id = graph.block_ip(&token, "192.0.2.1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_status(&token, &id, "FAILED").await;

    let failed = graph.get(&format!("{ACTIONS}/{id}"), &token).await.json();
    let answer = graph
        .post(
            &format!("{ACTIONS}/{id}/cancelSecurityAction"),
            &token,
            None,
        )
        .await;

    assert_eq!(failed["status"], "Failed");
    assert_eq!(failed["errorInfo"]["code"], 400);
    assert!(failed["completedDateTime"].is_string());
    assert_eq!(answer.status, 409);
    let (code, _, inner) = answer.graph_error();
    assert_eq!(
        (code.as_str(), inner.as_str()),
        ("Conflict", "NOT_CANCELABLE")
    );
}

async fn cors_lets_allowed_browser_origins_call_the_face(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.http.cors_origins = vec!["https://soc.example".into()])
        .spawn()
        .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url(ACTIONS))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,client-request-id",
            )
            .send()
    };

    let allowed = preflight("https://soc.example").await.unwrap();
    let other = preflight("https://evil.example").await.unwrap();
    let get = app
        .client
        .get(app.url(ACTIONS))
        .bearer_auth(writer("contoso"))
        .header("origin", "https://soc.example")
        .send()
        .await
        .unwrap();

    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://soc.example"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("client-request-id"),
        "{allowed_headers}"
    );
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let exposed = get.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        exposed.contains("location") && exposed.contains("request-id"),
        "{exposed}"
    );
}

async fn a_query_string_over_the_limit_is_refused(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|c| c.http.limits.max_query_bytes = 100)
        .spawn()
        .await;
    let graph = Graph::new(&app).await;
    let filter = format!("$filter=user%20eq%20%27{}%27", "a".repeat(100));

    let answer = graph
        .get(&format!("{ACTIONS}?{filter}"), &writer("contoso"))
        .await;

    assert_eq!(answer.status, 400);
    assert_eq!(answer.graph_error().2, "QUERY_TOO_LARGE");
}

crate::on_both_backends!(
    each_refusal_has_its_status_and_graphs_error_body,
    the_client_request_id_is_echoed_and_every_answer_names_its_request,
    bodies_over_the_limit_are_413_and_bodies_not_json_415,
    rate_limits_answer_429_with_retry_after,
    the_request_deadline_answers_504,
    canceling_a_failed_action_is_409,
    cors_lets_allowed_browser_origins_call_the_face,
    a_query_string_over_the_limit_is_refused,
);

//! Traces as an operator's collector sees them: the real binary (trace export
//! belongs to the process's subscriber, set up by `main`, so one process per
//! gateway) exports to an OTLP/HTTP receiver in the test, and the webhook
//! receiver sees the trace context the gateway passes on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, RunningBinary, TEST_SECRET, TestDatabase, binary, eventually, writer,
};
use crate::receivers::WebhookReceiver;

/// One exported span, flattened.
#[derive(Clone, Debug)]
struct ExportedSpan {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    /// Attribute values as text.
    attributes: HashMap<String, String>,
    service_name: String,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// An OTLP/HTTP collector: `POST /v1/traces` with protobuf bodies.
struct OtlpReceiver {
    /// The base URL, as `--otlp-endpoint` takes it.
    endpoint: String,
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OtlpReceiver {
    async fn start() -> OtlpReceiver {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/v1/traces", post(collect))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        OtlpReceiver {
            endpoint,
            spans,
            server,
        }
    }

    fn spans(&self) -> Vec<ExportedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of trace `trace_id`.
    fn trace(&self, trace_id: &str) -> Vec<ExportedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

async fn collect(
    State(spans): State<Arc<Mutex<Vec<ExportedSpan>>>>,
    body: Bytes,
) -> impl axum::response::IntoResponse {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut spans = spans.lock().unwrap();
    for resource in request.resource_spans {
        let resource_attributes = resource
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service_name = resource_attributes
            .get("service.name")
            .cloned()
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(ExportedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    attributes: attributes(&span.attributes),
                    service_name: service_name.clone(),
                });
            }
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn attributes(
    list: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh W3C trace context: (traceparent, trace id, parent span id).
fn traceparent() -> (String, String, String) {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

/// The `actiongate` binary, serving on a free port.
struct Gateway {
    binary: RunningBinary,
    address: String,
    _data: tempfile::TempDir,
}

impl Gateway {
    /// Starts the binary on `database` with the webhook provider `hook`
    /// posting to `webhook`, the test token secret, `args` and `env`.
    fn start(
        database: &TestDatabase,
        webhook: &WebhookReceiver,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let data = tempfile::tempdir().unwrap();
        let providers = data.path().join("providers.toml");
        std::fs::write(&providers, webhook.provider_toml("5s")).unwrap();
        let mut command = binary();
        command
            .args(["--jwt-secret", TEST_SECRET])
            .arg("--data-dir")
            .arg(data.path())
            .arg("--config")
            .arg(&providers)
            .args(["--database-url", &database.url])
            .args(args)
            .env("NO_COLOR", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        let binary = RunningBinary::start(command, false);
        Gateway {
            address: binary.address.clone(),
            binary,
            _data: data,
        }
    }

    /// POSTs a GraphQL request with `traceparent`.
    async fn post(&self, token: &str, traceparent: &str, body: Value) -> Value {
        let response = reqwest::Client::new()
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .header("traceparent", traceparent)
            .header("tracestate", "vendor=analyst-console")
            .json(&body)
            .send()
            .await
            .expect("the gateway answers");
        response.json().await.expect("a JSON body")
    }

    /// Stops the gateway with SIGTERM, as an orchestrator does, and returns
    /// whether it exited cleanly, with its standard error.
    fn stop(self) -> (bool, String) {
        self.binary.stop()
    }
}

const BLOCK: &str = "mutation BlockTheScanner($ip: String!) { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: $ip}], vendorInformation: {provider: \"hook\"}}) { id } }";

/// Invokes `blockIp` on `ip` with `traceparent` and waits until the webhook
/// got the action's `execute`; returns the action id.
async fn block_and_wait(
    gateway: &Gateway,
    webhook: &WebhookReceiver,
    token: &str,
    traceparent: &str,
    ip: &str,
) -> String {
    let body = gateway
        .post(
            token,
            traceparent,
            json!({"query": BLOCK, "variables": {"ip": ip}}),
        )
        .await;
    let id = body["data"]["invokeAction"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an action: {body}"))
        .to_owned();
    eventually("the webhook to get the action", || async {
        (webhook.count(&id, "execute") > 0).then_some(())
    })
    .await;
    id
}

async fn a_traced_request_reaches_the_collector_and_the_provider_in_one_trace(backend: Backend) {
    let collector = OtlpReceiver::start().await;
    let webhook = WebhookReceiver::ok().await;
    let database = TestDatabase::create(&backend).await;
    let gateway = Gateway::start(
        &database,
        &webhook,
        &["--otlp-endpoint", &collector.endpoint],
        &[
            ("OTEL_SERVICE_NAME", "actiongate-under-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let token = writer("tenant-traced");
    let (sent, trace_id, caller_span) = traceparent();

    let id = block_and_wait(&gateway, &webhook, &token, &sent, "192.0.2.80").await;

    let spans = eventually("the request, invoke and provider spans", || async {
        let spans = collector.trace(&trace_id);
        let names: Vec<String> = spans.iter().map(|s| s.name.clone()).collect();
        let complete = [
            "mutation BlockTheScanner",
            "invoke_many",
            "attempt",
            "execute hook",
            "close_attempts",
        ]
        .iter()
        .all(|name| names.iter().any(|n| n == name));
        complete.then_some(spans).ok_or(format!("{names:?}"))
    })
    .await;
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("a span {name}"))
            .clone()
    };

    let request = find("mutation BlockTheScanner");
    assert_eq!(
        request.parent_span_id, caller_span,
        "the caller's span is the parent"
    );
    assert_eq!(request.service_name, "actiongate-under-test");
    assert_eq!(request.attribute("graphql.operation.type"), "mutation");
    assert_eq!(
        request.attribute("graphql.operation.name"),
        "BlockTheScanner"
    );
    assert_eq!(request.attribute("tenant"), "tenant-traced");
    assert_eq!(request.attribute("http.request.method"), "POST");
    assert!(!request.attribute("request_id").is_empty());

    let invoke = find("invoke_many");
    assert_eq!(invoke.parent_span_id, request.span_id);
    let system = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgresql",
    };
    assert_eq!(invoke.attribute("db.system"), system);

    // The attempt, later and in the executor, continues the request's trace.
    let attempt = find("attempt");
    assert_eq!(attempt.parent_span_id, request.span_id);
    assert_eq!(attempt.attribute("action_id"), id);
    let call = find("execute hook");
    assert_eq!(call.parent_span_id, attempt.span_id);
    assert_eq!(call.attribute("provider"), "hook");
    assert_eq!(call.attribute("work"), "execute");
    assert_eq!(call.attribute("http.response.status_code"), "200");
    assert_eq!(find("close_attempts").attribute("db.system"), system);

    // The webhook got the provider call's span as its parent.
    let received = webhook
        .requests()
        .into_iter()
        .find(|r| r.action_id == id)
        .unwrap();
    let header = received.traceparent.expect("a traceparent to the webhook");
    assert_eq!(header, format!("00-{trace_id}-{}-01", call.span_id));

    // A cancel reverts in the cancel's own trace.
    let (cancel_sent, cancel_trace, _) = traceparent();
    let canceled = gateway
        .post(
            &token,
            &cancel_sent,
            json!({"query": "mutation Lift($id: ID!) { cancelAction(id: $id) { id } }", "variables": {"id": id}}),
        )
        .await;
    assert!(canceled.get("errors").is_none(), "{canceled}");
    eventually("the webhook to get the revert", || async {
        (webhook.count(&id, "revert") > 0).then_some(())
    })
    .await;
    let revert = eventually("the revert's spans", || async {
        let spans = collector.trace(&cancel_trace);
        spans
            .iter()
            .find(|s| s.name == "revert hook")
            .cloned()
            .ok_or(format!(
                "{:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            ))
    })
    .await;
    let reverted = webhook
        .requests()
        .into_iter()
        .find(|r| r.action_id == id && r.operation == "revert")
        .unwrap();
    assert_eq!(
        reverted.traceparent.as_deref(),
        Some(format!("00-{cancel_trace}-{}-01", revert.span_id).as_str())
    );

    // Neither the token nor the variables are in any span.
    for span in collector.spans() {
        for value in span.attributes.values() {
            assert!(!value.contains(&token), "the token in {span:?}");
            assert!(!value.contains("192.0.2.80"), "a variable in {span:?}");
        }
    }
    let (clean, stderr) = gateway.stop();
    assert!(clean, "{stderr}");
}

/// Also checks the span of the Graph REST face.
async fn spans_still_queued_at_shutdown_are_exported(backend: Backend) {
    let collector = OtlpReceiver::start().await;
    let webhook = WebhookReceiver::ok().await;
    let database = TestDatabase::create(&backend).await;
    // A batch delay longer than the test: only the flush at shutdown sends.
    let gateway = Gateway::start(
        &database,
        &webhook,
        &["--otlp-endpoint", &collector.endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
    );
    let (sent, trace_id, _) = traceparent();
    let body = gateway
        .post(
            &writer("tenant-flushed"),
            &sent,
            json!({"query": "query Flushed { actionCatalog { name } }"}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let (rest_sent, rest_trace, rest_caller) = traceparent();
    let listed = reqwest::Client::new()
        .get(format!("{}/beta/security/securityActions", gateway.address))
        .bearer_auth(writer("tenant-flushed"))
        .header("traceparent", &rest_sent)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);

    let (clean, stderr) = gateway.stop();

    assert!(clean, "{stderr}");
    let names: Vec<String> = collector
        .trace(&trace_id)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&"query Flushed".to_owned()), "{names:?}");
    let rest = collector
        .trace(&rest_trace)
        .into_iter()
        .find(|s| s.name == "rest")
        .expect("the REST request's span");
    assert_eq!(rest.parent_span_id, rest_caller);
    assert_eq!(rest.attribute("tenant"), "tenant-flushed");
    assert_eq!(rest.attribute("http.request.method"), "GET");
}

async fn without_an_endpoint_nothing_is_exported_and_the_callers_context_is_passed_on(
    backend: Backend,
) {
    let collector = OtlpReceiver::start().await;
    let webhook = WebhookReceiver::ok().await;
    let database = TestDatabase::create(&backend).await;
    // Were an exporter built anyway, this would send it to the collector.
    let traces_url = format!("{}/v1/traces", collector.endpoint);
    let gateway = Gateway::start(
        &database,
        &webhook,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces_url),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let (sent, _, _) = traceparent();

    let id = block_and_wait(
        &gateway,
        &webhook,
        &writer("tenant-untraced"),
        &sent,
        "192.0.2.81",
    )
    .await;
    let (clean, stderr) = gateway.stop();

    assert!(clean, "{stderr}");
    let received = webhook
        .requests()
        .into_iter()
        .find(|r| r.action_id == id)
        .unwrap();
    assert_eq!(
        received.traceparent.as_deref(),
        Some(sent.as_str()),
        "the caller's context, unchanged"
    );
    assert!(collector.spans().is_empty(), "{:?}", collector.spans());
}

crate::on_both_backends!(
    a_traced_request_reaches_the_collector_and_the_provider_in_one_trace,
    spans_still_queued_at_shutdown_are_exported,
    without_an_endpoint_nothing_is_exported_and_the_callers_context_is_passed_on,
);

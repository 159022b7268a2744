//! What operators see: the access log and the log's colour (the binary's
//! standard error), and `/metrics` after traffic.

use serde_json::{Value, json};

use crate::helpers::{RunningBinary, binary};

/// Starts the binary with `args`: it, its address and its token.
fn start(args: &[&str], data: &std::path::Path) -> (RunningBinary, String, String) {
    let mut command = binary();
    command.args(args).env("ACTIONGATE_DATA_DIR", data);
    let running = RunningBinary::start(command, true);
    let (address, token) = (running.address.clone(), running.token.clone().unwrap());
    (running, address, token)
}

/// Stops the binary and returns what it logged.
fn stop(running: RunningBinary) -> String {
    running.stop().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_leaves_one_access_log_line_without_token_or_variables() {
    let data = tempfile::tempdir().unwrap();
    let (child, address, token) = start(&["--log-format", "json"], data.path());
    let client = reqwest::Client::new();
    let marker = "198.51.100.77";
    let response = client
        .post(format!("{address}/graphql"))
        .bearer_auth(&token)
        .json(&json!({
            "query": "mutation BlockTheScanner($ip: String!) { invokeAction(input: {name: \"blockIp\", parameters: [{name: \"ip\", value: $ip}]}) { id } }",
            "variables": {"ip": marker},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let refused = client
        .get(format!("{address}/graphql"))
        .query(&[("query", "{ actionCatalog { name } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let logs = stop(child);

    let lines: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    let access: Vec<&Value> = lines
        .iter()
        .filter(|line| line["target"] == "actiongate::access")
        .collect();
    assert_eq!(access.len(), 2, "one line per request: {logs}");
    let mutation = access
        .iter()
        .find(|line| line["fields"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("a line with request id {request_id}: {logs}"));
    let fields = &mutation["fields"];
    assert_eq!(mutation["level"], "INFO");
    assert_eq!(fields["method"], "POST");
    assert_eq!(fields["route"], "/graphql");
    assert_eq!(fields["operation_type"], "mutation");
    assert_eq!(fields["operation"], "BlockTheScanner");
    assert_eq!(fields["status"], 200);
    assert!(fields["duration_ms"].as_f64().is_some(), "{fields}");
    let refused = access
        .iter()
        .find(|line| line["fields"]["status"] == 401)
        .unwrap_or_else(|| panic!("the refused request's line: {logs}"));
    assert_eq!(refused["fields"]["method"], "GET");
    assert!(
        !logs.contains(marker),
        "a variable reached the logs: {logs}"
    );
    assert!(!logs.contains(&token), "the token reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_written_to_a_pipe_carry_no_colour_codes() {
    let data = tempfile::tempdir().unwrap();
    let (child, address, token) = start(&["--log-format", "text"], data.path());
    reqwest::Client::new()
        .post(format!("{address}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ actionCatalog { name } }"}))
        .send()
        .await
        .unwrap();
    let logs = stop(child);
    assert!(logs.contains("request"), "the access log line: {logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escape codes in {logs:?}");
}

/// The samples of a Prometheus text page: `name{labels}` → value.
pub(crate) fn samples(page: &str) -> std::collections::HashMap<String, f64> {
    page.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The sum of every sample of `family` whose labels include all of `labels`.
pub(crate) fn total(
    samples: &std::collections::HashMap<String, f64>,
    family: &str,
    labels: &[&str],
) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let name = series.split('{').next().unwrap_or_default();
            name == family && labels.iter().all(|label| series.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

async fn metrics_families_move_with_traffic(backend: crate::helpers::Backend) {
    use crate::helpers::{TestApp, writer};
    use crate::ws_client::{TRANSPORT, WATCH, WsClient};

    let app = TestApp::builder(backend)
        .with_executor()
        .configure(|c| c.http.limits.max_aliases = 2)
        .spawn()
        .await;
    let token = writer("tenant-metrics");
    let before = samples(&app.get_text("/metrics").await);

    let listed = app
        .gql(
            &token,
            "query ListForMetrics { actions(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    crate::helpers::assert_no_errors(&listed);
    let id = app.invoke(&token, "blockIp", "ip", "192.0.2.55").await;
    app.wait_for_status(&token, &id, "COMPLETED").await;
    let invalid = app.gql(&token, "{ nope }", json!({})).await;
    assert_eq!(
        crate::helpers::error_code(&invalid),
        "GRAPHQL_VALIDATION_FAILED"
    );
    let refused = app
        .gql(
            &token,
            "{ a: actionCatalog { name } b: actionCatalog { name } c: actionCatalog { name } }",
            json!({}),
        )
        .await;
    assert_eq!(crate::helpers::error_code(&refused), "TOO_MANY_ALIASES");
    let mut socket = WsClient::connect(&app, TRANSPORT, &token).await;
    let attached = app.events.subscribers();
    socket.subscribe("watch", WATCH, json!({})).await;
    crate::helpers::eventually("the subscription to attach", || async {
        app.events.subscribers() > attached
    })
    .await;

    let page = app.get_text("/metrics").await;
    let after = samples(&page);
    let moved = |family: &str, labels: &[&str]| {
        total(&after, family, labels) - total(&before, family, labels)
    };
    assert!(
        moved(
            "actiongate_http_requests_total",
            &["route=\"/graphql\"", "method=\"POST\"", "status=\"200\""]
        ) >= 4.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_http_request_duration_seconds_count",
            &["route=\"/graphql\""]
        ) >= 4.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_graphql_operations_total",
            &[
                "type=\"query\"",
                "name=\"ListForMetrics\"",
                "outcome=\"ok\""
            ]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_graphql_operations_total",
            &["type=\"mutation\"", "name=\"anonymous\""]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_graphql_operation_duration_seconds_bucket",
            &["name=\"ListForMetrics\"", "le=\"+Inf\""]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_graphql_errors_total",
            &["code=\"GRAPHQL_VALIDATION_FAILED\""]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_operations_refused_total",
            &["code=\"TOO_MANY_ALIASES\""]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_actions_invoked_total",
            &["action=\"blockIp\"", "provider=\"blocklist\""]
        ) >= 1.0,
        "{page}"
    );
    for status in ["NotStarted", "Running", "Completed"] {
        let label = format!("status=\"{status}\"");
        assert!(
            moved("actiongate_action_transitions_total", &[&label]) >= 1.0,
            "{status}: {page}"
        );
    }
    assert!(
        moved(
            "actiongate_provider_calls_total",
            &[
                "provider=\"blocklist\"",
                "work=\"execute\"",
                "outcome=\"ok\""
            ]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved(
            "actiongate_provider_call_duration_seconds_count",
            &["provider=\"blocklist\""]
        ) >= 1.0,
        "{page}"
    );
    assert!(
        moved("actiongate_executor_claims_total", &[]) >= 1.0,
        "{page}"
    );
    assert!(moved("actiongate_db_queries_total", &[]) >= 1.0, "{page}");
    assert!(
        moved("actiongate_db_acquire_duration_seconds_count", &[]) >= 1.0,
        "{page}"
    );
    assert!(
        total(&after, "actiongate_ws_connections", &[]) >= 1.0,
        "{page}"
    );
    assert!(
        total(&after, "actiongate_subscriptions_active", &[]) >= 1.0,
        "{page}"
    );
    assert!(
        total(&after, "actiongate_db_pool_max_connections", &[]) >= 1.0,
        "{page}"
    );
    assert!(
        page.contains("# TYPE actiongate_executor_in_flight gauge"),
        "{page}"
    );
    for family in [
        "actiongate_executor_leases_lost_total",
        "actiongate_executor_recording_retries_total",
        "actiongate_executor_lease_takeovers_total",
        "actiongate_executor_attempts_exhausted_total",
        "actiongate_events_fanned_out_total",
        "actiongate_subscription_catch_ups_total",
        "actiongate_subscriptions_too_slow_total",
        "actiongate_listener_reconnects_total",
    ] {
        assert!(
            page.contains(&format!("# HELP {family} ")),
            "{family} is described: {page}"
        );
    }
    assert!(
        !page.contains("tenant-metrics"),
        "a tenant in the labels: {page}"
    );
    assert!(!page.contains(&id), "an action id in the labels");
    assert!(!page.contains("192.0.2.55"), "an indicator in the labels");
    socket.close().await;
}

async fn metrics_listen_serves_metrics_apart_from_the_api(backend: crate::helpers::Backend) {
    use crate::helpers::TestApp;

    let app = TestApp::builder(backend)
        .configure(|c| c.metrics_listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    let apart = app.metrics_address.expect("a metrics address");
    assert_ne!(apart, app.address);

    let on_the_api = app.client.get(app.url("/metrics")).send().await.unwrap();
    let scraped = app
        .client
        .get(format!("http://{apart}/metrics"))
        .send()
        .await
        .unwrap();
    let api_apart = app
        .client
        .get(format!("http://{apart}/healthz"))
        .send()
        .await
        .unwrap();

    assert_eq!(scraped.status(), 200);
    assert!(
        scraped
            .text()
            .await
            .unwrap()
            .contains("actiongate_http_requests_total"),
        "the metrics page"
    );
    assert_eq!(
        on_the_api.status(),
        404,
        "/metrics is no longer on --listen"
    );
    assert_eq!(
        api_apart.status(),
        404,
        "only /metrics is on --metrics-listen"
    );
}

crate::on_both_backends!(
    metrics_families_move_with_traffic,
    metrics_listen_serves_metrics_apart_from_the_api
);

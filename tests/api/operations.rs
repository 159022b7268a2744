//! What operators see: the access log and the log's colour (the binary's
//! standard error), and `/metrics` after traffic.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// Starts the binary with `args` and returns it with its address and token.
fn start(args: &[&str], data: &std::path::Path) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actiongate"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("ACTIONGATE_DATA_DIR", data)
        .env_remove("ACTIONGATE_LOG")
        .env_remove("ACTIONGATE_JWT_SECRET")
        .env_remove("ACTIONGATE_DATABASE_URL")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut address, mut token) = (String::new(), String::new());
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.trim().strip_prefix("actiongate is listening on ") {
            address = rest.to_owned();
        } else if line.starts_with("eyJ") {
            token = line.trim().to_owned();
            break;
        }
        line.clear();
    }
    assert!(
        !address.is_empty() && !token.is_empty(),
        "the binary starts"
    );
    (child, address, token)
}

/// Stops the binary and returns what it logged.
fn stop(child: Child) -> String {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
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

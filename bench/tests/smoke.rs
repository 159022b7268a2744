//! End to end: the built `actiongate-bench` binary seeds a small SQLite
//! database, a real gateway is started on it in this process, and every mode
//! runs against that gateway for about a second. The assertions are about
//! well-formed, complete output and correct counts, never about speed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actiongate::{App, Config, READ_WRITE_ROLE, Rate, RateLimits, TokenKeys, TokenSpec, mint};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::sync::oneshot;

const BENCH: &str = env!("CARGO_BIN_EXE_actiongate-bench");
const SECRET: &str = "bench-smoke-secret-bench-smoke-secret-0123";
const LOAD_KEYS: [&str; 9] = [
    "requests",
    "errors",
    "requests_per_second",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "max_ms",
    "concurrency",
    "duration_s",
];

/// Runs the bench; returns its standard output, failing on a non-zero exit.
async fn bench(args: &[&str]) -> String {
    let output = Command::new(BENCH)
        .args(args)
        .output()
        .await
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "actiongate-bench {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

/// Runs a mode with `--json` and returns the object it printed.
async fn report(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let stdout = bench(&args).await;
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{args:?} printed no JSON object ({e}):\n{stdout}"));
    assert!(report.is_object(), "{report}");
    report
}

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {report}"))
}

fn assert_keys(report: &Value, keys: &[&str]) {
    for key in keys {
        assert!(report.get(*key).is_some(), "no {key} in {report}");
    }
}

/// A load report with requests, no errors, and latencies for them.
fn assert_clean_load(report: &Value) {
    assert_keys(report, &LOAD_KEYS);
    assert!(count(report, "requests") > 0, "{report}");
    assert_eq!(count(report, "errors"), 0, "{report}");
    assert_eq!(count(report, "concurrency"), 2, "{report}");
    for key in ["requests_per_second", "p50_ms", "p99_ms", "max_ms"] {
        assert!(report[key].as_f64().is_some(), "{key} in {report}");
    }
    assert!(report["p50_ms"].as_f64() <= report["max_ms"].as_f64());
}

/// `key: value` lines of the seed summary.
fn summary(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn documents() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("documents")
}

async fn graphql(base: &str, token: &str, query: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query }))
        .send()
        .await
        .expect("the gateway answers")
        .json()
        .await
        .expect("a JSON body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_runs_against_a_seeded_gateway() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database_url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());

    let seeded = summary(
        &bench(&[
            "seed",
            "--database-url",
            &database_url,
            "--actions",
            "200",
            "--tenants",
            "2",
        ])
        .await,
    );
    assert_eq!(seeded["backend"], "sqlite", "{seeded:?}");
    assert_eq!(seeded["actions"], "200", "{seeded:?}");
    assert_eq!(seeded["tenants"], "2", "{seeded:?}");
    let states: u64 = seeded["state rows"].parse().expect("a count of state rows");
    let parameters: u64 = seeded["parameter rows"].parse().expect("a count");
    // Every action has at least its first state and its indicator, and at
    // most four states and two parameters.
    assert!((200..=800).contains(&states), "{seeded:?}");
    assert!((200..=400).contains(&parameters), "{seeded:?}");
    let rate: f64 = seeded["actions/s"].parse().expect("a rate");
    assert!(rate > 0.0);
    let _: f64 = seeded["elapsed s"].parse().expect("seconds");

    let mut config = Config::new(dir.path().join("data"), Some(database_url));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.token_keys = TokenKeys::Secret(SECRET.into());
    // The bench sends bursts on purpose; limits would turn them into errors.
    config.http.rate_limits = RateLimits {
        requests: Rate::off(),
        mutations: Rate::off(),
    };
    let app = App::build(config).await.expect("the gateway builds");
    let base = format!("http://{}", app.address());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let token = mint(
        SECRET.as_bytes(),
        &TokenSpec {
            tenant: "tenant-0".into(),
            app: "app-1".into(),
            user: "analyst@example.com".into(),
            roles: vec![READ_WRITE_ROLE.into()],
            ttl: Duration::from_secs(900),
            issuer: None,
            audience: None,
        },
    )
    .expect("a token");

    // The seeded rows read back through the API: half of them are tenant-0's.
    let counts = graphql(&base, &token, "{ actionCounts { status count } }").await;
    let total: u64 = counts["data"]["actionCounts"]
        .as_array()
        .unwrap_or_else(|| panic!("no counts: {counts}"))
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 100, "{counts}");
    let first = graphql(
        &base,
        &token,
        "{ actions(first: 1) { nodes { id parameters { name value } states { status } } } }",
    )
    .await;
    let node = &first["data"]["actions"]["nodes"][0];
    assert!(
        !node["parameters"].as_array().unwrap().is_empty(),
        "{first}"
    );
    assert!(!node["states"].as_array().unwrap().is_empty(), "{first}");
    let id = node["id"].as_str().expect("an action id").to_owned();

    let common = [
        "--url",
        &base,
        "--token",
        &token,
        "--concurrency",
        "2",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
    ];
    let query = |extra: Vec<String>| {
        let mut args: Vec<String> = ["query"]
            .iter()
            .chain(common.iter())
            .map(|s| s.to_string())
            .collect();
        args.extend(extra);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            report(&args).await
        }
    };

    let small = dir.path().join("small.graphql");
    std::fs::write(&small, "{ actions(first: 5) { nodes { id status } } }").unwrap();
    let doc = |name: &str| documents().join(name).display().to_string();
    let runs = [
        vec!["--document".to_owned(), small.display().to_string()],
        vec![
            "--document".to_owned(),
            doc("action.graphql"),
            "--variables".to_owned(),
            json!({ "id": id }).to_string(),
        ],
        vec!["--document".to_owned(), doc("list.graphql")],
        vec![
            "--document".to_owned(),
            doc("list.graphql"),
            "--cursor-pages".to_owned(),
            "2".to_owned(),
        ],
        vec!["--document".to_owned(), doc("list_total.graphql")],
        vec!["--document".to_owned(), doc("counts.graphql")],
    ];
    for extra in runs {
        let result = query(extra.clone()).await;
        assert_clean_load(&result);
        eprintln!("query {extra:?}: {result}");
    }

    let mut invoke_args = vec!["invoke"];
    invoke_args.extend(common);
    let invoked = report(&invoke_args).await;
    assert_clean_load(&invoked);
    assert_keys(
        &invoked,
        &[
            "completion_p50_ms",
            "completion_p99_ms",
            "completion_max_ms",
            "completion_missing",
        ],
    );
    assert_eq!(count(&invoked, "completion_missing"), 0, "{invoked}");
    assert_eq!(
        count(&invoked, "completed"),
        count(&invoked, "requests"),
        "{invoked}"
    );
    assert!(invoked["completion_p50_ms"].as_f64().is_some(), "{invoked}");

    let mut bulk_args = vec!["invoke", "--bulk", "20"];
    bulk_args.extend(common);
    let bulk = report(&bulk_args).await;
    assert_clean_load(&bulk);
    assert_keys(
        &bulk,
        &["actions", "actions_per_second", "completion_missing"],
    );
    assert_eq!(
        count(&bulk, "actions"),
        count(&bulk, "requests") * 20,
        "{bulk}"
    );
    assert_eq!(count(&bulk, "completion_missing"), 0, "{bulk}");
    assert_eq!(count(&bulk, "completed"), count(&bulk, "actions"), "{bulk}");

    let pid = std::process::id().to_string();
    for (subscribers, connections, events) in [("5", "5", "2"), ("6", "2", "1")] {
        let subscribed = report(&[
            "subscribe",
            "--url",
            &base,
            "--token",
            &token,
            "--subscribers",
            subscribers,
            "--connections",
            connections,
            "--events",
            events,
            "--server-pid",
            &pid,
        ])
        .await;
        assert_keys(
            &subscribed,
            &[
                "delivery_p50_ms",
                "delivery_p99_ms",
                "delivery_max_ms",
                "idle_rss_kib",
                "after_rss_kib",
                "per_subscriber_kib",
            ],
        );
        let subscribers: u64 = subscribers.parse().unwrap();
        let events: u64 = events.parse().unwrap();
        assert_eq!(count(&subscribed, "subscribers"), subscribers);
        assert_eq!(count(&subscribed, "events"), events, "{subscribed}");
        // blockIp on the blocklist moves NOT_STARTED, RUNNING, COMPLETED.
        assert_eq!(
            count(&subscribed, "expected"),
            subscribers * events * 3,
            "{subscribed}"
        );
        assert_eq!(count(&subscribed, "lost"), 0, "{subscribed}");
        assert_eq!(count(&subscribed, "duplicates"), 0, "{subscribed}");
        assert_eq!(
            count(&subscribed, "received"),
            count(&subscribed, "expected")
        );
        assert!(count(&subscribed, "idle_rss_kib") > 0, "{subscribed}");
        assert!(subscribed["per_subscriber_kib"].as_f64().is_some());
        assert!(subscribed["delivery_max_ms"].as_f64().is_some());
        eprintln!("subscribe: {subscribed}");
    }

    let _ = stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the gateway stops");
    stopped
        .expect("the gateway task")
        .expect("the gateway ran cleanly");
}

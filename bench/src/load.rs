//! The closed-loop HTTP load every request mode shares: `C` tasks on one
//! keep-alive client, each sending its next GraphQL request as soon as the last
//! one answered, for a warm-up that is not counted and then a timed window.
//!
//! A request counts as an error unless the gateway answered HTTP 200 with a JSON
//! body without `errors`; transport failures and timeouts are errors too.
//! Latency percentiles are over the successful requests of the window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actiongate::parse_duration;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;
use tokio::task::JoinSet;

use crate::Error;
use crate::report::{Field, Figure, Latencies, field};

/// Where the gateway is and who the bench is.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The gateway's HTTP base URL.
    #[arg(
        long,
        env = "ACTIONGATE_BENCH_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// A bearer token (`actiongate token --tenant … --role readwrite`).
    #[arg(long, env = "ACTIONGATE_BENCH_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Give up on one request after this long (it counts as an error).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// How much load, for how long.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Requests in flight at once (one task each).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The timed window, e.g. 30s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before the window, not counted: fills connection pools and caches.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
}

/// The gateway's GraphQL endpoint and the bench's token.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
    pub graphql: reqwest::Url,
    pub token: String,
}

impl Target {
    pub fn new(args: &TargetArgs) -> Result<Target, Error> {
        let base = args.url.trim_end_matches('/').to_owned();
        let graphql = reqwest::Url::parse(&format!("{base}/graphql"))
            .map_err(|e| format!("--url {}: {e}", args.url))?;
        Ok(Target {
            base,
            graphql,
            token: args.token.clone(),
        })
    }
}

/// One client for every task: `pool` idle connections are kept, so each task
/// keeps reusing its own connection.
pub fn client(pool: usize, timeout: Duration) -> Result<reqwest::Client, Error> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool.max(1))
        .tcp_nodelay(true)
        .timeout(timeout)
        .build()?)
}

/// `{"query": …, "variables": …}` as request bytes.
pub fn graphql_body(query: &str, variables: &Value) -> Bytes {
    let body = serde_json::json!({ "query": query, "variables": variables });
    Bytes::from(serde_json::to_vec(&body).expect("a JSON value serialises"))
}

/// POSTs one GraphQL request; the body when it succeeded, else why not.
pub async fn post(client: &reqwest::Client, target: &Target, body: Bytes) -> Result<Value, String> {
    let response = client
        .post(target.graphql.clone())
        .bearer_auth(&target.token)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| describe(&e))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| format!("HTTP {status} with a body that is not JSON"))?;
    let first_error = || {
        value["errors"][0]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned()
    };
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", first_error()));
    }
    if value.get("errors").is_some() {
        return Err(format!("GraphQL error: {}", first_error()));
    }
    Ok(value)
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        format!("could not connect: {err}")
    } else {
        format!("request failed: {err}")
    }
}

/// What the tasks send, and what they learn from the answers.
pub trait Workload: Send + Sync + 'static {
    /// The body of request number `n` (numbers are unique across tasks).
    fn body(&self, n: u64) -> Bytes;

    /// Called with every successful answer; `timed` when it was sent within the
    /// window, at `sent`.
    fn answered(&self, _n: u64, _sent: Instant, _timed: bool, _body: &Value) {}
}

/// The same request, over and over.
pub struct Fixed(pub Bytes);

impl Workload for Fixed {
    fn body(&self, _n: u64) -> Bytes {
        self.0.clone()
    }
}

/// The outcome of the timed window.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests sent within the window (answered or not).
    pub requests: u64,
    pub errors: u64,
    pub latencies: Latencies,
    /// From the start of the window until the last of its requests ended.
    pub elapsed: Duration,
    pub concurrency: usize,
    pub first_error: Option<String>,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The figures every load report shows, under their JSON keys.
    pub fn fields(&self) -> Vec<Field> {
        let l = &self.latencies;
        vec![
            field("requests", "requests", Figure::Count(self.requests)),
            field("errors", "errors", Figure::Count(self.errors)),
            field(
                "requests_per_second",
                "req/s",
                Figure::Decimal(self.requests_per_second()),
            ),
            field("p50_ms", "p50 ms", Figure::ms(l.percentile(50.0))),
            field("p90_ms", "p90 ms", Figure::ms(l.percentile(90.0))),
            field("p99_ms", "p99 ms", Figure::ms(l.percentile(99.0))),
            field("max_ms", "max ms", Figure::ms(l.max())),
            field(
                "concurrency",
                "concurrency",
                Figure::Count(self.concurrency as u64),
            ),
            field(
                "duration_s",
                "duration s",
                Figure::Decimal(self.elapsed.as_secs_f64()),
            ),
        ]
    }

    /// Says on standard error what the first failure was, when there was one.
    pub fn explain_errors(&self) {
        if let Some(error) = &self.first_error {
            eprintln!("{} errors; the first: {error}", self.errors);
        }
    }
}

#[derive(Default)]
struct TaskTally {
    requests: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

/// Runs `workload` with `load.concurrency` tasks: warm-up, then the window.
pub async fn run<W: Workload>(
    client: &reqwest::Client,
    target: &Target,
    workload: Arc<W>,
    load: &LoadArgs,
) -> LoadResult {
    let concurrency = load.concurrency.max(1);
    let start = Instant::now();
    let window_start = start + load.warmup;
    let window_end = window_start + load.duration;
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let target = target.clone();
        let workload = workload.clone();
        let counter = counter.clone();
        tasks.spawn(async move {
            let mut tally = TaskTally::default();
            loop {
                let sent = Instant::now();
                if sent >= window_end {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let timed = sent >= window_start;
                let answer = post(&client, &target, workload.body(n)).await;
                let took = sent.elapsed();
                if let Ok(body) = &answer {
                    workload.answered(n, sent, timed, body);
                }
                if !timed {
                    continue;
                }
                tally.requests += 1;
                match answer {
                    Ok(_) => tally.latencies.push(took),
                    Err(error) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert(error);
                    }
                }
            }
            tally
        });
    }
    let mut total = TaskTally::default();
    while let Some(done) = tasks.join_next().await {
        // A task only ends by returning its tally; a panic would be a bug in
        // the bench, and is reported as such rather than hidden.
        let tally = done.expect("a load task panicked");
        total.requests += tally.requests;
        total.errors += tally.errors;
        total.latencies.extend(tally.latencies);
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    LoadResult {
        requests: total.requests,
        errors: total.errors,
        latencies: Latencies::new(total.latencies),
        elapsed: Instant::now().saturating_duration_since(window_start),
        concurrency,
        first_error: total.first_error,
    }
}

//! `invoke`: the rate of `invokeAction` (or, with `--bulk N`, of
//! `invokeActions` with N inputs a call), and how long an invoked action takes
//! to reach `COMPLETED` as a subscriber sees it.
//!
//! Every request blocks a different IP address. Before the load, one socket
//! subscribes to `COMPLETED` events, and a probe action is invoked and awaited,
//! so the subscription is known to be live (and the executor to be running)
//! before anything is timed. Each timed invoke's send instant is kept by action
//! id, as is each `COMPLETED` event's arrival; completion latency is arrival
//! minus send. The two are joined only at the end, because an event may well
//! arrive before the mutation's own answer does.
//!
//! What a subscriber sees is bounded by how fast the gateway publishes events
//! as well as by how fast it completes actions; the timed mode also reads the
//! tenant's `COMPLETED` count from `actionCounts` after the window, every
//! 250 ms until it has grown by every action stored, the warm-up's included
//! (or stopped growing), so the database's completion rate — from the first
//! send to the last growth — is reported beside the subscriber's.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::Error;
use crate::load::{self, LoadArgs, Target, TargetArgs, Workload};
use crate::report::{Figure, Latencies, Report, field};
use crate::ws;

/// The mutation every invoke sends.
pub const INVOKE: &str = r#"mutation($ip: String!) { invokeAction(input: {name: "blockIp", parameters: [{name: "ip", value: $ip}]}) { id } }"#;
/// The mutation of `--bulk`: a batch of `blockIp`.
pub const INVOKE_MANY: &str = "mutation($inputs: [InvokeActionInput!]!) { invokeActions(inputs: $inputs) { action { id } error { code message } } }";
const COMPLETED_EVENTS: &str = "subscription { actionStatusChanged(filter: {status: [COMPLETED]}) { action { id } occurredDateTime } }";
/// The tenant's `COMPLETED` actions, as the database counts them.
const COMPLETED_COUNT: &str = "{ actionCounts(filter: {status: [COMPLETED]}) { status count } }";
/// How often the database's count is read after the window.
const COUNT_POLL: Duration = Duration::from_millis(250);
/// How long outstanding actions may take to complete after the load.
const COMPLETION_WAIT: Duration = Duration::from_secs(30);
/// How long a feed may take to complete after it was stored.
const FEED_WAIT: Duration = Duration::from_secs(300);
/// Addresses of a feed start here, past those a timed load of the same
/// tenant would use first.
const FEED_FIRST: u64 = 1 << 23;
/// IPv6 addresses of the probe: `2001:db8:<tag>::/48`, apart from the load's.
const PROBE_TAG: u16 = 0xfffe;

/// `actiongate-bench invoke`
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Measure the invoke rate only: no completion subscription, no probe, so
    /// it also runs against a gateway whose executor is off (`--executor
    /// false`, an API-only replica).
    #[arg(long)]
    pub no_completion: bool,
    /// Invoke in batches of this many actions with `invokeActions` (at most
    /// 500) instead of one `invokeAction` a request; the report adds actions/s.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=500))]
    pub bulk: Option<u64>,
    /// Instead of a timed window, invoke one feed of this many actions in
    /// `invokeActions` calls of `--bulk` (default 500), `--concurrency` calls
    /// at once, and time it until every action of it is seen `COMPLETED`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub feed: Option<u64>,
}

/// A distinct address for every `n`: `10.x.y.z` for the first 2^24, then
/// addresses in `2001:db8::/32`.
pub fn unique_ip(n: u64) -> String {
    if n < 1 << 24 {
        Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8).to_string()
    } else {
        tagged_ipv6(0, n)
    }
}

/// `2001:db8:<tag>::` plus `n`: a separate space per tag.
pub fn tagged_ipv6(tag: u16, n: u64) -> String {
    Ipv6Addr::new(
        0x2001,
        0x0db8,
        tag,
        0,
        (n >> 48) as u16,
        (n >> 32) as u16,
        (n >> 16) as u16,
        n as u16,
    )
    .to_string()
}

/// The body of an invoke of `blockIp` on `ip`.
pub fn invoke_body(ip: &str) -> Bytes {
    load::graphql_body(INVOKE, &json!({ "ip": ip }))
}

/// The body of an `invokeActions` of `size` `blockIp`, numbered from `first`.
pub fn invoke_many_body(first: u64, size: u64) -> Bytes {
    let inputs: Vec<Value> = (first..first + size)
        .map(|n| json!({"name": "blockIp", "parameters": [{"name": "ip", "value": unique_ip(n)}]}))
        .collect();
    load::graphql_body(INVOKE_MANY, &json!({ "inputs": inputs }))
}

/// The ids of the actions in an `invokeActions` answer (items that failed
/// have none).
pub fn invoked_ids(body: &Value) -> Vec<Uuid> {
    body["data"]["invokeActions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["action"]["id"].as_str())
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}

/// The id of the action in an `invokeAction` answer.
pub fn invoked_id(body: &Value) -> Option<Uuid> {
    body["data"]["invokeAction"]["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Invokes `blockIp` once and returns the action's id.
pub async fn invoke_once(
    client: &reqwest::Client,
    target: &Target,
    ip: &str,
) -> Result<Uuid, String> {
    let body = load::post(client, target, invoke_body(ip)).await?;
    invoked_id(&body).ok_or_else(|| "the answer has no data.invokeAction.id".to_owned())
}

/// Send instants of the timed invokes, by action id.
#[derive(Default)]
struct Invokes {
    /// Actions a request: `None` for one `invokeAction` each.
    bulk: Option<u64>,
    sent: Mutex<HashMap<Uuid, Instant>>,
    /// Actions stored by the timed requests.
    stored: std::sync::atomic::AtomicU64,
    /// Actions stored by every request, the warm-up's too, and the first
    /// send: what the database's completion count is compared with.
    all: Mutex<(u64, Option<Instant>)>,
}

impl Workload for Invokes {
    fn body(&self, n: u64) -> Bytes {
        match self.bulk {
            Some(size) => invoke_many_body(n * size, size),
            None => invoke_body(&unique_ip(n)),
        }
    }

    fn answered(&self, _n: u64, sent: Instant, timed: bool, body: &Value) {
        let ids = match self.bulk {
            Some(_) => invoked_ids(body),
            None => invoked_id(body).into_iter().collect(),
        };
        {
            let mut all = self.all.lock().expect("not poisoned");
            all.0 += ids.len() as u64;
            all.1 = Some(all.1.map_or(sent, |first: Instant| first.min(sent)));
        }
        if !timed {
            return;
        }
        self.stored
            .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut sent_at = self.sent.lock().expect("not poisoned");
        for id in ids {
            sent_at.insert(id, sent);
        }
    }
}

impl Invokes {
    fn new(bulk: Option<u64>) -> Invokes {
        Invokes {
            bulk,
            ..Invokes::default()
        }
    }

    /// The request figures, and with `--bulk` the actions stored a second.
    fn fields(&self, result: &load::LoadResult) -> Vec<crate::report::Field> {
        let mut fields = result.fields();
        if self.bulk.is_some() {
            let stored = self.stored.load(std::sync::atomic::Ordering::Relaxed);
            fields.push(field("actions", "actions", Figure::Count(stored)));
            fields.push(field(
                "actions_per_second",
                "actions/s",
                Figure::Decimal(stored as f64 / result.elapsed.as_secs_f64().max(f64::EPSILON)),
            ));
        }
        fields
    }

    fn section(&self) -> &'static str {
        match self.bulk {
            Some(_) => "invokeActions",
            None => "invokeAction",
        }
    }
}

/// Arrival instants of `COMPLETED` events, by action id (the first of each).
type Arrivals = Arc<Mutex<HashMap<Uuid, Instant>>>;

/// Reads `COMPLETED` events off `socket` into `arrivals` until the socket ends.
async fn listen(mut socket: ws::Socket, arrivals: Arrivals) -> String {
    while let Some(message) = socket.next().await {
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(frame)) => {
                return format!("the gateway closed the socket: {frame:?}");
            }
            Ok(_) => continue,
            Err(e) => return format!("reading the socket: {e}"),
        };
        let at = Instant::now();
        match ws::classify(&text) {
            ws::Incoming::Event { event, .. } => {
                if let Ok(id) = Uuid::parse_str(&event.action.id) {
                    arrivals
                        .lock()
                        .expect("not poisoned")
                        .entry(id)
                        .or_insert(at);
                }
            }
            ws::Incoming::Ping => {
                if let Err(e) = ws::send_pong(&mut socket).await {
                    return e;
                }
            }
            ws::Incoming::Ended { error, .. } => {
                return format!(
                    "the gateway ended the subscription{}",
                    if error { " with an error" } else { "" }
                );
            }
            ws::Incoming::Other => {}
        }
    }
    "the socket ended".to_owned()
}

/// Waits until every id in `ids` has arrived, or `limit` passes.
async fn await_arrivals(arrivals: &Arrivals, ids: &[Uuid], limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let missing = {
            let arrived = arrivals.lock().expect("not poisoned");
            ids.iter().filter(|id| !arrived.contains_key(id)).count()
        };
        if missing == 0 || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(args: InvokeArgs) -> Result<(), Error> {
    let target = Target::new(&args.target)?;
    let client = load::client(args.load.concurrency, args.target.timeout)?;
    if args.no_completion {
        let invokes = Arc::new(Invokes::new(args.bulk));
        let result = load::run(&client, &target, invokes.clone(), &args.load).await;
        result.explain_errors();
        Report::new()
            .section(invokes.section(), invokes.fields(&result))
            .print(args.target.json);
        return Ok(());
    }
    let endpoint = ws::endpoint(&target.base)?;
    let mut socket = ws::open(&endpoint, &target.token, args.target.timeout).await?;
    ws::subscribe(&mut socket, "1", COMPLETED_EVENTS).await?;
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::spawn(listen(socket, arrivals.clone()));

    // Retry the probe until it completes: the subscription may not be live
    // for the first one.
    let probe_deadline = Instant::now() + COMPLETION_WAIT;
    let mut probes = 0u64;
    loop {
        let id = invoke_once(&client, &target, &tagged_ipv6(PROBE_TAG, probes))
            .await
            .map_err(|e| format!("the probe invoke failed: {e}"))?;
        probes += 1;
        await_arrivals(&arrivals, &[id], Duration::from_secs(2)).await;
        if arrivals.lock().expect("not poisoned").contains_key(&id) {
            break;
        }
        if listener.is_finished() || Instant::now() >= probe_deadline {
            listener.abort();
            return Err(format!(
                "no probe action was seen COMPLETED within {COMPLETION_WAIT:?}: is the gateway's executor on?"
            )
            .into());
        }
    }

    if let Some(total) = args.feed {
        let size = args.bulk.unwrap_or(500);
        let report = feed(&client, &target, &arrivals, total, size, &args.load).await;
        listener.abort();
        report?.print(args.target.json);
        return Ok(());
    }

    let completed_before = completed_in_database(&client, &target).await?;
    let invokes = Arc::new(Invokes::new(args.bulk));
    let result = load::run(&client, &target, invokes.clone(), &args.load).await;
    result.explain_errors();

    let (stored, first_stored) = *invokes.all.lock().expect("not poisoned");
    let (db_completed, db_last_growth) =
        await_database_completion(&client, &target, completed_before, stored).await?;

    let sent: Vec<(Uuid, Instant)> = invokes
        .sent
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(id, at)| (*id, *at))
        .collect();
    let ids: Vec<Uuid> = sent.iter().map(|(id, _)| *id).collect();
    await_arrivals(&arrivals, &ids, COMPLETION_WAIT).await;
    if listener.is_finished() {
        eprintln!("the completion subscription ended early; later completions are missing");
    }
    listener.abort();

    let arrived = arrivals.lock().expect("not poisoned");
    let mut latencies = Vec::with_capacity(sent.len());
    let mut missing = 0u64;
    let mut last_arrival = None;
    for (id, at) in &sent {
        match arrived.get(id) {
            Some(done) => {
                latencies.push(done.saturating_duration_since(*at));
                last_arrival = last_arrival.max(Some(*done));
            }
            None => missing += 1,
        }
    }
    // Stored and completed a second: the timed window's actions that
    // completed, over the span from the first one's send to the last
    // completion (which includes draining the queue the window built up).
    let first_sent = sent.iter().map(|(_, at)| *at).min();
    let span = match (first_sent, last_arrival) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    };
    let completion = Latencies::new(latencies);
    let completed_per_second = completion.len() as f64 / span.as_secs_f64().max(f64::EPSILON);
    let db_span = match (first_stored, db_last_growth) {
        (Some(first), Some(last)) => last.saturating_duration_since(first),
        _ => Duration::ZERO,
    };
    let db_completed_per_second = db_completed as f64 / db_span.as_secs_f64().max(f64::EPSILON);
    Report::new()
        .section(invokes.section(), invokes.fields(&result))
        .section(
            "invoke -> COMPLETED (as a subscriber sees it)",
            vec![
                field(
                    "completed",
                    "completed",
                    Figure::Count(completion.len() as u64),
                ),
                field(
                    "completion_p50_ms",
                    "p50 ms",
                    Figure::ms(completion.percentile(50.0)),
                ),
                field(
                    "completion_p99_ms",
                    "p99 ms",
                    Figure::ms(completion.percentile(99.0)),
                ),
                field("completion_max_ms", "max ms", Figure::ms(completion.max())),
                field("completion_missing", "missing", Figure::Count(missing)),
                field(
                    "completed_per_second",
                    "stored and completed /s",
                    Figure::Decimal(completed_per_second),
                ),
            ],
        )
        .section(
            "invoke -> COMPLETED (as the database counts it)",
            vec![
                field("db_completed", "completed", Figure::Count(db_completed)),
                field(
                    "db_completed_s",
                    "all completed s",
                    Figure::Decimal(db_span.as_secs_f64()),
                ),
                field(
                    "db_completed_per_second",
                    "stored and completed /s",
                    Figure::Decimal(db_completed_per_second),
                ),
                field(
                    "db_missing",
                    "missing",
                    Figure::Count(stored.saturating_sub(db_completed)),
                ),
            ],
        )
        .print(args.target.json);
    Ok(())
}

/// The tenant's `COMPLETED` count from `actionCounts`.
async fn completed_in_database(client: &reqwest::Client, target: &Target) -> Result<u64, Error> {
    let body = load::post(
        client,
        target,
        load::graphql_body(COMPLETED_COUNT, &json!({})),
    )
    .await
    .map_err(|e| format!("reading actionCounts: {e}"))?;
    completed_count(&body)
        .ok_or_else(|| format!("actionCounts answered without a COMPLETED count: {body}").into())
}

/// The `COMPLETED` count of an `actionCounts` answer.
fn completed_count(body: &Value) -> Option<u64> {
    body["data"]["actionCounts"]
        .as_array()?
        .iter()
        .find(|c| c["status"] == "COMPLETED")?["count"]
        .as_u64()
}

/// Reads the `COMPLETED` count every [`COUNT_POLL`] until it has grown by
/// `expected` over `before`, or has not grown for [`COMPLETION_WAIT`].
/// Returns how much it grew and when it last did (to the poll's precision).
async fn await_database_completion(
    client: &reqwest::Client,
    target: &Target,
    before: u64,
    expected: u64,
) -> Result<(u64, Option<Instant>), Error> {
    let mut grown = 0;
    let mut last_growth = None;
    let mut since = Instant::now();
    loop {
        let now = completed_in_database(client, target)
            .await?
            .saturating_sub(before);
        if now > grown {
            grown = now;
            last_growth = Some(Instant::now());
            since = Instant::now();
        }
        if grown >= expected || since.elapsed() >= COMPLETION_WAIT {
            return Ok((grown, last_growth));
        }
        tokio::time::sleep(COUNT_POLL).await;
    }
}

/// Invokes one feed of `total` `blockIp` actions in calls of `size`,
/// `concurrency` calls at once, and waits until each is seen `COMPLETED`.
async fn feed(
    client: &reqwest::Client,
    target: &Target,
    arrivals: &Arrivals,
    total: u64,
    size: u64,
    load: &LoadArgs,
) -> Result<Report, Error> {
    let calls = total.div_ceil(size);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..load.concurrency.max(1) {
        let (client, target, next) = (client.clone(), target.clone(), next.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let call = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if call >= calls {
                    return Ok::<_, String>(ids);
                }
                let first = call * size;
                let body = invoke_many_body(FEED_FIRST + first, size.min(total - first));
                let answer = load::post(&client, &target, body).await?;
                ids.extend(invoked_ids(&answer));
            }
        });
    }
    let mut ids = Vec::with_capacity(total as usize);
    while let Some(done) = tasks.join_next().await {
        ids.extend(done.map_err(|e| format!("a feed task failed: {e}"))??);
    }
    let stored = start.elapsed();
    await_arrivals(arrivals, &ids, FEED_WAIT).await;
    let arrived = arrivals.lock().expect("not poisoned");
    let done: Vec<Instant> = ids
        .iter()
        .filter_map(|id| arrived.get(id).copied())
        .collect();
    let completed = done
        .iter()
        .max()
        .map_or(Duration::ZERO, |last| last.saturating_duration_since(start));
    let per_second = |count: usize, took: Duration| {
        Figure::Decimal(count as f64 / took.as_secs_f64().max(f64::EPSILON))
    };
    Ok(Report::new().section(
        "feed (invokeActions, then every action COMPLETED)",
        vec![
            field("feed_actions", "stored", Figure::Count(ids.len() as u64)),
            field(
                "feed_stored_s",
                "all stored s",
                Figure::Decimal(stored.as_secs_f64()),
            ),
            field(
                "feed_stored_per_second",
                "stored /s",
                per_second(ids.len(), stored),
            ),
            field(
                "feed_completed",
                "completed",
                Figure::Count(done.len() as u64),
            ),
            field(
                "feed_completed_s",
                "all completed s",
                Figure::Decimal(completed.as_secs_f64()),
            ),
            field(
                "feed_completed_per_second",
                "stored and completed /s",
                per_second(done.len(), completed),
            ),
            field(
                "feed_missing",
                "missing",
                Figure::Count((ids.len() - done.len()) as u64),
            ),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_and_move_to_ipv6_past_ipv4() {
        assert_eq!(unique_ip(0), "10.0.0.0");
        assert_eq!(unique_ip(1), "10.0.0.1");
        assert_eq!(unique_ip(256), "10.0.1.0");
        assert_eq!(unique_ip((1 << 24) - 1), "10.255.255.255");
        assert_eq!(unique_ip(1 << 24), "2001:db8::100:0");
        assert_ne!(unique_ip(1 << 24), unique_ip((1 << 24) + 1));
        assert_eq!(tagged_ipv6(PROBE_TAG, 5), "2001:db8:fffe::5");
        let seen: std::collections::HashSet<String> =
            (0..100_000u64).map(|n| unique_ip(n * 997)).collect();
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn the_completed_count_is_read_from_an_action_counts_answer() {
        let body = json!({"data": {"actionCounts": [
            {"status": "NOT_STARTED", "count": 0},
            {"status": "COMPLETED", "count": 41},
            {"status": "FAILED", "count": 2},
        ]}});
        assert_eq!(completed_count(&body), Some(41));
        assert_eq!(
            completed_count(&json!({"errors": [{"message": "no"}]})),
            None
        );
    }

    #[test]
    fn the_invoked_id_is_read_from_the_answer() {
        let id = Uuid::now_v7();
        let body = json!({"data": {"invokeAction": {"id": id.to_string()}}});
        assert_eq!(invoked_id(&body), Some(id));
        assert_eq!(invoked_id(&json!({"data": null})), None);
        let sent: Value = serde_json::from_slice(&invoke_body("10.0.0.1")).unwrap();
        assert_eq!(sent["variables"]["ip"], "10.0.0.1");
        assert!(sent["query"].as_str().unwrap().contains("invokeAction"));
    }

    #[test]
    fn a_bulk_body_numbers_its_inputs_and_its_answer_gives_the_stored_ids() {
        let sent: Value = serde_json::from_slice(&invoke_many_body(500, 3)).unwrap();
        let ips: Vec<&str> = sent["variables"]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["parameters"][0]["value"].as_str().unwrap())
            .collect();
        assert_eq!(ips, ["10.0.1.244", "10.0.1.245", "10.0.1.246"]);
        let id = Uuid::now_v7();
        let answer = json!({"data": {"invokeActions": [
            {"action": {"id": id.to_string()}, "error": null},
            {"action": null, "error": {"code": "BAD_USER_INPUT", "message": "…"}},
        ]}});
        assert_eq!(invoked_ids(&answer), vec![id]);
    }
}

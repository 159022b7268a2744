//! `live-counts`: many subscribers to `actionCountsChanged`, how long a change
//! takes to reach each of them, and what the gateway reads while nothing
//! changes.
//!
//! The run: open `S` subscriptions (the counts of the token's tenant, no
//! filter) over `K` sockets and wait for every first push; read the gateway's
//! `/metrics` before and after an idle window (`--idle`), so the statements
//! and live-count reads made while nothing changes show; then invoke
//! `blockIp` at `--rate` per second for `--duration` (each invoke adds one
//! action: one change of the counts; the executor's transitions that follow
//! change them again), and wait until every subscriber has seen them all.
//!
//! Delay: the invokes' answers, sorted by when they came, say that by the
//! `j`-th answer at least `j` actions were stored; a subscriber has seen them
//! once it is pushed counts whose total is at least its first total plus `j`.
//! The delay of change `j` to that subscriber is the arrival of that push
//! minus the `j`-th answer (zero when the push came first): an upper bound of
//! the delay from commit to push, as each commit precedes its answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actiongate::parse_duration;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::Error;
use crate::invoke::{invoke_once, tagged_ipv6};
use crate::load::{self, Target, TargetArgs};
use crate::report::{Figure, Latencies, Report, field};
use crate::sys;
use crate::ws;

const COUNTS: &str = "subscription { actionCountsChanged { status count } }";
/// The gateway's default cap on subscriptions per socket.
const MAX_PER_CONNECTION: usize = 100;
/// Sockets in their opening handshake at once.
const OPENING_AT_ONCE: usize = 64;
/// Files the bench needs besides its sockets.
const SPARE_FILES: u64 = 128;
/// IPv6 space of this mode's actions, apart from the other modes'.
const ACTION_TAG: u16 = 0x5b5d;
/// Invokes in flight at once: enough to keep the rate when one is slow.
const INVOKES_IN_FLIGHT: usize = 64;
/// How long first pushes, and the last changes, may take to arrive.
const PATIENCE: Duration = Duration::from_secs(30);
/// The gateway's metrics read around the idle windows.
const METRICS: [&str; 2] = [
    "actiongate_db_queries_total",
    "actiongate_live_count_reads_total",
];

/// `actiongate-bench live-counts`
#[derive(Debug, clap::Args)]
pub struct LiveCountsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Subscriptions to open.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Sockets to spread them over (default: one per subscription; at most
    /// 100 subscriptions per socket).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Invokes a second while they listen.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How long to invoke.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// The idle window before the invokes (and again after they settled),
    /// over which the statements the gateway makes are read from `/metrics`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub idle: Duration,
}

/// The pushes one subscription received: arrival and total of the counts.
type Pushes = Vec<(Instant, u64)>;

/// What every reader task updates.
struct Shared {
    /// Subscriptions that received their first push.
    live: AtomicUsize,
    /// Per subscription (numbered across sockets): the total of its first
    /// push and of its latest, so the bench knows when all caught up.
    first: Vec<AtomicU64>,
    latest: Vec<AtomicU64>,
    /// Subscriptions the gateway ended or reported an error in.
    ended: AtomicU64,
    malformed: AtomicU64,
}

impl Shared {
    fn new(subscribers: usize) -> Shared {
        let zeros = || (0..subscribers).map(|_| AtomicU64::new(0)).collect();
        Shared {
            live: AtomicUsize::new(0),
            first: zeros(),
            latest: zeros(),
            ended: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
        }
    }

    /// Whether every subscription has seen `changes` more actions than at first.
    fn all_saw(&self, changes: u64) -> bool {
        self.first.iter().zip(&self.latest).all(|(first, latest)| {
            latest.load(Ordering::Relaxed) >= first.load(Ordering::Relaxed) + changes
        })
    }
}

/// The sum of the counts of one `actionCountsChanged` push, if it is one.
fn total_of(text: &str) -> Option<Result<u64, ()>> {
    let message: Value = serde_json::from_str(text).ok()?;
    match message["type"].as_str()? {
        "next" => {
            let counts = message["payload"]["data"]["actionCountsChanged"].as_array();
            Some(
                counts
                    .map(|list| list.iter().filter_map(|c| c["count"].as_u64()).sum())
                    .ok_or(()),
            )
        }
        "error" | "complete" => Some(Err(())),
        _ => None,
    }
}

async fn connection(
    endpoint: Arc<str>,
    token: Arc<str>,
    timeout: Duration,
    gate: Arc<Semaphore>,
    (offset, count): (usize, usize),
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<Pushes>, String> {
    let mut socket = {
        let _permit = gate.acquire().await;
        let mut socket = ws::open(&endpoint, &token, timeout).await?;
        for i in 1..=count {
            ws::subscribe(&mut socket, &i.to_string(), COUNTS).await?;
        }
        socket
    };
    let mut pushes: Vec<Pushes> = vec![Vec::new(); count];
    loop {
        let message = tokio::select! {
            _ = stop.changed() => return Ok(pushes),
            message = socket.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("read failed: {e}")),
            None => return Err("the socket ended".to_owned()),
        };
        let arrived = Instant::now();
        if text.contains(r#""type":"ping""#) {
            ws::send_pong(&mut socket).await?;
            continue;
        }
        let id = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|m| m["id"].as_str().and_then(|id| id.parse::<usize>().ok()));
        let index = id.and_then(|i| i.checked_sub(1)).filter(|i| *i < count);
        match (total_of(&text), index) {
            (Some(Ok(total)), Some(i)) => {
                if pushes[i].is_empty() {
                    shared.first[offset + i].store(total, Ordering::Relaxed);
                    shared.live.fetch_add(1, Ordering::Relaxed);
                }
                shared.latest[offset + i].store(total, Ordering::Relaxed);
                pushes[i].push((arrived, total));
            }
            (Some(Err(())), _) => {
                shared.ended.fetch_add(1, Ordering::Relaxed);
            }
            (Some(Ok(_)), None) => {
                shared.malformed.fetch_add(1, Ordering::Relaxed);
            }
            (None, _) => {}
        }
    }
}

/// The named counters of the gateway's `/metrics`, summed over their labels.
async fn metrics(client: &reqwest::Client, target: &Target) -> Result<[f64; 2], Error> {
    let text = client
        .get(format!("{}/metrics", target.base))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(METRICS.map(|name| sum_of(&text, name)))
}

/// The sum of every sample of `name` in Prometheus text.
fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What the gateway read over an idle window: statements, live-count reads.
async fn idle_reads(
    client: &reqwest::Client,
    target: &Target,
    window: Duration,
) -> Result<[u64; 2], Error> {
    let before = metrics(client, target).await?;
    tokio::time::sleep(window).await;
    let after = metrics(client, target).await?;
    Ok([0, 1].map(|i| (after[i] - before[i]).max(0.0) as u64))
}

async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The delay of each change to one subscription: `answers` sorted, the
/// subscription's `pushes` in arrival order.
fn delays(answers: &[Instant], pushes: &[(Instant, u64)], out: &mut Vec<Duration>) -> u64 {
    let Some(&(_, base)) = pushes.first() else {
        return answers.len() as u64;
    };
    let mut missed = 0;
    let mut next = 0;
    for (j, answered) in answers.iter().enumerate() {
        let wanted = base + j as u64 + 1;
        while next < pushes.len() && pushes[next].1 < wanted {
            next += 1;
        }
        match pushes.get(next) {
            Some(&(arrived, _)) => out.push(arrived.saturating_duration_since(*answered)),
            None => missed += 1,
        }
    }
    missed
}

pub async fn run(args: LiveCountsArgs) -> Result<(), Error> {
    let subscribers = args.subscribers;
    if subscribers == 0 || args.rate == 0 {
        return Err("--subscribers and --rate must be at least 1".into());
    }
    let connections = args
        .connections
        .unwrap_or(subscribers)
        .clamp(1, subscribers);
    let per_connection = subscribers.div_ceil(connections);
    if per_connection > MAX_PER_CONNECTION {
        return Err(format!(
            "{per_connection} subscriptions a socket is over the gateway's {MAX_PER_CONNECTION}: \
             give --connections {} or more",
            subscribers.div_ceil(MAX_PER_CONNECTION)
        )
        .into());
    }
    let needed = connections as u64 + SPARE_FILES + INVOKES_IN_FLIGHT as u64;
    let limit = sys::file_limit(None)?;
    if !limit.allows(needed) {
        return Err(format!(
            "{connections} sockets need an open-file limit of at least {needed}, and it is {limit}: \
             raise it in the shell first (ulimit -n 65536)"
        )
        .into());
    }

    let target = Target::new(&args.target)?;
    let client = load::client(INVOKES_IN_FLIGHT, args.target.timeout)?;
    let endpoint: Arc<str> = ws::endpoint(&target.base)?.into();
    let token: Arc<str> = target.token.as_str().into();
    let shared = Arc::new(Shared::new(subscribers));
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let opened = Instant::now();
    let mut offset = 0;
    let readers: Vec<_> = (0..connections)
        .map(|c| subscribers / connections + usize::from(c < subscribers % connections))
        .map(|count| {
            offset += count;
            tokio::spawn(connection(
                endpoint.clone(),
                token.clone(),
                args.target.timeout,
                gate.clone(),
                (offset - count, count),
                shared.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    if !wait_until(PATIENCE, || {
        shared.live.load(Ordering::Relaxed) >= subscribers
    })
    .await
    {
        let _ = stop_tx.send(true);
        return Err(format!(
            "only {} of {subscribers} subscriptions received their first counts within {PATIENCE:?}",
            shared.live.load(Ordering::Relaxed)
        )
        .into());
    }
    eprintln!(
        "{subscribers} subscriptions on {connections} sockets have their counts after {:.1} s",
        opened.elapsed().as_secs_f64()
    );

    let idle_before = idle_reads(&client, &target, args.idle).await?;
    let during_from = metrics(&client, &target).await?;

    // Invokes at the rate, each on its own task, their answers' instants kept.
    let answers = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(INVOKES_IN_FLIGHT));
    let total = (args.rate as f64 * args.duration.as_secs_f64()).round() as u64;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        ticks.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (client, target) = (client.clone(), target.clone());
        let (answers, errors) = (answers.clone(), errors.clone());
        tasks.spawn(async move {
            let result = invoke_once(&client, &target, &tagged_ipv6(ACTION_TAG, n)).await;
            let answered = Instant::now();
            drop(permit);
            match result {
                Ok(_) => answers.lock().await.push(answered),
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("an invoke failed: {e}");
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let invoking = started.elapsed();
    let mut answers = std::mem::take(&mut *answers.lock().await);
    answers.sort_unstable();

    // Wait until every subscriber has a total covering every stored action.
    let changes = answers.len() as u64;
    if !wait_until(PATIENCE, || shared.all_saw(changes)).await {
        eprintln!("not every subscription saw every change within {PATIENCE:?}");
    }
    // Give the last pushes (after the executor's transitions) a moment, then
    // read how much was read during the load, and over an idle window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during_to = metrics(&client, &target).await?;
    let idle_after = idle_reads(&client, &target, args.idle).await?;
    let _ = stop_tx.send(true);

    let mut samples = Vec::new();
    let mut missed = 0u64;
    let mut pushes_total = 0u64;
    let mut lost_sockets = 0u64;
    for reader in readers {
        match reader.await {
            Ok(Ok(subscriptions)) => {
                for pushes in subscriptions {
                    pushes_total += pushes.len() as u64;
                    missed += delays(&answers, &pushes, &mut samples);
                }
            }
            Ok(Err(why)) => {
                if lost_sockets == 0 {
                    eprintln!("a socket ended early: {why}");
                }
                lost_sockets += 1;
            }
            Err(_) => lost_sockets += 1,
        }
    }
    let delay = Latencies::new(samples);
    let during = [0, 1].map(|i| (during_to[i] - during_from[i]).max(0.0) as u64);
    Report::new()
        .section(
            "live counts",
            vec![
                field(
                    "subscribers",
                    "subscribers",
                    Figure::Count(subscribers as u64),
                ),
                field("connections", "sockets", Figure::Count(connections as u64)),
                field("changes", "invokes", Figure::Count(answers.len() as u64)),
                field(
                    "changes_per_second",
                    "invokes/s",
                    Figure::Decimal(answers.len() as f64 / invoking.as_secs_f64()),
                ),
                field("pushes", "pushes", Figure::Count(pushes_total)),
                field("missed", "changes never seen", Figure::Count(missed)),
                field("delay_p50_ms", "p50 ms", Figure::ms(delay.percentile(50.0))),
                field("delay_p99_ms", "p99 ms", Figure::ms(delay.percentile(99.0))),
                field("delay_max_ms", "max ms", Figure::ms(delay.max())),
            ],
        )
        .section(
            "gateway reads",
            vec![
                field(
                    "idle_before_statements",
                    "idle statements",
                    Figure::Count(idle_before[0]),
                ),
                field(
                    "idle_before_count_reads",
                    "idle count reads",
                    Figure::Count(idle_before[1]),
                ),
                field(
                    "load_statements",
                    "statements under load",
                    Figure::Count(during[0]),
                ),
                field(
                    "load_count_reads",
                    "count reads under load",
                    Figure::Count(during[1]),
                ),
                field(
                    "idle_after_statements",
                    "idle statements after",
                    Figure::Count(idle_after[0]),
                ),
                field(
                    "idle_after_count_reads",
                    "idle count reads after",
                    Figure::Count(idle_after[1]),
                ),
            ],
        )
        .section(
            "errors",
            vec![
                field(
                    "invoke_errors",
                    "invoke errors",
                    Figure::Count(errors.load(Ordering::Relaxed)),
                ),
                field(
                    "subscription_errors",
                    "subscriptions ended",
                    Figure::Count(shared.ended.load(Ordering::Relaxed)),
                ),
                field(
                    "malformed",
                    "malformed messages",
                    Figure::Count(shared.malformed.load(Ordering::Relaxed)),
                ),
                field("lost_sockets", "sockets lost", Figure::Count(lost_sockets)),
            ],
        )
        .print(args.target.json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_summed_from_pushes_and_errors_told_apart() {
        let push = r#"{"type":"next","id":"1","payload":{"data":{"actionCountsChanged":[{"status":"NOT_STARTED","count":2},{"status":"COMPLETED","count":5}]}}}"#;
        assert_eq!(total_of(push), Some(Ok(7)));
        assert_eq!(
            total_of(r#"{"type":"next","id":"1","payload":{"errors":[{"message":"x"}]}}"#),
            Some(Err(()))
        );
        assert_eq!(total_of(r#"{"type":"pong"}"#), None);
    }

    #[test]
    fn metrics_are_summed_over_labels_and_other_names_ignored() {
        let text = "# TYPE a counter\na 3\na{x=\"1\"} 4\nab 100\n";
        assert_eq!(sum_of(text, "a"), 7.0);
    }

    #[test]
    fn each_change_is_timed_to_the_first_push_that_covers_it() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let answers = [at(10), at(20), at(30)];
        // First total 100; a push at 50 ms covers two changes, at 400 ms all three.
        let pushes = [(at(0), 100), (at(50), 102), (at(400), 103)];
        let mut out = Vec::new();
        assert_eq!(delays(&answers, &pushes, &mut out), 0);
        let ms: Vec<u128> = out.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [40, 30, 370]);
        // A subscription that never saw the last change misses it.
        let mut out = Vec::new();
        assert_eq!(delays(&answers, &pushes[..2], &mut out), 1);
    }
}

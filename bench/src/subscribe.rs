//! `subscribe`: many live subscribers, the gateway's memory per subscriber,
//! and how fast and how completely each status event reaches every one.
//!
//! The run: check the open-file limit; read the gateway's resident memory
//! (idle); open `S` subscriptions over `K` sockets; invoke probe actions until
//! every subscription has received an event, which proves it live; settle and
//! read the memory again. Then invoke `E` `blockIp` actions, one per interval.
//! Each moves `NOT_STARTED → RUNNING → COMPLETED`, so every subscriber should
//! receive three events per action. Delivery latency is the receiving instant
//! (wall clock) minus the event's `occurredDateTime`: the gateway runs on the
//! same machine, so both read the same clock.
//!
//! One task reads each socket and keeps, per subscription, the last event
//! cursor (a cursor that does not grow is a duplicate) and one
//! `(action id, latency)` sample per event. Which actions are the bench's is
//! known only once every invoke has answered, and events can arrive before
//! their invoke's answer does, so samples are sorted out at the end.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actiongate::parse_duration;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::Error;
use crate::invoke::{invoke_once, tagged_ipv6};
use crate::load::{self, Target, TargetArgs};
use crate::report::{Figure, Latencies, Report, field};
use crate::sys;
use crate::ws;

const EVENTS: &str =
    "subscription { actionStatusChanged { cursor occurredDateTime action { id } } }";
/// The gateway's default cap on subscriptions per socket.
const MAX_PER_CONNECTION: usize = 100;
/// Sockets in their opening handshake at once: enough to open thousands in
/// seconds, few enough not to overflow the gateway's accept backlog.
const OPENING_AT_ONCE: usize = 64;
/// Files the bench needs besides its sockets (HTTP client, stdio, runtime).
const SPARE_FILES: u64 = 64;
/// Events each invoked action produces.
const EVENTS_PER_ACTION: u64 = 3;
/// IPv6 space of this mode's actions, apart from `invoke`'s.
const ACTION_TAG: u16 = 0x5b5b;
const PROBE_TAG: u16 = 0x5b5c;
/// How long subscriptions may take to prove live, and events to arrive.
const PATIENCE: Duration = Duration::from_secs(30);

/// `actiongate-bench subscribe`
#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Subscriptions to open.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Actions to invoke while they listen (3 events each).
    #[arg(long, default_value_t = 20)]
    pub events: usize,
    /// Sockets to spread them over (default: one per subscription; at most
    /// 100 subscriptions per socket).
    #[arg(long)]
    pub connections: Option<usize>,
    /// The gateway's process id, to read its resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Time between two invokes.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Wait after opening, before reading the memory again.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
}

/// Counters every reader task updates.
#[derive(Default)]
struct Shared {
    /// Subscriptions that have received at least one event.
    live: AtomicUsize,
    /// Events that occurred at or after `window_from`, of actions other than
    /// the probes (duplicates left out): what the bench waits for.
    in_window: AtomicU64,
    /// The probe actions, known before the window opens. A probe's later
    /// events can occur inside the window and must not stand in for the
    /// bench's own.
    probes: OnceLock<HashSet<Uuid>>,
    /// Subscriptions the gateway ended or reported an error in.
    ended: AtomicU64,
    /// Messages that could not be read as the events subscribed to.
    malformed: AtomicU64,
    /// Microseconds since the epoch when the timed invokes began; 0 before.
    window_from: AtomicI64,
}

/// What one reader task collected.
#[derive(Default)]
struct Collected {
    samples: Vec<(Uuid, u32)>,
    duplicates: u64,
    /// Why the socket ended before the bench stopped it, if it did.
    lost_socket: Option<String>,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A 64-bit hash of a cursor: eight bytes a delivery instead of its text.
fn hash_of(cursor: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(cursor)
}

/// Splits `subscribers` over `connections` as evenly as possible.
fn spread(subscribers: usize, connections: usize) -> Vec<usize> {
    (0..connections)
        .map(|c| subscribers / connections + usize::from(c < subscribers % connections))
        .collect()
}

/// Per subscription of a socket: the cursors it received (hashed; cursors
/// are opaque, so a repeat is told by equality, not by order), and whether
/// it is live.
struct Subscription {
    seen: HashSet<u64>,
    live: bool,
}

/// What every socket's task shares.
#[derive(Clone)]
struct Opening {
    endpoint: Arc<str>,
    token: Arc<str>,
    timeout: Duration,
    gate: Arc<Semaphore>,
    opened: mpsc::Sender<Result<(), String>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

/// Opens one socket with `count` subscriptions, reports the opening, then
/// reads until the bench stops.
async fn connection(mut opening: Opening, count: usize) -> Collected {
    let socket = {
        let _permit = opening.gate.acquire().await;
        let open = async {
            let mut socket = ws::open(&opening.endpoint, &opening.token, opening.timeout).await?;
            for i in 1..=count {
                ws::subscribe(&mut socket, &i.to_string(), EVENTS).await?;
            }
            Ok::<_, String>(socket)
        };
        match open.await {
            Ok(socket) => {
                let _ = opening.opened.send(Ok(())).await;
                socket
            }
            Err(e) => {
                let _ = opening.opened.send(Err(e)).await;
                return Collected::default();
            }
        }
    };
    // The sender must not outlive the opening, or the bench would wait for it.
    drop(opening.opened);
    read(socket, count, &opening.shared, &mut opening.stop).await
}

async fn read(
    mut socket: ws::Socket,
    count: usize,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Collected {
    let mut subs: Vec<Subscription> = (0..count)
        .map(|_| Subscription {
            seen: HashSet::new(),
            live: false,
        })
        .collect();
    let mut out = Collected::default();
    loop {
        let message = tokio::select! {
            _ = stop.changed() => return out,
            message = socket.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                out.lost_socket = Some(format!("closed by the gateway: {frame:?}"));
                return out;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                out.lost_socket = Some(format!("read failed: {e}"));
                return out;
            }
            None => {
                out.lost_socket = Some("the socket ended".to_owned());
                return out;
            }
        };
        // Taken before parsing, so parsing is not part of the latency.
        let received = now_micros();
        match ws::classify(&text) {
            ws::Incoming::Event { id, event } => {
                let index = id.parse::<usize>().ok().and_then(|i| i.checked_sub(1));
                let (Some(sub), Some(cursor), Some(occurred), Ok(action)) = (
                    index.and_then(|i| subs.get_mut(i)),
                    event.cursor.as_deref(),
                    event.occurred_date_time.as_deref().and_then(ws::micros_of),
                    Uuid::parse_str(&event.action.id),
                ) else {
                    shared.malformed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if !sub.live {
                    sub.live = true;
                    shared.live.fetch_add(1, Ordering::Relaxed);
                }
                if !sub.seen.insert(hash_of(cursor)) {
                    out.duplicates += 1;
                    continue;
                }
                let window_from = shared.window_from.load(Ordering::Acquire);
                let probe = shared.probes.get().is_some_and(|p| p.contains(&action));
                if window_from > 0 && occurred >= window_from && !probe {
                    shared.in_window.fetch_add(1, Ordering::Relaxed);
                }
                // Clamped at zero: a clock step must not make a negative sample.
                let latency = (received - occurred).clamp(0, u32::MAX as i64) as u32;
                out.samples.push((action, latency));
            }
            ws::Incoming::Ping => {
                if let Err(e) = ws::send_pong(&mut socket).await {
                    out.lost_socket = Some(e);
                    return out;
                }
            }
            ws::Incoming::Ended { .. } => {
                shared.ended.fetch_add(1, Ordering::Relaxed);
            }
            ws::Incoming::Other => {}
        }
    }
}

/// Waits until `done` holds, checking every 20 ms, for at most `limit`.
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

/// How many state rows (events) action `id` has; `None` when it cannot be read.
async fn events_of(client: &reqwest::Client, target: &Target, id: Uuid) -> Option<u64> {
    let query = "query($id: ID!) { action(id: $id) { states { status } } }";
    let body = load::post(
        client,
        target,
        load::graphql_body(query, &json!({ "id": id.to_string() })),
    )
    .await
    .ok()?;
    body["data"]["action"]["states"]
        .as_array()
        .map(|states| states.len() as u64)
}

pub async fn run(args: SubscribeArgs) -> Result<(), Error> {
    let subscribers = args.subscribers;
    if subscribers == 0 {
        return Err("--subscribers must be at least 1".into());
    }
    let connections = args
        .connections
        .unwrap_or(subscribers)
        .clamp(1, subscribers);
    let per_connection = subscribers.div_ceil(connections);
    if per_connection > MAX_PER_CONNECTION {
        return Err(format!(
            "{subscribers} subscriptions over {connections} sockets is {per_connection} a socket; \
             the gateway allows {MAX_PER_CONNECTION}: give --connections {} or more",
            subscribers.div_ceil(MAX_PER_CONNECTION)
        )
        .into());
    }

    let needed = connections as u64 + SPARE_FILES;
    let limit = sys::file_limit(None)?;
    eprintln!("open-file limit of the bench: {limit}");
    if !limit.allows(needed) {
        return Err(format!(
            "{connections} sockets need an open-file limit of at least {needed}, and it is {limit}: \
             raise it in the shell first (ulimit -n 65536)"
        )
        .into());
    }
    if let Some(pid) = args.server_pid {
        match sys::file_limit(Some(pid)) {
            Ok(server) if !server.allows(needed) => eprintln!(
                "warning: the gateway's open-file limit ({server}) is below {needed}; start it after `ulimit -n 65536`"
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }

    let target = Target::new(&args.target)?;
    let client = load::client(2, args.target.timeout)?;
    let endpoint: Arc<str> = ws::endpoint(&target.base)?.into();
    let token: Arc<str> = target.token.as_str().into();
    let rss = |pid: Option<u32>| -> Result<Option<u64>, Error> {
        Ok(pid.map(sys::resident_kib).transpose()?)
    };
    let idle_rss = rss(args.server_pid)?;

    let shared = Arc::new(Shared::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (opened_tx, mut opened_rx) = mpsc::channel(connections);
    let opening_started = Instant::now();
    let opening = Opening {
        endpoint,
        token,
        timeout: args.target.timeout,
        gate: Arc::new(Semaphore::new(OPENING_AT_ONCE)),
        opened: opened_tx,
        shared: shared.clone(),
        stop: stop_rx,
    };
    let readers: Vec<_> = spread(subscribers, connections)
        .into_iter()
        .map(|count| tokio::spawn(connection(opening.clone(), count)))
        .collect();
    drop(opening);
    let mut failures = Vec::new();
    while let Some(result) = opened_rx.recv().await {
        if let Err(e) = result {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        let _ = stop_tx.send(true);
        return Err(format!(
            "{} of {connections} sockets failed to open; the first: {}",
            failures.len(),
            failures[0]
        )
        .into());
    }
    eprintln!(
        "opened {subscribers} subscriptions on {connections} sockets in {:.1} s",
        opening_started.elapsed().as_secs_f64()
    );

    // A subscription is live once it has received an event; probe until all are.
    let mut probes = Vec::new();
    let probing_started = Instant::now();
    while shared.live.load(Ordering::Relaxed) < subscribers {
        if probing_started.elapsed() >= PATIENCE {
            let _ = stop_tx.send(true);
            return Err(format!(
                "only {} of {subscribers} subscriptions received an event within {PATIENCE:?}",
                shared.live.load(Ordering::Relaxed)
            )
            .into());
        }
        let probe = invoke_once(
            &client,
            &target,
            &tagged_ipv6(PROBE_TAG, probes.len() as u64),
        )
        .await
        .map_err(|e| format!("the probe invoke failed: {e}"))?;
        probes.push(probe);
        wait_until(Duration::from_secs(1), || {
            shared.live.load(Ordering::Relaxed) >= subscribers
        })
        .await;
    }
    tokio::time::sleep(args.settle).await;
    let after_rss = rss(args.server_pid)?;

    // From here on, events of other actions than the probes are awaited.
    let _ = shared.probes.set(probes.into_iter().collect());
    // Release: a reader that sees the window open sees the probes too.
    shared.window_from.store(now_micros(), Ordering::Release);
    let mut invoked = Vec::with_capacity(args.events);
    let mut invoke_errors = 0u64;
    let mut ticks = tokio::time::interval(args.interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in 0..args.events {
        ticks.tick().await;
        match invoke_once(&client, &target, &tagged_ipv6(ACTION_TAG, n as u64)).await {
            Ok(id) => invoked.push(id),
            Err(e) => {
                if invoke_errors == 0 {
                    eprintln!("an invoke failed: {e}");
                }
                invoke_errors += 1;
            }
        }
    }
    let awaited = subscribers as u64 * EVENTS_PER_ACTION * invoked.len() as u64;
    wait_until(PATIENCE, || {
        shared.in_window.load(Ordering::Relaxed) >= awaited
    })
    .await;
    // A moment more, so that a late duplicate is seen too.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);

    let ours: HashSet<Uuid> = invoked.iter().copied().collect();
    let mut delivered = Vec::new();
    let mut received = 0u64;
    let mut duplicates = 0u64;
    let mut lost_sockets = 0u64;
    for reader in readers {
        let Ok(collected) = reader.await else {
            lost_sockets += 1;
            continue;
        };
        duplicates += collected.duplicates;
        if let Some(why) = collected.lost_socket {
            if lost_sockets == 0 {
                eprintln!("a socket ended early: {why}");
            }
            lost_sockets += 1;
        }
        for (action, micros) in collected.samples {
            if ours.contains(&action) {
                received += 1;
                delivered.push(Duration::from_micros(micros as u64));
            }
        }
    }

    // Every state row of an action is one event; counted from the store, so a
    // retried or failed action is expected for what it really did.
    let mut per_subscriber = 0u64;
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for id in &invoked {
        let events = events_of(&client, &target, *id)
            .await
            .unwrap_or(EVENTS_PER_ACTION);
        *counts.entry(events).or_default() += 1;
        per_subscriber += events;
    }
    if counts.keys().any(|&n| n != EVENTS_PER_ACTION) {
        eprintln!("actions by number of events: {counts:?}");
    }
    let expected = per_subscriber * subscribers as u64;
    let lost = expected.saturating_sub(received);
    let delivery = Latencies::new(delivered);
    let per_subscriber_kib = match (idle_rss, after_rss) {
        (Some(idle), Some(after)) => {
            Figure::Decimal((after as f64 - idle as f64) / subscribers as f64)
        }
        _ => Figure::Missing,
    };
    let count_or_missing = |v: Option<u64>| v.map_or(Figure::Missing, Figure::Count);

    Report::new()
        .section(
            "delivery",
            vec![
                field(
                    "subscribers",
                    "subscribers",
                    Figure::Count(subscribers as u64),
                ),
                field("connections", "sockets", Figure::Count(connections as u64)),
                field("events", "actions", Figure::Count(invoked.len() as u64)),
                field("expected", "expected", Figure::Count(expected)),
                field("received", "received", Figure::Count(received)),
                field("lost", "lost", Figure::Count(lost)),
                field("duplicates", "duplicates", Figure::Count(duplicates)),
                field(
                    "delivery_p50_ms",
                    "p50 ms",
                    Figure::ms(delivery.percentile(50.0)),
                ),
                field(
                    "delivery_p99_ms",
                    "p99 ms",
                    Figure::ms(delivery.percentile(99.0)),
                ),
                field("delivery_max_ms", "max ms", Figure::ms(delivery.max())),
            ],
        )
        .section(
            "errors",
            vec![
                field(
                    "invoke_errors",
                    "invoke errors",
                    Figure::Count(invoke_errors),
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
        .section(
            "gateway memory",
            vec![
                field("idle_rss_kib", "idle RSS KiB", count_or_missing(idle_rss)),
                field(
                    "after_rss_kib",
                    "subscribed RSS KiB",
                    count_or_missing(after_rss),
                ),
                field(
                    "per_subscriber_kib",
                    "KiB per subscriber",
                    per_subscriber_kib,
                ),
            ],
        )
        .print(args.target.json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_spread_evenly_over_sockets() {
        assert_eq!(spread(5, 5), vec![1; 5]);
        assert_eq!(spread(10, 3), vec![4, 3, 3]);
        assert_eq!(spread(10_000, 100), vec![100; 100]);
        assert_eq!(spread(7, 2).iter().sum::<usize>(), 7);
    }
}

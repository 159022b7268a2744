//! actiongate: a GraphQL gateway for security actions.
//!
//! [`App::build`] turns a [`Config`] into a gateway bound to its address, with
//! the database migrated; [`App::run_until_stopped`] serves until the shutdown
//! future resolves. `main` and every integration test use these two.
//!
//! # Layout
//!
//! Requests flow one way, `http` → `graphql` → `domain` ← `store`; the Graph
//! REST face (`http::rest`) calls the same `service` and domain without
//! GraphQL. The executor and the providers sit beside `graphql` and talk to
//! the store and the events only.
//!
//! - `config`: the command line (`config::cli`, clap) and the typed [`Config`].
//! - `domain`: validated types: actions, the catalog, indicators, filters,
//!   pages, the status machine, time. Knows nothing of GraphQL, HTTP or SQL.
//! - `store`: the only code that talks to the database, every query scoped by
//!   tenant: storing and reading actions, the one way statuses change
//!   (`transition`), the executor's queue, event numbering, and PostgreSQL
//!   `LISTEN`/`NOTIFY` between replicas (`notify`).
//! - `graphql`: the schema, its input and output types, batch loaders,
//!   document limits, and the one request pipeline (`execute`) both transports
//!   run operations through.
//! - `service`: the shared services, invoke (one or in bulk) and cancel with
//!   their role checks, used alike by every face, and the rate limits.
//! - `http`: the axum router and the transports: GraphQL over HTTP and over
//!   WebSocket, the Microsoft Graph REST face under `/beta` (`rest`), the
//!   admission of requests, GraphiQL, health and metrics.
//! - `auth`: bearer token → the caller (`Principal`); key sources; the
//!   development key.
//! - `executor`: claims due actions and carries them out on their providers,
//!   with leases, retries and cancels.
//! - `providers`: the `Provider` trait, the blocklist, webhook and Defender
//!   providers, and the provider file.
//! - `events`: status events from the state history to subscribers, with
//!   resume and catch-up.
//! - `telemetry`: the metrics every layer records (`/metrics`) and the
//!   traces (spans exported over OTLP, W3C trace context in and out).
//! - `error`: the one error type and every code a client can see.

#![warn(unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

mod auth;
mod config;
mod domain;
mod error;
mod events;
mod executor;
mod fuzzing;
mod graphql;
mod http;
mod providers;
mod service;
mod store;
mod telemetry;

// What `main`, the integration tests and the bench use.
pub use auth::dev::{DEV_TENANT, TokenSpec, load_or_create_dev_secret, mint, parse_ttl, role_name};
pub use auth::{READ_ROLE, READ_WRITE_ROLE};
pub use config::cli::{Cli, Command, LogFormat, Settings, TokenArgs};
pub use config::{Config, TokenKeys, trace_export};
pub use domain::time::parse_duration;
pub use error::AppError;
pub use events::{EventHub, cursor as event_cursor, feed as event_feed};
pub use graphql::sdl;
pub use providers::config::ProvidersFile;
pub use service::rate_limit::{Rate, RateLimits};
pub use store::{APPLICATION_NAME, CounterDrift, PLANNED_ONCE_APPLICATION_NAME, Store};
pub use telemetry::trace::{TraceExport, Tracer, layer as trace_export_layer};

// What the fuzz targets in `fuzz/` drive; not an API.
#[doc(hidden)]
pub use fuzzing::{fuzz_input_values, fuzz_request_body};

// What the bench's seeder writes, named as the gateway names it.
pub use domain::action::{EXECUTOR_APP, EXECUTOR_USER};
pub use domain::catalog::{CATALOG, ParameterKind};
pub use domain::indicator::{Indicator, IndicatorKind};
pub use domain::status::ActionStatus;
pub use store::entities;

use auth::dev::DevTokens;
use auth::{Authenticator, KeySource, TokenRules};
use executor::{Executor, ExecutorHandle};
use http::HttpState;
use http::ws::PendingSockets;
use providers::Providers;
use service::Services;
use service::rate_limit::RateLimiter;

/// Why the gateway could not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A gateway, built and bound, not yet serving.
pub struct App {
    listener: TcpListener,
    address: SocketAddr,
    router: axum::Router,
    /// `/metrics` on an address of its own (`--metrics-listen`), if asked.
    metrics: Option<MetricsListener>,
    store: Store,
    executor: Executor,
    events: EventHub,
    /// Canceled when the gateway stops (or its future is dropped).
    stop: CancellationToken,
    dev_token: Option<String>,
}

/// The listener of `--metrics-listen` and what it serves.
struct MetricsListener {
    listener: TcpListener,
    address: SocketAddr,
    router: axum::Router,
}

impl App {
    /// Connects to and migrates the database, loads the token keys and the
    /// providers, builds the schema and binds the listener.
    pub async fn build(config: Config) -> Result<App, StartError> {
        telemetry::metrics::install();
        let store = connect_store(&config).await?;

        let (keys, dev_secret) = token_keys(&config).await?;
        let rules = TokenRules {
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        };
        let dev_tokens = dev_secret.map(|secret| {
            let mut spec = TokenSpec::development();
            spec.issuer = rules.issuer.clone();
            spec.audience = rules.audience.clone();
            Arc::new(DevTokens::new(secret, spec))
        });
        let dev_token = dev_tokens.as_deref().map(DevTokens::mint).transpose()?;
        let auth = Arc::new(Authenticator::new(keys, rules));

        let providers =
            Providers::from_config(&config.providers, config.executor.provider_timeout, &store)?;
        let margin = Duration::from_secs(1);
        if config.executor.lease < providers.longest_timeout() + margin {
            return Err(format!(
                "the lease ({:?}) must be longer than the longest provider timeout ({:?}) by at least {margin:?}",
                config.executor.lease,
                providers.longest_timeout()
            )
            .into());
        }
        let handle = ExecutorHandle::default();
        let executor = Executor::new(
            store.clone(),
            providers,
            config.executor.clone(),
            handle.clone(),
        );

        let events = EventHub::new(store.clone(), config.event_buffer)
            .await
            .map_err(|err| format!("reading the event history: {}", err.for_log()))?;
        let stop = CancellationToken::new();

        let services = Arc::new(Services {
            store: store.clone(),
            providers: config.providers.directory(),
            executor: handle.clone(),
            events: events.clone(),
            subscriber_max_lag: config.subscriber_max_lag,
            rate: RateLimiter::new(config.http.rate_limits),
        });
        let schema = graphql::build_schema(services.clone(), config.introspection_enabled());
        let pipeline = graphql::Pipeline::new(
            schema,
            services.clone(),
            config.http.limits.clone(),
            config.introspection_enabled(),
            config.http.request_timeout,
        );
        let state = HttpState {
            graphql: Arc::new(pipeline),
            services,
            auth,
            dev_tokens,
            ws: Arc::new(config.ws.clone()),
            ws_connections: Arc::new(AtomicUsize::new(0)),
            ws_pending: Arc::new(PendingSockets::new(config.ws.max_pending_connections)),
            stop: stop.clone(),
            rest: Arc::new(http::rest::RestOptions {
                request_timeout: config.http.request_timeout,
                max_query_bytes: config.http.limits.max_query_bytes,
                public_url: config.http.public_url.clone(),
            }),
        };
        let router = http::router(state.clone(), &config.http, config.metrics_listen.is_none())?;

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|err| cannot_listen(config.listen, &err, "--listen"))?;
        let address = listener.local_addr()?;
        info!(%address, "listening");
        let metrics = match config.metrics_listen {
            Some(wanted) => {
                let listener = TcpListener::bind(wanted)
                    .await
                    .map_err(|err| cannot_listen(wanted, &err, "--metrics-listen"))?;
                let address = listener.local_addr()?;
                info!(%address, "serving /metrics");
                Some(MetricsListener {
                    listener,
                    address,
                    router: http::metrics_router(state),
                })
            }
            None => None,
        };
        Ok(App {
            listener,
            address,
            router,
            metrics,
            store,
            executor,
            events,
            stop,
            dev_token,
        })
    }

    /// The address the gateway is bound to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address `/metrics` is served at when not at [`App::address`]
    /// (`--metrics-listen`).
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.address)
    }

    /// The development token, when tokens are verified with the development key.
    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_deref()
    }

    /// The event fan-out, for tests that look beneath the API.
    pub fn events(&self) -> &EventHub {
        &self.events
    }

    /// The store, for tests that look beneath the API.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves and executes until `shutdown` resolves, then stops gracefully:
    /// requests in flight finish, the executor stops claiming, lets attempts
    /// finish within its grace period and gives back its leases.
    ///
    /// Everything runs inside this future: dropping it instead (as a crash
    /// does) stops everything at once and leaves the leases to expire.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        // Dropping this future (a crash) cancels too: WebSocket connections,
        // which run outside the server's own tasks, end with it.
        let _stop_on_drop = self.stop.clone().drop_guard();
        let stop = self.stop.clone();
        let server = axum::serve(self.listener, self.router).with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        });
        // Events outlive the executor, so its last transitions are numbered
        // before the process ends (publishing stops then: no socket is left).
        let events_stop = CancellationToken::new();
        let metrics_server = self.metrics.map(|metrics| {
            let stop = self.stop.clone();
            axum::serve(metrics.listener, metrics.router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
        });
        let metrics = async move {
            match metrics_server {
                Some(server) => server.await,
                None => Ok(()),
            }
        };
        let serve_and_execute = async {
            let result = tokio::join!(
                server.into_future(),
                self.executor.run(self.stop.clone()),
                metrics
            );
            events_stop.cancel();
            result
        };
        let ((served, (), metrics_served), (), ()) = tokio::join!(
            serve_and_execute,
            self.events.run(events_stop.clone()),
            self.store.listen_for_notices(&events_stop),
        );
        self.store.close().await;
        served?;
        Ok(metrics_served?)
    }
}

/// Connects to the configured database and migrates it.
pub async fn connect_store(config: &Config) -> Result<Store, StartError> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).map_err(|err| {
            format!(
                "cannot create the data directory {}: {err}",
                config.data_dir.display()
            )
        })?;
    }
    let store = Store::connect(&config.database_url, &config.store).await?;
    store
        .migrate()
        .await
        .map_err(|err| format!("migrating the database: {}", err.for_log()))?;
    Ok(store)
}

/// Why the gateway cannot listen on `address`, given with `flag`, and what to do.
fn cannot_listen(address: SocketAddr, err: &std::io::Error, flag: &str) -> String {
    let hint = match err.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "; another process listens there (another actiongate?): stop it or choose another address with {flag}"
        ),
        std::io::ErrorKind::AddrNotAvailable => {
            "; no network interface of this machine has that address".to_owned()
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("; ports below 1024 need privileges: choose another with {flag}")
        }
        _ => String::new(),
    };
    format!("cannot listen on {address}: {err}{hint}")
}

/// The key source of the config, and the development secret when that is it.
async fn token_keys(config: &Config) -> Result<(KeySource, Option<Vec<u8>>), StartError> {
    Ok(match &config.token_keys {
        TokenKeys::Development => {
            let secret = load_or_create_dev_secret(&config.data_dir)?;
            (KeySource::hs256(&secret)?, Some(secret))
        }
        TokenKeys::Secret(secret) => (KeySource::hs256(secret.as_bytes())?, None),
        TokenKeys::PublicKey(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            (KeySource::public_key_pem(&pem)?, None)
        }
        TokenKeys::Jwks(location) => (KeySource::jwks(location).await?, None),
    })
}

//! The typed configuration: everything the gateway needs to start.
//!
//! `main` resolves the command line ([`cli`]) into a [`Config`] with
//! [`Config::from_settings`]; tests build one directly with [`Config::new`] and
//! change what they need. Each component keeps its own defaults beside it
//! (`ExecutorOptions::DEFAULT`, `WsOptions::DEFAULT`, …); both use those.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::events::{DEFAULT_EVENT_BUFFER, DEFAULT_SUBSCRIBER_MAX_LAG};
use crate::executor::ExecutorOptions;
use crate::graphql::limits::OperationLimits;
use crate::http::HttpOptions;
use crate::http::ws::WsOptions;
use crate::providers::config::ProvidersFile;
use crate::service::rate_limit::{Rate, RateLimits};
use crate::store::StoreOptions;
use crate::telemetry::trace::TraceExport;

pub(crate) mod cli;

use cli::Settings;

/// Where the gateway listens unless told otherwise.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// The directory for the SQLite database, blocklists and the development key.
pub(crate) const DEFAULT_DATA_DIR: &str = "data";

/// How tokens are verified.
#[derive(Debug, Clone)]
pub enum TokenKeys {
    /// The development secret under the data directory, created if absent.
    Development,
    /// An HS256 secret.
    Secret(String),
    /// A PEM public key file.
    PublicKey(PathBuf),
    /// A JWKS file or URL.
    Jwks(String),
}

/// Everything the gateway needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub providers: ProvidersFile,
    pub token_keys: TokenKeys,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub store: StoreOptions,
    pub executor: ExecutorOptions,
    pub ws: WsOptions,
    pub subscriber_max_lag: u64,
    pub event_buffer: usize,
    pub http: HttpOptions,
    /// `None`: on with the development key only.
    pub introspection: Option<bool>,
    /// Where `/metrics` is served instead of `listen`; `None`: on `listen`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// The defaults of `cargo run`, with data under `data_dir` and the database
    /// at `database_url` (SQLite under `data_dir` when `None`).
    pub fn new(data_dir: impl Into<PathBuf>, database_url: Option<String>) -> Config {
        let data_dir = data_dir.into();
        Config {
            listen: DEFAULT_LISTEN,
            database_url: database_url.unwrap_or_else(|| default_database_url(&data_dir)),
            providers: ProvidersFile::default_blocklist(&data_dir),
            data_dir,
            token_keys: TokenKeys::Development,
            jwt_issuer: None,
            jwt_audience: None,
            store: StoreOptions::DEFAULT,
            executor: ExecutorOptions::DEFAULT,
            ws: WsOptions::DEFAULT,
            subscriber_max_lag: DEFAULT_SUBSCRIBER_MAX_LAG,
            event_buffer: DEFAULT_EVENT_BUFFER,
            http: HttpOptions::DEFAULT,
            introspection: None,
            metrics_listen: None,
        }
    }

    /// Whether introspection is on: as set, else only with the development key.
    pub(crate) fn introspection_enabled(&self) -> bool {
        self.introspection
            .unwrap_or(matches!(self.token_keys, TokenKeys::Development))
    }

    /// Resolves settings into a config, reading the provider file if named.
    pub fn from_settings(settings: &Settings) -> Result<Config, String> {
        let mut config = Config::new(&settings.data_dir, settings.database_url.clone());
        config.listen = settings.listen;
        if let Some(path) = &settings.config {
            config.providers = ProvidersFile::load(path, &settings.data_dir)?;
        }
        let sources = [
            settings.jwt_secret.is_some(),
            settings.jwt_public_key.is_some(),
            settings.jwks.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err("give one of --jwt-secret, --jwt-public-key and --jwks".into());
        }
        config.token_keys = if let Some(secret) = &settings.jwt_secret {
            TokenKeys::Secret(secret.clone())
        } else if let Some(path) = &settings.jwt_public_key {
            TokenKeys::PublicKey(path.clone())
        } else if let Some(jwks) = &settings.jwks {
            TokenKeys::Jwks(jwks.clone())
        } else {
            TokenKeys::Development
        };
        config.jwt_issuer = settings.jwt_issuer.clone();
        config.jwt_audience = settings.jwt_audience.clone();
        config.store = StoreOptions {
            max_connections: settings.db_max_connections.max(1),
            statement_timeout: settings.statement_timeout,
            sqlite_max_bytes: settings.sqlite_max_size,
            ..StoreOptions::DEFAULT
        };
        config.executor = ExecutorOptions {
            enabled: settings.executor,
            concurrency: settings.executor_concurrency.max(1),
            lease: settings.lease,
            max_attempts: settings.max_attempts.max(1),
            provider_timeout: settings.provider_timeout,
            retry_base_delay: settings.retry_base_delay,
            retry_max_delay: settings.retry_max_delay.max(settings.retry_base_delay),
            shutdown_grace: settings.shutdown_grace,
            ..ExecutorOptions::DEFAULT
        };
        config.ws = WsOptions {
            init_timeout: settings.ws_init_timeout,
            ping_interval: settings.ws_ping_interval.max(Duration::from_secs(1)),
            max_connections: settings.max_ws_connections,
            max_pending_connections: settings.max_pending_ws_connections,
            max_subscriptions: settings.max_subscriptions_per_connection,
        };
        config.subscriber_max_lag = settings.subscriber_max_lag;
        config.event_buffer = settings.event_buffer.max(1);
        config.http = HttpOptions {
            max_body_bytes: settings.max_body_bytes,
            limits: OperationLimits {
                max_query_bytes: settings.max_query_bytes,
                max_depth: settings.max_depth,
                max_complexity: settings.max_complexity,
                max_aliases: settings.max_aliases,
                max_root_fields: settings.max_root_fields,
                max_directives_per_field: settings.max_directives_per_field,
            },
            rate_limits: RateLimits {
                requests: Rate {
                    per_second: settings.rate_limit,
                    burst: settings.rate_burst.max(1.0),
                },
                mutations: Rate {
                    per_second: settings.mutation_rate_limit,
                    burst: settings.mutation_rate_burst.max(1.0),
                },
            },
            request_timeout: settings.request_timeout,
            cors_origins: settings
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            public_url: settings.public_url.clone(),
            cors_allowed_headers: cors_allowed_headers(&settings.cors_allowed_headers),
        };
        config.introspection = settings.introspection;
        config.metrics_listen = settings.metrics_listen;
        Ok(config)
    }
}

/// The trace export of the settings: none without an OTLP endpoint. Not
/// part of [`Config`]: the export belongs to the process's subscriber, which
/// `main` sets up before anything runs, not to one gateway.
pub fn trace_export(settings: &Settings) -> Result<Option<TraceExport>, String> {
    settings
        .otlp_endpoint
        .as_deref()
        .filter(|endpoint| !endpoint.trim().is_empty())
        .map(|endpoint| TraceExport::new(endpoint, &settings.service_name))
        .transpose()
}

/// The CORS request headers as given, lower case; the defaults (the flag's
/// default value) are kept as "none given", as [`HttpOptions::DEFAULT`] has them.
fn cors_allowed_headers(given: &[String]) -> Vec<String> {
    let headers: Vec<String> = given
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if headers == crate::http::DEFAULT_CORS_ALLOWED_HEADERS {
        Vec::new()
    } else {
        headers
    }
}

/// `sqlite://<data-dir>/actiongate.db?mode=rwc`
pub(crate) fn default_database_url(data_dir: &Path) -> String {
    format!("sqlite://{}/actiongate.db?mode=rwc", data_dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_database_lives_in_the_data_dir() {
        let config = Config::new("data", None);
        assert_eq!(config.database_url, "sqlite://data/actiongate.db?mode=rwc");
    }
}

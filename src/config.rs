//! The command line and settings: one typed [`Config`].
//!
//! Every setting is a flag and an `ACTIONGATE_*` environment variable (the names
//! are part of the contract, see the README). [`Cli::parse_args`] reads them;
//! tests build a [`Config`] directly with [`Config::new`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::domain::time::parse_duration;

use crate::executor::ExecutorOptions;
use crate::http::HttpOptions;
use crate::http::limits::OperationLimits;
use crate::http::rate_limit::{Rate, RateLimits};
use crate::http::ws::WsOptions;
use crate::providers::config::ProvidersFile;

/// actiongate: a GraphQL gateway for security actions.
#[derive(Debug, Parser)]
#[command(name = "actiongate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

/// What to do; `serve` when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Mint a token with the development key (or --jwt-secret) and print it.
    Token(TokenArgs),
}

/// `actiongate token …`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Tenant id (`tid`).
    #[arg(long, default_value = "dev-tenant")]
    pub tenant: String,
    /// App id (`appid`).
    #[arg(long, default_value = "dev-app")]
    pub app: String,
    /// User (`upn` and `sub`).
    #[arg(long, default_value = "dev-user")]
    pub user: String,
    /// Role: read, readwrite, or a full role name; repeat for several.
    #[arg(long = "role", default_value = "readwrite")]
    pub roles: Vec<String>,
    /// Lifetime, e.g. 90s, 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(
        long,
        env = "ACTIONGATE_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// Database URL: sqlite://… or postgres://… [default: sqlite://<data-dir>/actiongate.db?mode=rwc]
    #[arg(
        long,
        env = "ACTIONGATE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Directory for the SQLite database, blocklists and the development key.
    #[arg(
        long,
        env = "ACTIONGATE_DATA_DIR",
        default_value = "data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Provider configuration (TOML); without it, one blocklist provider under <data-dir>/blocklists.
    #[arg(long, env = "ACTIONGATE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// HS256 secret for tokens (at least 32 bytes).
    #[arg(
        long,
        env = "ACTIONGATE_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// PEM file with the RS256 or ES256 public key tokens are signed with.
    #[arg(long, env = "ACTIONGATE_JWT_PUBLIC_KEY", global = true)]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS file path or http(s) URL; keys are chosen by `kid`.
    #[arg(long, env = "ACTIONGATE_JWKS", global = true)]
    pub jwks: Option<String>,
    /// Required token issuer (`iss`); unchecked when unset.
    #[arg(long, env = "ACTIONGATE_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    /// Required token audience (`aud`); unchecked when unset.
    #[arg(long, env = "ACTIONGATE_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    /// Most database connections.
    #[arg(
        long,
        env = "ACTIONGATE_DB_MAX_CONNECTIONS",
        default_value_t = 16,
        global = true
    )]
    pub db_max_connections: u32,
    /// Longest a database statement may run, e.g. 10s.
    #[arg(long, env = "ACTIONGATE_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub statement_timeout: Duration,
    /// Whether this process executes actions (a replica may only serve the API).
    #[arg(long, env = "ACTIONGATE_EXECUTOR", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub executor: bool,
    /// Attempts the executor runs at once.
    #[arg(
        long,
        env = "ACTIONGATE_EXECUTOR_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    pub executor_concurrency: usize,
    /// How long a claimed action is leased before another executor may take it over.
    #[arg(long, env = "ACTIONGATE_LEASE", default_value = "60s", value_parser = parse_duration, global = true)]
    pub lease: Duration,
    /// Attempts at an execution (or revert) before it fails for good.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_ATTEMPTS",
        default_value_t = 5,
        global = true
    )]
    pub max_attempts: u32,
    /// How long a provider call may take, unless the provider sets its own `timeout`.
    #[arg(long, env = "ACTIONGATE_PROVIDER_TIMEOUT", default_value = "15s", value_parser = parse_duration, global = true)]
    pub provider_timeout: Duration,
    /// Delay before the first retry; it doubles with each further one.
    #[arg(long, env = "ACTIONGATE_RETRY_BASE_DELAY", default_value = "1s", value_parser = parse_duration, global = true)]
    pub retry_base_delay: Duration,
    /// Longest delay between retries.
    #[arg(long, env = "ACTIONGATE_RETRY_MAX_DELAY", default_value = "5m", value_parser = parse_duration, global = true)]
    pub retry_max_delay: Duration,
    /// How long attempts in flight may take to finish on shutdown.
    #[arg(long, env = "ACTIONGATE_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,
    /// How long a WebSocket client has to send connection_init.
    #[arg(long, env = "ACTIONGATE_WS_INIT_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub ws_init_timeout: Duration,
    /// How often the server pings WebSocket clients.
    #[arg(long, env = "ACTIONGATE_WS_PING_INTERVAL", default_value = "15s", value_parser = parse_duration, global = true)]
    pub ws_ping_interval: Duration,
    /// Most WebSocket connections at once.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_WS_CONNECTIONS",
        default_value_t = 20_000,
        global = true
    )]
    pub max_ws_connections: usize,
    /// Most WebSocket connections at once that have not sent connection_init.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_PENDING_WS_CONNECTIONS",
        default_value_t = 1_000,
        global = true
    )]
    pub max_pending_ws_connections: usize,
    /// Most subscriptions per WebSocket connection.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 100,
        global = true
    )]
    pub max_subscriptions_per_connection: usize,
    /// How many events a subscriber may fall behind before its subscription ends.
    #[arg(
        long,
        env = "ACTIONGATE_SUBSCRIBER_MAX_LAG",
        default_value_t = 100_000,
        global = true
    )]
    pub subscriber_max_lag: u64,
    /// Event batches kept in memory for subscribers that are behind; one
    /// further behind reads from the database.
    #[arg(
        long,
        env = "ACTIONGATE_EVENT_BUFFER",
        default_value_t = 1024,
        global = true
    )]
    pub event_buffer: usize,
    /// Largest request body, in bytes; larger ones get HTTP 413.
    #[arg(long, env = "ACTIONGATE_MAX_BODY_BYTES", default_value_t = 1024 * 1024, global = true)]
    pub max_body_bytes: usize,
    /// Longest query text, in bytes.
    #[arg(long, env = "ACTIONGATE_MAX_QUERY_BYTES", default_value_t = 16 * 1024, global = true)]
    pub max_query_bytes: usize,
    /// Deepest field nesting of an operation.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_DEPTH",
        default_value_t = 12,
        global = true
    )]
    pub max_depth: usize,
    /// Highest complexity of an operation (list fields weighted by first/last).
    #[arg(
        long,
        env = "ACTIONGATE_MAX_COMPLEXITY",
        default_value_t = 5_000,
        global = true
    )]
    pub max_complexity: u64,
    /// Most aliases in an operation.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_ALIASES",
        default_value_t = 30,
        global = true
    )]
    pub max_aliases: usize,
    /// Most root fields in an operation.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_ROOT_FIELDS",
        default_value_t = 20,
        global = true
    )]
    pub max_root_fields: usize,
    /// Most directives on one field.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_DIRECTIVES_PER_FIELD",
        default_value_t = 5,
        global = true
    )]
    pub max_directives_per_field: usize,
    /// Requests per second per tenant and app (0: no limit).
    #[arg(
        long,
        env = "ACTIONGATE_RATE_LIMIT",
        default_value_t = 200.0,
        global = true
    )]
    pub rate_limit: f64,
    /// Requests a tenant and app may send at once above the rate.
    #[arg(
        long,
        env = "ACTIONGATE_RATE_BURST",
        default_value_t = 400.0,
        global = true
    )]
    pub rate_burst: f64,
    /// Mutations per second per tenant and app (0: no limit).
    #[arg(
        long,
        env = "ACTIONGATE_MUTATION_RATE_LIMIT",
        default_value_t = 100.0,
        global = true
    )]
    pub mutation_rate_limit: f64,
    /// Mutations a tenant and app may send at once above the rate.
    #[arg(
        long,
        env = "ACTIONGATE_MUTATION_RATE_BURST",
        default_value_t = 200.0,
        global = true
    )]
    pub mutation_rate_burst: f64,
    /// The deadline of one request.
    #[arg(long, env = "ACTIONGATE_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Origins allowed by CORS, comma-separated; none by default, `*` for any.
    #[arg(
        long,
        env = "ACTIONGATE_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// Schema introspection (and "did you mean" suggestions): on by default
    /// with the development key, off when a real key or issuer is configured.
    #[arg(long, env = "ACTIONGATE_INTROSPECTION", global = true)]
    pub introspection: Option<bool>,
    /// Log format: text or json.
    #[arg(
        long,
        env = "ACTIONGATE_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// Parses the process arguments and environment.
    pub fn parse_args() -> Cli {
        Cli::parse()
    }
}

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
    pub db_max_connections: u32,
    pub statement_timeout: Duration,
    pub executor: ExecutorOptions,
    pub ws: WsOptions,
    pub subscriber_max_lag: u64,
    pub event_buffer: usize,
    pub http: HttpOptions,
    /// `None`: on with the development key only.
    pub introspection: Option<bool>,
}

impl Config {
    /// The defaults of `cargo run`, with data under `data_dir` and the database
    /// at `database_url` (SQLite under `data_dir` when `None`).
    pub fn new(data_dir: impl Into<PathBuf>, database_url: Option<String>) -> Config {
        let data_dir = data_dir.into();
        Config {
            listen: "127.0.0.1:8080".parse().expect("a literal address"),
            database_url: database_url.unwrap_or_else(|| default_database_url(&data_dir)),
            providers: ProvidersFile::default_blocklist(&data_dir),
            data_dir,
            token_keys: TokenKeys::Development,
            jwt_issuer: None,
            jwt_audience: None,
            db_max_connections: 16,
            statement_timeout: Duration::from_secs(10),
            executor: ExecutorOptions::default(),
            ws: WsOptions::default(),
            subscriber_max_lag: 100_000,
            event_buffer: 1024,
            http: HttpOptions::default(),
            introspection: None,
        }
    }

    /// Whether introspection is on: as set, else only with the development key.
    pub fn introspection_enabled(&self) -> bool {
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
        config.db_max_connections = settings.db_max_connections.max(1);
        config.statement_timeout = settings.statement_timeout;
        config.executor = ExecutorOptions {
            enabled: settings.executor,
            concurrency: settings.executor_concurrency.max(1),
            lease: settings.lease,
            max_attempts: settings.max_attempts.max(1),
            provider_timeout: settings.provider_timeout,
            retry_base_delay: settings.retry_base_delay,
            retry_max_delay: settings.retry_max_delay.max(settings.retry_base_delay),
            shutdown_grace: settings.shutdown_grace,
            ..ExecutorOptions::default()
        };
        config.ws = WsOptions {
            init_timeout: settings.ws_init_timeout,
            ping_interval: settings
                .ws_ping_interval
                .max(std::time::Duration::from_secs(1)),
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
        };
        config.introspection = settings.introspection;
        Ok(config)
    }
}

/// `sqlite://<data-dir>/actiongate.db?mode=rwc`
pub fn default_database_url(data_dir: &Path) -> String {
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

    #[test]
    fn settings_come_from_flags_with_documented_defaults() {
        let cli =
            Cli::try_parse_from(["actiongate", "--listen", "127.0.0.1:0", "migrate"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.settings.listen.port(), 0);
        assert_eq!(cli.settings.data_dir, PathBuf::from("data"));
        let token = Cli::try_parse_from([
            "actiongate",
            "token",
            "--tenant",
            "t",
            "--role",
            "read",
            "--ttl",
            "2h",
        ])
        .unwrap();
        match token.command {
            Some(Command::Token(args)) => {
                assert_eq!(args.tenant, "t");
                assert_eq!(args.roles, vec!["read"]);
            }
            other => panic!("{other:?}"),
        }
    }
}

//! The command line: subcommands and settings, parsed with clap.
//!
//! Every setting is a flag and an `ACTIONGATE_*` environment variable (the names
//! are part of the contract, see the README). Defaults are the constants of the
//! components they configure, so the command line,
//! [`Config::new`](super::Config::new) and the components' own `DEFAULT`s
//! cannot disagree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use crate::auth::dev::{DEV_APP, DEV_TENANT, DEV_USER};
use crate::domain::time::{format_duration, parse_duration, split_number};
use crate::events::{DEFAULT_EVENT_BUFFER, DEFAULT_SUBSCRIBER_MAX_LAG};
use crate::executor::ExecutorOptions;
use crate::graphql::limits::OperationLimits;
use crate::http::HttpOptions;
use crate::http::ws::WsOptions;
use crate::service::rate_limit::RateLimits;
use crate::store::StoreOptions;
use crate::telemetry::trace::DEFAULT_SERVICE_NAME;

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
    Migrate {
        /// Then rebuild the action counters from the actions (writers wait
        /// meanwhile) and say how many were wrong.
        #[arg(long)]
        recount: bool,
    },
    /// Print the GraphQL schema (SDL) and exit.
    Schema,
    /// Mint a token with the development key (or --jwt-secret) and print it.
    Token(TokenArgs),
}

/// `actiongate token …`
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Tenant id (`tid`).
    #[arg(long, default_value = DEV_TENANT)]
    pub tenant: String,
    /// App id (`appid`).
    #[arg(long, default_value = DEV_APP)]
    pub app: String,
    /// User (`upn` and `sub`).
    #[arg(long, default_value = DEV_USER)]
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
        default_value_t = DEFAULT_LISTEN,
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
        default_value = DEFAULT_DATA_DIR,
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
    /// Most database connections, of all pools together (on PostgreSQL a
    /// quarter serve list pages and counts with one plan kept per statement).
    #[arg(
        long,
        env = "ACTIONGATE_DB_MAX_CONNECTIONS",
        default_value_t = StoreOptions::DEFAULT.max_connections,
        global = true
    )]
    pub db_max_connections: u32,
    /// Longest a database statement may run, e.g. 10s.
    #[arg(long, env = "ACTIONGATE_STATEMENT_TIMEOUT", default_value = format_duration(StoreOptions::DEFAULT.statement_timeout), value_parser = parse_duration, global = true)]
    pub statement_timeout: Duration,
    /// Largest the SQLite database may grow, e.g. 512MiB or 8GiB; past it
    /// writes fail (and nothing is acknowledged that is not stored) while
    /// reads go on. Unlimited when unset.
    #[arg(long, env = "ACTIONGATE_SQLITE_MAX_SIZE", value_parser = parse_size, global = true)]
    pub sqlite_max_size: Option<u64>,
    /// Whether this process executes actions (a replica may only serve the API).
    #[arg(long, env = "ACTIONGATE_EXECUTOR", default_value_t = ExecutorOptions::DEFAULT.enabled, action = clap::ArgAction::Set, global = true)]
    pub executor: bool,
    /// Provider calls the executor runs at once (a batch of actions is one call).
    #[arg(
        long,
        env = "ACTIONGATE_EXECUTOR_CONCURRENCY",
        default_value_t = ExecutorOptions::DEFAULT.concurrency,
        global = true
    )]
    pub executor_concurrency: usize,
    /// How long a claimed action is leased before another executor may take it over.
    #[arg(long, env = "ACTIONGATE_LEASE", default_value = format_duration(ExecutorOptions::DEFAULT.lease), value_parser = parse_duration, global = true)]
    pub lease: Duration,
    /// Attempts at an execution (or revert) before it fails for good.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_ATTEMPTS",
        default_value_t = ExecutorOptions::DEFAULT.max_attempts,
        global = true
    )]
    pub max_attempts: u32,
    /// How long a provider call may take, unless the provider sets its own `timeout`.
    #[arg(long, env = "ACTIONGATE_PROVIDER_TIMEOUT", default_value = format_duration(ExecutorOptions::DEFAULT.provider_timeout), value_parser = parse_duration, global = true)]
    pub provider_timeout: Duration,
    /// Delay before the first retry; it doubles with each further one.
    #[arg(long, env = "ACTIONGATE_RETRY_BASE_DELAY", default_value = format_duration(ExecutorOptions::DEFAULT.retry_base_delay), value_parser = parse_duration, global = true)]
    pub retry_base_delay: Duration,
    /// Longest delay between retries.
    #[arg(long, env = "ACTIONGATE_RETRY_MAX_DELAY", default_value = format_duration(ExecutorOptions::DEFAULT.retry_max_delay), value_parser = parse_duration, global = true)]
    pub retry_max_delay: Duration,
    /// How long attempts in flight may take to finish on shutdown.
    #[arg(long, env = "ACTIONGATE_SHUTDOWN_GRACE", default_value = format_duration(ExecutorOptions::DEFAULT.shutdown_grace), value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,
    /// How long a WebSocket client has to send connection_init.
    #[arg(long, env = "ACTIONGATE_WS_INIT_TIMEOUT", default_value = format_duration(WsOptions::DEFAULT.init_timeout), value_parser = parse_duration, global = true)]
    pub ws_init_timeout: Duration,
    /// How often the server pings WebSocket clients.
    #[arg(long, env = "ACTIONGATE_WS_PING_INTERVAL", default_value = format_duration(WsOptions::DEFAULT.ping_interval), value_parser = parse_duration, global = true)]
    pub ws_ping_interval: Duration,
    /// Most WebSocket connections at once.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_WS_CONNECTIONS",
        default_value_t = WsOptions::DEFAULT.max_connections,
        global = true
    )]
    pub max_ws_connections: usize,
    /// Most WebSocket connections at once that have not sent connection_init.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_PENDING_WS_CONNECTIONS",
        default_value_t = WsOptions::DEFAULT.max_pending_connections,
        global = true
    )]
    pub max_pending_ws_connections: usize,
    /// Most subscriptions per WebSocket connection.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = WsOptions::DEFAULT.max_subscriptions,
        global = true
    )]
    pub max_subscriptions_per_connection: usize,
    /// How many events a subscriber may fall behind before its subscription ends.
    #[arg(
        long,
        env = "ACTIONGATE_SUBSCRIBER_MAX_LAG",
        default_value_t = DEFAULT_SUBSCRIBER_MAX_LAG,
        global = true
    )]
    pub subscriber_max_lag: u64,
    /// Event batches kept in memory for subscribers that are behind; one
    /// further behind reads from the database.
    #[arg(
        long,
        env = "ACTIONGATE_EVENT_BUFFER",
        default_value_t = DEFAULT_EVENT_BUFFER,
        global = true
    )]
    pub event_buffer: usize,
    /// Largest request body, in bytes; larger ones get HTTP 413.
    #[arg(long, env = "ACTIONGATE_MAX_BODY_BYTES", default_value_t = HttpOptions::DEFAULT.max_body_bytes, global = true)]
    pub max_body_bytes: usize,
    /// Longest query text, in bytes.
    #[arg(long, env = "ACTIONGATE_MAX_QUERY_BYTES", default_value_t = OperationLimits::DEFAULT.max_query_bytes, global = true)]
    pub max_query_bytes: usize,
    /// Deepest field nesting of an operation.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_DEPTH",
        default_value_t = OperationLimits::DEFAULT.max_depth,
        global = true
    )]
    pub max_depth: usize,
    /// Highest complexity of an operation (list fields weighted by first/last).
    #[arg(
        long,
        env = "ACTIONGATE_MAX_COMPLEXITY",
        default_value_t = OperationLimits::DEFAULT.max_complexity,
        global = true
    )]
    pub max_complexity: u64,
    /// Most aliases in an operation.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_ALIASES",
        default_value_t = OperationLimits::DEFAULT.max_aliases,
        global = true
    )]
    pub max_aliases: usize,
    /// Most root fields in an operation.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_ROOT_FIELDS",
        default_value_t = OperationLimits::DEFAULT.max_root_fields,
        global = true
    )]
    pub max_root_fields: usize,
    /// Most directives on one field.
    #[arg(
        long,
        env = "ACTIONGATE_MAX_DIRECTIVES_PER_FIELD",
        default_value_t = OperationLimits::DEFAULT.max_directives_per_field,
        global = true
    )]
    pub max_directives_per_field: usize,
    /// Requests per second per tenant and app (0: no limit).
    #[arg(
        long,
        env = "ACTIONGATE_RATE_LIMIT",
        default_value_t = RateLimits::DEFAULT.requests.per_second,
        global = true
    )]
    pub rate_limit: f64,
    /// Requests a tenant and app may send at once above the rate.
    #[arg(
        long,
        env = "ACTIONGATE_RATE_BURST",
        default_value_t = RateLimits::DEFAULT.requests.burst,
        global = true
    )]
    pub rate_burst: f64,
    /// Mutations per second per tenant and app (0: no limit).
    #[arg(
        long,
        env = "ACTIONGATE_MUTATION_RATE_LIMIT",
        default_value_t = RateLimits::DEFAULT.mutations.per_second,
        global = true
    )]
    pub mutation_rate_limit: f64,
    /// Mutations a tenant and app may send at once above the rate.
    #[arg(
        long,
        env = "ACTIONGATE_MUTATION_RATE_BURST",
        default_value_t = RateLimits::DEFAULT.mutations.burst,
        global = true
    )]
    pub mutation_rate_burst: f64,
    /// The deadline of one request.
    #[arg(long, env = "ACTIONGATE_REQUEST_TIMEOUT", default_value = format_duration(HttpOptions::DEFAULT.request_timeout), value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
    /// Origins allowed by CORS, comma-separated; none by default, `*` for any.
    #[arg(
        long,
        env = "ACTIONGATE_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// The absolute URL clients reach the gateway at, e.g.
    /// https://actions.example.com, for the links of the Graph REST face
    /// (@odata.nextLink, Location); unset: http:// and the request's Host.
    #[arg(long, env = "ACTIONGATE_PUBLIC_URL", value_parser = parse_public_url, global = true)]
    pub public_url: Option<String>,
    /// Request headers CORS allows, comma-separated (with allowed origins).
    #[arg(
        long,
        env = "ACTIONGATE_CORS_ALLOWED_HEADERS",
        value_delimiter = ',',
        default_value = crate::http::DEFAULT_CORS_ALLOWED_HEADERS.join(","),
        global = true
    )]
    pub cors_allowed_headers: Vec<String>,
    /// Schema introspection (and "did you mean" suggestions): on by default
    /// with the development key, off when a real key or issuer is configured.
    #[arg(long, env = "ACTIONGATE_INTROSPECTION", global = true)]
    pub introspection: Option<bool>,
    /// Serve /metrics on this address only (and not on --listen), e.g.
    /// 127.0.0.1:9090, for a scraper that reaches a port the API's clients
    /// do not.
    #[arg(long, env = "ACTIONGATE_METRICS_LISTEN", global = true)]
    pub metrics_listen: Option<SocketAddr>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (spans go to its /v1/traces); off when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans.
    #[arg(
        long,
        env = "OTEL_SERVICE_NAME",
        default_value = DEFAULT_SERVICE_NAME,
        global = true
    )]
    pub service_name: String,
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

/// Parses a size in bytes: a number, optionally followed by KiB, MiB or GiB.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = split_number(text);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as 512MiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("'{text}': the unit is one of B, KiB, MiB, GiB")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("'{text}' is too large"))
}

impl Cli {
    /// Parses the process arguments and environment.
    pub fn parse_args() -> Cli {
        Cli::parse()
    }
}

/// An absolute http(s) URL without query or fragment, without its trailing `/`.
fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("the public URL is http:// or https:// and a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the public URL has no query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn settings_come_from_flags_with_documented_defaults() {
        let cli =
            Cli::try_parse_from(["actiongate", "--listen", "127.0.0.1:0", "migrate"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Migrate { recount: false })
        ));
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

    #[test]
    fn sizes_are_read_in_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("8 GiB"), Ok(8 << 30));
        assert!(parse_size("8GB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn the_command_line_defaults_are_the_config_defaults() {
        let cli = Cli::try_parse_from(["actiongate"]).unwrap();
        let from_flags = Config::from_settings(&cli.settings).unwrap();
        assert_eq!(
            format!("{from_flags:?}"),
            format!("{:?}", Config::new(DEFAULT_DATA_DIR, None))
        );
    }
}

//! The `actiongate` command: parse the settings, set up logging and trace
//! export, then serve, migrate, print the schema or mint a token.

use std::process::ExitCode;

use actiongate::{
    App, Cli, Command, Config, DEV_TENANT, LogFormat, StartError, TokenArgs, TokenSpec, Tracer,
    load_or_create_dev_secret, mint, parse_ttl, role_name,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let tracer = match init_tracing(&cli.settings) {
        Ok(tracer) => tracer,
        Err(err) => {
            eprintln!("actiongate: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = run(cli).await;
    if let Some(tracer) = tracer {
        // The spans of the last requests and attempts, still queued.
        let _ = tokio::task::spawn_blocking(move || tracer.shutdown()).await;
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("actiongate: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    let config = Config::from_settings(&cli.settings)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate { recount } => {
            let store = actiongate::connect_store(&config).await?;
            println!("migrations applied");
            if recount {
                let wrong = store.recount().await?;
                println!("counters rebuilt ({wrong} keys were wrong)");
            }
            Ok(())
        }
        Command::Schema => {
            print!("{}", actiongate::sdl());
            Ok(())
        }
        Command::Token(args) => {
            println!("{}", mint_token(&config, &cli.settings.jwt_secret, &args)?);
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<(), StartError> {
    let app = App::build(config).await?;
    let address = app.address();
    // Printed, not logged: a token never goes to the logs.
    println!("actiongate is listening on http://{address}");
    println!("GraphiQL: http://{address}/");
    println!("dashboard: http://{address}/dashboard");
    if let Some(token) = app.dev_token() {
        println!(
            "development token (tenant {DEV_TENANT}, read and write; the pages mint their own):"
        );
        println!("{token}");
    }
    app.run_until_stopped(shutdown_signal()).await
}

fn mint_token(
    config: &Config,
    secret: &Option<String>,
    args: &TokenArgs,
) -> Result<String, StartError> {
    let secret = match secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => load_or_create_dev_secret(&config.data_dir)?,
    };
    let spec = TokenSpec {
        tenant: args.tenant.clone(),
        app: args.app.clone(),
        user: args.user.clone(),
        roles: args
            .roles
            .iter()
            .map(|r| role_name(r))
            .collect::<Result<_, _>>()?,
        ttl: parse_ttl(&args.ttl)?,
        issuer: config.jwt_issuer.clone(),
        audience: config.jwt_audience.clone(),
    };
    Ok(mint(&secret, &spec)?)
}

/// Logs to standard error: text (coloured only on a terminal, and never with
/// `NO_COLOR` set) or one JSON object a line, as `ACTIONGATE_LOG` filters;
/// and, with an OTLP endpoint, exports spans (with a filter of their own, see
/// `telemetry::trace`). The [`Tracer`] returned flushes them at the end.
fn init_tracing(settings: &actiongate::Settings) -> Result<Option<Tracer>, StartError> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("ACTIONGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match settings.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::stderr().is_terminal() && !no_color)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => logs.json().with_ansi(false).with_filter(filter).boxed(),
    };
    let export = actiongate::trace_export(settings)?;
    let (traces, tracer) = match &export {
        Some(export) => {
            let (layer, tracer) = actiongate::trace_export_layer(export)?;
            (Some(layer), Some(tracer))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    if let Some(export) = export {
        tracing::info!(endpoint = %export.traces_url(), service = %export.service_name, "exporting traces");
    }
    Ok(tracer)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

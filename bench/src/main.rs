//! `actiongate-bench`: seeds a database with realistic history and measures a
//! running gateway: query throughput and latency, the `invokeAction` rate and
//! the time to `COMPLETED`, and live subscribers' delivery latency and memory.
//!
//! Each subcommand is one module; `load` is the HTTP load loop they share,
//! `ws` the subscription client, `report` the output and `sys` what is read
//! from `/proc`. See `bench/README.md` for what each measures and how to run it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod invoke;
mod live_counts;
mod load;
mod query;
mod report;
mod seed;
mod subscribe;
mod sys;
mod ws;

/// Any failure that ends a run; its message is printed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Load and latency measurements of actiongate.
#[derive(Debug, Parser)]
#[command(name = "actiongate-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fill a database with N actions of realistic history.
    Seed(seed::SeedArgs),
    /// Send one GraphQL document from concurrent clients; report rate and latency.
    Query(query::QueryArgs),
    /// Invoke blockIp from concurrent clients; report the rate and the time to COMPLETED.
    Invoke(invoke::InvokeArgs),
    /// Hold many subscriptions; report delivery latency, losses and memory per subscriber.
    Subscribe(subscribe::SubscribeArgs),
    /// Hold many `actionCountsChanged` subscriptions while actions change; report
    /// the delay from change to push, and what the gateway reads while idle.
    LiveCounts(live_counts::LiveCountsArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Seed(args) => seed::run(args).await,
        Command::Query(args) => query::run(args).await,
        Command::Invoke(args) => invoke::run(args).await,
        Command::Subscribe(args) => subscribe::run(args).await,
        Command::LiveCounts(args) => live_counts::run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

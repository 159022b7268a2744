//! Integration tests: the real gateway on port 0, spoken to over HTTP.
//! Each test runs on SQLite and on a fresh PostgreSQL database; without
//! `ACTIONGATE_TEST_POSTGRES_URL` when the suite is built, the PostgreSQL runs
//! are reported as ignored (`build.rs`).

mod helpers;

mod auth;
mod batches;
mod bulk;
mod cancel;
mod counts;
mod defender;
mod defender_fake;
mod execution;
mod faults;
mod first_run;
mod hardening;
mod http;
mod invoke;
mod nesting;
mod operations;
mod pages;
mod properties;
mod queries;
mod receivers;
mod rest;
mod restart;
mod subscriptions;
mod tenancy;
mod traces;
mod ws_admission;
mod ws_client;

//! What the fuzz targets in `fuzz/` drive, without a database or a network:
//! a raw `POST /graphql` body through admission, validation and execution,
//! and raw input values through the `ActionFilter` and `InvokeActionInput`
//! parsers and their validation. Each function must return for any input: a
//! panic, or a stack overflow that aborts the process, is what the fuzzer
//! looks for.
//!
//! Everything runs on a worker thread with tokio's default stack (2 MiB), as
//! requests do in the gateway, so recursion that would overflow a request's
//! stack overflows here too.

use std::future::Future;
use std::sync::OnceLock;

use async_graphql::InputType;
use async_graphql::parser::types::OperationType;
use chrono::Utc;
use tokio::runtime::Runtime;

use crate::auth::Principal;
use crate::domain::action::NewAction;
use crate::domain::indicator::Indicator;
use crate::domain::providers::ProviderDirectory;
use crate::graphql::documents::ParsedDocuments;
use crate::graphql::execute::{Arrival, check_request};
use crate::graphql::inputs::{FilterArgument, InvokeActionInput};
use crate::graphql::limits::OperationLimits;
use crate::graphql::{ActionSchema, schema_builder};
use crate::http::graphql::request_of_body;
use crate::providers::config::ProvidersFile;

/// A `POST /graphql` body from a caller whose token carries no role: read,
/// admitted (with the default limits and introspection on), and, unless it
/// is a mutation, validated and run on the real schema. Query and
/// subscription resolvers refuse such a caller before they reach the
/// database, but only after its arguments were parsed.
pub fn fuzz_request_body(body: &[u8]) {
    let body = body.to_vec();
    on_request_stack(async move {
        let _ = run_body(&body).await;
    });
}

/// The response to `body` as JSON, or the code it was refused with.
async fn run_body(body: &[u8]) -> Result<serde_json::Value, &'static str> {
    let mut request = request_of_body(body).map_err(|_| "BAD_REQUEST")?;
    let kind = check_request(
        &mut request,
        Arrival::Post,
        &OperationLimits::DEFAULT,
        true,
        &ParsedDocuments::default(),
    )
    .map_err(|refusal| refusal.code)?;
    if kind == Some(OperationType::Mutation) {
        // A mutation goes to the store before it looks at the caller, and
        // there is none here: it stops once admitted. Its input is fuzzed
        // by `fuzz_input_values`.
        return Ok(serde_json::Value::Null);
    }
    let response = schema().execute(request.data(caller_without_roles())).await;
    Ok(serde_json::to_value(&response).expect("a response serialises"))
}

/// A JSON value as the `filter` argument and as an `InvokeActionInput`,
/// parsed and validated. An action that validates must carry an indicator
/// that parses again to itself, as the executor reads it back.
pub fn fuzz_input_values(json: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    on_request_stack(async move {
        let Ok(value) = async_graphql::Value::from_json(json) else {
            return;
        };
        if let Ok(filter) = FilterArgument::parse(Some(value.clone())) {
            let _ = FilterArgument::into_domain(Some(filter));
        }
        let Ok(input) = InvokeActionInput::parse(Some(value)) else {
            return;
        };
        let Ok(action) = NewAction::validate(input.into(), "tenant", providers(), Utc::now())
        else {
            return;
        };
        let definition = action.definition;
        let indicator = definition.indicator_parameter().name;
        let stored = action
            .parameters
            .iter()
            .find(|p| p.name == indicator)
            .expect("a validated action carries its indicator");
        let parsed = Indicator::parse(definition.indicator, &stored.value)
            .expect("a stored indicator parses again");
        assert_eq!(
            parsed.to_string(),
            stored.value,
            "the stored form is canonical"
        );
    });
}

/// Runs `work` on a runtime worker, with the stack requests have, and passes
/// on its panic.
fn on_request_stack(work: impl Future<Output = ()> + Send + 'static) {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime")
    });
    if let Err(err) = runtime.block_on(runtime.spawn(work))
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}

fn schema() -> &'static ActionSchema {
    static SCHEMA: OnceLock<ActionSchema> = OnceLock::new();
    SCHEMA.get_or_init(|| schema_builder(true).finish())
}

fn providers() -> &'static ProviderDirectory {
    static PROVIDERS: OnceLock<ProviderDirectory> = OnceLock::new();
    PROVIDERS.get_or_init(|| ProvidersFile::default_blocklist("unused".as_ref()).directory())
}

fn caller_without_roles() -> Principal {
    Principal {
        tenant_id: "tenant".into(),
        app_id: "app".into(),
        user: "user".into(),
        can_read: false,
        can_write: false,
        expires_at: Utc::now() + chrono::Duration::hours(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `body` gets, on the stack requests have.
    fn answer(body: String) -> Result<serde_json::Value, &'static str> {
        let (tx, rx) = std::sync::mpsc::channel();
        on_request_stack(async move {
            let _ = tx.send(run_body(body.as_bytes()).await);
        });
        rx.recv().unwrap()
    }

    #[test]
    fn the_shapes_that_overflowed_the_stack_are_refused() {
        let lists = format!(
            "{{\"query\": \"{{ actionCatalog(x: {}{}) {{ name }} }}\"}}",
            "[".repeat(2000),
            "]".repeat(2000)
        );
        assert_eq!(answer(lists), Err("QUERY_TOO_DEEP"));
        let filter = format!(
            "{{\"query\": \"{{ actions(filter: {}{{}}{}) {{ totalCount }} }}\"}}",
            "{not: ".repeat(1000),
            "}".repeat(1000)
        );
        assert_eq!(answer(filter), Err("QUERY_TOO_DEEP"));
        let not = (0..60).fold(
            serde_json::json!({}),
            |inner, _| serde_json::json!({ "not": inner }),
        );
        fuzz_input_values(not.to_string().as_bytes());
    }

    #[test]
    fn a_caller_without_roles_is_refused_after_its_arguments_are_parsed() {
        let refused =
            answer(r#"{"query": "{ actions(filter: {user: \"x\"}) { totalCount } }"}"#.to_owned())
                .unwrap();
        assert_eq!(
            refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{refused}"
        );
        let bad_filter = answer(
            r#"{"query": "{ actions(filter: {not: {not: {not: {not: {not: {}}}}}}) { totalCount } }"}"#
                .to_owned(),
        )
        .unwrap();
        assert_eq!(
            bad_filter["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{bad_filter}"
        );
        let introspection =
            answer(r#"{"query": "{ __schema { queryType { name } } }"}"#.to_owned()).unwrap();
        assert_eq!(
            introspection["data"]["__schema"]["queryType"]["name"],
            "Query"
        );
    }

    #[test]
    fn valid_input_values_pass_the_checks() {
        fuzz_input_values(
            br#"{"name": "BlockIp", "parameters": [{"name": "IP", "value": "::ffff:192.0.2.1"}]}"#,
        );
    }
}

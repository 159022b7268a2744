//! `query`: the throughput and latency of one GraphQL document, sent over and
//! over by concurrent clients.
//!
//! With `--cursor-pages N` the bench first walks `N` pages of the document's
//! `actions` connection, passing each page's `endCursor` as `$after`, and then
//! times the page after them: the cost of reading deep into a list by keyset
//! cursors.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::Error;
use crate::load::{self, Fixed, LoadArgs, Target, TargetArgs};
use crate::report::Report;

/// `actiongate-bench query`
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// The GraphQL document to send (see bench/documents/).
    #[arg(long)]
    pub document: PathBuf,
    /// Its variables, as a JSON object.
    #[arg(long)]
    pub variables: Option<String>,
    /// Walk this many pages first and time the next one (the document must take
    /// `$after: String` and select `actions { pageInfo { endCursor } }`).
    #[arg(long, default_value_t = 0)]
    pub cursor_pages: u32,
}

pub async fn run(args: QueryArgs) -> Result<(), Error> {
    let document = std::fs::read_to_string(&args.document)
        .map_err(|e| format!("reading {}: {e}", args.document.display()))?;
    let mut variables = match &args.variables {
        Some(text) => serde_json::from_str::<Value>(text)
            .map_err(|e| format!("--variables is not JSON: {e}"))?,
        None => Value::Object(Default::default()),
    };
    if !variables.is_object() {
        return Err("--variables must be a JSON object".into());
    }
    let target = Target::new(&args.target)?;
    let client = load::client(args.load.concurrency, args.target.timeout)?;

    if args.cursor_pages > 0 {
        let after = walk_pages(&client, &target, &document, &variables, args.cursor_pages).await?;
        eprintln!(
            "walked {} pages; timing page {}",
            args.cursor_pages,
            args.cursor_pages + 1
        );
        variables["after"] = Value::String(after);
    }

    let workload = Arc::new(Fixed(load::graphql_body(&document, &variables)));
    let result = load::run(&client, &target, workload, &args.load).await;
    result.explain_errors();
    Report::new()
        .section("query", result.fields())
        .print(args.target.json);
    Ok(())
}

/// Follows `pages` pages from the start and returns the last `endCursor`.
async fn walk_pages(
    client: &reqwest::Client,
    target: &Target,
    document: &str,
    variables: &Value,
    pages: u32,
) -> Result<String, Error> {
    let mut variables = variables.clone();
    variables["after"] = Value::Null;
    for page in 1..=pages {
        let body = load::post(client, target, load::graphql_body(document, &variables))
            .await
            .map_err(|e| format!("page {page}: {e}"))?;
        let (cursor, has_next) = page_info(&body)
            .ok_or_else(|| format!("page {page} has no data.actions.pageInfo.endCursor"))?;
        if !has_next && page < pages {
            return Err(format!(
                "the list ends after {page} pages; fewer than the {pages} asked for"
            )
            .into());
        }
        variables["after"] = Value::String(cursor);
    }
    match variables["after"].take() {
        Value::String(cursor) => Ok(cursor),
        _ => Err("no cursor was reached".into()),
    }
}

/// `(endCursor, hasNextPage)` of `data.actions.pageInfo`; a missing
/// `hasNextPage` is taken as "more follow".
fn page_info(body: &Value) -> Option<(String, bool)> {
    let info = &body["data"]["actions"]["pageInfo"];
    let cursor = info["endCursor"].as_str()?.to_owned();
    Some((cursor, info["hasNextPage"].as_bool().unwrap_or(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn page_info_is_read_from_the_connection() {
        let body =
            json!({"data": {"actions": {"pageInfo": {"endCursor": "abc", "hasNextPage": false}}}});
        assert_eq!(page_info(&body), Some(("abc".to_owned(), false)));
        let empty =
            json!({"data": {"actions": {"pageInfo": {"endCursor": null, "hasNextPage": false}}}});
        assert_eq!(page_info(&empty), None);
    }
}

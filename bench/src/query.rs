//! `query`: the throughput and latency of one GraphQL document, sent over and
//! over by concurrent clients.
//!
//! With `--cursor-pages N` the bench first walks `N` pages of the document's
//! `actions` connection, passing each page's `endCursor` as `$after`, and then
//! times the page after them: the cost of reading deep into a list by keyset
//! cursors.
//!
//! With `--row` (repeatable, or `all`) it runs rows of issue 14's table
//! instead of one document: each row is a document of `bench/documents/`
//! with its variables, one after the other, each reported on its own.

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
    #[arg(long, required_unless_present = "row", conflicts_with = "row")]
    pub document: Option<PathBuf>,
    /// Instead of `--document`: rows of the dashboard table, in turn.
    #[arg(long, value_enum)]
    pub row: Vec<Row>,
    /// Its variables, as a JSON object.
    #[arg(long)]
    pub variables: Option<String>,
    /// Walk this many pages first and time the next one (the document must take
    /// `$after: String` and select `actions { pageInfo { endCursor } }`).
    #[arg(long, default_value_t = 0)]
    pub cursor_pages: u32,
}

/// A row of the dashboard table (issue 14), all on the token's tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Row {
    /// Every row below, in this order.
    All,
    /// `actionCounts`, no filter.
    Counts,
    /// `actionCounts` of status COMPLETED.
    CountsStatus,
    /// `actionCounts` of the action `blockIp`.
    CountsName,
    /// `actionCounts` of the actions created in the last 24 hours.
    #[value(name = "counts-24h")]
    Counts24h,
    /// The first 20 COMPLETED, newest first, with parameters and states.
    Page,
    /// The same with scalar fields only.
    ScalarPage,
    /// The page with parameters and states, and `totalCount`.
    PageTotal,
    /// One action (the newest COMPLETED) by id with parameters and states.
    Lookup,
    /// The 20 rows after row 10,000, by cursor (`--cursor-pages 500`).
    Cursor,
}

const COUNTS: &str = include_str!("../documents/counts.graphql");
const COUNTS_FILTERED: &str = include_str!("../documents/counts_filtered.graphql");
const PAGE: &str = include_str!("../documents/list.graphql");
const SCALAR_PAGE: &str = include_str!("../documents/list_scalar.graphql");
const PAGE_TOTAL: &str = include_str!("../documents/list_total.graphql");
const LOOKUP: &str = include_str!("../documents/action.graphql");

impl Row {
    const EVERY: [Row; 9] = [
        Row::Counts,
        Row::CountsStatus,
        Row::CountsName,
        Row::Counts24h,
        Row::Page,
        Row::ScalarPage,
        Row::PageTotal,
        Row::Lookup,
        Row::Cursor,
    ];

    fn name(self) -> &'static str {
        match self {
            Row::All => "all",
            Row::Counts => "counts",
            Row::CountsStatus => "counts-status",
            Row::CountsName => "counts-name",
            Row::Counts24h => "counts-24h",
            Row::Page => "page",
            Row::ScalarPage => "scalar-page",
            Row::PageTotal => "page-total",
            Row::Lookup => "lookup",
            Row::Cursor => "cursor",
        }
    }

    /// The document, its variables, and the pages to walk first. `id` is the
    /// action a lookup reads.
    fn request(self, id: &str) -> (&'static str, Value, u32) {
        let filter = |f: Value| serde_json::json!({ "filter": f });
        match self {
            Row::All | Row::Counts => (COUNTS, Value::Object(Default::default()), 0),
            Row::CountsStatus => (
                COUNTS_FILTERED,
                filter(serde_json::json!({"status": ["COMPLETED"]})),
                0,
            ),
            Row::CountsName => (
                COUNTS_FILTERED,
                filter(serde_json::json!({"name": ["blockIp"]})),
                0,
            ),
            Row::Counts24h => {
                let since = chrono::Utc::now() - chrono::Duration::hours(24);
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                (
                    COUNTS_FILTERED,
                    filter(serde_json::json!({"createdAfter": since})),
                    0,
                )
            }
            Row::Page => (PAGE, Value::Object(Default::default()), 0),
            Row::ScalarPage => (SCALAR_PAGE, Value::Object(Default::default()), 0),
            Row::PageTotal => (PAGE_TOTAL, Value::Object(Default::default()), 0),
            Row::Lookup => (LOOKUP, serde_json::json!({ "id": id }), 0),
            Row::Cursor => (PAGE, Value::Object(Default::default()), 500),
        }
    }
}

pub async fn run(args: QueryArgs) -> Result<(), Error> {
    if !args.row.is_empty() {
        return run_rows(&args).await;
    }
    let path = args.document.as_ref().ok_or("give --document or --row")?;
    let document =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
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

/// Runs each of `args.row` in turn; with `--json`, one object a line with
/// its `row`.
async fn run_rows(args: &QueryArgs) -> Result<(), Error> {
    let rows: Vec<Row> = match args.row.contains(&Row::All) {
        true => Row::EVERY.to_vec(),
        false => args.row.clone(),
    };
    let target = Target::new(&args.target)?;
    let client = load::client(args.load.concurrency, args.target.timeout)?;
    let id = match rows.contains(&Row::Lookup) {
        true => {
            let empty = Value::Object(Default::default());
            let body = load::post(&client, &target, load::graphql_body(PAGE, &empty)).await?;
            body["data"]["actions"]["nodes"][0]["id"]
                .as_str()
                .ok_or("the tenant has no COMPLETED action to look up")?
                .to_owned()
        }
        false => String::new(),
    };
    for row in rows {
        let (document, mut variables, pages) = row.request(&id);
        if pages > 0 {
            let after = walk_pages(&client, &target, document, &variables, pages).await?;
            variables["after"] = Value::String(after);
        }
        let workload = Arc::new(Fixed(load::graphql_body(document, &variables)));
        let result = load::run(&client, &target, workload, &args.load).await;
        result.explain_errors();
        let report = Report::new().section(row.name(), result.fields());
        if args.target.json {
            let mut json = report.to_json();
            json["row"] = Value::String(row.name().to_owned());
            println!("{json}");
        } else {
            report.print(false);
        }
    }
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

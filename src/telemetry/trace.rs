//! Traces: the spans of a request, its database work and the provider call
//! it leads to, as one OpenTelemetry trace, and the W3C trace context
//! (`traceparent`, `tracestate`) in and out.
//!
//! Spans are `tracing` spans. With an OTLP endpoint ([`TraceExport`]),
//! `main` adds [`layer`] to the subscriber and they are exported in batches
//! over OTLP/HTTP (protobuf); without one nothing is added, and a span costs
//! what it cost before.
//!
//! The trace context travels in both cases:
//! - a request's span takes the caller's `traceparent` as its parent
//!   ([`sent_by_caller`], [`traced`]);
//! - an invoked action stores the context current at invoke (and a cancel
//!   that reverts, at cancel) ([`context_to_store`]) with its row, since
//!   the executor calls the
//!   provider later, maybe in another replica; every attempt at the action
//!   continues that trace ([`invoking_context`]), and the provider's HTTP
//!   requests carry it ([`inject`]).
//!
//! The context is OpenTelemetry's current one (`opentelemetry::Context`):
//! with export on, the current span's (the layer makes each entered span's
//! context current); with export off, the caller's context itself, attached
//! to the request's or the attempt's future, so a `traceparent` sent by the
//! analyst's tool still reaches the provider unchanged.

use std::collections::HashMap;
use std::future::Future;

use opentelemetry::Context;
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::field::Empty;
use tracing::{Instrument as _, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::domain::action::Action;
use crate::providers::Job;

/// The `service.name` of exported spans unless `OTEL_SERVICE_NAME` says otherwise.
pub(crate) const DEFAULT_SERVICE_NAME: &str = "actiongate";

/// The OTLP/HTTP path of traces, appended to the endpoint as the
/// OpenTelemetry specification asks of `OTEL_EXPORTER_OTLP_ENDPOINT`.
const TRACES_PATH: &str = "v1/traces";

/// Where and as what spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExport {
    /// The collector's base URL, e.g. `http://127.0.0.1:4318`; spans go to
    /// its `/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the resource.
    pub service_name: String,
}

impl TraceExport {
    /// The export to `endpoint` (an http(s) URL) as `service_name`.
    pub fn new(endpoint: &str, service_name: &str) -> Result<TraceExport, String> {
        let url = url::Url::parse(endpoint.trim())
            .map_err(|e| format!("the OTLP endpoint '{endpoint}' is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(format!(
                "the OTLP endpoint '{endpoint}' is not an http:// or https:// URL (OTLP over HTTP, e.g. http://127.0.0.1:4318)"
            ));
        }
        let service_name = service_name.trim();
        Ok(TraceExport {
            endpoint: url.as_str().trim_end_matches('/').to_owned(),
            service_name: if service_name.is_empty() {
                DEFAULT_SERVICE_NAME.to_owned()
            } else {
                service_name.to_owned()
            },
        })
    }

    /// The URL spans are posted to.
    pub fn traces_url(&self) -> String {
        format!("{}/{TRACES_PATH}", self.endpoint)
    }
}

/// The exporting half of tracing: flush it before the process ends.
pub struct Tracer {
    provider: SdkTracerProvider,
}

impl Tracer {
    /// Exports the spans still queued and stops exporting. Blocks until the
    /// collector answered or the export timed out.
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown() {
            eprintln!("actiongate: exporting the last spans: {err}");
        }
    }
}

/// The subscriber layer that exports spans as `export` says, and the
/// [`Tracer`] to flush at the end. The batch processor runs on its own
/// thread; `OTEL_BSP_*` variables tune it (e.g. `OTEL_BSP_SCHEDULE_DELAY`).
pub fn layer<S>(
    export: &TraceExport,
) -> Result<(impl tracing_subscriber::Layer<S> + use<S>, Tracer), String>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    use tracing_subscriber::Layer as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(export.traces_url())
        .build()
        .map_err(|e| format!("the OTLP exporter to {}: {e}", export.endpoint))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(export.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("actiongate");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_filter(tracing_subscriber::filter::DynFilterFn::new(
            |metadata, cx| exported(metadata, cx.lookup_current().is_some()),
        ));
    Ok((layer, Tracer { provider }))
}

/// Whether the export layer takes `metadata`, whatever `ACTIONGATE_LOG`
/// says of the logs: spans and events at `info` and above, and the `debug`
/// spans of the gateway (the store's statement groups) inside a trace. The
/// executor's idle polls and the event relay's rounds, root `debug` spans
/// every second, are not exported: they would be a trace each.
fn exported(metadata: &tracing::Metadata<'_>, inside_span: bool) -> bool {
    metadata.level() <= &tracing::Level::INFO
        || (metadata.is_span()
            && metadata.level() <= &tracing::Level::DEBUG
            && metadata.target().starts_with("actiongate")
            && inside_span)
}

/// The span of one request (or WebSocket operation), named after its face:
/// `graphql`, `rest` or `ws`. The operation and the caller's tenant are
/// recorded once known ([`record_operation`], [`record_tenant`]); never the
/// token, the query text or the variables.
macro_rules! request_span {
    ($face:literal, $method:expr, $request_id:expr) => {
        tracing::info_span!(
            $face,
            otel.kind = "server",
            request_id = %$request_id,
            http.request.method = $method,
            graphql.operation.type = tracing::field::Empty,
            graphql.operation.name = tracing::field::Empty,
            tenant = tracing::field::Empty,
        )
    };
}
pub(crate) use request_span;

/// The trace context a caller sent in `headers` (`traceparent`,
/// `tracestate`); empty when it sent none or one that does not parse.
pub(crate) fn sent_by_caller(headers: &axum::http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// Runs `work` in `span`, whose parent is `parent` (a new trace when it is
/// empty); `parent` is also the current context inside when spans are not
/// exported, so that it is what is stored and passed on.
///
/// A request's parent is [`sent_by_caller`]; a WebSocket operation's is
/// empty (a socket lives for hours: its operations are traces of their own);
/// an attempt's is [`invoking_context`].
pub(crate) fn traced<F: Future>(
    span: Span,
    parent: Context,
    work: F,
) -> impl Future<Output = F::Output> {
    // Without the export layer there is no OpenTelemetry span to parent.
    let _ = span.set_parent(parent.clone());
    work.instrument(span).with_context(parent)
}

/// Records the caller's tenant on the current request span.
pub(crate) fn record_tenant(tenant: &str) {
    Span::current().record("tenant", tenant);
}

/// Records the GraphQL operation on the current request span, and names the
/// span after it (`mutation invokeAction`), as the semantic conventions of
/// GraphQL spans do.
pub(crate) fn record_operation(kind: &str, name: Option<&str>) {
    let span = Span::current();
    span.record("graphql.operation.type", kind);
    if let Some(name) = name {
        span.record("graphql.operation.name", name);
    }
    // The OpenTelemetry span exists by now (it is built when first
    // entered), so it is renamed itself: an `otel.name` recorded now would
    // be too late.
    span.context().span().update_name(match name {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_owned(),
    });
}

/// The current trace context as stored with an action: the JSON object of
/// its `traceparent` (and `tracestate`) headers; `None` outside any trace.
pub(crate) fn context_to_store() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Context::current(), &mut carrier);
    if carrier.is_empty() {
        return None;
    }
    serde_json::to_string(&carrier).ok()
}

/// The trace context of the request that invoked `action`, as stored with
/// it; empty (a new trace) when it has none or it cannot be read.
///
/// An attempt at the action runs with it as parent ([`traced`]), not as a
/// link: the attempt, its database writes and its provider call serve that
/// one request, so one trace shows them under the analyst's click. Retries
/// join the same trace; a cancel that reverts stores its own request's
/// context, so the revert joins the cancel's trace.
pub(crate) fn invoking_context(action: &Action) -> Context {
    let carrier: HashMap<String, String> = action
        .trace_context
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier)
}

/// The span of one provider call: which provider, `execute` or `revert`,
/// and the HTTP status of its last response (recorded by the HTTP
/// providers, [`record_http_status`]).
pub(crate) fn provider_span(job: &Job, work: &'static str) -> Span {
    let provider = &job.action.vendor.provider;
    tracing::info_span!(
        "provider",
        otel.name = format!("{work} {provider}"),
        otel.kind = "client",
        provider = %provider,
        work,
        action = %job.action.name,
        action_id = %job.action.id,
        http.response.status_code = Empty,
    )
}

/// Records the status of a provider's HTTP response on the current span.
pub(crate) fn record_http_status(status: u16) {
    Span::current().record("http.response.status_code", status);
}

/// Adds the current trace context (`traceparent`, `tracestate`) to the
/// headers of a request to a provider.
pub(crate) fn inject(headers: &mut axum::http::HeaderMap) {
    TraceContextPropagator::new().inject_context(&Context::current(), &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url_and_traces_go_to_its_v1_traces() {
        let export = TraceExport::new("http://collector:4318/", "").unwrap();
        assert_eq!(export.traces_url(), "http://collector:4318/v1/traces");
        assert_eq!(export.service_name, DEFAULT_SERVICE_NAME);
        let export = TraceExport::new("https://otel.example/prefix", "edge").unwrap();
        assert_eq!(export.traces_url(), "https://otel.example/prefix/v1/traces");
        assert_eq!(export.service_name, "edge");
        let err = TraceExport::new("collector:4317", "").unwrap_err();
        assert!(err.contains("not an http:// or https:// URL"), "{err}");
    }

    #[tokio::test]
    async fn a_stored_context_is_what_the_caller_sent_outside_an_exported_trace() {
        let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = axum::http::HeaderMap::from_iter([(
            axum::http::header::HeaderName::from_static("traceparent"),
            axum::http::HeaderValue::from_static(sent),
        )]);
        let stored = traced(tracing::Span::none(), sent_by_caller(&headers), async {
            context_to_store()
        })
        .await;
        let carrier: HashMap<String, String> =
            serde_json::from_str(&stored.expect("a stored context")).unwrap();
        assert_eq!(carrier["traceparent"], sent);
    }

    #[tokio::test]
    async fn no_context_is_stored_without_a_trace() {
        assert_eq!(context_to_store(), None);
        let garbled = axum::http::HeaderMap::from_iter([(
            axum::http::header::HeaderName::from_static("traceparent"),
            axum::http::HeaderValue::from_static("00-not-a-trace-01"),
        )]);
        let stored = traced(tracing::Span::none(), sent_by_caller(&garbled), async {
            context_to_store()
        })
        .await;
        assert_eq!(stored, None);
    }
}

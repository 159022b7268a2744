//! What the gateway tells operators beyond its logs: metrics in the
//! Prometheus format (`metrics`) and traces over OpenTelemetry (`trace`).
//! Instrumented code calls these functions; nothing else names a metric or
//! handles a trace context.

pub(crate) mod metrics;
pub(crate) mod trace;

//! What the gateway tells operators beyond its logs: metrics in the
//! Prometheus format (`metrics`). Instrumented code calls these functions;
//! nothing else names a metric.

pub(crate) mod metrics;

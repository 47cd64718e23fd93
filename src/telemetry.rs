//! Logs (tracing, JSON by default) and Prometheus metrics.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// JSON logs to stderr, filtered by `RUST_LOG` (default `info`); `RAILGATE_LOG=pretty` for humans.
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let pretty = std::env::var("RAILGATE_LOG").is_ok_and(|v| v == "pretty");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // A log line that cannot be written (a full disk) is lost, nothing more. With this on,
        // the subscriber reports the failure with `eprintln!` — to the same full stderr,
        // which panics the task that logged: requests drop, and the SIGTERM handler dies
        // before it can start the graceful shutdown.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let _ = if pretty {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
}

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn metrics() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

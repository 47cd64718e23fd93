//! Logs (tracing, JSON by default), Prometheus metrics, and traces over OTLP when configured.

use crate::config::TelemetryConfig;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::sync::OnceLock;
use std::time::Duration;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{reload, EnvFilter, Layer};

/// What the exporter's layer sits on: the registry behind the one level filter.
type Registry = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;
/// The trace exporter's layer, installed once the configuration is read (after the logs,
/// which must work before it is).
type TraceSlot = reload::Handle<Option<Box<dyn Layer<Registry> + Send + Sync>>, Registry>;

static TRACE_SLOT: OnceLock<TraceSlot> = OnceLock::new();

/// JSON logs to stderr, filtered by `RUST_LOG` (default `info`); `RAILGATE_LOG=pretty` for humans.
pub fn init_logs() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let pretty = std::env::var("RAILGATE_LOG").is_ok_and(|v| v == "pretty");
    let fmt = tracing_subscriber::fmt::layer()
        // A log line that cannot be written (a full disk) is lost, nothing more. With this on,
        // the subscriber reports the failure with `eprintln!` — to the same full stderr,
        // which panics the task that logged: requests drop, and the SIGTERM handler dies
        // before it can start the graceful shutdown.
        .log_internal_errors(false)
        .with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<_> + Send + Sync> = if pretty {
        Box::new(fmt)
    } else {
        // The current span carries the request's fields; the list of every enclosing span
        // repeated them on each line (half of a line's bytes, and of its formatting).
        Box::new(
            fmt.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        )
    };
    // One filter for both: the spans exported are the ones the logs carry. (A filter of the
    // exporter's own cannot be reloaded in once the subscriber is installed.)
    let (traces, slot) = reload::Layer::new(None);
    if tracing_subscriber::registry()
        .with(filter)
        .with(traces)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = TRACE_SLOT.set(slot);
    }
}

/// Exports spans to an OTLP collector while it lives; [`Traces::shutdown`] sends what is left.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Flushes the spans not yet sent and stops the exporter's thread.
    pub fn shutdown(self) {
        let provider = self.provider;
        // The exporter's HTTP client is a blocking one; it must not be dropped on a runtime
        // thread.
        let _ = std::thread::spawn(move || provider.shutdown()).join();
    }
}

/// Starts exporting spans (those `RUST_LOG` lets through, with the fields the logs carry: no
/// secret or personal data is in either) when `[telemetry] otlp_endpoint` is set; `None` when it is not.
pub fn start_traces(cfg: &TelemetryConfig) -> anyhow::Result<Option<Traces>> {
    let Some(base) = cfg.otlp_endpoint.as_deref() else {
        return Ok(None);
    };
    let url = reqwest::Url::parse(base)
        .map_err(|e| anyhow::anyhow!("[telemetry] otlp_endpoint '{base}': {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("[telemetry] otlp_endpoint must be an http(s) URL");
    }
    let Some(slot) = TRACE_SLOT.get() else {
        anyhow::bail!("traces need the gateway's own log subscriber");
    };
    let endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
    let timeout = Duration::from_millis(cfg.otlp_timeout_ms);
    let service = cfg.service_name.clone();
    // The OTLP exporter's client is reqwest's blocking one, which builds its own runtime: it
    // is made on a thread of its own, outside the gateway's.
    let provider = std::thread::spawn(move || -> anyhow::Result<SdkTracerProvider> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            .build()?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the OTLP exporter could not be built"))??;
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("railgate"));
    let layer: Box<dyn Layer<Registry> + Send + Sync> = Box::new(layer);
    slot.reload(Some(layer))?;
    tracing::info!(endpoint = %base, "Exporting traces over OTLP");
    Ok(Some(Traces { provider }))
}

/// Every metric the gateway exports: name, type and help. The dashboard and alert rules in
/// `ops/` use only these (a test checks it); `describe` gives Prometheus their help text.
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "railgate_http_requests_total",
        "counter",
        "Requests answered, by method, route template and status",
    ),
    (
        "railgate_http_request_duration_seconds",
        "histogram",
        "Time to answer a request, by method and route template",
    ),
    (
        "railgate_payment_transitions_total",
        "counter",
        "Payment state changes, by from and to state",
    ),
    (
        "railgate_payment_exceptions_total",
        "counter",
        "Payments handed to an operator (outcome unknown past the deadline)",
    ),
    (
        "railgate_amount_conflicts_total",
        "counter",
        "Rail answers whose amount or currency differs from what was sent",
    ),
    (
        "railgate_callback_conflicts_total",
        "counter",
        "Callbacks that contradict an outcome already recorded",
    ),
    (
        "railgate_callbacks_refused_total",
        "counter",
        "Callbacks refused, by reason",
    ),
    (
        "railgate_failure_rechecks_total",
        "counter",
        "Re-checks of failures from rails whose failures are not final, by result",
    ),
    (
        "railgate_inbound_resends_total",
        "counter",
        "Inbound requests a rail sent again",
    ),
    (
        "railgate_dispatch_deferred_total",
        "counter",
        "Jobs put back because their rail had no free slot",
    ),
    ("railgate_jobs_waiting", "gauge", "Live jobs, by kind"),
    (
        "railgate_jobs_overdue_seconds",
        "gauge",
        "How long the oldest due job of a kind has been due",
    ),
    (
        "railgate_jobs_dead_letter",
        "gauge",
        "Jobs in the dead letter, waiting for an operator",
    ),
    (
        "railgate_jobs_dead_lettered_total",
        "counter",
        "Jobs moved to the dead letter",
    ),
    (
        "railgate_webhooks_total",
        "counter",
        "Webhook delivery tries, by result",
    ),
    (
        "railgate_payrolls_completed_total",
        "counter",
        "Payrolls whose every line is final",
    ),
    (
        "railgate_statements_loaded_total",
        "counter",
        "Statements loaded",
    ),
    (
        "railgate_recon_runs_total",
        "counter",
        "Reconciliation runs",
    ),
    (
        "railgate_recon_entries_posted_total",
        "counter",
        "Ledger entries posted by reconciliation",
    ),
    (
        "railgate_recon_breaks_resolved_total",
        "counter",
        "Reconciliation breaks resolved",
    ),
    (
        "railgate_write_transactions_total",
        "counter",
        "Write transactions committed to the store",
    ),
    (
        "railgate_group_commit_size",
        "histogram",
        "Callbacks stored per group commit",
    ),
    (
        "railgate_create_batch_size",
        "histogram",
        "Payments created per group commit",
    ),
    (
        "railgate_answer_batch_size",
        "histogram",
        "Rail answers applied per group commit",
    ),
];

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn metrics() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                // Latency as a histogram with buckets (aggregatable across instances), not a
                // summary; the batch sizes keep the exporter's default summaries.
                .set_buckets_for_metric(
                    Matcher::Full("railgate_http_request_duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .ok()?
                .install_recorder()
                .ok()?;
            for (name, kind, help) in METRICS {
                match *kind {
                    "counter" => metrics::describe_counter!(*name, *help),
                    "gauge" => metrics::describe_gauge!(*name, *help),
                    _ => metrics::describe_histogram!(*name, *help),
                }
            }
            Some(handle)
        })
        .clone()
}

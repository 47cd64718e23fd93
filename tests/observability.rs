//! What operators watch the gateway with: `/metrics` labelled by route template (never a
//! path as sent), the job gauges the alert rules read, traces exported over OTLP to a real
//! collector on loopback (with no personal data or key in them), and the dashboard and alert
//! rules in `ops/`, checked against the metrics the gateway exports and by promtool.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod common;
use axum::body::Bytes;
use axum::http::HeaderMap;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The msisdn of the test's payee: it must not leave the gateway in a span.
const PAYEE: &str = "255712345600";

both_stores!(metrics_name_routes_and_job_kinds, |store| async move {
    let Some(app) = spawn_app(store).await else {
        return;
    };
    let created = app.disburse("OBS-METRICS-1", PAYEE, "12.00").await;
    let id = created["id"].as_str().unwrap().to_owned();
    let done = app.wait_final(&id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let (s, _) = app.get(&format!("/v1/payments/{id}"), &app.key).await;
    assert_eq!(s, 200);
    // A request no route takes is answered, not counted under its path.
    let (s, _) = app.get("/v1/no-such-route/255700000000", &app.key).await;
    assert_eq!(s, 404);

    let text = app.metrics().await;
    assert!(
        text.contains(
            r#"railgate_http_requests_total{method="POST",route="/v1/disbursements",status="201"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"railgate_http_request_duration_seconds_bucket{method="GET",route="/v1/payments/{id}",le="0.005"}"#
        ),
        "latency is a histogram with buckets, by route template:\n{text}"
    );
    assert!(
        text.contains("# HELP railgate_http_requests_total"),
        "{text}"
    );
    for kind in [
        "payment",
        "webhook",
        "follow_up",
        "confirm_failure",
        "reversal",
    ] {
        assert!(
            text.contains(&format!(r#"railgate_jobs_waiting{{kind="{kind}"}}"#)),
            "{kind}: {text}"
        );
        assert!(
            text.contains(&format!(
                r#"railgate_jobs_overdue_seconds{{kind="{kind}"}}"#
            )),
            "{kind}: {text}"
        );
    }
    // Neither the payment's id nor the payee's number, nor the unmatched path, is a label.
    assert!(!text.contains(&id), "a payment id in the metrics:\n{text}");
    assert!(!text.contains(PAYEE), "the payee in the metrics:\n{text}");
    assert!(!text.contains("no-such-route"), "{text}");
    app.stop().await;
});

/// Spans posted to the collector, as decoded OTLP requests.
type Received = Arc<Mutex<Vec<(String, ExportTraceServiceRequest, Vec<u8>)>>>;

async fn collector() -> (String, Received) {
    let got: Received = Arc::default();
    let sink = got.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let req = ExportTraceServiceRequest::decode(body.as_ref())
                    .expect("the body is an OTLP protobuf export request");
                sink.lock().unwrap().push((ct, req, body.to_vec()));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), got)
}

fn string_attr(
    attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector_without_personal_data() {
    railgate::telemetry::init_logs();
    let (endpoint, got) = collector().await;
    let traces = railgate::telemetry::start_traces(&railgate::config::TelemetryConfig {
        otlp_endpoint: Some(endpoint),
        service_name: "railgate-observability-test".into(),
        otlp_timeout_ms: 5_000,
    })
    .unwrap()
    .expect("an endpoint is configured");

    let Some(app) = spawn_app(Store::Sqlite).await else {
        return;
    };
    let created = app.disburse("OBS-TRACE-1", PAYEE, "7.00").await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_final(&id).await["state"], "completed");
    let key = app.key.clone();
    app.stop().await;
    // Shutting the exporter down sends what it still holds.
    tokio::task::spawn_blocking(move || traces.shutdown())
        .await
        .unwrap();

    let got = got.lock().unwrap();
    assert!(!got.is_empty(), "the collector received no export");
    let mut paths = BTreeSet::new();
    for (content_type, req, raw) in got.iter() {
        assert_eq!(content_type, "application/x-protobuf");
        let raw = String::from_utf8_lossy(raw);
        assert!(!raw.contains(PAYEE), "the payee's number left in a span");
        assert!(
            !raw.contains("Asha Juma"),
            "the payee's name left in a span"
        );
        assert!(!raw.contains(&key), "an API key left in a span");
        for rs in &req.resource_spans {
            let resource = rs.resource.as_ref().unwrap();
            assert_eq!(
                string_attr(&resource.attributes, "service.name").as_deref(),
                Some("railgate-observability-test")
            );
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                if span.name == "request" {
                    if let Some(p) = string_attr(&span.attributes, "path") {
                        paths.insert(p);
                    }
                }
            }
        }
    }
    assert!(
        paths.contains("/v1/disbursements"),
        "no request span for the disbursement: {paths:?}"
    );
}

/// Every `railgate_*` metric an expression names, with a histogram's series suffixes removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("railgate_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| {
                railgate::telemetry::METRICS
                    .iter()
                    .any(|(n, k, _)| n == b && *k == "histogram")
            })
            .unwrap_or(name);
        out.insert(base.to_owned());
        rest = &tail[end..];
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_and_alerts_use_only_exported_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("ops");
    let known: BTreeSet<String> = railgate::telemetry::METRICS
        .iter()
        .map(|(n, _, _)| (*n).to_owned())
        .collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("grafana/railgate.json")).unwrap())
            .unwrap();
    let mut dash_exprs = Vec::new();
    exprs(&dashboard, &mut dash_exprs);
    let on_dashboard: BTreeSet<String> = dash_exprs.iter().flat_map(|e| metric_names(e)).collect();
    let unknown: Vec<_> = on_dashboard.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics the gateway does not export: {unknown:?}"
    );
    let missing: Vec<_> = known.difference(&on_dashboard).collect();
    assert!(
        missing.is_empty(),
        "metrics the dashboard does not show: {missing:?}"
    );

    let rules: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root.join("prometheus/alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut rule_exprs = Vec::new();
    exprs(&rules, &mut rule_exprs);
    assert!(rule_exprs.len() >= 8, "{rule_exprs:?}");
    let in_rules: BTreeSet<String> = rule_exprs.iter().flat_map(|e| metric_names(e)).collect();
    let unknown: Vec<_> = in_rules.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "alert rules name metrics the gateway does not export: {unknown:?}"
    );
    for needed in [
        "railgate_jobs_overdue_seconds",
        "railgate_payment_exceptions_total",
        "railgate_callbacks_refused_total",
        "railgate_jobs_waiting",
    ] {
        assert!(in_rules.contains(needed), "no alert reads {needed}");
    }
}

/// The alert rules load in Prometheus's own checker, and fire (and stay quiet) as their unit
/// tests say.
#[test]
fn alert_rules_pass_promtool() {
    let promtool = ["promtool", "/usr/bin/promtool"]
        .iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok()
        })
        .copied();
    let Some(promtool) = promtool else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("promtool is not installed under CI=true (scripts/test-setup.sh installs it)");
        }
        eprintln!(
            "\n!!! SKIPPING the alert rule tests: no promtool (run scripts/test-setup.sh) !!!\n"
        );
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = std::process::Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

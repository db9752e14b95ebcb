//! Prometheus metrics, served at `GET /metrics` in the text format.
//!
//! One process-wide registry: requests by route, model and status; latency
//! histograms; in-flight requests; admission queue depth; instances idle and
//! made; guest traps and timeouts; model load time; per-model inference
//! counts and durations (which V2 statistics are read from).

use std::sync::OnceLock;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the runtime exports.
pub struct Metrics {
    registry: Registry,
    /// Counts HTTP requests by route, model and status.
    pub requests: IntCounterVec,
    /// Measures HTTP request latency by route, in seconds.
    pub latency: HistogramVec,
    /// HTTP requests being handled now.
    pub in_flight: IntGauge,
    /// Requests waiting for a free instance or inference slot.
    pub queue_depth: IntGauge,
    /// Counts requests refused with 503 because the queue was full.
    pub rejected: IntCounter,
    /// Warm module instances waiting for a request.
    pub instances_idle: IntGauge,
    /// Counts module instances made (startup, replacements, isolated mode).
    pub instances_created: IntCounter,
    /// Counts requests whose module instance trapped.
    pub traps: IntCounter,
    /// Counts requests stopped at the scoring deadline.
    pub timeouts: IntCounter,
    /// Time each model took to load, in seconds, by model.
    pub model_load_seconds: GaugeVec,
    /// Counts inference requests by model and outcome (`success`, `fail`).
    pub inferences: IntCounterVec,
    /// Nanoseconds spent on inference requests by model and phase
    /// (`success`, `fail`: whole requests; `queue`: waiting for a slot;
    /// `compute`: running): what V2 statistics report.
    pub inference_ns: IntCounterVec,
    /// When each model last answered, in milliseconds since the epoch.
    pub last_inference_ms: IntGaugeVec,
    /// Rows of each backend call of a dynamically batched model.
    pub batch_rows: HistogramVec,
    /// Backend calls of a batched model by batch size (statistics'
    /// `batch_stats`).
    pub batches: IntCounterVec,
    /// Nanoseconds those calls took, by batch size.
    pub batch_ns: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new_custom(Some("sandscore".into()), None)?;
    let requests = IntCounterVec::new(
        Opts::new(
            "http_requests_total",
            "HTTP requests by route, model and status",
        ),
        &["route", "model", "status"],
    )?;
    let latency = HistogramVec::new(
        HistogramOpts::new(
            "http_request_duration_seconds",
            "HTTP request latency by route",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0, 30.0,
        ]),
        &["route"],
    )?;
    let in_flight = IntGauge::new("http_requests_in_flight", "HTTP requests being handled")?;
    let queue_depth = IntGauge::new(
        "queue_depth",
        "Requests waiting for a free instance or inference slot",
    )?;
    let rejected = IntCounter::new(
        "rejected_total",
        "Requests refused with 503 because the queue was full",
    )?;
    let instances_idle = IntGauge::new(
        "instances_idle",
        "Warm module instances waiting for a request",
    )?;
    let instances_created = IntCounter::new(
        "instances_created_total",
        "Module instances made (startup, replacements, isolated mode)",
    )?;
    let traps = IntCounter::new(
        "guest_traps_total",
        "Requests whose module instance trapped",
    )?;
    let timeouts = IntCounter::new(
        "guest_timeouts_total",
        "Requests stopped at the scoring deadline",
    )?;
    let model_load_seconds = GaugeVec::new(
        Opts::new("model_load_seconds", "Time each model took to load"),
        &["model"],
    )?;
    let inferences = IntCounterVec::new(
        Opts::new(
            "model_inferences_total",
            "Inference requests by model and outcome",
        ),
        &["model", "outcome"],
    )?;
    let inference_ns = IntCounterVec::new(
        Opts::new(
            "model_inference_nanoseconds_total",
            "Time spent on inference requests by model and phase (success, fail, queue, compute)",
        ),
        &["model", "phase"],
    )?;
    let last_inference_ms = IntGaugeVec::new(
        Opts::new(
            "model_last_inference_milliseconds",
            "When each model last answered, in milliseconds since the epoch",
        ),
        &["model"],
    )?;
    let batch_rows = HistogramVec::new(
        HistogramOpts::new(
            "model_batch_rows",
            "Rows of each backend call of a dynamically batched model",
        )
        .buckets(vec![
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
        ]),
        &["model"],
    )?;
    let batches = IntCounterVec::new(
        Opts::new(
            "model_batches_total",
            "Backend calls of a dynamically batched model by batch size",
        ),
        &["model", "size"],
    )?;
    let batch_ns = IntCounterVec::new(
        Opts::new(
            "model_batch_nanoseconds_total",
            "Time the backend calls of a batched model took, by batch size",
        ),
        &["model", "size"],
    )?;
    registry.register(Box::new(batch_rows.clone()))?;
    registry.register(Box::new(batches.clone()))?;
    registry.register(Box::new(batch_ns.clone()))?;
    registry.register(Box::new(inferences.clone()))?;
    registry.register(Box::new(inference_ns.clone()))?;
    registry.register(Box::new(last_inference_ms.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(latency.clone()))?;
    registry.register(Box::new(in_flight.clone()))?;
    registry.register(Box::new(queue_depth.clone()))?;
    registry.register(Box::new(rejected.clone()))?;
    registry.register(Box::new(instances_idle.clone()))?;
    registry.register(Box::new(instances_created.clone()))?;
    registry.register(Box::new(traps.clone()))?;
    registry.register(Box::new(timeouts.clone()))?;
    registry.register(Box::new(model_load_seconds.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        latency,
        in_flight,
        queue_depth,
        rejected,
        instances_idle,
        instances_created,
        traps,
        timeouts,
        model_load_seconds,
        inferences,
        inference_ns,
        last_inference_ms,
        batch_rows,
        batches,
        batch_ns,
    })
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    // The names above are fixed and valid; registration cannot fail.
    METRICS.get_or_init(|| build().expect("metric definitions are valid"))
}

impl Metrics {
    /// Counts a batch of `rows` about to run on `model`.
    pub fn observe_batch(&self, model: &str, rows: usize) {
        self.batch_rows
            .with_label_values(&[model])
            .observe(rows as f64);
    }

    /// Counts a batched backend call of `rows` that took `took`.
    pub fn batch_ran(&self, model: &str, rows: usize, took: std::time::Duration) {
        let size = rows.to_string();
        self.batches.with_label_values(&[model, &size]).inc();
        self.batch_ns
            .with_label_values(&[model, &size])
            .inc_by(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_the_metric_families() {
        metrics()
            .requests
            .with_label_values(&["/score", "", "200"])
            .inc();
        let text = metrics().render();
        assert!(
            text.contains(
                "sandscore_http_requests_total{model=\"\",route=\"/score\",status=\"200\"}"
            ),
            "{text}"
        );
        assert!(text.contains("sandscore_queue_depth"), "{text}");
    }
}

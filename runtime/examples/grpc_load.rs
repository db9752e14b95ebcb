//! gRPC load for the benchmark: CONCURRENCY clients, each on its own HTTP/2
//! connection, send ModelInfer (one row of FEATURES FP32 as raw contents)
//! to MODEL for SECONDS after a one-second warm-up, then print requests per
//! second and latency percentiles as one JSON line.
//!
//! As many client threads as wrk uses on the HTTP side (`min(connections,
//! 2)`), so gRPC and HTTP rows of the benchmark load alike.
//!
//! Usage: grpc_load HOST:PORT MODEL FEATURES SECONDS CONCURRENCY

use std::time::{Duration, Instant};

use sandscore_runtime::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use sandscore_runtime::proto::{ModelInferRequest, model_infer_request};

fn request(model: &str, features: usize) -> ModelInferRequest {
    let row: Vec<u8> = (0..features)
        .flat_map(|i| (i as f32 / features as f32).to_le_bytes())
        .collect();
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, features as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![row],
        ..Default::default()
    }
}

fn main() {
    let threads = std::env::args()
        .nth(5)
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 2);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, model, features, seconds, concurrency] = args.as_slice() else {
        eprintln!("usage: grpc_load HOST:PORT MODEL FEATURES SECONDS CONCURRENCY");
        std::process::exit(2);
    };
    let features: usize = features.parse().expect("FEATURES");
    let seconds: u64 = seconds.parse().expect("SECONDS");
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY");
    let url = format!("http://{addr}");
    let template = request(model, features);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let url = url.clone();
        let template = template.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = GrpcInferenceServiceClient::connect(url)
                .await
                .expect("connect");
            let warm = Instant::now() + Duration::from_secs(1);
            while Instant::now() < warm {
                client.model_infer(template.clone()).await.expect("warm-up");
            }
            let end = Instant::now() + Duration::from_secs(seconds);
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < end {
                let t = Instant::now();
                match client.model_infer(template.clone()).await {
                    Ok(_) => latencies.push(t.elapsed().as_secs_f64() * 1e6),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("client task");
        all.extend(l);
        errors += e;
    }
    all.sort_by(f64::total_cmp);
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "requests_per_second": all.len() as f64 / seconds as f64,
            "p50_us": at(0.5),
            "p99_us": at(0.99),
            "errors": errors,
            "concurrency": concurrency,
        })
    );
}

//! In-process cost of the sandbox: the same model run natively through ONNX
//! Runtime (same session options), through sandscore's backend, and through
//! a guest's wasi-nn calls on a warm instance; plus what an instance costs
//! per request in pooled and isolated modes. Plain harness: medians and p99
//! of individually timed iterations. Run by `make bench` (bench/run.py reads
//! the JSON lines it writes to $BENCH_OUT).
//!
//! Needs SANDSCORE_BENCH_MODELS (mlp.onnx, large.onnx), SANDSCORE_GUESTS
//! (bench_guest.wasm) and ORT_DYLIB_PATH.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sandscore_runtime::backend::onnxruntime::{OnnxRuntime, OrtOptions};
use sandscore_runtime::instance::{self, Factory, SandboxConfig, compile, ticks};
use sandscore_runtime::models::ModelRegistry;
use sandscore_runtime::tensor::{NamedTensor, Tensor, TensorType};
use sandscore_runtime::wit::{WitTensor, WitTensorType};

struct Stats {
    median_us: f64,
    p99_us: f64,
    iterations: usize,
}

/// Rounds each variant is measured in, alternating, so that drift of the
/// machine (frequency, neighbours) falls on every variant alike.
const ROUNDS: usize = 10;

type Variant<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// Times every variant for about `budget` in total each, after a warm-up,
/// one iteration at a time, interleaved in rounds.
fn measure_all(budget: Duration, variants: &mut [Variant<'_>]) -> Vec<Stats> {
    for (_, f) in variants.iter_mut() {
        let warm = Instant::now();
        while warm.elapsed() < budget / 10 {
            f();
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in variants.iter_mut().enumerate() {
            let start = Instant::now();
            while start.elapsed() < budget / ROUNDS as u32 || samples[i].len() < 5 {
                let t = Instant::now();
                f();
                samples[i].push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s[((s.len() - 1) as f64 * q) as usize];
            Stats {
                median_us: at(0.5),
                p99_us: at(0.99),
                iterations: s.len(),
            }
        })
        .collect()
}

fn measure(budget: Duration, f: impl FnMut()) -> Stats {
    let mut one: [Variant<'_>; 1] = [("", Box::new(f))];
    measure_all(budget, &mut one).remove(0)
}

fn input(features: usize, rows: usize) -> Vec<f32> {
    (0..features * rows)
        .map(|i| ((i % 97) as f32 * 0.013).sin())
        .collect()
}

/// Whether `name` on `model` is selected by BENCH_ONLY (a substring of
/// "NAME MODEL"; unset runs everything).
fn selected(name: &str, model: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| format!("{name} {model}").contains(&only))
}

fn main() {
    let models =
        PathBuf::from(std::env::var("SANDSCORE_BENCH_MODELS").expect("SANDSCORE_BENCH_MODELS"));
    let guests = PathBuf::from(std::env::var("SANDSCORE_GUESTS").expect("SANDSCORE_GUESTS"));
    let out_path = std::env::var("BENCH_OUT").unwrap_or_else(|_| "/dev/stdout".into());
    let budget = Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000),
    );
    let module = guests.join("bench_guest.wasm");
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .expect("BENCH_OUT");
    let mut report = |name: &str, model: &str, s: &Stats| {
        println!(
            "{name:<34} {model:<6} median {:>9.2} us  p99 {:>9.2} us  ({} runs)",
            s.median_us, s.p99_us, s.iterations
        );
        let line = serde_json::json!({"bench": name, "model": model, "median_us": s.median_us, "p99_us": s.p99_us, "iterations": s.iterations});
        writeln!(out, "{line}").expect("write");
    };

    // One ORT environment per process: the native sessions come from the
    // same backend the guest path uses.
    let ort = Arc::new(
        OnnxRuntime::new(OrtOptions {
            intra_op_threads: 1,
            max_sessions: 1,
            ..OrtOptions::default()
        })
        .expect("ORT options"),
    );
    let backends = sandscore_runtime::backend::Backends::new(vec![ort.clone()]);
    let registry = Arc::new(ModelRegistry::load_dir(&models, &backends).expect("models"));
    let sandbox = SandboxConfig::default();
    let engine = instance::engine(&sandbox).expect("engine");
    let (component, _) = compile::load(&engine, &module, None).expect("module");
    let factory = Factory::new(
        engine,
        &component,
        Arc::clone(&registry),
        backends.clone(),
        Some(&models),
        sandbox,
    )
    .expect("link");
    let mut worker = factory.instantiate().expect("instance");

    for (model, features) in [("mlp", 64usize), ("large", 1024)] {
        let x = input(features, 1);
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();

        // Native: an ORT session with the same options, tensor in, output read.
        let file = std::fs::read(models.join(format!("{model}.onnx"))).expect("model file");
        let mut session = ort.native_session(&file).expect("session");
        // sandscore's backend (bytes in, bytes out), no guest.
        let graph = Arc::clone(&registry.get(model).expect("model").graph);
        // Through the guest: infer → wasi-nn compute, on a warm instance.
        let wit = vec![WitTensor {
            name: "input".into(),
            shape: vec![1, features as u32],
            datatype: WitTensorType::Fp32,
            data: bytes.clone(),
        }];
        let worker = &mut worker;
        let mut variants: Vec<Variant<'_>> = vec![
            (
                "native ORT session.run",
                Box::new(|| {
                    let t = ort::value::Tensor::from_array(([1usize, features], x.clone()))
                        .expect("tensor");
                    let o = session.run(ort::inputs!["input" => t]).expect("run");
                    let (_, data) = o[0].try_extract_tensor::<f32>().expect("output");
                    std::hint::black_box(data.len());
                }),
            ),
            (
                "sandscore backend (no guest)",
                Box::new(|| {
                    let t = Tensor::new(vec![1, features as u32], TensorType::Fp32, bytes.clone())
                        .expect("tensor");
                    std::hint::black_box(
                        graph
                            .compute(
                                vec![NamedTensor {
                                    name: "input".into(),
                                    tensor: t,
                                }],
                                None,
                            )
                            .expect("compute"),
                    );
                }),
            ),
            (
                "guest wasi-nn (pooled instance)",
                Box::new(|| {
                    worker
                        .store
                        .set_epoch_deadline(ticks(Duration::from_secs(60)));
                    let r = worker
                        .scorer
                        .call_infer(&mut worker.store, model, &wit)
                        .expect("no trap")
                        .expect("no error");
                    std::hint::black_box(r);
                }),
            ),
        ];
        variants.retain(|(name, _)| selected(name, model));
        let names: Vec<&str> = variants.iter().map(|(n, _)| *n).collect();
        let stats = measure_all(budget, &mut variants);
        drop(variants);
        for (name, s) in names.into_iter().zip(&stats) {
            report(name, model, s);
        }
    }

    // Per-request instance cost: isolated mode makes (and inits) an instance
    // per request and drops it; pooled mode reuses one.
    if selected("instantiate + init + drop (isolated)", "-") {
        report(
            "instantiate + init + drop (isolated)",
            "-",
            &measure(budget, || {
                std::hint::black_box(factory.instantiate().expect("instance"));
            }),
        );
    }
}

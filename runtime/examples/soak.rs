//! Soak client: keeps a running sandscore server saturated for a fixed time
//! over loopback, then prints answers by kind and the server's resident
//! memory at start and end. Started by `make soak` (scripts/soak.sh).
//!
//! Usage: soak URL SERVER_PID MINUTES CONCURRENCY

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

fn rss_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, pid, minutes, concurrency] = &args[..] else {
        eprintln!("usage: soak URL SERVER_PID MINUTES CONCURRENCY");
        std::process::exit(2);
    };
    let minutes: f64 = minutes.parse().expect("MINUTES is a number");
    let concurrency: usize = concurrency.parse().expect("CONCURRENCY is a number");
    let deadline = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let row: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let score = json!({ "data": [row] }).to_string();
    let infer =
        json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]})
            .to_string();
    let counts: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
    let start_rss = rss_mib(pid);
    let started = Instant::now();
    println!(
        "soak: {concurrency} clients for {minutes} min against {url}; server RSS at start {start_rss:.1} MiB"
    );
    std::thread::scope(|s| {
        for worker in 0..concurrency {
            let (agent, counts, score, infer) = (&agent, &counts, &score, &infer);
            s.spawn(move || {
                let mut n = worker;
                while Instant::now() < deadline {
                    n += concurrency;
                    // Mostly good requests; every 50th is malformed on purpose.
                    let (kind, path, body) = match n % 50 {
                        0 => ("malformed", "/score", "{\"data\": [".to_string()),
                        k if k % 2 == 0 => ("score", "/score", score.clone()),
                        _ => ("v2-infer", "/v2/models/mlp/infer", infer.clone()),
                    };
                    let key = match agent
                        .post(format!("{url}{path}"))
                        .header("content-type", "application/json")
                        .send(&body)
                    {
                        Ok(r) => format!("{kind} {}", r.status().as_u16()),
                        Err(e) => format!("{kind} transport error: {e}"),
                    };
                    if let Ok(mut c) = counts.lock() {
                        *c.entry(key).or_default() += 1;
                    }
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let end_rss = rss_mib(pid);
    let counts = counts.into_inner().unwrap_or_default();
    let total: u64 = counts.values().sum();
    println!(
        "{total} requests in {seconds:.0} s ({:.0} req/s)",
        total as f64 / seconds
    );
    for (k, v) in &counts {
        println!("  {k:<40} {v}");
    }
    println!("server RSS: start {start_rss:.1} MiB, end {end_rss:.1} MiB");
    let unexpected: u64 = counts
        .iter()
        .filter(|(k, _)| !(k.ends_with(" 200") || k.as_str() == "malformed 400"))
        .map(|(_, v)| v)
        .sum();
    if unexpected > 0 {
        println!("{unexpected} unexpected answers");
        std::process::exit(1);
    }
}

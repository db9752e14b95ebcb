//! Operating the server: metrics, JSON logs, graceful shutdown, admission
//! control, and the HTTP-level limits a public endpoint needs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, guest, serve_module};
use serde_json::{Value, json};

fn hostile(extra: &[&str]) -> Server {
    serve_module("hostile", None, extra)
}

/// Sends raw bytes, then reads until the server closes or `wait` passes.
fn raw(server: &Server, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(server.base.trim_start_matches("http://")).expect("connect");
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn metrics_count_requests_traps_timeouts_and_model_loads() {
    let server = hostile(&["--timeout", "300", "--workers", "1"]);
    assert_eq!(
        server
            .post_json("/score", &json!({"action": "count"}))
            .status,
        200
    );
    assert_eq!(
        server
            .post_json("/score", &json!({"action": "panic"}))
            .status,
        500
    );
    assert_eq!(
        server
            .post_json("/score", &json!({"action": "loop"}))
            .status,
        504
    );
    let r = server.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let text = r.text;
    for needle in [
        "sandscore_http_requests_total{model=\"\",route=\"/score\",status=\"200\"} 1",
        "sandscore_http_requests_total{model=\"\",route=\"/score\",status=\"500\"} 1",
        "sandscore_http_requests_total{model=\"\",route=\"/score\",status=\"504\"} 1",
        "sandscore_guest_traps_total 1",
        "sandscore_guest_timeouts_total 1",
        "sandscore_model_load_seconds{model=\"mlp\"}",
        "sandscore_http_request_duration_seconds_bucket{route=\"/score\"",
        "sandscore_queue_depth 0",
        "sandscore_http_requests_in_flight 1",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // The trapped and timed-out instances are replaced in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .get("/metrics")
        .text
        .contains("sandscore_instances_idle 1")
    {
        assert!(Instant::now() < deadline, "the pool was not refilled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn json_logs_carry_the_request_id_on_every_line() {
    let g = guest("hostile");
    let server = Server::try_start_env(
        &[
            "--module",
            g.to_str().unwrap(),
            "--log-format",
            "json",
            "--access-log",
            "on",
        ],
        &[("RUST_LOG", "info")],
    )
    .expect("start");
    let r = server.post_json_with_id("/score", &json!({"action": "stdout"}), "json-log-1");
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::sleep(Duration::from_millis(200));
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let mine: Vec<&Value> = lines
        .iter()
        .filter(|l| l.to_string().contains("json-log-1"))
        .collect();
    assert!(
        mine.len() >= 3,
        "guest stdout, guest stderr and the request line: {log}"
    );
    assert!(
        mine.iter().any(
            |l| l["fields"]["message"] == "hello from the guest's stdout"
                && l["fields"]["request_id"] == "json-log-1"
        ),
        "{log}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let mut server = hostile(&[]);
    let url = server.url("/score");
    let slow = std::thread::spawn(move || {
        let mut r = common::agent()
            .post(&url)
            .header("content-type", "application/json")
            .send(json!({"action": "sleep", "mb": 1500}).to_string())
            .expect("in-flight request");
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    });
    std::thread::sleep(Duration::from_millis(400));
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let (status, body) = slow.join().expect("join");
    assert_eq!(status, 200, "the in-flight request completes: {body}");
    assert_eq!(body, json!({"slept_ms": 1500}).to_string());
    let exit = server.wait();
    assert_eq!(exit.code(), Some(0), "exit status after drain");
}

#[test]
fn past_the_queue_requests_are_refused_at_once_with_503() {
    let server = hostile(&["--workers", "1", "--max-queue", "1"]);
    let slow = |ms: u64| {
        let url = server.url("/score");
        std::thread::spawn(move || {
            common::agent()
                .post(&url)
                .header("content-type", "application/json")
                .send(json!({"action": "sleep", "mb": ms}).to_string())
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    };
    let running = slow(1500);
    std::thread::sleep(Duration::from_millis(300));
    let queued = slow(10);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = server.post_json("/score", &json!({"action": "count"}));
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refused at once, not after waiting"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("at capacity"),
        "{}",
        r.text
    );
    assert_eq!(running.join().unwrap(), 200);
    assert_eq!(queued.join().unwrap(), 200, "the queued request was served");
}

#[test]
fn slow_clients_and_oversized_heads_are_cut_off() {
    let server = hostile(&[
        "--header-timeout",
        "500",
        "--body-timeout",
        "500",
        "--max-header",
        "16",
    ]);

    // Slowloris: headers that never finish.
    let started = Instant::now();
    let reply = raw(
        &server,
        b"POST /score HTTP/1.1\r\nhost: x\r\nx-slow: ",
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connection held for {:?}",
        started.elapsed()
    );
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );

    // A body that trickles.
    let reply = raw(
        &server,
        b"POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"act",
        Duration::from_secs(10),
    );
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("did not arrive within"), "{reply}");

    // A head over the 16 KiB cap.
    let big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let reply = raw(&server, big.as_bytes(), Duration::from_secs(10));
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

    // Still serving.
    assert_eq!(
        server
            .post_json("/score", &json!({"action": "count"}))
            .status,
        200
    );
}

#[test]
fn non_utf8_and_wrongly_typed_bodies_are_400() {
    let server = hostile(&[]);
    let r = server.post(
        "/v2/models/mlp/infer",
        "application/json",
        vec![0xff, 0xfe, 0x00, 0x7b],
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = server.post("/score", "application/json", vec![0xff, 0xfe, 0x00, 0x7b]);
    assert_eq!(r.status, 400, "{}", r.text);
    let r = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": [{"name": "input", "shape": "1,64", "datatype": "FP32", "data": []}]}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = server.post_json(
        "/v2/models/mlp/infer",
        &json!({"inputs": {"name": "input"}}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let r = server.post_json("/v2/models/mlp/infer", &json!([1, 2, 3]));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        server
            .post_json("/score", &json!({"action": "count"}))
            .status,
        200
    );
}

#[test]
fn the_access_log_is_off_by_default_and_sampled_on_request_and_failures_are_logged_anyway() {
    let count = |log: &str, what: &str| log.lines().filter(|l| l.contains(what)).count();
    let server = Server::try_start_env(&[], &[("RUST_LOG", "info")]).expect("start");
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let r = server.get("/v2/health/live");
            assert_eq!(r.status, 200);
            r.header("x-request-id").expect("an id").to_string()
        })
        .collect();
    // Made ids are distinct UUIDs (version 4 in form).
    assert_ne!(ids[0], ids[1]);
    // Azure ML's headers: the request id as x-ms-request-id, the client's
    // own id echoed.
    let r = server.get_with_headers(
        "/v2/health/live",
        &[
            ("x-request-id", "abc-1"),
            ("x-ms-client-request-id", "client-7"),
        ],
    );
    assert_eq!(r.header("x-ms-request-id"), Some("abc-1"));
    assert_eq!(r.header("x-ms-client-request-id"), Some("client-7"));
    // An id of other characters is not echoed into the answer's headers.
    let r = server.get_with_headers("/v2/health/live", &[("x-ms-client-request-id", "a b<i>")]);
    assert_eq!(r.header("x-ms-client-request-id"), None);
    for id in &ids {
        let u = uuid_parts(id);
        assert!(u.len() == 5 && u[2].starts_with('4'), "{id}");
    }
    let failing = hostile(&["--timeout", "300", "--access-log", "off"]);
    assert_eq!(
        failing
            .post_json("/score", &json!({"action": "panic"}))
            .status,
        500
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(&server.log(), "request done"), 0, "{}", server.log());
    assert_eq!(
        count(&failing.log(), "scoring failed status=500"),
        1,
        "{}",
        failing.log()
    );
    // One request in two (the harness's readiness probes count too; of
    // four requests in a row, two); probes themselves only at debug.
    let sampled =
        Server::try_start_env(&["--access-log", "2"], &[("RUST_LOG", "info")]).expect("start");
    for _ in 0..4 {
        assert_eq!(sampled.get("/v2").status, 200);
    }
    for _ in 0..4 {
        assert_eq!(sampled.get("/v2/health/live").status, 200);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        count(
            &sampled.log(),
            "path=/v2}: sandscore_runtime::http: request done"
        ),
        2,
        "{}",
        sampled.log()
    );
    assert_eq!(
        count(&sampled.log(), "path=/v2/health/"),
        0,
        "{}",
        sampled.log()
    );
    let bad = Server::try_start(&["--access-log", "sometimes"])
        .err()
        .expect("refused");
    assert!(bad.contains("'sometimes' is not off, on, or N"), "{bad}");
}

fn uuid_parts(id: &str) -> Vec<&str> {
    id.split('-').collect()
}

#!/usr/bin/env python3
"""Writes docs/BENCHMARKS.md and docs/benchmarks.png from bench/run.py's results.

Usage: report.py RESULTS.json DOCS_DIR
"""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except Exception as e:
        return f"unknown ({e})"


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


DURATION_NOTE = "each round: a warm-up, then the load run"


def main():
    res = json.loads(Path(sys.argv[1]).read_text())
    docs = Path(sys.argv[2])
    docs.mkdir(exist_ok=True)
    http, inproc = res["http"], res["inprocess"]
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    lines = ["# Benchmarks", "",
             "Every number below comes from one run of `make bench` on one machine, servers one after another, "
             "so ratios within a table are comparable; absolute numbers move with the machine and its neighbours.", "",
             "## Machine and versions", "",
             f"- CPU: {cpu()}, {os.cpu_count()} cores; memory {mem_kib / 1048576:.0f} GiB; {platform.system()} {platform.release()}",
             f"- sandscore {res.get('sandscore_version', '0.1.0')}, wasmtime 48.0.8, ONNX Runtime 1.32.0 (same library and session options everywhere: 1 intra-op thread, all graph optimisations)",
             f"- peers: {', '.join(res.get('peer_versions', []))}",
             f"- load generator: {version(['wrk', '-v']) or 'wrk'} (threads = min(connections, 2)), on the same machine; "
             "gRPC rows: `runtime/examples/grpc_load.rs` (tonic, the same thread count, one HTTP/2 connection per client, "
             "ModelInfer with raw input contents)",
             "- command: `make bench` (BENCH_SECONDS per load run after a warm-up; see the Makefile)", "",
             "## In-process: the sandbox's cost per inference", "",
             "Batch 1. *native* is an ONNX Runtime session with sandscore's session options called directly; *backend* is "
             "sandscore's backend without a guest (bytes in, bytes out); *guest* is a warm instance's `infer` calling wasi-nn "
             "`compute` (what a pooled request runs).", "",
             "| model | native median | backend median | guest median | guest p99 | guest / native | guest − native |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in ["mlp", "large"]:
        n = find(inproc, bench="native ORT session.run", model=model)
        b = find(inproc, bench="sandscore backend (no guest)", model=model)
        g = find(inproc, bench="guest wasi-nn (pooled instance)", model=model)
        if n and b and g:
            lines.append(f"| {model} | {n['median_us']:.2f} µs | {b['median_us']:.2f} µs | {g['median_us']:.2f} µs | {g['p99_us']:.2f} µs | "
                         f"{g['median_us'] / n['median_us']:.3f}× | {g['median_us'] - n['median_us']:+.2f} µs |")
    inst = find(inproc, bench="instantiate + init + drop (isolated)")
    if inst:
        lines += ["", f"Per-request instance cost: pooled mode reuses a warm instance (no cost beyond the call above); "
                  f"isolated mode makes, initialises and drops one per request: median {inst['median_us']:.1f} µs, p99 {inst['p99_us']:.1f} µs "
                  "(bench_guest's `init` does nothing; a module's own `init` adds to this)."]
    lines += ["", "## Over HTTP on loopback", "",
              f"Each cell: {res.get('duration', 8)} s of load after a {res.get('warmup', 2)} s warm-up; one request = one row "
              "(small: 64 features → 10; large: 1024 → 1024 through four 1024×1024 layers). sandscore runs 2 workers.", "",
              "| server | model | connections | req/s | p50 | p99 | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in http:
        lines.append(f"| {r['server']} | {r['model']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['errors']} |")
    lines += ["", "### Ratios (same run)", "", "| comparison | model | connections | throughput ratio | p99 (sandscore vs peer) |", "| --- | --- | ---: | ---: | --- |"]
    pairs = [("sandscore /score (module)", "Azure ML server (default workers)"), ("sandscore /score (module)", "Azure ML server (WORKER_COUNT=2)"),
             ("sandscore V2 infer (no module)", "MLServer V2 infer"),
             ("sandscore V2 gRPC (no module)", "MLServer V2 gRPC"),
             ("sandscore V2 gRPC (no module)", "sandscore V2 infer (no module)"),
             ("sandscore V2 infer, binary tensors (no module)", "sandscore V2 infer (no module)"),
             ("sandscore /score (Python module)", "Azure ML server, same score.py natively (WORKER_COUNT=2)"),
             ("sandscore /score (Python module)", "sandscore /score (module)"),
             ("sandscore /score (Python runtime)", "Azure ML server, same score.py natively (WORKER_COUNT=2)"),
             ("sandscore /score (Python runtime)", "sandscore /score (Python module)"),
             ("sandscore V2 infer (no module)", "plain native server (serde_json + ort)"),
             ("sandscore /score (module)", "plain native server (serde_json + ort)"),
             ("sandscore V2 infer, dynamic batching (no module)", "plain native server (serde_json + ort)")]
    for ours, peer in pairs:
        for model in ["mlp", "large"]:
            for c in [1, 16]:
                a, b = find(http, server=ours, model=model, concurrency=c), find(http, server=peer, model=model, concurrency=c)
                if a and b and b["rps"] > 0:
                    lines.append(f"| {ours} / {peer} | {model} | {c} | {a['rps'] / b['rps']:.1f}× | {a['p99_ms']:.2f} vs {b['p99_ms']:.2f} ms |")
    for c in [1, 16]:
        a, b = find(http, server="sandscore /score (module)", model="mlp", concurrency=c), find(http, server="bare hyper (ceiling)", concurrency=c)
        if a and b:
            lines.append(f"| sandscore /score / bare hyper ceiling | mlp | {c} | {a['rps'] / b['rps']:.2f}× | {a['p99_ms']:.2f} vs {b['p99_ms']:.2f} ms |")
    floor = res.get("floor", [])
    if floor:
        lines += ["", "### Against the plain native server (alternating rounds)", "",
                  "The plain native server (`runtime/examples/native_server.rs`: hyper, serde_json into typed structs, "
                  "ONNX Runtime through `ort`, two sessions, no sandbox) and sandscore's paths, one after another for "
                  f"three rounds at 16 connections; the median of each. ({DURATION_NOTE})", "",
                  "| server | model | req/s | p99 | / native | p99 / native's |", "| --- | --- | ---: | ---: | ---: | ---: |"]
        for r in floor:
            n = find(floor, server="plain native server (serde_json + ort)", model=r["model"])
            ratio = f"{r['rps'] / n['rps']:.2f}×" if n and n["rps"] > 0 else "-"
            p99 = f"{r['p99_ms'] / n['p99_ms']:.2f}×" if n and n["p99_ms"] > 0 else "-"
            lines.append(f"| {r['server']} | {r['model']} | {r['rps']:.0f} | {r['p99_ms']:.2f} ms | {ratio} | {p99} |")
    lines += ["", "![throughput and p99 per server](benchmarks.png)", "", "## Cold start", "",
              "Process exec → first successful score of the small model, median of several runs. sandscore and the "
              "Azure ML server load the small model only; MLServer loads both models of its repository.", "",
              "| server | median | runs |", "| --- | ---: | ---: |"]
    for c in res["cold"]:
        lines.append(f"| {c['server']} | {c['median_ms']:.0f} ms | {c['runs']} |")
    lines += ["", "## Memory", "", "Resident memory after load, summed over the server's processes.", "", "| server | RSS |", "| --- | ---: |"]
    for m in res["memory"]:
        lines.append(f"| {m['server']} | {m['rss_mib']:.0f} MiB |")
    analysis = ROOT / "bench" / "ANALYSIS.md"
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    (docs / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in http if r["concurrency"] == 16]
    labels = [f"{r['server']}\n{r['model']}" for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 7))
    a1.barh(labels, [r["rps"] for r in rows], color="#3b7dd8")
    a1.set_xlabel("requests/s (16 connections)")
    a1.set_xscale("log")
    a1.invert_yaxis()
    a2.barh(labels, [r["p99_ms"] for r in rows], color="#d8703b")
    a2.set_xlabel("p99 latency, ms (16 connections)")
    a2.set_xscale("log")
    a2.invert_yaxis()
    a2.set_yticklabels([])
    fig.suptitle("sandscore and peers, same machine, same run")
    fig.tight_layout()
    fig.savefig(docs / "benchmarks.png", dpi=110)
    print(f"wrote {docs / 'BENCHMARKS.md'} and {docs / 'benchmarks.png'}")


if __name__ == "__main__":
    main()

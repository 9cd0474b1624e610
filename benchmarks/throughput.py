"""Throughput benchmark: the real operator code path, end to end, against a latency-injecting sandbox.

Each scenario starts the RevCent sandbox as its own process (``python -m revcent_sandbox``, so it
does not share the client's interpreter) with injected latency and a chosen number of customers
in one 89-day window, then runs ``CustomersToBigQueryOperator.execute`` in a fresh child process
into the local BigQuery-API server, and reads the child's peak RSS and the sandbox's counters.

Scenarios (all in one run):

* ``concurrent``: latency 50 ms +- 20 ms, ``max_concurrency`` 8, no rate limit;
* ``zero-latency``: the same against a sandbox without latency;
* ``sequential``: latency as in ``concurrent``, ``max_concurrency`` 1 (how peer tools page);
* ``rate-limited``: a sandbox that answers 429 above R requests/s, client limit set to R;
* ``rate-adaptive``: the same sandbox, client with no limit (adaptive back-off alone);
* ``rss-small`` / ``rss-large``: peak RSS at 20,000 and 100,000 customers (zero latency).

Usage: ``./dev bench [--customers 20000] [--large 100000] [--rate 20] [--only concurrent,sequential]``.
Results are printed and written to ``.local/bench/results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from devtools import localbq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".local" / "bench"
API_KEY = "bench-sandbox-key"
WINDOW_START = date(2026, 1, 1)
WINDOW_END = WINDOW_START + timedelta(days=89)  # exactly one default window


@dataclass
class Scenario:
    name: str
    customers: int
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rate_limit: float = 0.0
    max_concurrency: int = 8
    max_requests_per_second: float = 0.0


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _start_sandbox(s: Scenario) -> tuple[subprocess.Popen[bytes], str]:
    ready = Path(tempfile.mkdtemp(prefix="bench-sandbox-")) / "url"
    command = [
        sys.executable, "-m", "revcent_sandbox", "--port", "0", "--api-key", API_KEY,
        "--customers", str(s.customers), "--start", WINDOW_START.isoformat(), "--end", WINDOW_END.isoformat(),
        "--latency-ms", str(s.latency_ms), "--jitter-ms", str(s.jitter_ms), "--rate-limit", str(s.rate_limit),
        "--ready-file", str(ready), "--seed", "7",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not start: {process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.1)
    return process, ready.read_text().strip()


def _stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_sandbox/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def _warm(url: str, s: Scenario) -> None:
    """Serve every page once so the sandbox has generated its customers (measure the client, not the
    sandbox's first-time generation). Skipped for rate-limited sandboxes and large stores (the
    sandbox's cache holds 50,000 customers)."""
    if s.rate_limit or s.customers > 50000:
        return
    from concurrent.futures import ThreadPoolExecutor

    def get(page: int) -> None:
        request = urllib.request.Request(
            f"{url}/v2/customers?date_start={_unix(WINDOW_START) - 1}&date_end={_unix(WINDOW_END)}"
            f"&page={page}&limit=25", headers={"x-api-key": API_KEY})
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(get, range(1, s.customers // 25 + 3)))


def run(s: Scenario, bq: localbq.LocalBigQuery) -> dict[str, Any]:
    process, url = _start_sandbox(s)
    try:
        _warm(url, s)
        urllib.request.urlopen(urllib.request.Request(f"{url}/_sandbox/reset-stats", method="POST"), timeout=10)
        time.sleep(1.1)  # let a rate-limited sandbox's bucket refill
        config = {
            "sandbox_url": url, "api_key": API_KEY, "bq_connection": bq.connection_uri_json(),
            "table": f"bench.{s.name.replace('-', '_')}_{int(time.time())}",
            "date_start": WINDOW_START.isoformat(), "date_end": WINDOW_END.isoformat(),
            "max_concurrency": s.max_concurrency, "max_requests_per_second": s.max_requests_per_second,
        }
        child = subprocess.run([sys.executable, "-m", "benchmarks._run_once", json.dumps(config)], cwd=ROOT,
                               capture_output=True, text=True, check=False)
        lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            raise SystemExit(f"scenario {s.name} failed:\n{child.stdout[-3000:]}\n{child.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
        stats = _stats(url)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    extract = result["extract_seconds"]
    result.update({
        "scenario": s.name, "customers": s.customers, "sandbox_requests": stats["requests"],
        "throttled": stats.get("throttled", 0),
        "requests_per_second": result["requests"] / extract if extract else 0.0,
        "records_per_second": result["records_loaded"] / result["wall_seconds"],
        "extract_records_per_second": result["records_loaded"] / extract if extract else 0.0,
    })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--large", type=int, default=100000)
    parser.add_argument("--rate", type=float, default=20.0, help="the rate-limited sandbox's R (requests/s)")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    args = parser.parse_args(argv)
    n = args.customers
    scenarios = [
        Scenario("concurrent", n, 50, 20),
        Scenario("zero-latency", n),
        Scenario("sequential", n, 50, 20, max_concurrency=1),
        Scenario("rate-limited", n, 50, 20, rate_limit=args.rate, max_requests_per_second=args.rate),
        Scenario("rate-adaptive", n, 50, 20, rate_limit=args.rate),
        Scenario("rss-small", n),
        Scenario("rss-large", args.large),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        scenarios = [s for s in scenarios if s.name in wanted]
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    with localbq.running(data_dir=Path(tempfile.mkdtemp(prefix="bench-bq-"))) as bq:
        for scenario in scenarios:
            print(f"running {scenario.name} ({scenario.customers} customers) ...", flush=True)
            results[scenario.name] = r = run(scenario, bq)
            print(f"  wall {r['wall_seconds']:.1f} s (extract {r['extract_seconds']:.1f} s, "
                  f"load {r['load_seconds']:.1f} s)"
                  f" | {r['requests']} requests, {r['requests_per_second']:.1f} req/s | {r['records_loaded']} records,"
                  f" {r['records_per_second']:.0f} rec/s | 429s {r['throttled']} | peak RSS {r['peak_rss_mb']:.0f} MB",
                  flush=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    _report(results, args.rate)
    return 0


def _report(results: dict[str, dict[str, Any]], rate: float) -> None:
    print("\nsummary")
    con, zero, seq = (results.get(k) for k in ("concurrent", "zero-latency", "sequential"))
    if con and zero:
        latency_cost = con["wall_seconds"] - zero["wall_seconds"]
        pages = con["requests"]
        print(f"  latency cost (concurrent - zero-latency): {latency_cost:.1f} s for {pages} requests; "
              f"target <= {pages * 0.060 / 5:.1f} s (one fifth of {pages} x 60 ms)")
    if con and seq:
        print(f"  sequential paging: extract {seq['extract_seconds']:.1f} s vs concurrent "
              f"{con['extract_seconds']:.1f} s"
              f" -> {seq['extract_seconds'] / con['extract_seconds']:.1f}x faster (wall {seq['wall_seconds']:.1f} s vs"
              f" {con['wall_seconds']:.1f} s)")
    for name in ("rate-limited", "rate-adaptive"):
        r = results.get(name)
        if r:
            share = r["throttled"] / max(1, r["sandbox_requests"])
            print(f"  {name}: {r['requests_per_second']:.1f} req/s = {r['requests_per_second'] / rate:.2f} R "
                  f"(R = {rate:g}/s), 429s {r['throttled']} of {r['sandbox_requests']} = {share:.1%}")
    small, large = results.get("rss-small"), results.get("rss-large")
    if small and large:
        print(f"  peak RSS: {small['peak_rss_mb']:.0f} MB at {small['customers']} customers, "
              f"{large['peak_rss_mb']:.0f} MB"
              f" at {large['customers']} customers ({large['peak_rss_mb'] / small['peak_rss_mb'] - 1:+.1%})")


if __name__ == "__main__":
    sys.exit(main())

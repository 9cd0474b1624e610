"""Measure issue 19: a resumed attempt's requests against the first's, and peak local disk of a run.

One sandbox (in this process) and the local BigQuery server serve every measurement; each measurement runs
the operator in a child process (``--child``), so the code measured is whatever ``PYTHONPATH`` names: this
checkout, or another one (``--before /work/main`` measures main's code the same way, for the figures
"before"). Peak disk is sampled from outside the child (the size of its ``tmp_dir`` every 20 ms), so it
means the same for code that has no counter of its own.

* ``resume``: a run over 8 windows whose attempt 1 fails (a spent retry budget) after 80 % of its pages;
  attempt 2 of the same run: requests of each, and their ratio.
* ``disk``: one run of ``--customers`` (default 100,000) over 4 windows: peak bytes of its files.

Usage: ``PYTHONPATH=$PWD .venv/bin/python -m devtools.measure_resume [--customers 100000] [--before DIR]
[--only disk] [--repeat N]`` (``--repeat``: the disk run N times per checkout, before and after alternating,
for wall times on a shared machine).
Measurements, not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "measure-sandbox-key"
START = date(2026, 1, 1)


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def child(config: dict[str, Any]) -> None:
    """One operator run (or a failed attempt and its retry) in this process; prints one RESULT line."""
    from types import SimpleNamespace

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="revcent-measure-airflow-"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    os.environ["AIRFLOW_CONN_REVCENT_DEFAULT"] = json.dumps({
        "conn_type": "revcent", "host": config["sandbox_url"], "password": API_KEY,
        "extra": {"max_concurrency": 4, "max_requests_per_second": 0}})
    os.environ["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"] = config["bq_connection"]

    from airflow_revcent.exceptions import RevCentRetryBudgetExceeded
    from airflow_revcent.hooks.revcent import RevCentHook
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    sent: list[int] = [0]
    fail_after = [config.get("fail_after") or 1 << 40]
    original = RevCentHook.get_page

    def get_page(hook: Any, *args: Any, **kwargs: Any) -> Any:
        if sent[0] >= fail_after[0]:
            raise RevCentRetryBudgetExceeded("measure_resume: injected outage")
        sent[0] += 1
        return original(hook, *args, **kwargs)

    RevCentHook.get_page = get_page  # type: ignore[method-assign,assignment]
    requests = []
    for attempt in (1, 2) if config.get("fail_after") else (1,):
        operator = CustomersToBigQueryOperator(
            task_id="measure", destination_table=config["table"], date_start=config["date_start"],
            date_end=config["date_end"], window_size=timedelta(days=config["window_days"]), tmp_dir=config["tmp"])
        ti = SimpleNamespace(dag_id="measure", task_id="measure", map_index=-1, try_number=attempt)
        sent[0] = 0
        started = time.monotonic()
        try:
            context: Any = {"run_id": "measure__" + config["table"], "ti": ti}  # a plain dict stands in for Context
            summary = operator.execute(context)
        except RevCentRetryBudgetExceeded:
            summary = {"failed": True}
        summary["wall_seconds"] = round(time.monotonic() - started, 1)
        requests.append(sent[0])
        fail_after[0] = 1 << 40
    print("RESULT " + json.dumps({"requests": requests, "summary": summary}), flush=True)


def _folder_bytes(folder: Path) -> int:
    total = 0
    # os.walk skips a folder removed while it is walked (rglob raises): windows' folders come and go.
    for parent, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".ndjson"):
                with contextlib.suppress(OSError):  # removed while being measured
                    total += os.stat(os.path.join(parent, name)).st_size
    return total


@contextlib.contextmanager
def peak_folder_bytes(folder: Path) -> Iterator[list[int]]:
    """Sample the NDJSON bytes under ``folder`` every 20 ms while the block runs; the peak is ``[0]`` of what
    it yields (read it after the block)."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _folder_bytes(folder))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def _run_child(config: dict[str, Any], code: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="revcent-measure-"))
    config = {**config, "tmp": str(tmp)}
    env = dict(os.environ, PYTHONPATH=f"{code}{os.pathsep}{ROOT}")
    # The child is this module, from this checkout (ROOT second on the path: only airflow_revcent comes
    # from `code`).
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)],
                               cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with peak_folder_bytes(tmp) as peak:
        output, _ = process.communicate()
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"the measured run failed ({code}):\n{output[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    result["sampled_peak_bytes"] = peak[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=100_000, help="customers of the disk run")
    parser.add_argument("--resume-customers", type=int, default=20_000, help="customers of the resume run")
    parser.add_argument("--before", type=Path, help="another checkout whose code gives the 'before' figures")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--only", choices=("resume", "disk"), help="one measurement only")
    parser.add_argument("--repeat", type=int, default=1, help="disk runs per checkout (alternating)")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    sys.path.insert(0, str(ROOT))
    from devtools import localbq

    bq = localbq.start()
    results: dict[str, Any] = {}
    try:
        codes = {"after": ROOT, **({"before": args.before} if args.before else {})}
        if args.only != "disk":
            _measure_resume(args, bq, codes, results)
        if args.only != "resume":
            _measure_disk(args, bq, codes, results)
    finally:
        bq.stop()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def _measure_resume(args: Any, bq: Any, codes: dict[str, Path], results: dict[str, Any]) -> None:
    from revcent_sandbox import CustomerStore, SandboxServer

    # Resume: 8 windows of 7 days; attempt 1 fails after 80 % of the run's pages.
    end = START + timedelta(days=56)
    store = CustomerStore(seed=19, count=args.resume_customers, start=_unix(START), end=_unix(end))
    with SandboxServer(store, api_key=API_KEY).start() as server:
        pages = sum(max(1, math.ceil(len(store.truth(_unix(START + timedelta(days=7 * i)) - 1,
                                                      _unix(START + timedelta(days=7 * i + 7)) + 1)) / 25))
                    for i in range(8))
        for label, code in codes.items():
            config = {"sandbox_url": server.url, "bq_connection": bq.connection_uri_json(),
                      "table": f"measure.resume_{label}_{int(time.time())}", "date_start": START.isoformat(),
                      "date_end": end.isoformat(), "window_days": 7, "fail_after": int(pages * 0.8)}
            result = _run_child(config, code)
            first, second = result["requests"]
            results[f"resume_{label}"] = {"pages": pages, "attempt1_requests": first, "attempt2_requests": second,
                                          "ratio": round(second / first, 3),
                                          "attempt2_seconds": result["summary"].get("wall_seconds")}
            print(f"resume ({label}): {pages} pages in 8 windows; attempt 1 sent {first} requests and failed, "
                  f"attempt 2 sent {second}: ratio {second / first:.2f}", flush=True)


def _measure_disk(args: Any, bq: Any, codes: dict[str, Path], results: dict[str, Any]) -> None:
    from revcent_sandbox import CustomerStore, SandboxServer

    # Disk: --customers over 4 windows of 22 days.
    end = START + timedelta(days=88)
    store = CustomerStore(seed=20, count=args.customers, start=_unix(START), end=_unix(end))
    with SandboxServer(store, api_key=API_KEY).start() as server:
        for round_, (label, code) in enumerate([item for _ in range(args.repeat) for item in codes.items()]):
            config = {"sandbox_url": server.url, "bq_connection": bq.connection_uri_json(),
                      "table": f"measure.disk_{label}_{round_}_{int(time.time())}",
                      "date_start": START.isoformat(), "date_end": end.isoformat(), "window_days": 22}
            result = _run_child(config, code)
            summary = result["summary"]
            key = f"disk_{label}" if args.repeat == 1 else f"disk_{label}_{round_ // len(codes) + 1}"
            results[key] = {
                "customers": summary.get("records_loaded"), "windows": summary.get("windows"),
                "sampled_peak_bytes": result["sampled_peak_bytes"],
                "counted_peak_bytes": summary.get("peak_disk_bytes"), "seconds": summary.get("wall_seconds")}
            print(f"disk ({label}): {summary.get('records_loaded')} customers in {summary.get('windows')} windows, "
                  f"peak {result['sampled_peak_bytes'] / 1e6:.1f} MB on disk (sampled)"
                  + (f", {summary['peak_disk_bytes'] / 1e6:.1f} MB (the run's own counter)"
                     if summary.get("peak_disk_bytes") else "")
                  + f", {summary.get('wall_seconds')} s", flush=True)


if __name__ == "__main__":
    main()

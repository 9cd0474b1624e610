"""Run the sandbox as a process: ``python -m revcent_sandbox --help``.

Prints one line ``revcent sandbox listening on URL (N customers)`` when ready,
optionally writes the URL to ``--ready-file``, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import FrameType

from revcent_sandbox.data import CustomerStore
from revcent_sandbox.faults import FAULT_KINDS, MIXED_KINDS, FaultPlan
from revcent_sandbox.messy import MESSY_MODES
from revcent_sandbox.resources import resources_for
from revcent_sandbox.server import SandboxServer


def _utc_date(text: str) -> int:
    """An ISO date (``2026-01-01``) as the unix second of its UTC midnight."""
    try:
        day = dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from exc
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown fault kind(s) {unknown}; known: {','.join(FAULT_KINDS)}")
    return kinds


def _max_shifts(text: str) -> int | None:
    return None if text.lower() in ("none", "unlimited") else int(text)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m revcent_sandbox",
        description="Local fake of RevCent's list resources (GET /v2/customers, /v2/sales, ...) and "
        "their OpenAPI document (/v2/openapi.json).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--api-key", default="sandbox-key")
    parser.add_argument(
        "--customers", type=int, default=500, help="generated customers (edge cases come on top)"
    )
    parser.add_argument("--start", type=_utc_date, default=_utc_date("2026-01-01"), help="ISO date, UTC")
    parser.add_argument(
        "--end", type=_utc_date, default=_utc_date("2026-12-01"), help="ISO date, UTC, exclusive"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--messy-values",
        choices=MESSY_MODES,
        default="none",
        help="landing: a few customers carry values a real API sends (lone surrogates, year-1/9999 and "
        "leap-second dates, float-artifact and huge money); out-of-range: also values no column holds",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=0.0, help="requests per second; 0 = unlimited")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="probability of a fault per attempt")
    parser.add_argument(
        "--faults",
        type=_kinds,
        default=MIXED_KINDS,
        help=f"kinds sharing --fault-rate (default {','.join(MIXED_KINDS)})",
    )
    parser.add_argument("--max-faults-per-request", type=int, default=3)
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--slow-ms", type=float, default=1500.0)
    parser.add_argument("--shift-size", type=int, default=5)
    parser.add_argument("--max-shifts", type=_max_shifts, default=3, help="an integer or 'none' (unlimited)")
    parser.add_argument(
        "--end-exclusive", action="store_true", help="date_end is exclusive (default inclusive)"
    )
    parser.add_argument("--order", choices=("asc", "desc"), default="desc")
    parser.add_argument("--page-base", type=int, choices=(0, 1), default=1)
    parser.add_argument(
        "--items-per-resource",
        type=_count,
        default=200,
        help="generated items of each other list resource (sales, transactions, api_calls, tax, functions); "
        "0 serves customers alone",
    )
    parser.add_argument("--ready-file", help="write the URL here once listening")
    parser.add_argument("--log-level", default="WARNING")
    return parser


def _write_atomically(path: str, text: str) -> None:
    # A watcher polling for the file must never read it half-written.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ready-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    store = CustomerStore(
        seed=args.seed,
        count=args.customers,
        start=args.start,
        end=args.end,
        messy=args.messy_values,
    )
    faults = None
    if args.fault_rate > 0:
        faults = FaultPlan.mixed(
            args.seed,
            args.fault_rate,
            args.faults,
            max_faults_per_request=args.max_faults_per_request,
            hang_seconds=args.hang_seconds,
            slow_ms=args.slow_ms,
            shift_size=args.shift_size,
            max_shifts=args.max_shifts,
        )
    server = SandboxServer(
        store,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_limit=args.rate_limit,
        faults=faults,
        end_inclusive=not args.end_exclusive,
        order=args.order,
        page_base=args.page_base,
        seed=args.seed,
        resources=resources_for(store, args.items_per_resource),
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    try:
        print(f"revcent sandbox listening on {server.url} ({len(store)} customers)", flush=True)
        if args.ready_file:
            _write_atomically(args.ready_file, server.url + "\n")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        if args.ready_file:
            with contextlib.suppress(FileNotFoundError):
                os.remove(args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())

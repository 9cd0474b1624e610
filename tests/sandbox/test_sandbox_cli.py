"""``python -m revcent_sandbox`` as a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration  # every test here runs the sandbox as a subprocess

ROOT = Path(__file__).resolve().parents[2]
JAN_1 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400


def _spawn(ready: Path, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "revcent_sandbox", "--port", "0", "--ready-file", str(ready), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], ready: Path, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            return ready.read_text(encoding="utf-8").strip()
        if proc.poll() is not None:
            raise AssertionError(f"sandbox exited early: {proc.communicate()}")
        time.sleep(0.02)
    raise AssertionError("sandbox did not become ready")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_serves_and_stops_on_sigterm(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    ready = tmp_path / "ready"
    proc = _spawn(
        ready,
        *("--api-key", "cli-key", "--customers", "50", "--start", "2026-01-01", "--end", "2026-03-01"),
        *("--seed", "3", "--order", "asc", "--page-base", "0", "--end-exclusive"),
    )
    processes.append(proc)
    url = _wait_ready(proc, ready)
    assert url.startswith("http://127.0.0.1:")
    with requests.Session() as http:
        params = {"date_start": JAN_1, "date_end": JAN_1 + 2 * DAY, "page": 0, "limit": 25}
        body = http.get(f"{url}/v2/customers", params=params, headers={"x-api-key": "cli-key"}, timeout=10).json()
        assert body["code"] == 1
        assert body["current_page"] == 0
        created = [c["created_date_unix"] for c in body["results"]]
        assert created == sorted(created)
        assert created[0] == JAN_1
        assert JAN_1 + 2 * DAY not in created  # --end-exclusive
        assert http.get(f"{url}/v2/customers", params=params, timeout=10).status_code == 401
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines == [f"revcent sandbox listening on {url} (81 customers)"]  # 50 + 31 edge cases
    assert "cli-key" not in out + err
    assert not ready.exists()


def test_cli_faults_and_sigint(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    ready = tmp_path / "ready"
    proc = _spawn(ready, "--fault-rate", "1", "--faults", "500", "--max-faults-per-request", "1")
    processes.append(proc)
    url = _wait_ready(proc, ready)
    params = {"date_start": JAN_1, "date_end": JAN_1 + DAY, "page": 1, "limit": 5}
    headers = {"x-api-key": "sandbox-key"}
    with requests.Session() as http:
        assert http.get(f"{url}/v2/customers", params=params, headers=headers, timeout=10).status_code == 500
        assert http.get(f"{url}/v2/customers", params=params, headers=headers, timeout=10).status_code == 200
        assert http.get(f"{url}/_sandbox/stats", timeout=10).json()["faults"] == {"500": 1}
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 0


def test_cli_rejects_unknown_fault_kind(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "revcent_sandbox", "--faults", "500,teapot"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "teapot" in result.stderr

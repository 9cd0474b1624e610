"""`./dev demo --keep` as a place to explore: what it prints works as printed, and SIGTERM stops both servers."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, with an error status
    except OSError:
        return False


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """The demo's output lines up to and including the first one after ``marker`` that ends its block."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    start: int | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError("the demo ended before printing what to explore:\n" + "\n".join(seen[-60:]))
        seen.append(line)
        if marker in line:
            start = len(seen) - 1
        if start is not None and "revcent_customers_table" in line:  # the block's last line
            return seen[start:]
    raise AssertionError(f"no '{marker}' within {timeout:.0f} s:\n" + "\n".join(seen[-60:]))


def _command(block: list[str], needle: str) -> str:
    found = [line.strip().removeprefix("$ ") for line in block if line.strip().startswith("$ ") and needle in line]
    assert len(found) == 1, block
    return found[0]


@pytest.mark.timeout(600)
def test_demo_keep_prints_working_commands_and_sigterm_stops_both_servers(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "devtools.demo", "--keep", "--days", "1", "--customers", "150",
         "--state", str(tmp_path / "demo")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    bq_pid = None
    try:
        block = _read_until(demo, "Kept running", timeout=420)
        text = "\n".join(block)
        bq_line = next(line for line in block if "BigQuery-API server" in line)
        bq_url = bq_line.split()[2]
        bq_pid = int(bq_line.split("(pid ")[1].split(")")[0])
        sandbox_url = next(line for line in block if "RevCent sandbox" in line).split()[2].rstrip(":")
        assert "project demo, dataset revcent, table demo.revcent.customers" in text
        assert "API key demo-sandbox-key" in text

        # Each printed command works as printed, from another directory.
        def shell(command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=240, check=False)

        queried = shell(_command(block, "/queries"))
        assert queried.returncode == 0, queried.stderr
        answer = json.loads(queried.stdout)
        assert answer["jobComplete"] is True and int(answer["totalRows"]) == 5, answer
        customers = shell(_command(block, "x-api-key"))
        assert customers.returncode == 0 and json.loads(customers.stdout)["code"] == 1, customers.stdout[-500:]
        rerun = shell(_command(block, "dags test"))
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
        assert "Loaded" in rerun.stdout + rerun.stderr

        assert _answers(f"{bq_url}/bigquery/v2/projects/demo/datasets") and _answers(sandbox_url)
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 0
        assert not _answers(f"{bq_url}/bigquery/v2/projects/demo/datasets"), "the BigQuery-API server still runs"
        assert not _answers(sandbox_url)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        if bq_pid is not None:  # its own process group: only the demo's own stop ends it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(bq_pid, signal.SIGKILL)

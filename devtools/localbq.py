"""A real BigQuery-API server on this machine, for the demo, the tests and the benchmark.

It is PyPI's ``local-bigquery`` (FastAPI + DuckDB) that the official ``google-cloud-bigquery``
client talks to unchanged. It needs Python >= 3.13, so it runs as a separate process from its
own virtual environment in ``.local/bq-venv``, built on first use from a Python 3.13 found on
PATH or under pyenv (never a hard-coded path). Offline it needs DuckDB's extensions from their
PyPI wheels, registered before the server starts (``_bq_serve.py``).

Usage::

    python -m devtools.localbq setup              # build the venv (idempotent)
    python -m devtools.localbq serve --port 9050  # run until interrupted
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".local" / "bq-venv"
PACKAGES = (
    "local-bigquery==0.4.0",
    "duckdb==1.5.5",
    "duckdb-extension-ducklake==1.5.5",
    "duckdb-extension-icu==1.5.5",
    "duckdb-extension-spatial==1.5.5",
)
DEFAULT_PROJECT = "demo"


class LocalBigQueryError(RuntimeError):
    """The local BigQuery-API server could not be set up or started."""


def find_python313() -> str:
    """A Python 3.13 interpreter: on PATH, or under pyenv's root."""
    candidates: list[str] = []
    on_path = shutil.which("python3.13")
    if on_path:
        candidates.append(on_path)
    pyenv = shutil.which("pyenv")
    roots = []
    if pyenv:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            roots.append(subprocess.run([pyenv, "root"], capture_output=True, text=True, check=True).stdout.strip())
    roots.append(os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv")))
    for root in roots:
        candidates += sorted(glob.glob(os.path.join(root, "versions", "3.13*", "bin", "python3.13")), reverse=True)
    for candidate in candidates:
        # A pyenv shim on PATH may exist without the version installed: ask it.
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] >= (3, 13))"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    raise LocalBigQueryError(
        "The local BigQuery-API server (PyPI local-bigquery) needs Python 3.13, and none was found on PATH "
        "(python3.13) or under pyenv (pyenv install 3.13). Install one and run again."
    )


def _stamp() -> str:
    return hashlib.sha256("\n".join(PACKAGES).encode()).hexdigest()[:16]


def venv_python() -> Path:
    return VENV / "bin" / "python"


def setup(*, quiet: bool = True) -> Path:
    """Build ``.local/bq-venv`` with local-bigquery and DuckDB's extensions (skipped when current)."""
    stamp = VENV / ".revcent-stamp"
    if stamp.exists() and stamp.read_text() == _stamp() and venv_python().exists():
        return venv_python()
    python = find_python313()
    if VENV.exists():
        shutil.rmtree(VENV)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    print("Setting up the local BigQuery-API server (first run only) ...", file=sys.stderr, flush=True)
    if Path(uv).exists():
        _run([uv, "venv", "-q", "-p", python, str(VENV)], quiet)
        install = [uv, "pip", "install", "-q", "-p", str(venv_python())]
        _run([*install, PACKAGES[0]], quiet)
        # The extension wheels pin duckdb differently from local-bigquery: install them after it.
        _run([*install, *PACKAGES[1:]], quiet)
    else:
        _run([python, "-m", "venv", str(VENV)], quiet)
        pip = [str(venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        _run([*pip, PACKAGES[0]], quiet)
        _run([*pip, "--no-deps", *PACKAGES[1:]], quiet)
    stamp.write_text(_stamp())
    return venv_python()


def _run(command: list[str], quiet: bool) -> None:
    result = subprocess.run(command, capture_output=quiet, text=True, check=False)
    if result.returncode != 0:
        raise LocalBigQueryError(
            f"{' '.join(command[:4])} ... failed (exit {result.returncode}):\n{(result.stderr or '')[-3000:]}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalBigQuery:
    """A running server: its URL, project and process."""

    url: str
    project: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def connection_uri_json(self) -> str:
        """``AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT`` value pointing at this server."""
        return json.dumps({"conn_type": "google_cloud_platform",
                           "extra": {"project": self.project, "api_endpoint": self.url, "is_anonymous": True}})


def start(*, data_dir: Path | None = None, project: str = DEFAULT_PROJECT, port: int | None = None,
          timeout: float = 90.0) -> LocalBigQuery:
    """Start a server (building its venv first if needed) and wait until it answers."""
    python = setup()
    data = Path(data_dir or tempfile.mkdtemp(prefix="localbq-"))
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    grpc_port = free_port()
    log_path = data / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(python), str(Path(__file__).with_name("_bq_serve.py")), str(port), str(grpc_port), str(data / "db"),
             project],
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = LocalBigQuery(f"http://127.0.0.1:{port}", project, process, data, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalBigQueryError(
                f"The local BigQuery-API server exited at start; its log:\n{log_path.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/bigquery/v2/projects/{project}/datasets", timeout=2) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise LocalBigQueryError(f"The local BigQuery-API server did not answer within {timeout:.0f} s; log: {log_path}")


@contextlib.contextmanager
def running(**kwargs: object) -> Iterator[LocalBigQuery]:
    server = start(**kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.localbq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup", help="build the server's virtual environment")
    serve = sub.add_parser("serve", help="run a server until interrupted")
    serve.add_argument("--port", type=int, default=9050)
    serve.add_argument("--project", default=DEFAULT_PROJECT)
    serve.add_argument("--data-dir", type=Path, default=ROOT / ".local" / "bq-data")
    args = parser.parse_args(argv)
    if args.command == "setup":
        print(setup(quiet=False))
        return 0
    server = start(data_dir=args.data_dir, project=args.project, port=args.port)
    print(f"local BigQuery-API server on {server.url} (project {args.project})", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

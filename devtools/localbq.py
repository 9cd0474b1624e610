"""A real BigQuery-API server on this machine, for the demo, the tests and the benchmark.

It is PyPI's ``local-bigquery`` (FastAPI + DuckDB) that the official ``google-cloud-bigquery``
client talks to unchanged. It needs Python >= 3.13, so it runs as a separate process from its
own virtual environment in ``.local/bq-venv``, built on first use from a Python 3.13 found on
PATH, under pyenv or among uv's managed Pythons, else installed with ``uv python install 3.13``
(never a hard-coded path; ``$REVCENT_BQ_PYTHON`` names one). Offline it needs DuckDB's extensions from their
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


#: An interpreter to use instead of looking one up (and the way to test the look-up's other paths).
PYTHON_ENV = "REVCENT_BQ_PYTHON"


def _is_python313(candidate: str) -> bool:
    # A pyenv shim on PATH may exist without the version installed: ask the interpreter itself.
    try:
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] >= (3, 13))"],
                               capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == "True"


def _uv() -> str | None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    return uv if Path(uv).exists() else None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def find_python313(*, install: bool = True) -> str:
    """A Python 3.13 interpreter: ``$REVCENT_BQ_PYTHON``, else on PATH, under pyenv's root or among uv's
    managed Pythons, else (``install``) one that ``uv python install 3.13`` installs. Says which it took."""
    explicit = os.environ.get(PYTHON_ENV)
    if explicit:
        if _is_python313(explicit):
            return explicit
        raise LocalBigQueryError(f"{PYTHON_ENV}={explicit} is not a Python 3.13 interpreter (or does not run).")
    for candidate in _path_and_pyenv_candidates():
        if _is_python313(candidate):
            return candidate
    uv = _uv()
    if uv is None:
        raise LocalBigQueryError(
            "The local BigQuery-API server (PyPI local-bigquery) needs Python 3.13: none was found on PATH "
            "(python3.13) or under pyenv, and uv is not installed to fetch one (./dev installs it into .venv). "
            f"Install Python 3.13 (pyenv install 3.13, or uv python install 3.13), or set {PYTHON_ENV}."
        )
    found = _uv_find(uv)
    if found:
        return found
    if not install:
        raise LocalBigQueryError("No Python 3.13 on PATH, under pyenv or among uv's managed Pythons.")
    _say("No Python 3.13 on PATH or under pyenv (the local BigQuery-API server needs it): "
         "installing one with `uv python install 3.13` ...")
    result = subprocess.run([uv, "python", "install", "3.13"], capture_output=True, text=True, check=False)
    found = _uv_find(uv) if result.returncode == 0 else None
    if not found:
        raise LocalBigQueryError(
            "The local BigQuery-API server (PyPI local-bigquery) needs Python 3.13. None was found on PATH "
            f"(python3.13) or under pyenv, and `uv python install 3.13` failed (exit {result.returncode}):\n"
            f"{(result.stderr or result.stdout)[-2000:].strip()}\n"
            f"Install Python 3.13 yourself (pyenv install 3.13, or your system's package), or set {PYTHON_ENV} "
            "to its interpreter, and run again."
        )
    _say(f"Installed Python 3.13 with uv: {found}")
    return found


def _path_and_pyenv_candidates() -> list[str]:
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
    return candidates


def _uv_find(uv: str) -> str | None:
    """uv's own Python 3.13 (``uv python install`` puts it in ``uv python dir``), if it has one."""
    result = subprocess.run([uv, "python", "find", "--managed-python", "3.13"], capture_output=True, text=True,
                            check=False)
    found = result.stdout.strip()
    return found if result.returncode == 0 and found and _is_python313(found) else None


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
    _say(f"Setting up the local BigQuery-API server (first run only) with Python 3.13 at {python} ...")
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
    server = start(**kwargs)  # type: ignore[arg-type]  # start()'s keyword arguments, passed through
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
        try:
            print(setup(quiet=False))
        except LocalBigQueryError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    server = start(data_dir=args.data_dir, project=args.project, port=args.port)
    print(f"local BigQuery-API server on {server.url} (project {args.project})", flush=True)
    # sigwait only receives signals that are blocked; unblocked, SIGTERM would kill this process at once and
    # leave the server running. Blocked after start(): the server inherits no blocked mask.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

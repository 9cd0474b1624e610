"""Test-wide set-up: an isolated Airflow home, configured before anything imports Airflow."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Airflow reads its configuration at import: set it first, in a private home per session.
_home = tempfile.mkdtemp(prefix="revcent-test-airflow-")
os.environ["AIRFLOW_HOME"] = _home
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
# Airflow puts the DAGs folder on sys.path wherever it parses or runs DAG files (the sample DAGs import
# their shared PII settings, dags/revcent_pii.py); tests that load a DAG file directly need the same.
if str(ROOT / "dags") not in sys.path:
    sys.path.append(str(ROOT / "dags"))


@contextlib.contextmanager
def running_sandboxes(api_key: str) -> Iterator[Callable[..., Any]]:
    """A function that starts RevCent sandboxes (with ``api_key`` unless given); all stop on exit."""
    from revcent_sandbox import SandboxServer

    started: list[Any] = []

    def start(store: Any, **options: Any) -> Any:
        options.setdefault("api_key", api_key)
        server = SandboxServer(store, **options).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()

"""docker-compose.yml, checked offline (no Docker engine runs on our machines): the compose schema,
and that every file, command and environment variable it references exists."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_is_valid_against_the_compose_spec():
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_airflow_services_of_the_official_layout_are_there(compose):
    services = compose["services"]
    for name in ("postgres", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                 "airflow-init"):
        assert name in services, name
    assert {s for s, spec in services.items() if "sandbox" in spec.get("profiles", [])} == {
        "revcent-sandbox", "local-bigquery", "sandbox-trigger"}
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "./dags:/opt/airflow/dags" in services["airflow-scheduler"]["volumes"]


def test_every_build_file_and_copied_path_exists(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            assert ":" in service["image"], f"{name}: images are pinned to a tag"
            continue
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.exists(), dockerfile
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY"):
                sources = [p for p in shlex.split(line)[1:-1] if not p.startswith("--")]
                for source in sources:
                    assert (ROOT / build["context"] / source).exists(), f"{dockerfile.name}: COPY {source}"
            if line.startswith("FROM"):
                assert re.fullmatch(r"FROM [\w./-]+:[\w.-]+", line.strip()), f"pinned base image: {line}"


def test_sandbox_and_bigquery_commands_are_accepted_by_their_programs(compose):
    from revcent_sandbox.__main__ import build_parser

    sandbox = compose["services"]["revcent-sandbox"]
    line = next(x for x in (ROOT / "docker/sandbox.Dockerfile").read_text().splitlines() if x.startswith("ENTRYPOINT"))
    entry = json.loads(line.removeprefix("ENTRYPOINT"))
    assert entry[:3] == ["python", "-m", "revcent_sandbox"]
    build_parser().parse_args(entry[3:] + sandbox["command"])  # raises SystemExit on an unknown option
    serve = (ROOT / "devtools/_bq_serve.py").read_text()
    assert "sys.argv[5]" in serve  # the container passes a bind host


@pytest.mark.parametrize("service", ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                                     "airflow-triggerer", "airflow-init", "sandbox-trigger"])
def test_airflow_commands_are_real_cli_commands(compose, service):
    from airflow.cli.cli_parser import get_parser

    command = compose["services"][service]["command"]
    text = command if isinstance(command, str) else command[-1] if command[0] == "bash" else " ".join(command)
    for part in re.split(r"&&", text):
        args = shlex.split(part.strip())
        if args and args[0] == "airflow":
            args = args[1:]
        parsed = get_parser().parse_args(args)
        assert parsed.func is not None


def test_environment_names_match_what_the_dag_and_hooks_read(compose):
    env = compose["x-airflow-common"]["environment"]
    dag = (ROOT / "dags/revcent_customers_to_bigquery.py").read_text()
    assert "revcent_customers_table" in dag and "AIRFLOW_VAR_REVCENT_CUSTOMERS_TABLE" in env
    assert "AIRFLOW_CONN_REVCENT_DEFAULT" in env and "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT" in env
    assert "http://revcent-sandbox:8089" in env["AIRFLOW_CONN_REVCENT_DEFAULT"]
    assert "http://local-bigquery:9050" in env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]
    # The local server takes no credentials: the connection must say so (an api_endpoint alone keeps them on).
    value = env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"].strip()
    default = json.loads(value[value.index(":-") + 2:-1])  # ${NAME:-default}
    assert default["extra"]["is_anonymous"] is True
    assert "sandbox-key" in " ".join(compose["services"]["revcent-sandbox"]["command"])


def test_the_sample_dags_opt_into_the_pool_that_the_init_creates(compose):
    from airflow_revcent import API_POOL, API_POOL_ENV

    env = compose["x-airflow-common"]["environment"]
    assert env[API_POOL_ENV] == API_POOL
    init = compose["services"]["airflow-init"]["command"][-1]
    slots = re.search(rf"airflow pools set {API_POOL} (\d+) ", init)
    assert slots, init
    value = env["AIRFLOW_CONN_REVCENT_DEFAULT"].strip()
    connection = json.loads(value[value.index(":-") + 2:-1])  # ${NAME:-default}
    assert connection["extra"]["account_pool_slots"] == int(slots.group(1))

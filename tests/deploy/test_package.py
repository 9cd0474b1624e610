"""A clean package: the reference is current, the version lives in one place, the wheel installs alone."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import airflow_revcent

ROOT = Path(__file__).resolve().parents[2]


def test_reference_doc_is_generated_from_the_current_code_and_spec():
    from devtools.gen_reference import TARGET, render

    assert TARGET.read_text() == render(), "docs/reference.md is stale: run python -m devtools.gen_reference"


def test_the_version_lives_in_one_place():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "airflow_revcent.__version__" in pyproject
    assert re.fullmatch(r"\d+\.\d+\.\d+", airflow_revcent.__version__)
    assert f"## {airflow_revcent.__version__}" in (ROOT / "CHANGELOG.md").read_text()
    assert airflow_revcent.get_provider_info()["versions"] == [airflow_revcent.__version__]


@pytest.mark.slow
@pytest.mark.integration  # runs the installed wheel's `airflow providers list`
def test_wheel_and_sdist_build_and_the_wheel_installs_without_dev_extras(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(dist), str(ROOT)],
                           capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    wheel = next(dist.glob("airflow_provider_revcent-*.whl"))
    assert next(dist.glob("airflow_provider_revcent-*.tar.gz"))
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    install = subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), str(wheel)],
                             capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import airflow_revcent, importlib.resources as r;"
         "from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator;"
         "from airflow_revcent.rows.columns import table_columns;"
         "assert r.files('airflow_revcent').joinpath('py.typed').is_file();"
         "print(airflow_revcent.__version__, len(table_columns()))"],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.split()[-2] == airflow_revcent.__version__
    for dev_only in ("pytest", "ruff", "mypy"):
        missing = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {dev_only}"], capture_output=True,
                                 check=False, cwd=tmp_path)
        assert missing.returncode != 0, f"{dev_only} should not be installed by the wheel"
    providers = subprocess.run([str(venv / "bin" / "airflow"), "providers", "list"], capture_output=True, text=True,
                               env=env, check=False, cwd=tmp_path)
    assert "airflow-provider-revcent" in providers.stdout, providers.stderr[-2000:]

    # The sample DAGs come with the wheel, byte for byte the repository's; the documented copy step puts
    # them in a DAGs folder where they parse with nothing but the wheel installed.
    with zipfile.ZipFile(wheel) as archive:
        packaged = {Path(n).name: archive.read(n) for n in archive.namelist()
                    if n.startswith("airflow_revcent/sample_dags/")}
    assert packaged == {p.name: p.read_bytes() for p in (ROOT / "dags").glob("*.py")}
    dags = tmp_path / "home" / "dags"
    copied = subprocess.run([str(venv / "bin" / "python"), "-m", "airflow_revcent.samples", str(dags)],
                            capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr[-2000:]
    assert sorted(p.name for p in dags.glob("*.py")) == sorted(packaged)
    parsed = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         # Airflow puts the DAGs folder on sys.path (its bundle DagBag does), so the DAGs import their shared
         # dags/revcent_pii.py; a plain DagBag does not, so do what Airflow does.
         "import sys; sys.path.append(sys.argv[1]); from airflow.dag_processing.dagbag import DagBag;"
         "bag = DagBag(sys.argv[1]);"
         "assert not bag.import_errors, bag.import_errors; print(sorted(bag.dag_ids))", str(dags)],
        capture_output=True, text=True, env=env, check=False, cwd=tmp_path)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    assert "revcent_customers_to_bigquery" in parsed.stdout and "revcent_customers_full_refresh" in parsed.stdout
    assert "revcent_resources_to_bigquery" in parsed.stdout

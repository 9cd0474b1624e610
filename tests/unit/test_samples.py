"""What a new user gets without set-up: the sample DAGs' pool is opt-in, and the DAG files can be copied."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import airflow_revcent
from airflow_revcent import API_POOL, API_POOL_ENV, DEFAULT_POOL, api_pool
from airflow_revcent.samples import copy_sample_dags, main, sample_dags_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("value", "pool"), [
    (None, DEFAULT_POOL), ("", DEFAULT_POOL), ("  ", DEFAULT_POOL), (API_POOL, API_POOL),
    (" team_revcent ", "team_revcent"),
])
def test_the_api_pool_is_named_only_when_the_environment_names_one(monkeypatch, value, pool):
    monkeypatch.delenv(API_POOL_ENV, raising=False)
    if value is not None:
        monkeypatch.setenv(API_POOL_ENV, value)
    assert api_pool() == pool


def test_the_sample_dags_use_the_opt_in_pool_not_a_fixed_name():
    # A DAG that names the pool itself would wait forever on an Airflow where nobody created it
    # (the scheduler test, tests/integration/test_backfill.py, shows it; this says which line to fix).
    pools = [line.strip() for path in sorted((ROOT / "dags").glob("*.py"))
             for line in path.read_text().splitlines() if re.match(r"\s*pool\s*=", line)]
    assert pools and set(pools) == {"pool=api_pool(),"}


def test_the_sample_dags_come_from_the_checkout_in_a_source_install():
    # The test environment is an editable install: the files are the repository's dags/.
    assert sample_dags_dir() == ROOT / "dags"
    assert airflow_revcent.__file__  # the package itself is the checkout's


def test_copy_creates_the_folder_and_copies_every_sample(tmp_path):
    target = tmp_path / "airflow" / "dags"
    outcome = copy_sample_dags(target)
    names = sorted(p.name for p in (ROOT / "dags").glob("*.py"))
    assert sorted(p.name for p in outcome["copied"]) == names
    assert "revcent_customers_to_bigquery.py" in names
    for name in names:
        assert (target / name).read_bytes() == (ROOT / "dags" / name).read_bytes()
    again = copy_sample_dags(target)
    assert again["copied"] == [] and again["kept"] == [] and len(again["unchanged"]) == len(names)


def test_copy_keeps_an_edited_file_unless_asked_to_overwrite(tmp_path, capsys):
    copy_sample_dags(tmp_path)
    edited = tmp_path / "revcent_customers_to_bigquery.py"
    edited.write_text("# my own version\n")
    assert main([str(tmp_path)]) == 1
    assert edited.read_text() == "# my own version\n"
    assert "--overwrite" in capsys.readouterr().err
    assert main([str(tmp_path), "--overwrite"]) == 0
    assert edited.read_bytes() == (ROOT / "dags" / edited.name).read_bytes()
    assert f"copied    {edited}" in capsys.readouterr().out

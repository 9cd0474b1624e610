from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from airflow_revcent.resources.cli import main
from airflow_revcent.rows.columns import customer_columns
from tests.unit.resources.synthetic import synthetic_document


@pytest.fixture
def spec(tmp_path) -> str:
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(synthetic_document()), encoding="utf-8")
    return str(path)


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_lists_the_packaged_customers_by_default():
    code, text = _run("resources")
    assert code == 0
    assert "the packaged GetCustomers operation" in text
    [row] = [line for line in text.splitlines() if "GetCustomers" in line and "/v2/" in line]
    assert row.split()[:5] == ["customers", "GetCustomers", "/v2/customers", "90", "days"]


def test_lists_a_documents_resources_and_marks_the_unlandable(spec):
    code, text = _run("resources", "--spec", spec)
    assert code == 0
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "2 days" in rows["api_calls"] and "7 days" in rows["ai_memos"]
    assert "not landable" in rows["functions"]
    assert "CreateSale" not in text and "GetSale " not in text


def test_shows_how_a_resource_would_land(spec):
    code, text = _run("resources", "tax", "--spec", spec)
    assert code == 0
    assert "tax (GetTaxes): GET https://api.revcent.com/v2/tax" in text
    assert "pages until a short page" in text
    assert any(line.split()[:3] == ["amount", "NUMERIC", "NULLABLE"] for line in text.splitlines())
    assert any(line.split()[:3] == ["_created_at", "TIMESTAMP", "REQUIRED"] for line in text.splitlines())


def test_json_for_the_packaged_customers_matches_the_columns():
    code, text = _run("resources", "GetCustomers", "--json")
    assert code == 0
    shown = json.loads(text)
    assert (shown["path"], shown["max_window_days"], shown["has_total_pages"]) == ("/v2/customers", 90, True)
    top = [c["name"] for c in shown["columns"] if "." not in c["name"]]
    assert top == [c.name for c in customer_columns()]
    assert {"name": "status_filter", "accepts": "list of string in enabled, disabled, blocked, fraud, chargeback"} in (
        shown["filters"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("resources", "chargebacks"), "has no list resource 'chargebacks'. The list resources it offers: customers"),
        (("resources", "--spec", "https://api.revcent.com/v2/openapi.json"), "is a URL"),
        (("resources", "--spec", "missing.json"), "Cannot read the OpenAPI document 'missing.json'"),
    ],
)
def test_errors_exit_2_with_the_reason(argv, message, capsys):
    code, _ = _run(*argv)
    assert code == 2
    assert message in capsys.readouterr().err


def test_runs_as_a_module(spec):
    done = subprocess.run([sys.executable, "-m", "airflow_revcent", "resources", "sales", "--spec", spec],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "currency_filter" in done.stdout and "list of string in USD, EUR, GBP" in done.stdout


def test_the_listing_names_an_operation_it_cannot_read(tmp_path):
    document = synthetic_document()
    document["paths"]["/v2/tax"]["get"]["responses"] = {"200": {"$ref": "#/components/responses/Gone"}}
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    code, text = _run("resources", "--spec", str(path), "--json")
    assert code == 0
    listed = json.loads(text)
    assert "tax" not in [r["name"] for r in listed["resources"]] and "sales" in [r["name"] for r in listed["resources"]]
    [bad] = listed["unreadable"]
    assert (bad["operation_id"], bad["path"]) == ("GetTaxes", "/v2/tax")
    assert "'#/components/responses/Gone', which points at nothing" in bad["error"]
    code, text = _run("resources", "--spec", str(path))
    assert "Not readable: GetTaxes (/v2/tax):" in text


def test_the_command_and_the_resources_import_neither_airflow_nor_google():
    code = ("import sys, airflow_revcent.resources, airflow_revcent.api.filters, airflow_revcent.resources.cli\n"
            # Only modules with code: older google packages' *-nspkg.pth files create the empty namespace modules
            # google and google.cloud at interpreter start-up, before anything of ours is imported.
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'google')\n"
            "             and m not in ('google', 'google.cloud')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"

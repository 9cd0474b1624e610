"""The README and docs/reference.md against the code: every operator argument and every connection extra the
code reads is in their tables, the generated parts are current, and what they say a column or a setting is
matches what the code does. The truth comes from the code itself (signatures, the modules that read the
extras), not from the generator, so a generator that forgets something fails here too."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import airflow_revcent
from airflow_revcent.api import options as options_module
from airflow_revcent.api import settings as settings_module
from airflow_revcent.bigquery import connection as gcp_module

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
REFERENCE = (ROOT / "docs" / "reference.md").read_text()


def _string_args(module: object, call: str, position: int) -> set[str]:
    """The string constants passed as argument ``position`` to calls of ``call`` (a name or an attribute)."""
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or len(node.args) <= position:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        arg = node.args[position]
        if name == call and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value)
    return found


def operator_arguments() -> set[str]:
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    parameters = inspect.signature(CustomersToBigQueryOperator.__init__).parameters.values()
    return {p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


def generic_operator_arguments() -> set[str]:
    """RevCentToBigQueryOperator's arguments: the preset's without its named filters, plus resource and filters."""
    from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator

    parameters = inspect.signature(RevCentToBigQueryOperator.__init__).parameters.values()
    return {p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


def test_the_generic_operators_arguments_are_documented():
    names = generic_operator_arguments()
    assert {"resource", "filters", "openapi_spec"} <= names
    assert not names - table_names(section(REFERENCE, "## RevCentToBigQueryOperator"), first_column=True)
    # The README documents what the generic operator adds; the rest are the preset's (same table).
    readme = (table_names(section(README, "## Other RevCent resources"), first_column=True)
              | table_names(section(README, "## The operator"), first_column=True))
    assert not names - readme, f"README lists no {sorted(names - readme)}: run python -m devtools.gen_reference"


def revcent_extras() -> set[str]:
    """What the hook's settings read from the connection's extras: by name in settings.py, and every request
    option (an option left unset is read from the extra of its name)."""
    read = _string_args(settings_module, "pick", 0) | _string_args(settings_module, "get", 0)
    read = {name for name in read if not name.startswith("extra__")}
    assert read, "the settings module reads no extra by name any more: update this test"
    return read | set(options_module.REQUEST_OPTION_NAMES) | set(settings_module.KNOWN_EXTRAS)


def gcp_extras() -> set[str]:
    """What bigquery/connection.py reads from a google_cloud_platform connection's extras."""
    read = _string_args(gcp_module, "_extra", 1)
    assert {"project", "keyfile_dict", "impersonation_chain"} <= read
    return read | set(gcp_module.PROVIDER_ONLY) | set(gcp_module.KEY_OPTIONS)


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = markdown.splitlines()
    start = lines.index(heading)
    fenced = False  # a "# comment" in a shell block is no heading
    for end in range(start + 1, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", lines[end]):
            return "\n".join(lines[start + 1:end])
    return "\n".join(lines[start + 1:])


def table_names(text: str, *, first_column: bool) -> set[str]:
    """Backticked names in the rows of the markdown tables of ``text`` (in their first cell, or anywhere)."""
    names = set()
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = line.strip("|").split("|")
        for code in re.findall(r"`([^`]+)`", cells[0] if first_column else line):
            names.add(code)
    return names


def test_the_truth_is_read_from_the_code():
    assert {"destination_table", "request_options", "pii", "tmp_dir"} <= operator_arguments()
    assert {"request_timeout", "stall_timeout", "retry_initial_backoff", "account_pool_slots", "timeout",
            "verify"} <= revcent_extras()
    assert {"key_secret_project_id", "quota_project_id", "scope", "api_endpoint"} <= gcp_extras()


@pytest.mark.parametrize(("document", "heading"), [(README, "## The operator"),
                                                  (REFERENCE, "## CustomersToBigQueryOperator")])
def test_every_operator_argument_is_in_the_table(document, heading):
    missing = operator_arguments() - table_names(section(document, heading), first_column=True)
    assert not missing, f"{heading} lists no {sorted(missing)}: run python -m devtools.gen_reference"


@pytest.mark.parametrize(("document", "heading", "extras"), [
    (README, "## Connections", revcent_extras),
    (README, "## Connections", gcp_extras),
    (REFERENCE, "## The `revcent` connection", revcent_extras),
    (REFERENCE, "## The `google_cloud_platform` connection", gcp_extras),
])
def test_every_connection_extra_the_code_reads_is_in_a_table(document, heading, extras):
    missing = extras() - table_names(section(document, heading), first_column=False)
    assert not missing, f"{heading} lists no extra {sorted(missing)}"


def test_the_readmes_generated_tables_are_current():
    from devtools.gen_reference import render_readme

    assert render_readme(README) == README, "README.md's tables are stale: run python -m devtools.gen_reference"


def test_the_troubleshooting_names_only_settings_a_user_can_set():
    # A name in backticks that looks like a setting must be one: an operator argument or a connection extra.
    settable = operator_arguments() | revcent_extras() | gcp_extras() | {"revcent_api"}  # the pool
    named = set(re.findall(r"`([a-z]+(?:_[a-z0-9]+)+)`", section(REFERENCE, "## Troubleshooting")))
    assert named and not named - settable, f"not settable: {sorted(named - settable)}"


def test_extracted_at_is_described_as_what_the_code_writes():
    # ndjson stamps each row with the time its page was received, not when the run started.
    from airflow_revcent.rows.columns import METADATA_COLUMNS

    [column] = [c for c in METADATA_COLUMNS if c.name == "_extracted_at"]
    [row] = [line for line in README.splitlines() if line.startswith("| `_extracted_at`")]
    for text in (column.description, row):
        assert "page" in text and "received" in text and "not when the run started" in text, text


def test_the_package_describes_its_connection_fields():
    # The connection form's fields are extras too: each is one the hook reads.
    assert set(airflow_revcent.CONNECTION_FIELDS) <= revcent_extras()

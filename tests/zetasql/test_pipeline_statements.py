"""Every statement the pipeline can generate, analyzed with ZetaSQL against the schemas the tables have in
each case BigQuery can meet: a fresh table, one whose RECORDs are in another order, one from an older spec
(a nested field added later, so appended at the end), a nested exclusion on an existing table, hashed and
promoted columns, a history table of another shape, and a long range in steps.

The staging schemas are built the way the destination builds them (written_columns, staging_schema,
same_shape), so a regression there shows here as a positional STRUCT mismatch or an analyzer error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from google.cloud.bigquery import SchemaField

from airflow_revcent.bigquery.destination import LOCK_SCHEMA
from airflow_revcent.bigquery.fields import (
    add_missing,
    same_shape,
    staging_schema,
    to_schema_fields,
    written_columns,
)
from airflow_revcent.bigquery.statements import (
    adoption_fill_statement,
    apply_script,
    lock_init_statement,
    lock_statement,
    orphan_ids_query,
    partition_steps,
    unplaced_rows_query,
)
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.rows.columns import HISTORY_COLUMNS, customer_columns, table_columns
from airflow_revcent.rows.drift import Promotion, add_columns
from airflow_revcent.rows.pii import PiiSettings, apply_pii

from . import Checker

DEST, HIST = TableRef("proj", "ds", "customers"), TableRef("proj", "ds", "history")
STAGE, HSTAGE = DEST.staging("k_a1"), HIST.staging("k_a1")
DAY = partition_steps(datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 5, 14, tzinfo=UTC))
LONG = partition_steps(datetime(2012, 1, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))


def _reversed(fields: Sequence[SchemaField]) -> list[SchemaField]:
    return [SchemaField(f.name, f.field_type, mode=f.mode, fields=_reversed(f.fields)[::-1]) for f in fields]


def _without(fields: Sequence[SchemaField], path: str) -> list[SchemaField]:
    head, _, rest = path.partition(".")
    return [SchemaField(f.name, f.field_type, mode=f.mode,
                        fields=_without(f.fields, rest) if f.name == head else list(f.fields))
            for f in fields if not (f.name == head and not rest)]


def _swapped_metadata(fields: Sequence[SchemaField]) -> list[SchemaField]:
    return [SchemaField(f.name, f.field_type, mode=f.mode, fields=list(f.fields)[::-1]) if f.name == "metadata"
            else f for f in fields]


def _fresh(api=None) -> list[SchemaField]:
    return to_schema_fields(table_columns(api))


def _history_of(dest: list[SchemaField]) -> list[SchemaField]:
    return [*dest, *to_schema_fields(HISTORY_COLUMNS)]


@dataclass
class Case:
    name: str
    destination: list[SchemaField]
    wanted: tuple = ()
    history: list[SchemaField] | None = None
    steps: tuple = tuple(DAY)
    key: str = "id"


def _cases() -> list[Case]:
    spec = customer_columns()
    older = _without(_fresh(), "lifetime_value.sale.amount_net")
    extended = add_missing(older, _fresh())  # what the pipeline leaves after extending it: appended at the end
    hashed = apply_pii(spec, PiiSettings((), ("email", "customer_card.last_4"), hash_key=b"k"))
    promoted = add_columns(spec, [Promotion("loyalty_tier", "STRING"), Promotion("lifetime_value.all.amount_tax",
                                                                                 "NUMERIC")])
    excluded = apply_pii(spec, PiiSettings(("customer_card.first_6", "lifetime_value.all", "status"), ()))
    return [
        Case("fresh", _fresh()),
        Case("reversed", _reversed(_fresh())),
        # A team's table whose metadata STRUCT<name, value> is swapped: the types line up, so BigQuery would
        # silently write names into values if the staging table were not shaped like it.
        Case("metadata-swapped", _swapped_metadata(_fresh())),
        Case("older-spec-extended", extended),
        Case("older-spec-not-extended", older),  # a server that refused the nested addition
        Case("nested-exclusion-on-existing", _fresh(), wanted=excluded),
        Case("hashed", _fresh(hashed), wanted=hashed),
        Case("promoted", _fresh(promoted), wanted=promoted),
        Case("history-same-shape", _fresh(), history=_history_of(_fresh())),
        Case("history-reversed", _fresh(), history=_history_of(_reversed(_fresh()))),
        Case("history-older", extended, history=_history_of(_fresh())),
        Case("long-range", _fresh(), steps=tuple(LONG)),
        Case("long-range-history-reversed", _reversed(_fresh()), history=_history_of(_reversed(_fresh())),
             steps=tuple(LONG)),
    ]


def _statements(case: Case, api: tuple | None = None) -> tuple[list[str], dict[str, list[SchemaField]]]:
    """What CustomersDestination sends for the case (of customers, or of the resource whose columns ``api``
    is), and the tables it names with their schemas."""
    wanted = case.wanted or api or customer_columns()
    columns = table_columns(written_columns(wanted, case.destination, case.history))
    names = [c.name for c in columns]
    tables = {str(DEST): case.destination, str(STAGE): staging_schema(case.destination, names),
              str(DEST.lock()): LOCK_SCHEMA}
    history_staging = None
    if case.history is not None:
        tables[str(HIST)] = case.history
        if same_shape(case.destination, case.history, names):
            history_staging = STAGE
        else:
            history_staging = HSTAGE
            tables[str(HSTAGE)] = staging_schema(case.history, names)
    sql = [
        apply_script(DEST, STAGE, names, case.steps, run_id="scheduled__2026-05-14T00:00:00+00:00",
                     history=HIST if case.history is not None else None, history_staging=history_staging,
                     key=case.key),
        lock_init_statement(DEST.lock()),
        lock_statement(DEST.lock(), None),
    ]
    return sql, tables


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.name)
def test_every_statement_is_valid_googlesql_with_no_positional_struct_mismatch(zeta: Checker, case: Case) -> None:
    statements, tables = _statements(case)
    findings = [f for sql in statements for f in zeta.analyze(sql, tables)]
    assert findings == [], "\n".join(str(f) for f in findings[:3])


def _sales_columns() -> tuple:
    """The sandbox's sales, typed from its served document: NUMERIC money, a REPEATED string list, a RECORD
    and a REPEATED RECORD (metadata), as RevCentToBigQueryOperator would type them."""
    from airflow_revcent.resources import OpenAPIDocument, find_resource
    from revcent_sandbox.openapi import build_document

    return find_resource(OpenAPIDocument(build_document("http://sandbox.invalid")), "sales").columns


def _sales_cases() -> list[Case]:
    sales = _sales_columns()
    fresh = _fresh(sales)
    older = _without(fresh, "customer.email")
    hashed = apply_pii(sales, PiiSettings((), ("customer.email",), hash_key=b"k"))
    promoted = add_columns(sales, [Promotion("channel", "STRING"), Promotion("customer.phone", "STRING")])
    return [
        Case("sales-fresh", fresh),
        Case("sales-reversed", _reversed(fresh)),
        Case("sales-metadata-swapped", _swapped_metadata(fresh)),
        Case("sales-older-extended", add_missing(older, fresh)),
        Case("sales-hashed", _fresh(hashed), wanted=hashed),
        Case("sales-promoted", _fresh(promoted), wanted=promoted),
        Case("sales-history-reversed", fresh, history=_history_of(_reversed(fresh))),
        Case("sales-long-range", _reversed(fresh), history=_history_of(fresh), steps=tuple(LONG)),
        # key_field: matched, de-duplicated and closed on another column than id.
        Case("sales-keyed-on-another-field", fresh, history=_history_of(_reversed(fresh)), key="currency"),
    ]


@pytest.mark.parametrize("case", _sales_cases(), ids=lambda c: c.name)
def test_every_statement_for_a_second_resource_is_valid_googlesql(zeta: Checker, case: Case) -> None:
    sales = _sales_columns()
    assert {"amount_total", "metadata", "customer", "product_sales"} <= {c.name for c in sales}
    statements, tables = _statements(case, api=sales)
    findings = [f for sql in statements for f in zeta.analyze(sql, tables)]
    assert findings == [], "\n".join(str(f) for f in findings[:3])


def test_the_check_catches_a_sales_staging_table_in_document_order_against_swapped_metadata(zeta: Checker) -> None:
    fresh = _fresh(_sales_columns())
    names = [c.name for c in table_columns(_sales_columns())]
    tables = {str(DEST): _swapped_metadata(fresh), str(STAGE): staging_schema(fresh, names),
              str(DEST.lock()): LOCK_SCHEMA}
    assert any(f.kind == "struct_mismatch" for f in zeta.analyze(apply_script(DEST, STAGE, names, DAY), tables))


@pytest.mark.parametrize(("shape", "kind"), [(_reversed, "error"), (_swapped_metadata, "struct_mismatch")],
                         ids=["reversed-types-differ", "swapped-types-line-up"])
def test_the_check_catches_a_staging_table_in_the_spec_order_against_a_reordered_destination(
        zeta: Checker, shape, kind) -> None:
    names = [c.name for c in table_columns()]
    tables = {str(DEST): shape(_fresh()), str(STAGE): staging_schema(_fresh(), names), str(DEST.lock()): LOCK_SCHEMA}
    findings = zeta.analyze(apply_script(DEST, STAGE, names, DAY), tables)
    assert any(f.kind == kind for f in findings), findings


#: A team's table before the pipeline touched it: a few API columns, its own partitioning column, no ``_``
#: columns (README "Tables the pipeline adopts"); and the same after the pipeline added its columns.
TEAM = [SchemaField("id", "STRING"), SchemaField("email", "STRING"), SchemaField("created_date_unix", "INTEGER"),
        SchemaField("status", "STRING"), SchemaField("loaded_at", "TIMESTAMP")]
TEAM_EXTENDED = add_missing(TEAM, _fresh())
TEAM_WITHOUT_CREATED_UNIX = [f for f in TEAM if f.name != "created_date_unix"]


@pytest.mark.parametrize(("schema", "sql"), [
    (TEAM, unplaced_rows_query(DEST, has_created_at=False, has_created_unix=True)),
    (TEAM, orphan_ids_query(DEST, has_created_at=False, has_created_unix=True)),
    (TEAM_WITHOUT_CREATED_UNIX, unplaced_rows_query(DEST, has_created_at=False, has_created_unix=False)),
    (TEAM_WITHOUT_CREATED_UNIX, orphan_ids_query(DEST, has_created_at=False, has_created_unix=False)),
    (TEAM_EXTENDED, unplaced_rows_query(DEST, has_created_at=True, has_created_unix=True)),
    (TEAM_EXTENDED, orphan_ids_query(DEST, has_created_at=True, has_created_unix=True)),
    (TEAM_EXTENDED, adoption_fill_statement(DEST)),
], ids=["count-before", "ids-before", "count-no-unix", "ids-no-unix", "count-after", "ids-after", "fill"])
def test_the_adoption_statements_are_valid_googlesql_on_a_team_table(zeta: Checker, schema, sql) -> None:
    findings = zeta.analyze(sql, {str(DEST): schema})
    assert findings == [], "\n".join(str(f) for f in findings[:3])


def test_the_check_would_catch_a_fill_of_the_wrong_type(zeta: Checker) -> None:
    # created_date_unix as STRING (a team's own choice): TIMESTAMP_SECONDS takes INT64 only.
    schema = [SchemaField("created_date_unix", "STRING") if f.name == "created_date_unix" else f
              for f in TEAM_EXTENDED]
    assert zeta.analyze(adoption_fill_statement(DEST), {str(DEST): schema})

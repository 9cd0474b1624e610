"""The offline ZetaSQL checker: analyzer errors and positional STRUCT mismatches, on hand-written
statements and on the provider's own statement generator."""

from __future__ import annotations

from google.cloud.bigquery import SchemaField as F

from tests.zetasql import Checker, Finding

AB = [F("a", "NUMERIC"), F("b", "NUMERIC")]
BA = [F("b", "NUMERIC"), F("a", "NUMERIC")]


def _table(fields: list[F]) -> list[F]:
    return [
        F("id", "STRING", "REQUIRED"),
        F("rec", "RECORD", fields=fields),
        F("arr", "RECORD", "REPEATED", fields=fields),
        F("n", "NUMERIC"),
        F("h", "STRING"),
        F("ts", "TIMESTAMP"),
        F("j", "JSON"),
    ]


DEST, SAME, REVERSED = "my-proj.ds.dest", "my-proj.ds.same", "my-proj.ds.reversed"
TABLES = {DEST: _table(AB), SAME: _table(AB), REVERSED: _table(BA)}


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


def test_correct_merge_update_and_insert_have_no_findings(zeta: Checker) -> None:
    sql = f"""
    MERGE `{DEST}` AS T USING `{SAME}` AS S ON T.id = S.id
    WHEN MATCHED AND T.h != S.h THEN UPDATE SET rec = S.rec, arr = S.arr, n = S.n
    WHEN NOT MATCHED THEN INSERT (id, rec, arr, n) VALUES (S.id, S.rec, S.arr, S.n)"""
    assert zeta.analyze(sql, TABLES) == []
    assert zeta.analyze(f"UPDATE `{DEST}` AS T SET rec = S.rec FROM `{SAME}` AS S WHERE T.id = S.id", TABLES) == []
    assert zeta.analyze(f"INSERT INTO `{DEST}` (id, rec, arr) SELECT id, rec, arr FROM `{SAME}`", TABLES) == []


def test_record_with_reversed_fields_is_a_struct_mismatch(zeta: Checker) -> None:
    findings = zeta.analyze(f"UPDATE `{DEST}` AS T SET rec = S.rec FROM `{REVERSED}` AS S WHERE T.id = S.id", TABLES)
    assert kinds(findings) == ["struct_mismatch"]
    assert "rec: a value with fields (b, a) is assigned by position to fields (a, b)" in findings[0].message
    assert findings[0].statement.startswith(f"UPDATE `{DEST}`")


def test_merge_update_and_insert_of_reversed_records_are_flagged(zeta: Checker) -> None:
    sql = f"""
    MERGE `{DEST}` AS T USING `{REVERSED}` AS S ON T.id = S.id
    WHEN MATCHED THEN UPDATE SET rec = S.rec
    WHEN NOT MATCHED THEN INSERT (id, arr) VALUES (S.id, S.arr)"""
    messages = [f.message for f in zeta.analyze(sql, TABLES)]
    assert len(messages) == 2
    assert messages[0].startswith("rec: ")
    assert messages[1].startswith("arr[]: ")


def test_repeated_record_with_reversed_fields_is_flagged(zeta: Checker) -> None:
    findings = zeta.analyze(f"INSERT INTO `{DEST}` (id, arr) SELECT id, arr FROM `{REVERSED}`", TABLES)
    assert kinds(findings) == ["struct_mismatch"]
    assert findings[0].message.startswith("arr[]: a value with fields (b, a)")
    assert "STRUCT<b NUMERIC, a NUMERIC> -> STRUCT<a NUMERIC, b NUMERIC>" in findings[0].message


def test_nested_record_deeper_down_is_flagged(zeta: Checker) -> None:
    outer = {"p.d.t": [F("id", "STRING"), F("o", "RECORD", fields=[F("x", "STRING"), F("in", "RECORD", fields=AB)])],
             "p.d.s": [F("id", "STRING"), F("o", "RECORD", fields=[F("x", "STRING"), F("in", "RECORD", fields=BA)])]}
    findings = zeta.analyze("UPDATE `p.d.t` AS T SET o = S.o FROM `p.d.s` AS S WHERE T.id = S.id", outer)
    assert [f.message.split(":")[0] for f in findings] == ["o.in"]


def test_differing_arity_is_an_error(zeta: Checker) -> None:
    tables = {**TABLES, "my-proj.ds.short": [F("id", "STRING"), F("rec", "RECORD", fields=[F("a", "NUMERIC")])]}
    findings = zeta.analyze(f"UPDATE `{DEST}` AS T SET rec = S.rec FROM `my-proj.ds.short` AS S WHERE T.id = S.id",
                            tables)
    assert kinds(findings) == ["error"]
    assert "rec" in findings[0].message
    assert "STRUCT<a NUMERIC>" in findings[0].message


def test_numeric_literal_with_ten_decimals_is_an_error(zeta: Checker) -> None:
    findings = zeta.analyze(f"UPDATE `{DEST}` SET n = NUMERIC '1.0123456789' WHERE TRUE", TABLES)
    assert kinds(findings) == ["error"]
    assert "Invalid NUMERIC literal" in findings[0].message
    assert zeta.analyze(f"UPDATE `{DEST}` SET n = NUMERIC '1.012345678' WHERE TRUE", TABLES) == []


def test_merge_from_qualify_subquery_with_struct_constructors_in_order_passes(zeta: Checker) -> None:
    sql = f"""
    MERGE `{DEST}` AS T
    USING (SELECT id, STRUCT(rec.a AS a, rec.b AS b) AS rec, ts FROM `{REVERSED}` WHERE TRUE
           QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY ts DESC) = 1) AS S
    ON T.id = S.id
    WHEN MATCHED THEN UPDATE SET rec = S.rec
    WHEN NOT MATCHED THEN INSERT (id, rec) VALUES (S.id, S.rec)"""
    assert zeta.analyze(sql, TABLES) == []


def test_array_of_structs_rebuilt_in_order_passes_and_out_of_order_is_flagged(zeta: Checker) -> None:
    def merge(fields: str) -> str:
        return (f"MERGE `{DEST}` AS T USING `{REVERSED}` AS S ON T.id = S.id WHEN MATCHED THEN UPDATE SET arr = "
                f"ARRAY(SELECT AS STRUCT {fields} FROM UNNEST(S.arr) AS e WITH OFFSET AS o ORDER BY o)")

    assert zeta.analyze(merge("e.a AS a, e.b AS b"), TABLES) == []
    findings = zeta.analyze(merge("e.b AS b, e.a AS a"), TABLES)
    assert kinds(findings) == ["struct_mismatch"]
    assert findings[0].message.startswith("arr[]: a value with fields (b, a)")


def test_transaction_script_passes_and_each_statement_is_analyzed(zeta: Checker) -> None:
    script = f"""BEGIN TRANSACTION;
    UPDATE `{DEST}` AS T SET ts = S.ts, rec = S.rec FROM `{SAME}` AS S WHERE T.id = S.id;
    INSERT INTO `{DEST}` (id, rec, arr, n)
      SELECT id, rec, arr, n FROM `{SAME}` WHERE id NOT IN (SELECT id FROM `{DEST}`);
    DELETE FROM `{DEST}` AS D WHERE EXISTS (SELECT 1 FROM `{SAME}` AS S WHERE S.id = D.id AND S.h != D.h);
    COMMIT TRANSACTION;"""
    assert zeta.analyze(script, TABLES) == []
    # An error in one statement does not hide the statements after it.
    broken = (script.replace("SET ts = S.ts", "SET ts = S.nope")
              .replace(f"FROM `{SAME}` WHERE id", f"FROM `{REVERSED}` WHERE id"))
    findings = zeta.analyze(broken, TABLES)
    assert kinds(findings) == ["error", "struct_mismatch", "struct_mismatch"]
    assert findings[0].statement.startswith("UPDATE") and "nope" in findings[0].message
    assert all(f.statement.startswith("INSERT") for f in findings[1:])


def test_json_equality_is_an_error(zeta: Checker) -> None:
    # sqlglot and the local server accept this; BigQuery does not.
    findings = zeta.analyze(f"DELETE FROM `{DEST}` WHERE j = j", TABLES)
    assert kinds(findings) == ["error"]
    assert "JSON" in findings[0].message


def test_unknown_table_is_an_error(zeta: Checker) -> None:
    assert kinds(zeta.analyze("SELECT 1 FROM `my-proj.ds.nowhere`", TABLES)) == ["error"]


# The provider's own statements are checked in test_pipeline_statements.py.


LOCK = "my-proj.ds.lock"
SCRIPT_TABLES = {**TABLES, LOCK: [F("revision", "INTEGER")]}
COUNTING_SCRIPT = f"""DECLARE inserted INT64 DEFAULT 0;
DECLARE updated INT64 DEFAULT 0;
BEGIN TRANSACTION;
UPDATE `{LOCK}` SET revision = revision + 1 WHERE TRUE;
IF @@row_count = 0 THEN RAISE USING MESSAGE = 'no lock row'; END IF;
UPDATE `{DEST}` AS T SET ts = S.ts FROM `{SAME}` AS S WHERE T.id = S.id;
SET updated = updated + @@row_count;
INSERT INTO `{DEST}` (id, rec) SELECT id, rec FROM `{SAME}` WHERE id NOT IN (SELECT id FROM `{DEST}`);
SET inserted = inserted + @@row_count;
COMMIT TRANSACTION;
SELECT inserted AS inserted, updated AS updated;"""


def test_a_script_with_variables_row_count_and_raise_passes(zeta: Checker) -> None:
    assert zeta.analyze(COUNTING_SCRIPT, SCRIPT_TABLES) == []


def test_a_script_reports_wrongly_typed_or_undeclared_variables_and_the_statements_around_them(
        zeta: Checker) -> None:
    broken = (COUNTING_SCRIPT.replace("updated + @@row_count", "'many'")
              .replace("IF @@row_count = 0", "IF @@row_count")
              .replace("SET inserted = inserted", "SET insertd = inserted")
              .replace("SET ts = S.ts", "SET ts = S.nope")
              .replace("'no lock row'", "42"))
    findings = zeta.analyze(broken, SCRIPT_TABLES)
    statements = [f.statement.split()[0] for f in findings]
    assert kinds(findings) == ["error"] * 5, findings
    assert statements == ["IF", "RAISE", "UPDATE", "SET", "SET"], findings
    assert "nope" in findings[2].message


def test_a_script_that_does_not_parse_is_an_error(zeta: Checker) -> None:
    (finding,) = zeta.analyze(COUNTING_SCRIPT.replace("END IF;", ";"), SCRIPT_TABLES)
    assert finding.kind == "error"

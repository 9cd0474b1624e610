"""Offline BigQuery statement checks with ZetaSQL (the GoogleSQL analyzer BigQuery is built on).

``analyze(sql, tables)`` analyzes every statement of ``sql`` (one statement or a script) against a
catalog built from real table schemas and returns a :class:`Finding` for

* every analyzer error (unknown names, wrong types, a NUMERIC literal with 10 decimals, a STRUCT of
  another arity, ...), kind ``"error"``;
* every positional STRUCT mismatch, kind ``"struct_mismatch"``: BigQuery assigns STRUCT values by
  position, so ``STRUCT<b, a>`` written into a ``STRUCT<a, b>`` column moves values silently and
  ZetaSQL accepts it. Every assignment (``UPDATE SET``, ``MERGE ... UPDATE SET``, ``INSERT (cols)
  VALUES/SELECT``, ``MERGE ... INSERT``) whose source and target field names differ, in order, at any
  depth (inside ``ARRAY<STRUCT>`` too), is reported.

A script with BigQuery's procedural statements (``DECLARE``, ``SET``, ``IF ... END IF``, ``RAISE``)
is parsed whole as a script first (syntax); each of those statements' expressions is then analyzed
with the declared variables' types (``SET`` must assign a value of the variable's type, an ``IF``
condition must be BOOL, a ``RAISE`` message STRING), ``@@row_count`` is an INT64 system variable as
in BigQuery, and a statement that names a variable is analyzed with it as a typed parameter.

Tables are named ``project.dataset.table`` (backticked in the SQL, as BigQuery writes them).

The analyzer is a ~30 MB WASM module: compiling it takes about a minute, so the compiled module is
cached under ``.local/zetasql/`` (keyed by the zetasql and wasmtime versions) and later starts
deserialize it in seconds. One instance serves a whole test session (:func:`checker`).

Importing this package is light; ``zetasql`` and ``wasmtime`` load on first use.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from google.cloud.bigquery import SchemaField

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / ".local" / "zetasql"

#: A table: its ``project.dataset.table`` name and its BigQuery schema.
Table = tuple[str, "Sequence[SchemaField]"]


@dataclass(frozen=True)
class Finding:
    """One problem found in one statement.

    :param kind: ``"error"`` (the analyzer rejects the statement) or ``"struct_mismatch"`` (a STRUCT
        assigned by position onto fields of other names).
    :param statement: the statement's text (stripped).
    :param message: the analyzer's message, or the column and both field orders.
    """

    kind: Literal["error", "struct_mismatch"]
    statement: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}\n  in: {self.statement[:300]}"


# --- the WASM module, compiled once and cached ------------------------------------------------------


def cache_path() -> Path:
    """Where the compiled module of the installed zetasql and wasmtime versions is cached."""
    from importlib.metadata import version

    return CACHE_DIR / f"zetasql-{version('zetasql')}-wasmtime-{version('wasmtime')}.cwasm"


def _load_module(engine: Any, wasm_path: Path) -> Any:
    """The compiled module: deserialized from the cache, or compiled (~60 s) and cached."""
    from wasmtime import Module

    cached = cache_path()
    if cached.is_file():
        try:
            return Module.deserialize_file(engine, str(cached))
        except Exception:  # a stale or truncated cache is rebuilt below
            cached.unlink(missing_ok=True)
    module = Module.from_file(engine, str(wasm_path))
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    partial.write_bytes(module.serialize())
    partial.replace(cached)  # atomic: a concurrent start never reads half a file
    return module


def _service() -> Any:
    """A ``ZetaSqlLocalService`` whose WASM client loads the module through the cache."""
    from wasmtime import Config, Engine, Linker, Store, WasiConfig
    from zetasql.core import wasm_client
    from zetasql.core.local_service import ZetaSqlLocalService
    from zetasql.wasi import get_wasm_path

    class CachedWasmClient(wasm_client.WasmClient):  # type: ignore[misc]  # zetasql ships no types
        # Same set-up as WasmClient.__init__ (zetasql 0.1.5), except the module comes from the cache;
        # and whole-buffer memory copies instead of its byte-at-a-time loops.
        def __init__(self, wasm_path: str) -> None:
            wasi = WasiConfig()
            wasi.inherit_stdout()
            wasi.inherit_stderr()
            if tzinfo_dir := wasm_client.get_tzinfo_dir():
                wasi.preopen_dir(tzinfo_dir, "/usr/share/zoneinfo")
            config = Config()
            config.shared_memory = True
            self.store = Store(Engine(config))
            self.store.set_wasi(wasi)
            self.module = _load_module(self.store.engine, Path(wasm_path))
            linker = Linker(self.store.engine)
            linker.define_wasi()
            self.instance = linker.instantiate(self.store, self.module)
            exports: Any = self.instance.exports(self.store)
            self.exports = exports
            if "_initialize" in exports:
                exports["_initialize"](self.store)
            self.memory: Any = exports["memory"]

        def _base(self) -> int:
            # The memory is shared (no Memory.read/write): copy through its host address.
            return ctypes.addressof(self.memory.data_ptr().contents)

        def write_bytes(self, ptr: int, data: bytes) -> None:
            ctypes.memmove(self._base() + ptr, data, len(data))

        def read_bytes(self, ptr: int, size: int) -> bytes:
            return ctypes.string_at(self._base() + ptr, size)

    service = ZetaSqlLocalService.__new__(ZetaSqlLocalService)
    client = CachedWasmClient(str(get_wasm_path()))
    service.wasm_client = client

    def release() -> None:
        # Drop the WASM objects while wasmtime is still importable: left to interpreter teardown,
        # their finalizers print "Exception ignored ... 'NoneType' object is not callable".
        for name in ("exports", "memory", "instance", "module", "store"):
            setattr(client, name, None)
        gc.collect()

    atexit.register(release)
    return service


# --- catalog and options ---------------------------------------------------------------------------

_SIMPLE_TYPES = {
    "STRING": "TYPE_STRING",
    "BYTES": "TYPE_BYTES",
    "INTEGER": "TYPE_INT64",
    "INT64": "TYPE_INT64",
    "FLOAT": "TYPE_DOUBLE",
    "FLOAT64": "TYPE_DOUBLE",
    "NUMERIC": "TYPE_NUMERIC",
    "DECIMAL": "TYPE_NUMERIC",
    "BIGNUMERIC": "TYPE_BIGNUMERIC",
    "BIGDECIMAL": "TYPE_BIGNUMERIC",
    "BOOLEAN": "TYPE_BOOL",
    "BOOL": "TYPE_BOOL",
    "TIMESTAMP": "TYPE_TIMESTAMP",
    "DATE": "TYPE_DATE",
    "DATETIME": "TYPE_DATETIME",
    "TIME": "TYPE_TIME",
    "JSON": "TYPE_JSON",
    "GEOGRAPHY": "TYPE_GEOGRAPHY",
}

#: BigQuery-like GoogleSQL features (BigQuery enables more; these cover what a pipeline's DML uses).
_FEATURES = (
    "FEATURE_ANALYTIC_FUNCTIONS",
    "FEATURE_NUMERIC_TYPE",
    "FEATURE_BIGNUMERIC_TYPE",
    "FEATURE_JSON_TYPE",
    "FEATURE_JSON_ARRAY_FUNCTIONS",
    "FEATURE_JSON_VALUE_EXTRACTION_FUNCTIONS",
    "FEATURE_JSON_CONSTRUCTOR_FUNCTIONS",
    "FEATURE_JSON_MUTATOR_FUNCTIONS",
    "FEATURE_JSON_KEYS_FUNCTION",
    "FEATURE_INTERVAL_TYPE",
    "FEATURE_RANGE_TYPE",
    "FEATURE_GEOGRAPHY",
    "FEATURE_CIVIL_TIME",
    "FEATURE_TIMESTAMP_NANOS",
    "FEATURE_PARAMETERIZED_TYPES",
    "FEATURE_QUALIFY",
    "FEATURE_ALLOW_DASHES_IN_TABLE_NAME",
    "FEATURE_DML_UPDATE_WITH_JOIN",
    "FEATURE_OMIT_INSERT_COLUMN_LIST",
    "FEATURE_ARRAY_ELEMENTS_WITH_SET",
    "FEATURE_CORRELATED_REFS_IN_NESTED_DML",
    "FEATURE_NESTED_UPDATE_DELETE_WITH_OFFSET",
    "FEATURE_SELECT_STAR_EXCEPT_REPLACE",
    "FEATURE_ORDER_BY_IN_AGGREGATE",
    "FEATURE_LIMIT_IN_AGGREGATE",
    "FEATURE_HAVING_IN_AGGREGATE",
    "FEATURE_NULL_HANDLING_MODIFIER_IN_AGGREGATE",
    "FEATURE_NULL_HANDLING_MODIFIER_IN_ANALYTIC",
    "FEATURE_GROUP_BY_ROLLUP",
    "FEATURE_UNNEST_AND_FLATTEN_ARRAYS",
    "FEATURE_PIVOT",
    "FEATURE_UNPIVOT",
    "FEATURE_TABLESAMPLE",
    "FEATURE_FOR_SYSTEM_TIME_AS_OF",
    "FEATURE_NAMED_ARGUMENTS",
    "FEATURE_CAST_DIFFERENT_ARRAY_TYPES",
)

_STATEMENTS = (
    "RESOLVED_QUERY_STMT",
    "RESOLVED_INSERT_STMT",
    "RESOLVED_UPDATE_STMT",
    "RESOLVED_DELETE_STMT",
    "RESOLVED_MERGE_STMT",
    "RESOLVED_TRUNCATE_STMT",
    "RESOLVED_BEGIN_STMT",
    "RESOLVED_COMMIT_STMT",
    "RESOLVED_ROLLBACK_STMT",
    "RESOLVED_CREATE_TABLE_STMT",
    "RESOLVED_CREATE_TABLE_AS_SELECT_STMT",
)


def zeta_type(field: SchemaField) -> Any:
    """The ZetaSQL type of a BigQuery column (REPEATED -> ARRAY; RECORD -> STRUCT in field order)."""
    from zetasql.api import TypeFactory
    from zetasql.types import TypeKind

    kind = (field.field_type or "").upper()
    if kind in ("RECORD", "STRUCT"):
        element = TypeFactory.create_struct_type([(f.name, zeta_type(f)) for f in field.fields])
    elif kind in _SIMPLE_TYPES:
        element = TypeFactory.create_simple_type(TypeKind[_SIMPLE_TYPES[kind]])
    else:
        raise ValueError(f"column {field.name!r}: no ZetaSQL type for BigQuery type {field.field_type!r}")
    return TypeFactory.create_array_type(element) if (field.mode or "").upper() == "REPEATED" else element


def build_catalog(tables: Mapping[str, Sequence[SchemaField]]) -> Any:
    """A catalog resolving ``project.dataset.table``, backticked whole or per part."""
    from zetasql.types import SimpleCatalog, SimpleColumn, SimpleTable, ZetaSQLBuiltinFunctionOptions

    root = SimpleCatalog(name="bigquery")
    root.builtin_function_options = ZetaSQLBuiltinFunctionOptions(language_options=_language_options())
    children: dict[tuple[str, ...], Any] = {(): root}

    def child(path: tuple[str, ...]) -> Any:
        if path not in children:
            parent = child(path[:-1])
            children[path] = SimpleCatalog(name=path[-1])
            parent.catalog.append(children[path])
        return children[path]

    for serial, (name, schema) in enumerate(tables.items(), start=1):
        full = name.strip("`")
        *path, table = full.split(".")

        def columns(schema: Sequence[SchemaField] = schema) -> list[Any]:
            return [SimpleColumn(name=f.name, type=zeta_type(f), is_writable_column=True) for f in schema]

        # `p.d.t` in one pair of backticks is ONE identifier to ZetaSQL (BigQuery splits it): the root
        # holds the table under its full dotted name; `p`.`d`.`t` resolves through the nested catalogs.
        root.table.append(SimpleTable(name=full, serialization_id=2 * serial, column=columns()))
        if path:
            child(tuple(path)).table.append(SimpleTable(name=table, serialization_id=2 * serial + 1, column=columns()))
    return root


@functools.cache
def _language_options() -> Any:
    from zetasql.types import LanguageFeature, LanguageOptions, ProductMode, ResolvedNodeKind

    return LanguageOptions(
        product_mode=ProductMode.PRODUCT_EXTERNAL,
        enabled_language_features=[LanguageFeature[f] for f in _FEATURES if f in LanguageFeature.__members__],
        supported_statement_kinds=[ResolvedNodeKind[s] for s in _STATEMENTS],
    )


@functools.cache
def _analyzer_options() -> Any:
    from zetasql.api import TypeFactory
    from zetasql.types import AnalyzerOptions, TypeKind

    # BigQuery's @@row_count: the rows the script's previous DML statement changed.
    row_count = AnalyzerOptions.SystemVariable(name_path=["row_count"],
                                               type=TypeFactory.create_simple_type(TypeKind.TYPE_INT64))
    return AnalyzerOptions(language_options=_language_options(), default_timezone="UTC", system_variables=[row_count])


# --- walking the resolved AST ----------------------------------------------------------------------


def _nodes(node: Any) -> Iterator[Any]:
    """``node`` and every resolved node or model below it."""
    stack = [node]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if isinstance(current, list | tuple):
            stack.extend(reversed(current))
            continue
        if not is_dataclass(current) or isinstance(current, type) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for f in fields(current):
            if not f.name.startswith("_"):
                value = getattr(current, f.name, None)
                if value is not None and not isinstance(value, str | int | float | bytes | bool):
                    stack.append(value)


def _describe(type_: Any) -> str:
    from zetasql.types import TypeKind

    kind = type_.type_kind
    if kind == TypeKind.TYPE_STRUCT:
        return "STRUCT<" + ", ".join(f"{f.field_name} {_describe(f.field_type)}" for f in type_.struct_type.field) + ">"
    if kind == TypeKind.TYPE_ARRAY:
        return f"ARRAY<{_describe(type_.array_type.element_type)}>"
    return str(TypeKind(kind).name).removeprefix("TYPE_")


def _mismatches(target: Any, source: Any, path: str) -> Iterator[str]:
    """Where ``source``'s STRUCT field names differ (in order) from ``target``'s, at any depth."""
    from zetasql.types import TypeKind

    if target is None or source is None or target.type_kind != source.type_kind:
        return
    if target.type_kind == TypeKind.TYPE_ARRAY:
        yield from _mismatches(target.array_type.element_type, source.array_type.element_type, f"{path}[]")
    elif target.type_kind == TypeKind.TYPE_STRUCT:
        want = [(f.field_name or "").lower() for f in target.struct_type.field]
        got = [(f.field_name or "").lower() for f in source.struct_type.field]
        if want != got:
            yield (f"{path}: a value with fields ({', '.join(got)}) is assigned by position to fields "
                   f"({', '.join(want)}); {_describe(source)} -> {_describe(target)}")
            return
        for t, s in zip(target.struct_type.field, source.struct_type.field, strict=True):
            yield from _mismatches(t.field_type, s.field_type, f"{path}.{t.field_name}")


class _Statement:
    """The assignments of one resolved statement, with each value's type before implicit casts."""

    def __init__(self, resolved: Any) -> None:
        from zetasql import types as z

        self.z = z
        self.resolved = resolved
        self.computed = {c.column.column_id: c.expr for c in _nodes(resolved)
                         if isinstance(c, z.ResolvedComputedColumn) and c.column is not None}

    def source_type(self, expr: Any, seen: frozenset[int] = frozenset()) -> Any:
        """The type a value had before the analyzer cast it to its target (casts of STRUCTs are positional)."""
        z = self.z
        while True:
            if isinstance(expr, z.ResolvedCast) and expr.expr is not None:
                expr = expr.expr
            elif isinstance(expr, z.ResolvedColumnRef) and expr.column is not None:
                column_id = expr.column.column_id
                if column_id in seen or column_id not in self.computed:
                    return expr.column.type
                seen = seen | {column_id}
                expr = self.computed[column_id]
            else:
                return getattr(expr, "type", None)

    def column_source_type(self, column: Any) -> Any:
        if column.column_id in self.computed:
            return self.source_type(self.computed[column.column_id], frozenset({column.column_id}))
        return column.type

    def assignments(self) -> Iterator[tuple[str, Any, Any]]:
        """(target name, target type, source type) of every assignment in the statement."""
        z = self.z
        for node in _nodes(self.resolved):
            if isinstance(node, z.ResolvedUpdateItem) and node.set_value is not None and node.target is not None:
                yield _target_name(node.target, z), node.target.type, self.source_type(node.set_value.value)
            elif isinstance(node, z.ResolvedInsertStmt):
                targets = node.insert_column_list
                for i, column in enumerate(node.query_output_column_list):
                    if i < len(targets):
                        yield targets[i].name, targets[i].type, self.column_source_type(column)
                for row in node.row_list:
                    for target, value in zip(targets, row.value_list, strict=False):
                        yield target.name, target.type, self.source_type(value.value)
            elif isinstance(node, z.ResolvedMergeWhen) and node.insert_row is not None:
                for target, value in zip(node.insert_column_list, node.insert_row.value_list, strict=False):
                    yield target.name, target.type, self.source_type(value.value)


def _target_name(target: Any, z: Any) -> str:
    if isinstance(target, z.ResolvedColumnRef) and target.column is not None:
        return str(target.column.name)
    if isinstance(target, z.ResolvedGetStructField) and target.expr is not None:
        return f"{_target_name(target.expr, z)}.{target.field_idx}"
    return type(target).__name__


# --- the checker -----------------------------------------------------------------------------------


class Checker:
    """One ZetaSQL instance (compiled or deserialized once); ``analyze`` may be called any number of times."""

    def __init__(self) -> None:
        self.service = _service()
        self._lock = threading.Lock()  # one WASM store: one call at a time

    def analyze(self, sql: str, tables: Mapping[str, Sequence[SchemaField]]) -> list[Finding]:
        """Analyze every statement of ``sql`` against ``tables`` (``project.dataset.table`` -> schema)."""
        if _PROCEDURAL.search(sql):
            return self._analyze_script(sql, tables, {})
        return self._analyze_statements(sql, tables)

    def _parse_script(self, sql: str) -> list[tuple[str, str]] | Finding:
        """The script's top-level statements as (AST kind, text), or the parser's finding."""
        from zetasql.core.exceptions import ZetaSQLError

        data = sql.encode()
        try:
            with self._lock:
                response = self.service.parse(sql_statement=sql, options=_language_options(), allow_script=True)
        except ZetaSQLError as error:
            return Finding("error", sql.strip()[:300], _message(error))
        statements = response.parsed_script.statement_list_node.statement_list
        return [(type(st).__name__, data[st.parse_location_range.start:st.parse_location_range.end].decode())
                for st in statements]

    def _analyze_script(self, sql: str, tables: Mapping[str, Sequence[SchemaField]],
                        variables: dict[str, str]) -> list[Finding]:
        parsed = self._parse_script(sql)
        if isinstance(parsed, Finding):
            return [parsed]
        findings: list[Finding] = []
        for kind, text in parsed:
            if kind not in _PROCEDURAL_KINDS:
                findings += self._analyze_statements(_with_parameters(text, variables), tables, variables)
                continue
            selects, nested, problem = _procedural(kind, text.strip().rstrip(";").strip(), variables)
            if problem:
                findings.append(Finding("error", text, problem))
            for select in selects:
                findings += self._analyze_statements(_with_parameters(f"SELECT {select}", variables), tables,
                                                     variables, shown=text)
            if nested is not None:
                findings += self._analyze_script(nested, tables, variables)
        return findings

    def _analyze_statements(self, sql: str, tables: Mapping[str, Sequence[SchemaField]],
                            variables: Mapping[str, str] | None = None, shown: str | None = None) -> list[Finding]:
        from zetasql import types
        from zetasql.core.exceptions import ZetaSQLError
        from zetasql.wasi._pb2.zetasql.local_service import local_service_pb2

        # The request as protobuf, built once per script: converting the catalog's model to protobuf for
        # every statement (what ZetaSqlLocalService.analyze does) costs more than the analysis itself.
        options = _analyzer_options()
        if variables:
            options = replace(options, query_parameters=[
                types.AnalyzerOptions.QueryParameter(name=name, type=_variable_type(type_name))
                for name, type_name in variables.items()])
        request = types.AnalyzeRequest(
            sql_statement=sql, parse_resume_location=types.ParseResumeLocation(input=sql, byte_position=0),
            options=options, simple_catalog=build_catalog(tables),
        ).to_proto()
        data = sql.encode()
        findings: list[Finding] = []
        position = 0
        with self._lock:
            while data[position:].strip().strip(b";").strip():
                start = position
                request.parse_resume_location.byte_position = start
                try:
                    response = types.parse_proto(self.service.wasm_client.call_grpc_func(
                        "ZetaSqlLocalService_Analyze", request, local_service_pb2.AnalyzeResponse,
                    )).as_type(types.AnalyzeResponse)
                except ZetaSQLError as error:
                    end = self._statement_end(sql, start)
                    findings.append(Finding("error", shown or _snippet(data, start, end), _message(error)))
                    if end is None:
                        break  # not even parseable: the rest of the script has no known start
                    position = end
                    continue
                position = response.resume_byte_position or len(data)
                if position <= start:
                    break
                statement = _Statement(response.resolved_statement)
                for name, target, source in statement.assignments():
                    for message in _mismatches(target, source, name):
                        finding = Finding("struct_mismatch", _snippet(data, start, position), message)
                        if finding not in findings:  # MERGE's UPDATE and INSERT may assign one column alike
                            findings.append(finding)
        return findings

    def _statement_end(self, sql: str, start: int) -> int | None:
        """Where the statement at ``start`` ends, by the parser alone; None if it does not parse."""
        from zetasql.core.exceptions import ZetaSQLError
        from zetasql.types import ParseResumeLocation

        try:
            response = self.service.extract_table_names_from_next_statement(
                parse_resume_location=ParseResumeLocation(input=sql, byte_position=start),
                options=_language_options(),
            )
        except ZetaSQLError:
            return None
        end = response.resume_byte_position
        return end if end and end > start else None


#: BigQuery's procedural statements, which the analyzer does not take: the script is parsed as a whole.
_PROCEDURAL = re.compile(r"(?im)^\s*(DECLARE|SET|IF|RAISE)\b")
_DECLARE = re.compile(r"(?is)^DECLARE\s+(\w+(?:\s*,\s*\w+)*)\s+(\w+)(?:\s+DEFAULT\s+(.*))?$")
_SET = re.compile(r"(?is)^SET\s+(\w+)\s*=\s*(.*)$")
_IF = re.compile(r"(?is)^IF\s+(.*?)\s+THEN\s+(.*?)\s*END\s+IF$")
_RAISE = re.compile(r"(?is)^RAISE(?:\s+USING\s+MESSAGE\s*=\s*(.*))?$")
#: Quoted text (backticked names, string literals), where a variable's name is not a variable.
_QUOTED = re.compile(r"(`[^`]*`|'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\")")


_PROCEDURAL_KINDS = ("ASTVariableDeclaration", "ASTSingleAssignment", "ASTIfStatement", "ASTRaiseStatement")


def _procedural(kind: str, body: str, variables: dict[str, str]) -> tuple[list[str], str | None, str | None]:
    """What to check of one procedural statement: SELECT lists that type its expressions, the script
    nested in it, and a problem found by reading it. Declarations are recorded in ``variables``."""
    if kind == "ASTVariableDeclaration":
        return _declaration(body, variables)
    if kind == "ASTSingleAssignment":
        if (match := _SET.match(body)) is None or match[1].lower() not in variables:
            return [], None, "SET of a variable that was not declared"
        return [f"IF(FALSE, CAST(NULL AS {variables[match[1].lower()]}), ({match[2]}))"], None, None
    if kind == "ASTIfStatement":
        if (match := _IF.match(body)) is None:
            return [], None, "an IF this checker cannot read (ELSE/ELSEIF)"
        return [f"IF(({match[1]}), 1, 0)"], match[2], None  # the condition must be BOOL
    match = _RAISE.match(body)
    return ([f"CONCAT('', ({match[1]}))"] if match and match[1] else []), None, None  # a STRING message


def _declaration(body: str, variables: dict[str, str]) -> tuple[list[str], str | None, str | None]:
    if (match := _DECLARE.match(body)) is None:
        return [], None, "a DECLARE this checker cannot read"
    names, type_name, default = match.groups()
    for name in (n.strip().lower() for n in names.split(",")):
        variables[name] = type_name.upper()
    return ([f"IF(FALSE, CAST(NULL AS {type_name}), ({default}))"] if default else []), None, None


def _with_parameters(sql: str, variables: Mapping[str, str]) -> str:
    """``sql`` with each script variable written as a parameter (``x`` -> ``@x``), outside quotes, field
    accesses and aliases: the analyzer then types it as the variable's declared type."""
    if not variables:
        return sql
    # Not after AS: an alias may be spelled like a variable.
    names = re.compile(r"(?<![\w.@`])(?<!AS )(?<!as )(" + "|".join(map(re.escape, variables)) + r")\b", re.IGNORECASE)
    parts = _QUOTED.split(sql)
    return "".join(part if i % 2 else names.sub(lambda m: "@" + m[1].lower(), part) for i, part in enumerate(parts))


def _variable_type(type_name: str) -> Any:
    from zetasql.api import TypeFactory
    from zetasql.types import TypeKind

    return TypeFactory.create_simple_type(TypeKind[_SIMPLE_TYPES[type_name.upper()]])


def _snippet(data: bytes, start: int, end: int | None) -> str:
    return data[start:end].decode(errors="replace").strip()


def _message(error: Exception) -> str:
    return " ".join(str(error).split())


_checker_lock = threading.Lock()


def checker() -> Checker:
    """The session's one :class:`Checker` (created on first use)."""
    with _checker_lock:
        if not hasattr(checker, "instance"):
            checker.instance = Checker()  # type: ignore[attr-defined]  # a function attribute holds the one instance
        return checker.instance  # type: ignore[attr-defined]  # a function attribute holds the one instance


def analyze(sql: str, tables: Mapping[str, Sequence[SchemaField]]) -> list[Finding]:
    """Every analyzer error and positional STRUCT mismatch in ``sql`` (see the module docstring).

    :param sql: one statement, or a script (``BEGIN TRANSACTION; ...; COMMIT TRANSACTION;``).
    :param tables: ``project.dataset.table`` -> its BigQuery schema.
    """
    return checker().analyze(sql, tables)


__all__ = ["Checker", "Finding", "Table", "analyze", "build_catalog", "cache_path", "checker", "zeta_type"]

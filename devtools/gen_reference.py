"""Generate docs/reference.md, and the README's tables of connection extras and operator arguments,
from the code and the spec, so neither can drift.

``python -m devtools.gen_reference`` rewrites the reference and the README's marked regions
(``<!-- generated: NAME ... -->`` to ``<!-- end generated: NAME -->``); a test fails when a committed
file differs from what this produces, and rendering fails when the code has an argument or an extra that
has no description here.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "reference.md"
README = ROOT / "README.md"

TROUBLESHOOTING = """\
## Troubleshooting

**"The interval [...] is empty: date_end equals date_start" / zero-width intervals.**
In Airflow 3, `schedule="@daily"` is a `CronTriggerTimetable`: every run's data interval has zero width. Use
`schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC")` (as the sample DAG does), or pass
`date_start`/`date_end`. A manual run without a logical date has no data interval at all: pass the dates.

**"RevCent rejected the API key ... (HTTP 401)".** The connection's password is not a valid key for the
account, or it is a Test-mode key used against Live data (or the reverse). Not retried; fix the connection.

**"RevCent throttled the ..." warnings, slow runs.** The API answered 429. The whole task slows down (all
threads pause for `Retry-After`, then the pace drops below what the API accepted and recovers gradually). If
it happens every run, set `max_requests_per_second` on the connection to a rate your account allows, and keep
`max_concurrency` modest. `max_requests_per_second` is per task: when several tasks call the account at once,
run them in a shared pool (create the pool `revcent_api` and set `REVCENT_API_POOL=revcent_api` where the DAGs
are parsed) and set `account_requests_per_second` and `account_pool_slots` on the connection, so that each
paces at the account's rate divided by the pool's slots.

**"Gave up on the window ..., page N after K attempts".** The API kept failing (5xx, resets, timeouts)
beyond the retry budget. Nothing was loaded; the task can simply be retried. Raise `retry_max_attempts` /
`retry_max_seconds` if the API needs longer to recover.

**"Dataset ... is in location 'EU', but location='US' was asked for".** BigQuery jobs run where the dataset
is. Leave `location` unset to use the dataset's, or set it to match.

**"Table ... exists with a schema that conflicts".** The named columns have another type or mode than the
customers schema below. Load into another table, or fix or drop those columns. Missing columns are added
automatically; extra columns are left alone.

**"Window ... did not settle".** Customers kept being created inside the window while it was read, in each of
{max_passes} passes (a fixed limit). Retry later, or use a smaller `window_size`.

**"Customer '...': field ... is ... but the spec says ...".** The API returned a value the spec does not
allow. Set `on_invalid_record="keep"` to load such values into `_unknown_fields` instead of failing.
"""


def _doc_params(obj: Callable[..., Any]) -> dict[str, str]:
    """The ``:param:`` texts of ``obj``'s docstring; a class's own win over its bases' (a preset documents only
    what it adds)."""
    params: dict[str, str] = {}
    for source in reversed(getattr(obj, "__mro__", (obj,))):
        own = vars(source).get("__doc__") if isinstance(source, type) else inspect.getdoc(source)
        doc = inspect.cleandoc(own) if isinstance(own, str) else ""
        for match in re.finditer(r":param (\w+): (.*?)(?=\n:param |\n\n|\Z)", doc, flags=re.S):
            params[match[1]] = " ".join(match[2].split())
    return params


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    text = repr(value)
    return f"`{text}`" if len(text) < 40 else f"`{text[:37]}...`"


def _params_table(cls: type, docs_from: Any, skip: Iterable[str] = (), templated_from: Any = None) -> list[str]:
    signature = inspect.signature(cls)
    docs = _doc_params(docs_from)
    templated = set(getattr(templated_from or cls, "template_fields", ()))
    rows = ["| parameter | default | templated | description |", "|---|---|---|---|"]
    for name, param in signature.parameters.items():
        if name in ("self", "kwargs", *skip):
            continue
        rows.append(f"| `{name}` | {_default(param.default)} | {'yes' if name in templated else ''} | "
                    f"{docs.get(name, '').replace('|', '/')} |")
    return rows


def _schema_rows(columns: Iterable[Any], prefix: str = "") -> list[str]:
    rows = []
    for column in columns:
        description = column.description.replace("|", "/").replace("\n", " ")
        rows.append(f"| `{prefix}{column.name}` | {column.type} | {column.mode} | {description} |")
        rows += _schema_rows(column.fields, prefix + column.name + ".")
    return rows


#: The README's table of operator arguments: (arguments, default when the signature's is None, note).
#: Literal defaults come from the signature; every argument of ``__init__`` must be here exactly once.
README_ARGUMENTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("destination_table",), "", "`[project.]dataset.table` (templated)"),
    (("revcent_conn_id",), "", "templated"),
    (("gcp_conn_id",), "", "templated"),
    (("impersonation_chain",), "the connection's",
     "a service account (or chain) to impersonate; wins over the connection's extra (templated)"),
    (("project_id",), "the connection's `project`",
     "the project that runs and pays for the BigQuery jobs; the tables stay where `destination_table` says (a "
     "name without a project is in the connection's `project`) (templated)"),
    (("date_start", "date_end"), "the run's data interval",
     "ISO-8601 date or aware date-time; end exclusive; a future end is clipped to now (templated; `None`, `\"\"`, "
     "`\"None\"` mean unset)"),
    (("campaign_filter", "customer_group_filter", "product_filter"), "none",
     "lists of 20-character ids (templated)"),
    (("status_filter",), "none", "any of `enabled`, `disabled`, `blocked`, `fraud`, `chargeback` (templated)"),
    (("metadata_filter",), "none",
     "`[{\"name\": \"source\", \"value\": \"fb\"}]`; value `METADATA_NAME_EXISTS` or omitted matches on the name "
     "(templated)"),
    (("openapi_spec",), "the connection's, else `/v2/openapi.json`",
     "RevCent's OpenAPI document (a file or URL) to type the table from, instead of `/v2/openapi.json` from the "
     "connection's host; the packaged GetCustomers operation when no document can be had "
     "([Other RevCent resources](#other-revcent-resources))"),
    (("key_field", "created_field"), "the resource's: `id`, `created_date_unix`",
     "the item's identifying field (the table is merged on it) and its creation time in unix seconds (windows "
     "and partitions), for a resource that differs ([Key and creation time](#key-and-creation-time))"),
    (("page_size",), "", "1..25"),
    (("location",), "the dataset's",
     "BigQuery location; a new dataset is created there (else the connection's `location`, else US); an existing "
     "dataset elsewhere is an error (templated)"),
    (("window_size",), "", "at most 90 days (the API's limit)"),
    (("request_options",), "from the connection",
     "`RequestOptions(max_concurrency=..., max_requests_per_second=..., connect_timeout=..., read_timeout=..., "
     "request_timeout=..., stall_timeout=..., retry_max_attempts=..., retry_max_seconds=..., "
     "retry_initial_backoff=...)` (`from airflow_revcent.api.options import RequestOptions`): each option left out "
     "comes from the connection's extra of the same name, else its default (see Connections; `request_timeout` "
     "120 s bounds one request to its last byte however slowly the server sends; `stall_timeout`, default the "
     "longest one request can take, fails the run when no page arrives for that long, naming the window and "
     "page). Checked when the DAG is parsed. The separate arguments of the same names still work and warn"),
    (("on_invalid_record",), "",
     "`\"keep\"`: values of the wrong type or outside their column's range go to `_unknown_fields`, customers "
     "without a usable id are skipped and counted ([How values land](#how-values-land))"),
    (("staging_expiration",), "", "how long a run's staging table and window markers survive: "
                                    "a retry within it resumes; "
                                    "what a killed run left expires"),
    (("max_file_bytes",), "", "the local NDJSON file rolls over past this size (one load job per file)"),
    (("lookback",), "0", "also re-read this long before the interval (timedelta or `\"P35D\"`; templated)"),
    (("pii",), "none",
     "`PiiSettings(exclude_fields=..., hash_fields=..., hash_key_conn_id=...)`: fields dropped or HMAC-hashed "
     "before they leave the worker ([PII](#pii)); the separate arguments still work and warn"),
    (("pii_policy_change",), "",
     "`\"allow\"`: write with PII settings other than those the table records, and record them ([PII](#pii))"),
    (("history_table",), "none", "type-2 change history table (templated)"),
    (("promote_unknown_fields",), "", "turn unambiguous unknown fields into columns"),
    (("on_count_mismatch",), "",
     "`\"fail\"`: a window whose distinct customers differ from `total_count` fails before loading"),
    (("labels",), "none",
     "labels for every BigQuery job, besides `airflow-dag` and `airflow-task` (always added, sanitised to "
     "BigQuery's label rules)"),
    (("encryption_configuration",), "none",
     "`{\"kmsKeyName\": \"projects/.../cryptoKeys/...\"}`: every table the pipeline creates (destination, history, "
     "lock, staging) uses that Cloud KMS key"),
    (("tmp_dir",), "the system's temp folder",
     "where the NDJSON files go; the run fails as soon as the windows' `total_count` says the disk cannot hold "
     "them"),
)

#: The extras of a ``google_cloud_platform`` connection that :mod:`airflow_revcent.bigquery.connection` reads.
GCP_EXTRAS: dict[str, str] = {
    "project": "jobs run in and are billed to this project (else the destination's project, else the identity's); "
               "a `destination_table` without a project is in it",
    "location": "where jobs run and where a dataset the run creates goes, unless the operator's `location` says "
                "otherwise; an existing dataset keeps its own",
    "api_endpoint": "another BigQuery-API root URL: a private or regional endpoint, or a local server; it never "
                    "changes the credentials",
    "key_path": "path of a service account key file (`.json`)",
    "keyfile_dict": "a service account key's JSON, as an object or as text",
    "credential_config_file": "workload identity federation: the configuration's path, its JSON text or object",
    "key_secret_name": "a Secret Manager secret holding a service account key (read with ADC); needs the google "
                       "provider",
    "key_secret_project_id": "the project of `key_secret_name`",
    "is_anonymous": "`true`: send no credentials (a local BigQuery-API server)",
    "impersonation_chain": "a service account to impersonate, or a chain (comma-separated or a list) whose last is "
                           "impersonated; the operator argument wins",
    "scope": "OAuth scopes, comma-separated (default `https://www.googleapis.com/auth/cloud-platform`)",
    "quota_project_id": "the project charged for quota (sent as `x-goog-user-project`)",
    "idp_issuer_url": "federation through a client-credentials IdP: the token URL; needs the google provider",
    "client_id": "federation through a client-credentials IdP: the client id; needs the google provider",
    "client_secret": "federation through a client-credentials IdP: the client secret; needs the google provider",
    "idp_extra_params": "federation through a client-credentials IdP: extra token request parameters; needs the "
                        "google provider",
}


def _friendly(value: Any) -> str:
    """A signature default as a reader says it: ``25``, ``"fail"``, ``89 days``, ``64 MiB``."""
    from datetime import timedelta

    if isinstance(value, timedelta) and not value.seconds and not value.microseconds:
        return f"{value.days} day{'' if value.days == 1 else 's'}"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 20 and not value % (1 << 20):
        return f"{value >> 20} MiB"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`" if isinstance(value, bool) else str(value)


#: The arguments :class:`RevCentToBigQueryOperator` has besides the customers preset's (which it shares but
#: the named filters).
README_GENERIC_ARGUMENTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("resource",), "", "the list path's last segment (`\"sales\"`, `\"tax\"`, `\"api_calls\"`) or the "
     "operationId (`\"GetSales\"`)"),
    (("filters",), "none",
     "the operation's filters, `{\"currency_filter\": [\"USD\"], \"metadata_filter\": [{\"name\": \"source\", "
     "\"value\": \"fb\"}]}`; checked once rendered against the document (templated)"),
    (("openapi_spec",), "the connection's, else `/v2/openapi.json`",
     "RevCent's OpenAPI document: a local file or a URL (the key goes only to the API's own host)"),
    (("key_field", "created_field"), "the resource's: `id`, `created_date_unix`",
     "for a resource whose items differ: the field the table is merged on, the creation time in unix seconds"),
)


def readme_generic_arguments_table() -> list[str]:
    """The README's table of what RevCentToBigQueryOperator adds to (or means otherwise than) the preset."""
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator
    from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator

    generic = inspect.signature(RevCentToBigQueryOperator).parameters
    preset = inspect.signature(CustomersToBigQueryOperator).parameters
    listed = {name for names, _, _ in README_GENERIC_ARGUMENTS for name in names}
    wanted = {n for n, p in generic.items() if n not in preset and p.kind is not inspect.Parameter.VAR_KEYWORD}
    if not wanted <= listed:
        raise SystemExit(f"devtools/gen_reference.py README_GENERIC_ARGUMENTS: describe {sorted(wanted - listed)}.")
    rows = ["| argument | default | |", "|---|---|---|"]
    for names, fallback, note in README_GENERIC_ARGUMENTS:
        default = generic[names[0]].default
        text = "required" if default is inspect.Parameter.empty else fallback or _friendly(default)
        rows.append(f"| {', '.join(f'`{n}`' for n in names)} | {text} | {note} |")
    return rows


def readme_arguments_table() -> list[str]:
    """The README's operator table: every argument of ``__init__``, literal defaults from the signature."""
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator

    parameters = {name: p for name, p in inspect.signature(CustomersToBigQueryOperator).parameters.items()
                  if p.kind is not inspect.Parameter.VAR_KEYWORD}
    listed = [name for names, _, _ in README_ARGUMENTS for name in names]
    missing, unknown = set(parameters) - set(listed), set(listed) - set(parameters)
    if missing or unknown or len(listed) != len(set(listed)):
        raise SystemExit(f"devtools/gen_reference.py README_ARGUMENTS is out of date: describe {sorted(missing)}, "
                         f"remove {sorted(unknown)}, list each argument once.")
    rows = ["| argument | default | |", "|---|---|---|"]
    for names, fallback, note in README_ARGUMENTS:
        default = parameters[names[0]].default
        if default is inspect.Parameter.empty:
            text = "required"
        elif default is None:
            if not fallback:
                raise SystemExit(f"devtools/gen_reference.py README_ARGUMENTS: say what {names[0]}=None means.")
            text = fallback
        else:
            text = _friendly(default)
        rows.append(f"| {', '.join(f'`{n}`' for n in names)} | {text} | {note} |")
    return rows


def revcent_extras() -> list[tuple[str, str, str]]:
    """(extra, default, meaning) of every extra the RevCent hook reads from its connection."""
    from airflow_revcent import CONNECTION_FIELDS
    from airflow_revcent.api import options
    from airflow_revcent.api.options import RequestOptions
    from airflow_revcent.api.settings import KNOWN_EXTRAS

    defaults = {
        "max_concurrency": options.DEFAULT_MAX_CONCURRENCY,
        "max_requests_per_second": options.DEFAULT_MAX_REQUESTS_PER_SECOND,
        "connect_timeout": options.DEFAULT_CONNECT_TIMEOUT, "read_timeout": options.DEFAULT_READ_TIMEOUT,
        "timeout": "", "retry_max_attempts": options.DEFAULT_RETRY_MAX_ATTEMPTS,
        "retry_max_seconds": options.DEFAULT_RETRY_MAX_SECONDS,
        "retry_initial_backoff": options.DEFAULT_RETRY_INITIAL_BACKOFF, "verify": "true",
        "request_timeout": options.DEFAULT_REQUEST_TIMEOUT, "stall_timeout": "derived (see meaning)",
        "account_requests_per_second": "none: not shared", "account_pool_slots": 1,
        "openapi_spec": "none: /v2/openapi.json from the API's host",
    }
    option_docs = _doc_params(RequestOptions)
    rows = []
    for extra in KNOWN_EXTRAS:
        meaning = option_docs.get(extra) or CONNECTION_FIELDS.get(extra, {}).get("description", "")
        if extra == "timeout":
            meaning = "sets both `connect_timeout` and `read_timeout` where they are not given"
        if extra == "verify":
            meaning = "verify TLS certificates; false logs a warning (local sandbox only)"
        if extra == "openapi_spec":
            meaning = ("where RevCent's OpenAPI document is read from, for workers without access or a pinned "
                       "version: a local file path or an http(s) URL (a URL on another host than the API's never "
                       "receives the key); read once per task")
        if extra.startswith("account_"):
            meaning = ("the account's request rate, shared by the tasks of the pool you opt into (`REVCENT_API_POOL`)"
                       if extra == "account_requests_per_second" else
                       "that pool's slots: each task paces at `account_requests_per_second` / slots")
        if extra not in defaults or not meaning:
            raise SystemExit(f"devtools/gen_reference.py: give the connection extra {extra!r} a default and a "
                             "meaning.")
        rows.append((extra, str(defaults[extra]), meaning.replace("``", "`").replace("|", "/").rstrip(".")))
    return rows


def readme_connection_table() -> list[str]:
    """The README's table of the ``revcent`` connection: its fields and every extra the hook reads."""
    from airflow_revcent import CONNECTION_UI
    from airflow_revcent.api.responses import DEFAULT_HOST

    rows = ["| field | meaning |", "|---|---|",
            f"| Host (\"{CONNECTION_UI['relabeling']['host']}\") | empty for `{DEFAULT_HOST}`; a host "
            "without a scheme means https; `http://` only when written (a local sandbox) |",
            f"| Password (\"{CONNECTION_UI['relabeling']['password']}\") | your RevCent API key (Live or Test mode); "
            "sent as the `x-api-key` header, never logged |"]
    for extra, default, meaning in revcent_extras():
        said = "default" in meaning or not default  # the options' descriptions state their defaults
        rows.append(f"| Extra `{extra}` | {meaning}{'' if said else f' (default {default})'} |")
    return rows


def gcp_connection_table(extras: Iterable[str] = GCP_EXTRAS) -> list[str]:
    """The ``google_cloud_platform`` connection's extras this package reads (or those of ``extras``)."""
    rows = ["| extra | meaning |", "|---|---|"]
    rows += [f"| `{extra}` | {GCP_EXTRAS[extra]} |" for extra in extras]
    return rows


def readme_gcp_table() -> list[str]:
    """The README's Google Cloud extras besides the identity (which has its own table of modes)."""
    return gcp_connection_table(("project", "location", "api_endpoint"))


def render() -> str:
    from airflow_revcent import CONNECTION_UI
    from airflow_revcent.api.options import REQUEST_OPTION_NAMES, RequestOptions
    from airflow_revcent.api.paging import DEFAULT_MAX_PASSES
    from airflow_revcent.api.responses import DEFAULT_HOST
    from airflow_revcent.hooks.revcent import RevCentHook
    from airflow_revcent.rows.columns import table_columns
    from airflow_revcent.transfers.customers_to_bigquery import CustomersToBigQueryOperator
    from airflow_revcent.transfers.revcent_to_bigquery import RevCentToBigQueryOperator, RevCentToBigQueryTaskGroup

    out = ["# Reference", "", "Generated by `python -m devtools.gen_reference` from the code and the packaged "
           "OpenAPI spec; do not edit by hand.", ""]
    out += ["## CustomersToBigQueryOperator", "",
            "`airflow_revcent.transfers.customers_to_bigquery.CustomersToBigQueryOperator`. Other keyword "
            "arguments go to Airflow's `BaseOperator` (`task_id`, `retries`, ...). By default a `retry_policy` "
            "fails the task at once on errors another try cannot fix (bad input, rejected key, API contract "
            "violations).", ""]
    out += _params_table(CustomersToBigQueryOperator, CustomersToBigQueryOperator)
    out += ["", "## RevCentToBigQueryOperator", "",
            "`airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryOperator`: any date-ranged RevCent "
            "list resource, typed from RevCent's OpenAPI document; `CustomersToBigQueryOperator` is its customers "
            "preset.", ""]
    out += _params_table(RevCentToBigQueryOperator, RevCentToBigQueryOperator)
    out += ["", "## RevCentToBigQueryTaskGroup", "",
            "`airflow_revcent.transfers.revcent_to_bigquery.RevCentToBigQueryTaskGroup`: a long history as a task "
            "group, `plan` >> `windows` (mapped, one task instance per window) >> `apply` (README, \"Long "
            "histories across workers\"). Every other keyword argument is `RevCentToBigQueryOperator`'s or "
            "`BaseOperator`'s, given to the three tasks.", ""]
    out += _params_table(RevCentToBigQueryTaskGroup, RevCentToBigQueryTaskGroup, skip=("operator_kwargs",),
                         templated_from=RevCentToBigQueryOperator)
    out += ["", "## RevCentHook", "",
            "`airflow_revcent.hooks.revcent.RevCentHook` (connection type `revcent`, default connection "
            "`revcent_default`). Its `options` override the connection's extras; the old keyword arguments "
            "of the same names still work, with a deprecation warning. `max_passes` can be set only on a hook "
            "built in your own code; the operator uses the default.", ""]
    out += _params_table(RevCentHook, RevCentHook, skip=REQUEST_OPTION_NAMES)
    out += ["", "### RequestOptions", "",
            "`airflow_revcent.api.options.RequestOptions`: a frozen dataclass validated where it is built; a "
            "field left `None` falls back to the connection's extra of the same name, then to the default.", ""]
    out += _params_table(RequestOptions, RequestOptions)
    out += ["", "## The `revcent` connection", "", "| field | label | meaning |", "|---|---|---|",
            f"| host | {CONNECTION_UI['relabeling']['host']} | empty for `{DEFAULT_HOST}`; no scheme "
            "means https; `http://` only when written |",
            f"| password | {CONNECTION_UI['relabeling']['password']} | the RevCent API key (header `x-api-key`) |",
            f"| hidden | | {', '.join(CONNECTION_UI['hidden-fields'])} |", "",
            "Extras (unknown extras are ignored with a warning and never sent as headers):", "",
            "| extra | default | meaning |", "|---|---|---|"]
    out += [f"| `{extra}` | {default} | {meaning} |" for extra, default, meaning in revcent_extras()]
    out += ["", "## The `google_cloud_platform` connection", "",
            "Extras read with or without the `extra__google_cloud_platform__` prefix (the short one wins; `\"\"` is "
            "unset). At most one of `key_path`, `keyfile_dict`, `credential_config_file`, `key_secret_name`, "
            "`is_anonymous`; none means Application Default Credentials. The README's Google Cloud identity "
            "section shows each mode.", ""]
    out += gcp_connection_table()
    columns = table_columns()
    out += ["", "## Table schema", "",
            f"{len(columns)} top-level columns. Nested fields are shown with dots; REPEATED fields are arrays.",
            "", "| column | type | mode | description |", "|---|---|---|---|"]
    out += _schema_rows(columns)
    out += ["", TROUBLESHOOTING.replace("{max_passes}", str(DEFAULT_MAX_PASSES))]
    return "\n".join(out).rstrip() + "\n"


#: The README's generated regions, by name.
README_REGIONS: dict[str, Callable[[], list[str]]] = {
    "revcent-connection": readme_connection_table,
    "gcp-connection": readme_gcp_table,
    "operator-arguments": readme_arguments_table,
    "generic-operator-arguments": readme_generic_arguments_table,
}


def render_readme(text: str) -> str:
    """``text`` (the README) with each generated region replaced by what the code says now."""
    for name, table in README_REGIONS.items():
        begin = f"<!-- generated: {name} (python -m devtools.gen_reference; do not edit) -->"
        end = f"<!-- end generated: {name} -->"
        pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), flags=re.S)
        found = pattern.search(text)
        if found is None:
            raise SystemExit(f"README.md has no region {begin} ... {end}")
        # Spliced, not re.sub: a backslash in a table stays as written.
        text = text[:found.start()] + "\n".join([begin, *table(), end]) + text[found.end():]
    return text


def main() -> int:
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(render())
    README.write_text(render_readme(README.read_text()))
    print(f"wrote {TARGET.relative_to(ROOT)} and the generated tables of {README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

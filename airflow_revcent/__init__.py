"""Apache Airflow provider for RevCent: land RevCent customers in BigQuery, exactly once."""

from __future__ import annotations

import os
from typing import Any

__version__ = "0.1.0"

#: The conventional name of the Airflow pool that shares one RevCent account's request allowance between
#: tasks: its slots divide the connection extra ``account_requests_per_second`` (see README, "One API
#: allowance for many tasks"). Airflow does not create it; the sample DAGs use it only when asked
#: (:data:`API_POOL_ENV`).
API_POOL = "revcent_api"

#: The environment variable that opts the sample DAGs into a shared pool: the pool's name (normally
#: :data:`API_POOL`), set where the DAG files are parsed (the dag processor, ``airflow dags test``).
API_POOL_ENV = "REVCENT_API_POOL"

#: Airflow's own pool, which ``airflow db migrate`` creates on every Airflow.
DEFAULT_POOL = "default_pool"


def api_pool() -> str:
    """The pool for tasks that call the RevCent account: the one ``$REVCENT_API_POOL`` names, else Airflow's.

    A pool named on a task but missing from Airflow keeps the task scheduled forever (the scheduler
    only logs a warning), so the sample DAGs name a pool of their own only when the deployment says it
    created one. Read when the DAG file is parsed: the scheduler takes a task's pool from the parsed DAG.
    (Not None for "default": a mapped task keeps a None pool as it is.)

    :return: the pool's name: ``$REVCENT_API_POOL``, or :data:`DEFAULT_POOL` when unset or empty.
    """
    return os.environ.get(API_POOL_ENV, "").strip() or DEFAULT_POOL

#: The connection form, declared the Airflow 3 way (no FAB/wtforms imports needed).
CONNECTION_UI: dict[str, Any] = {
    "hidden-fields": ["schema", "login", "port"],
    "relabeling": {"host": "API root URL", "password": "API key"},
    "placeholders": {
        "host": "https://api.revcent.com (leave empty for the default)",
        "password": "your RevCent API key (Live or Test mode)",
        "extra": '{"max_concurrency": 4, "max_requests_per_second": 10}',
    },
}

#: Optional settings shown as form fields; they are stored in the connection's extras.
CONNECTION_FIELDS: dict[str, Any] = {
    "max_concurrency": {
        "label": "Max concurrent requests",
        "schema": {"type": ["integer", "null"], "minimum": 1},
        "description": "Requests in flight at once (default 4).",
    },
    "max_requests_per_second": {
        "label": "Max requests per second",
        "schema": {"type": ["number", "null"], "minimum": 0},
        "description": "Pace ceiling for one task (default 10; 0 = no limit).",
    },
    "read_timeout": {
        "label": "Read timeout (s)",
        "schema": {"type": ["number", "null"], "minimum": 0},
        "description": "Seconds to wait for response data (default 60).",
    },
    "verify": {
        "label": "Verify TLS certificates",
        "schema": {"type": ["boolean", "null"], "default": True},
        "description": "Turn off only for a local sandbox.",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-revcent",
        "name": "RevCent",
        "description": "Land RevCent customers in BigQuery, every day and for years of history.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "RevCent",
                "external-doc-url": "https://revcent.com/documentation",
                "tags": ["service"],
            }
        ],
        "operators": [
            {
                "integration-name": "RevCent",
                "python-modules": ["airflow_revcent.transfers.customers_to_bigquery"],
            }
        ],
        "hooks": [{"integration-name": "RevCent", "python-modules": ["airflow_revcent.hooks.revcent"]}],
        "transfers": [
            {
                "source-integration-name": "RevCent",
                "target-integration-name": "Google BigQuery",
                "python-module": "airflow_revcent.transfers.customers_to_bigquery",
                "how-to-guide": "README.md",
            }
        ],
        "connection-types": [
            {
                "connection-type": "revcent",
                "hook-class-name": "airflow_revcent.hooks.revcent.RevCentHook",
                "hook-name": "RevCent",
                "ui-field-behaviour": CONNECTION_UI,
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
        "extra-links": [
            "airflow_revcent.bigquery.links.BigQueryTableLink",
            "airflow_revcent.bigquery.links.BigQueryJobLink",
        ],
    }

"""A BigQuery client from an Airflow Google Cloud connection, without the google provider.

The google provider is heavy and optional; this module reads the same connection extras it
uses, so a ``google_cloud_default`` connection made for it works here unchanged, and installing
it alongside never conflicts (this package registers no google connection type).

Extras read (with or without the ``extra__google_cloud_platform__`` prefix): ``project``,
``location``, ``key_path``, ``keyfile_dict``, ``api_endpoint``. Credentials: the service account
from ``keyfile_dict`` or ``key_path``; else, with ``api_endpoint`` (a local BigQuery-API server),
anonymous credentials; else Application Default Credentials.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError

DEFAULT_GCP_CONN_ID = "google_cloud_default"
_PREFIX = "extra__google_cloud_platform__"
SCOPES = ("https://www.googleapis.com/auth/bigquery",)


@dataclass(frozen=True)
class BigQuerySettings:
    """What a Google Cloud connection says about reaching BigQuery."""

    project: str | None = None
    location: str | None = None
    key_path: str | None = None
    keyfile_dict: dict[str, Any] | None = field(default=None, repr=False)
    api_endpoint: str | None = None

    @classmethod
    def from_extras(cls, extras: dict[str, Any], *, conn_id: str) -> BigQuerySettings:
        """Read the extras of a connection.

        :param extras: the connection's extras.
        :param conn_id: its id, for messages.
        """

        def get(name: str) -> Any:
            value = extras.get(name, extras.get(_PREFIX + name))
            return value if value not in ("", None) else None

        keyfile = get("keyfile_dict")
        if isinstance(keyfile, str):
            try:
                keyfile = json.loads(keyfile)
            except ValueError:
                # Never echo the value: it is a private key.
                raise RevCentConfigError(
                    f"Connection {conn_id!r}: extra keyfile_dict is not valid JSON; paste the service account "
                    "key file's JSON as is."
                ) from None
        if keyfile is not None and not isinstance(keyfile, dict):
            raise RevCentConfigError(f"Connection {conn_id!r}: extra keyfile_dict must be a JSON object.")
        return cls(
            project=get("project"),
            location=get("location"),
            key_path=get("key_path"),
            keyfile_dict=keyfile,
            api_endpoint=get("api_endpoint"),
        )


def read_settings(gcp_conn_id: str) -> BigQuerySettings:
    """Read a Google Cloud connection; a missing ``google_cloud_default`` means "use ADC".

    :param gcp_conn_id: the connection id.
    """
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(gcp_conn_id)
    except Exception as exc:
        if type(exc).__name__ != "AirflowNotFoundException":
            raise
        if gcp_conn_id == DEFAULT_GCP_CONN_ID:
            # The documented fallback: no connection at all means Application Default Credentials.
            return BigQuerySettings()
        raise RevCentConfigError(
            f"The Google Cloud connection {gcp_conn_id!r} does not exist; create it (extras: project, "
            "key_path or keyfile_dict) or pass gcp_conn_id='google_cloud_default'."
        ) from None
    return BigQuerySettings.from_extras(dict(conn.extra_dejson or {}), conn_id=gcp_conn_id)


def make_client(settings: BigQuerySettings, *, project: str | None = None, location: str | None = None) -> Any:
    """A ``google.cloud.bigquery.Client`` for these settings.

    :param settings: what the connection says.
    :param project: the project to bill jobs to when the connection names none.
    :param location: default location for jobs.
    """
    from google.cloud import bigquery

    credentials: Any = None
    key_project: str | None = None
    if settings.keyfile_dict is not None or settings.key_path:
        from google.oauth2 import service_account

        if settings.keyfile_dict is not None:
            credentials = service_account.Credentials.from_service_account_info(
                settings.keyfile_dict, scopes=SCOPES
            )
        else:
            credentials = service_account.Credentials.from_service_account_file(settings.key_path, scopes=SCOPES)
        key_project = getattr(credentials, "project_id", None)
    elif settings.api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    else:
        import google.auth

        credentials, key_project = google.auth.default(scopes=SCOPES)
    billing = settings.project or project or key_project
    if not billing:
        raise RevCentConfigError(
            "No Google Cloud project is known: set the extra 'project' on the Google Cloud connection or "
            "write destination_table as 'project.dataset.table'."
        )
    options = {"api_endpoint": settings.api_endpoint} if settings.api_endpoint else None
    return bigquery.Client(
        project=billing, credentials=credentials, location=location or settings.location, client_options=options
    )

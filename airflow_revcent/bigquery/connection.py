"""A BigQuery client from an Airflow Google Cloud connection, with or without the google provider.

A ``google_cloud_platform`` connection made for the google provider works here unchanged, and the
same connection gives the same identity both ways:

- with ``apache-airflow-providers-google`` installed, the credentials come from its
  ``GoogleBaseHook`` (which also reads ``key_secret_name`` from Secret Manager and runs the
  client-credentials identity provider flow);
- without it, this module builds them with google-auth, reading the extras exactly as the
  provider does: each with or without the ``extra__google_cloud_platform__`` prefix (the short
  name wins), ``""`` meaning unset.

Identity extras: ``key_path``, ``keyfile_dict``, ``credential_config_file`` (workload identity
federation), ``key_secret_name`` (+ ``key_secret_project_id``) and ``is_anonymous`` are mutually
exclusive; none of them means Application Default Credentials. On top of any of them but
``is_anonymous``: ``impersonation_chain`` (one service account, a comma-separated chain or a list;
the operator argument wins over the extra), ``scope`` (comma-separated; default
``cloud-platform``) and ``quota_project_id``. Also read: ``project``, ``location``,
``api_endpoint`` (another BigQuery-API server: it never changes the credentials; a local server
without authentication needs ``is_anonymous``).

A setting that cannot be applied is an error naming it, never ignored. No key, token or secret
value is ever logged or put in a message; this module logs only which kind of identity it built.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_revcent.exceptions import RevCentConfigError

log = logging.getLogger(__name__)

DEFAULT_GCP_CONN_ID = "google_cloud_default"
_PREFIX = "extra__google_cloud_platform__"
#: The google provider's default scopes, so that a connection without ``scope`` means the same both ways.
DEFAULT_SCOPES: tuple[str, ...] = ("https://www.googleapis.com/auth/cloud-platform",)
#: Mutually exclusive ways to say who the caller is (the google provider's own list).
KEY_OPTIONS = ("key_path", "keyfile_dict", "credential_config_file", "key_secret_name", "is_anonymous")
#: Settings only the google provider can apply.
PROVIDER_ONLY = ("key_secret_name", "idp_issuer_url", "client_id", "client_secret", "idp_extra_params")
#: A Google Cloud project id, as the google provider validates ``quota_project_id``.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_INSTALL_PROVIDER = (
    "install the google provider beside this package (pip install 'airflow-provider-revcent[google]', "
    "i.e. apache-airflow-providers-google), which reads it through GoogleBaseHook"
)


def _extra(extras: dict[str, Any], name: str) -> Any:
    """An extra as the google provider reads it: the short name first, then the prefixed one; "" is unset."""
    value = extras[name] if name in extras else extras.get(_PREFIX + name)
    return None if value == "" else value


def _chain(value: Any, *, source: str) -> tuple[str, ...]:
    """An impersonation chain from a string (one account, or comma-separated) or a list of accounts."""
    if value in (None, "", (), []):
        return ()
    if isinstance(value, str):
        accounts = [part.strip() for part in value.split(",")]
    elif isinstance(value, Sequence) and all(isinstance(part, str) for part in value):
        accounts = [part.strip() for part in value]
    else:
        raise RevCentConfigError(
            f"{source} must be a service account email, a comma-separated chain of them or a list of them; "
            f"got a {type(value).__name__}."
        )
    if not all("@" in account for account in accounts):
        raise RevCentConfigError(
            f"{source}: every entry must be a service account email (name@project.iam.gserviceaccount.com); "
            f"got {accounts!r}."
        )
    return tuple(accounts)


def _flag(value: Any, *, source: str) -> bool:
    """``is_anonymous``: a JSON boolean, or the string ``"true"`` of a URI-form connection.

    Other strings are refused: the google provider tests the value for truth, so ``"false"`` would mean
    anonymous there and not here.
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() == "true":
        return True
    raise RevCentConfigError(f"{source} must be the JSON boolean true or false; got {value!r}.")


@dataclass(frozen=True)
class BigQuerySettings:
    """What a Google Cloud connection says about reaching BigQuery and who to be.

    :param conn_id: the connection it was read from; ``None`` when there is none (Application Default
        Credentials).
    :param project: the project jobs are billed to (extra ``project``).
    :param location: default location of jobs (extra ``location``).
    :param api_endpoint: another BigQuery-API root URL (extra ``api_endpoint``).
    :param key_path: path of a service account JSON key file.
    :param keyfile_dict: a service account JSON key.
    :param credential_config_file: a workload identity federation configuration: a file path, its JSON
        text or a dict.
    :param key_secret_name: a Secret Manager secret holding a service account key (google provider only).
    :param key_secret_project_id: the project of ``key_secret_name``.
    :param is_anonymous: anonymous credentials (a local server without authentication).
    :param impersonation_chain: the service account to impersonate, last; each before it a delegate.
    :param scopes: OAuth scopes (extra ``scope``, comma-separated).
    :param quota_project_id: the project charged for quota (extra ``quota_project_id``).
    :param provider_only: the extras set that only the google provider can apply (client-credentials flow).
    """

    conn_id: str | None = None
    project: str | None = None
    location: str | None = None
    api_endpoint: str | None = None
    key_path: str | None = None
    keyfile_dict: dict[str, Any] | None = field(default=None, repr=False)
    credential_config_file: str | dict[str, Any] | None = field(default=None, repr=False)
    key_secret_name: str | None = field(default=None, repr=False)
    key_secret_project_id: str | None = None
    is_anonymous: bool = False
    impersonation_chain: tuple[str, ...] = ()
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    quota_project_id: str | None = None
    provider_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"Connection {self.conn_id!r}" if self.conn_id else "The Google Cloud settings"
        given = [name for name in KEY_OPTIONS if getattr(self, name)]
        if len(given) > 1:
            raise RevCentConfigError(
                f"{where}: the extras {', '.join(given)} are mutually exclusive (each says on its own who to be); "
                "keep one."
            )
        if self.is_anonymous:
            extra = [name for name, value in (("impersonation_chain", self.impersonation_chain),
                                              ("quota_project_id", self.quota_project_id),
                                              ("scope", self.scopes != DEFAULT_SCOPES),
                                              *((name, True) for name in self.provider_only)) if value]
            if extra:
                raise RevCentConfigError(
                    f"{where}: is_anonymous sends no credentials, so {', '.join(extra)} cannot apply; remove "
                    f"{'it' if len(extra) == 1 else 'them'} or is_anonymous."
                )
        if self.key_secret_project_id and not self.key_secret_name:
            raise RevCentConfigError(
                f"{where}: key_secret_project_id is set without key_secret_name; set both or neither."
            )
        if self.key_path and self.key_path.endswith(".p12"):
            raise RevCentConfigError(f"{where}: key_path names a legacy P12 key; use a JSON key file.")
        if self.key_path and not self.key_path.endswith(".json"):
            raise RevCentConfigError(
                f"{where}: key_path must name a JSON key file ending in .json (as the google provider requires)."
            )
        if self.quota_project_id is not None and not (
                isinstance(self.quota_project_id, str) and _PROJECT_ID.match(self.quota_project_id)):
            raise RevCentConfigError(
                f"{where}: quota_project_id must be a project id (6 to 30 lowercase letters, digits and hyphens, "
                f"starting with a letter); got {self.quota_project_id!r}."
            )
        if not self.scopes or not all(self.scopes):
            raise RevCentConfigError(f"{where}: scope must list OAuth scopes separated by commas.")

    @classmethod
    def from_extras(cls, extras: dict[str, Any], *, conn_id: str | None,
                    impersonation_chain: str | Sequence[str] | None = None) -> BigQuerySettings:
        """Read the extras of a connection.

        :param extras: the connection's extras.
        :param conn_id: its id, for messages and for the google provider's hook.
        :param impersonation_chain: the operator's argument, which wins over the extra.
        """
        where = f"Connection {conn_id!r}"
        keyfile = _extra(extras, "keyfile_dict")
        if isinstance(keyfile, str):
            try:
                keyfile = json.loads(keyfile)
            except ValueError:
                # Never echo the value: it is a private key.
                raise RevCentConfigError(
                    f"{where}: extra keyfile_dict is not valid JSON; paste the service account key file's JSON "
                    "as is."
                ) from None
        if keyfile is not None and not isinstance(keyfile, dict):
            raise RevCentConfigError(f"{where}: extra keyfile_dict must be a JSON object.")
        config = _extra(extras, "credential_config_file")
        if config is not None and not isinstance(config, str | dict):
            raise RevCentConfigError(
                f"{where}: extra credential_config_file must be a file path, its JSON text or a JSON object."
            )
        scope = _extra(extras, "scope")
        if scope is not None and not isinstance(scope, str):
            raise RevCentConfigError(f"{where}: extra scope must be a string of OAuth scopes separated by commas.")
        chain = _chain(impersonation_chain, source="impersonation_chain") or _chain(
            _extra(extras, "impersonation_chain"), source=f"{where}: extra impersonation_chain")
        return cls(
            conn_id=conn_id,
            project=_extra(extras, "project"),
            location=_extra(extras, "location"),
            api_endpoint=_extra(extras, "api_endpoint"),
            key_path=_extra(extras, "key_path"),
            keyfile_dict=keyfile,
            credential_config_file=config,
            key_secret_name=_extra(extras, "key_secret_name"),
            key_secret_project_id=_extra(extras, "key_secret_project_id"),
            is_anonymous=_flag(_extra(extras, "is_anonymous"), source=f"{where}: extra is_anonymous"),
            impersonation_chain=chain,
            scopes=tuple(part.strip() for part in scope.split(",")) if scope else DEFAULT_SCOPES,
            quota_project_id=_extra(extras, "quota_project_id"),
            provider_only=tuple(name for name in PROVIDER_ONLY[1:] if _extra(extras, name) is not None),
        )

    @property
    def identity(self) -> str:
        """Which identity these settings describe, in words safe to log (no key, no secret name)."""
        base = next((name for name in KEY_OPTIONS if getattr(self, name)), "application default credentials")
        if self.impersonation_chain:
            base += f", impersonating {self.impersonation_chain[-1]}"
            if len(self.impersonation_chain) > 1:
                base += f" through {len(self.impersonation_chain) - 1} delegate(s)"
        return base


def read_settings(gcp_conn_id: str, *, impersonation_chain: str | Sequence[str] | None = None) -> BigQuerySettings:
    """Read a Google Cloud connection; a missing ``google_cloud_default`` means "use ADC".

    :param gcp_conn_id: the connection id.
    :param impersonation_chain: the operator's argument, which wins over the connection's extra.
    """
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(gcp_conn_id)
    except Exception as exc:
        if type(exc).__name__ != "AirflowNotFoundException":
            raise
        if gcp_conn_id == DEFAULT_GCP_CONN_ID:
            # The documented fallback: no connection at all means Application Default Credentials.
            return BigQuerySettings.from_extras({}, conn_id=None, impersonation_chain=impersonation_chain)
        raise RevCentConfigError(
            f"The Google Cloud connection {gcp_conn_id!r} does not exist; create it (extras: project, "
            "key_path or keyfile_dict) or pass gcp_conn_id='google_cloud_default'."
        ) from None
    return BigQuerySettings.from_extras(dict(conn.extra_dejson or {}), conn_id=gcp_conn_id,
                                        impersonation_chain=impersonation_chain)


def google_base_hook_class() -> Any:
    """The google provider's ``GoogleBaseHook``, or ``None`` when the provider is not installed."""
    try:
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook
    except ImportError:
        return None
    return GoogleBaseHook


def _provider_credentials(settings: BigQuerySettings, hook_class: Any) -> tuple[Any, str | None]:
    chain = list(settings.impersonation_chain) or None
    hook = hook_class(gcp_conn_id=settings.conn_id, impersonation_chain=chain)
    credentials, project = hook.get_credentials_and_project_id()
    return credentials, project or None


def _unavailable(settings: BigQuerySettings) -> list[str]:
    names = ["key_secret_name"] if settings.key_secret_name else []
    return names + list(settings.provider_only)


def _google_auth_credentials(settings: BigQuerySettings) -> tuple[Any, str | None]:
    """The credentials, built with google-auth as the google provider's credentials provider does."""
    import google.auth

    if missing := _unavailable(settings):
        raise RevCentConfigError(
            f"Connection {settings.conn_id!r}: the extra{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"cannot be applied without the google provider; {_INSTALL_PROVIDER}, or use key_path, keyfile_dict, "
            "credential_config_file or application default credentials instead."
        )
    scopes = list(settings.scopes)
    credentials: Any
    project: str | None
    if settings.is_anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials(), None
    if settings.key_path:
        from google.oauth2 import service_account

        credentials = service_account.Credentials.from_service_account_file(settings.key_path, scopes=scopes)
        project = credentials.project_id
    elif settings.keyfile_dict is not None:
        from google.oauth2 import service_account

        info = dict(settings.keyfile_dict)
        if isinstance(info.get("private_key"), str):
            # As the provider does: a key pasted with escaped newlines.
            info["private_key"] = info["private_key"].replace("\\n", "\n")
        credentials = service_account.Credentials.from_service_account_info(info, scopes=scopes)
        project = credentials.project_id
    elif settings.credential_config_file is not None:
        config = settings.credential_config_file
        if isinstance(config, str) and os.path.exists(config):
            credentials, project = google.auth.load_credentials_from_file(config, scopes=scopes)
        else:
            if isinstance(config, str):
                try:
                    config = json.loads(config)
                except ValueError:
                    raise RevCentConfigError(
                        f"Connection {settings.conn_id!r}: extra credential_config_file is neither an existing "
                        "file nor JSON; give the path of the credential configuration file or its content."
                    ) from None
            if not isinstance(config, dict):
                raise RevCentConfigError(
                    f"Connection {settings.conn_id!r}: extra credential_config_file must be a JSON object."
                )
            credentials, project = google.auth.load_credentials_from_dict(config, scopes=scopes)
    else:
        credentials, project = google.auth.default(scopes=scopes)
    if settings.impersonation_chain:
        from google.auth import impersonated_credentials

        target = settings.impersonation_chain[-1]
        credentials = impersonated_credentials.Credentials(
            source_credentials=credentials, target_principal=target,
            delegates=list(settings.impersonation_chain[:-1]) or None, target_scopes=scopes,
        )
        # As the provider does: the impersonated account's project.
        project = target.split("@", 1)[1].split(".", 1)[0]
    return credentials, project or None


def make_credentials(settings: BigQuerySettings) -> tuple[Any, str | None]:
    """The credentials these settings describe, and the project they imply (a key's, an impersonated account's).

    Through the google provider's ``GoogleBaseHook`` when it is installed and a connection exists; else
    with google-auth.

    :param settings: what the connection says.
    """
    hook_class = google_base_hook_class() if settings.conn_id else None
    source = "the google provider's GoogleBaseHook" if hook_class is not None else "google-auth"
    try:
        if hook_class is not None:
            credentials, project = _provider_credentials(settings, hook_class)
        else:
            credentials, project = _google_auth_credentials(settings)
    except Exception as exc:
        if type(exc).__name__ != "DefaultCredentialsError":
            raise
        hint = (' A BigQuery-API server that takes no credentials (a local one) needs the extra "is_anonymous": '
                "true." if settings.api_endpoint else "")
        raise RevCentConfigError(
            f"No Google Cloud credentials: the connection {settings.conn_id or DEFAULT_GCP_CONN_ID!r} names no "
            "key (key_path, keyfile_dict, credential_config_file) and application default credentials are "
            f"not set up (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login).{hint}"
        ) from None
    if settings.quota_project_id and getattr(credentials, "quota_project_id", None) != settings.quota_project_id:
        # Recent google providers apply the extra themselves; older ones and google-auth do not.
        if not hasattr(credentials, "with_quota_project"):
            raise RevCentConfigError(
                f"Connection {settings.conn_id!r}: quota_project_id cannot be applied to "
                f"{type(credentials).__name__} credentials; remove it or use another identity."
            )
        credentials = credentials.with_quota_project(settings.quota_project_id)
    log.info("Google Cloud identity: %s (built by %s).", settings.identity, source)
    return credentials, project


def make_client(settings: BigQuerySettings, *, project: str | None = None, location: str | None = None,
                billing_project: str | None = None) -> Any:
    """A ``google.cloud.bigquery.Client`` for these settings; its ``project`` runs and pays for the jobs.

    :param settings: what the connection says.
    :param project: the project to bill jobs to when neither ``billing_project`` nor the connection names one.
    :param location: default location for jobs.
    :param billing_project: the project to bill jobs to, whatever the connection says (the operator's
        ``project_id``).
    """
    from google.cloud import bigquery

    credentials, credentials_project = make_credentials(settings)
    billing = billing_project or settings.project or project or credentials_project
    if not billing:
        raise RevCentConfigError(
            "No Google Cloud project is known: set the extra 'project' on the Google Cloud connection or "
            "write destination_table as 'project.dataset.table'."
        )
    options = {"api_endpoint": settings.api_endpoint} if settings.api_endpoint else None
    return bigquery.Client(
        project=billing, credentials=credentials, location=location or settings.location, client_options=options
    )

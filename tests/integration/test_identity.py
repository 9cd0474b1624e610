"""Every identity a google_cloud_platform connection can express, end to end: real credentials objects
against a fake Google token endpoint, STS endpoint and IAM credentials API (a local HTTP server), then
real BigQuery calls through the recording proxy in front of the local BigQuery server, which checks the
token each call carried.

Each test runs both ways: credentials built by the google provider's GoogleBaseHook (where the provider
is installed: the ``google`` leg of ``./dev legs``) and by google-auth alone.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_revcent.bigquery import connection
from airflow_revcent.bigquery.connection import make_client, read_settings
from airflow_revcent.exceptions import RevCentConfigError
from revcent_sandbox import CustomerStore

from .bqproxy import BigQueryProxy, authorization_fingerprint
from .conftest import run_operator, unix
from .truth import assert_table_matches

CONN = "gcp_identity"
SOURCE = "loader@source-project.iam.gserviceaccount.com"
MIDDLE = "hop@middle-project.iam.gserviceaccount.com"
TARGET = "writer@target-project.iam.gserviceaccount.com"
PROVIDER = connection.google_base_hook_class() is not None


@dataclass
class FakeGoogle:
    """Token endpoint, STS and IAM credentials ``generateAccessToken``; records what each call asked."""

    url: str = ""
    grants: list[dict[str, Any]] = field(default_factory=list)  # JWT-bearer grants: iss, scope
    exchanges: list[dict[str, Any]] = field(default_factory=list)  # STS token exchanges
    impersonations: list[dict[str, Any]] = field(default_factory=list)  # principal, delegates, caller

    @staticmethod
    def token_of(account: str) -> str:
        return f"ya29.fake-{account.split('@', maxsplit=1)[0]}"

    FEDERATED = "ya29.fake-federated"


def _claims(assertion: str) -> dict[str, Any]:
    payload = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _handler(google: FakeGoogle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            # Resource Manager: google-auth looks up a federated identity's project by its number.
            if self.path.startswith("/v1/projects/"):
                self._json({"projectNumber": self.path.rsplit("/", 1)[1], "projectId": "federated-project"})
            else:
                self._json({"error": "not found"}, status=404)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.path == "/token":
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                claims = _claims(form["assertion"])
                google.grants.append({"iss": claims["iss"], "scope": claims.get("scope")})
                self._json({"access_token": FakeGoogle.token_of(claims["iss"]), "expires_in": 3600,
                            "token_type": "Bearer"})
            elif self.path == "/sts":
                form = {k: v[0] for k, v in parse_qs(raw).items()}
                google.exchanges.append({"subject_token": form.get("subject_token"), "scope": form.get("scope"),
                                         "audience": form.get("audience")})
                self._json({"access_token": FakeGoogle.FEDERATED, "issued_token_type":
                            "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer",
                            "expires_in": 3600})
            elif self.path.endswith(":generateAccessToken"):
                principal = self.path.split("/serviceAccounts/")[1].split(":")[0]
                body = json.loads(raw)
                google.impersonations.append({
                    "principal": principal, "delegates": body.get("delegates"), "scope": body.get("scope"),
                    "caller": authorization_fingerprint(self.headers.get("Authorization"))})
                self._json({"accessToken": FakeGoogle.token_of(principal), "expireTime": "2099-01-01T00:00:00Z"})
            else:
                self._json({"error": "not found"}, status=404)

        def _json(self, document: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    fake = FakeGoogle()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # google-auth reads the IAM endpoint when it refreshes (both ways of building credentials use it):
    # from google.auth.iam since 2.30, from google.auth.impersonated_credentials before (the floor's).
    import google.auth.external_account
    import google.auth.iam
    import google.auth.impersonated_credentials

    iam_home = google.auth.iam if hasattr(google.auth.iam, "_IAM_ENDPOINT") else google.auth.impersonated_credentials
    monkeypatch.setattr(iam_home, "_IAM_ENDPOINT", fake.url + "/v1/projects/-/serviceAccounts/{}:generateAccessToken")
    monkeypatch.setattr(google.auth.external_account, "_CLOUD_RESOURCE_MANAGER", fake.url + "/v1/projects/")
    # No application default credentials unless a test sets them; no metadata server to ask.
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(Path(os.environ.get("TMPDIR", "/tmp")) / "no-gcloud-config"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    yield fake
    server.shutdown()


@pytest.fixture(scope="module")
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def keyfile(google: FakeGoogle, private_key: str) -> dict[str, str]:
    return {"type": "service_account", "project_id": "source-project", "private_key_id": "k1",
            "private_key": private_key, "client_email": SOURCE, "client_id": "1",
            "token_uri": google.url + "/token"}


@pytest.fixture(params=["google provider", "google-auth"] if PROVIDER else ["google-auth"])
def built_by(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which library builds the credentials; the google-auth path is forced where the provider is installed."""
    if request.param == "google-auth":
        monkeypatch.setattr(connection, "google_base_hook_class", lambda: None)
    return str(request.param)


def test_the_google_leg_really_has_the_provider():
    if os.environ.get("REVCENT_EXPECT_GOOGLE_PROVIDER"):
        assert PROVIDER, "apache-airflow-providers-google is not importable in the google leg"


@pytest.fixture
def gcp(monkeypatch: pytest.MonkeyPatch, bq_proxy: BigQueryProxy, bigquery_server: Any):
    """Define the connection ``gcp_identity`` pointing at BigQuery through the proxy, with these extras."""

    def define(**extras: Any) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(
            {"conn_type": "google_cloud_platform",
             "extra": {"project": bigquery_server.project, "api_endpoint": bq_proxy.url, **extras}}))

    return define


def bigquery_call(bq_proxy: BigQueryProxy, impersonation_chain: Any = None) -> set[str | None]:
    """One query and one listing through the proxy; the Authorization fingerprints they carried."""
    client = make_client(read_settings(CONN, impersonation_chain=impersonation_chain))
    start = len(bq_proxy.requests)
    assert next(iter(client.query("SELECT 1 AS one").result()))["one"] == 1
    list(client.list_datasets())
    calls = bq_proxy.requests[start:]
    assert len(calls) >= 2
    return {call.auth for call in calls}


def bearer(token: str) -> str | None:
    return authorization_fingerprint(f"Bearer {token}")


def test_keyfile_dict(built_by, google, gcp, bq_proxy, keyfile):
    gcp(keyfile_dict=json.dumps(keyfile), scope="https://www.googleapis.com/auth/bigquery")
    assert bigquery_call(bq_proxy) == {bearer(FakeGoogle.token_of(SOURCE))}
    assert google.grants == [{"iss": SOURCE, "scope": "https://www.googleapis.com/auth/bigquery"}]


def test_key_path_with_the_prefixed_extras_and_the_default_scope(built_by, google, gcp, bq_proxy, keyfile, tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps(keyfile))
    gcp(**{"extra__google_cloud_platform__key_path": str(path)})
    assert bigquery_call(bq_proxy) == {bearer(FakeGoogle.token_of(SOURCE))}
    assert google.grants == [{"iss": SOURCE, "scope": "https://www.googleapis.com/auth/cloud-platform"}]


def test_application_default_credentials(built_by, google, gcp, bq_proxy, keyfile, tmp_path, monkeypatch):
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(keyfile))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    gcp()
    assert bigquery_call(bq_proxy) == {bearer(FakeGoogle.token_of(SOURCE))}


@pytest.mark.parametrize("form", ["path", "json text", "object"])
def test_workload_identity_federation(built_by, google, gcp, bq_proxy, tmp_path, form):
    subject = tmp_path / "oidc-token"
    subject.write_text("header.oidc-subject-token.signature")
    config = {"type": "external_account", "audience": "//iam.googleapis.com/projects/1/locations/global/"
              "workloadIdentityPools/pool/providers/oidc", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
              "token_url": google.url + "/sts", "credential_source": {"file": str(subject)}}
    path = tmp_path / "wif.json"
    path.write_text(json.dumps(config))
    gcp(credential_config_file={"path": str(path), "json text": json.dumps(config), "object": config}[form])
    assert bigquery_call(bq_proxy) == {bearer(FakeGoogle.FEDERATED)}
    assert [e["subject_token"] for e in google.exchanges] == ["header.oidc-subject-token.signature"]


@pytest.mark.parametrize("where", ["extra", "operator argument"])
def test_an_impersonation_chain_is_what_the_bigquery_calls_carry(built_by, google, gcp, bq_proxy, keyfile, where):
    chain = f"{MIDDLE},{TARGET}"
    if where == "extra":
        gcp(keyfile_dict=keyfile, impersonation_chain=chain)
        auths = bigquery_call(bq_proxy)
    else:
        # The argument wins over the extra, as in the google provider's operators.
        gcp(keyfile_dict=keyfile, impersonation_chain="someone-else@p.iam.gserviceaccount.com")
        auths = bigquery_call(bq_proxy, impersonation_chain=[MIDDLE, TARGET])
    assert auths == {bearer(FakeGoogle.token_of(TARGET))}
    assert google.impersonations == [{
        "principal": TARGET, "delegates": [MIDDLE],
        "scope": ["https://www.googleapis.com/auth/cloud-platform"],
        "caller": bearer(FakeGoogle.token_of(SOURCE))}]


def test_quota_project(built_by, google, gcp, bq_proxy, keyfile):
    gcp(keyfile_dict=keyfile, quota_project_id="quota-project")
    start = len(bq_proxy.requests)
    assert bigquery_call(bq_proxy) == {bearer(FakeGoogle.token_of(SOURCE))}
    assert {call.headers.get("x-goog-user-project") for call in bq_proxy.requests[start:]} == {"quota-project"}


def test_anonymous_sends_no_credentials(built_by, google, gcp, bq_proxy):
    gcp(is_anonymous=True)
    assert bigquery_call(bq_proxy) == {None}
    assert google.grants == google.exchanges == google.impersonations == []


def test_an_api_endpoint_alone_does_not_switch_credentials_off(built_by, google, gcp, bq_proxy):
    gcp()
    with pytest.raises(RevCentConfigError, match='"is_anonymous": true'):
        bigquery_call(bq_proxy)
    assert bq_proxy.requests == []


def test_key_secret_name(built_by, google, gcp, bq_proxy, keyfile, tmp_path, monkeypatch, caplog, capfd):
    secret = "revcent-loader-key-do-not-log"  # a secret id, as Secret Manager names them
    gcp(key_secret_name=secret, key_secret_project_id="source-project")
    if built_by == "google-auth":
        with pytest.raises(RevCentConfigError, match="key_secret_name cannot be applied without the google provider"):
            bigquery_call(bq_proxy)
        return
    # The provider reads the secret with application default credentials; Secret Manager itself is faked
    # at its client, the one part this machine cannot reach.
    from airflow.providers.google.cloud._internal_client import secret_manager_client

    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps(keyfile))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    asked: list[tuple[str, str]] = []
    target_key = {**keyfile, "client_email": TARGET}

    def get_secret(self: Any, secret_id: str, project_id: str, secret_version: str = "latest") -> str:
        asked.append((secret_id, project_id))
        return json.dumps(target_key)

    monkeypatch.setattr(secret_manager_client._SecretManagerClient, "get_secret", get_secret)
    caplog.set_level("DEBUG")
    assert bigquery_call(bq_proxy) == {bearer(FakeGoogle.token_of(TARGET))}
    assert asked == [(secret, "source-project")]
    # The secret's value (a private key) and the tokens appear in no log line.
    out = caplog.text + "".join(capfd.readouterr())
    assert keyfile["private_key"].splitlines()[1] not in out and FakeGoogle.token_of(TARGET) not in out


def test_the_operator_loads_through_an_impersonated_identity(built_by, google, gcp, bq_proxy, keyfile, sandbox,
                                                            connections, bq_client, table_name):
    start, end = unix(2026, 3, 1), unix(2026, 3, 4)
    store = CustomerStore(seed=5, count=25, start=start, end=end)
    connections(sandbox(store))
    gcp(keyfile_dict=keyfile)
    summary = run_operator(destination_table=table_name, gcp_conn_id=CONN, impersonation_chain=TARGET,
                           date_start="2026-03-01", date_end="2026-03-04")
    assert summary["rows_inserted"] == len(store.truth(start, end))
    assert_table_matches(bq_client, table_name, store.truth(start, end))
    # Every BigQuery call the run made (uploads and jobs included) carried the impersonated token.
    assert {call.auth for call in bq_proxy.requests} == {bearer(FakeGoogle.token_of(TARGET))}
    assert {call.path.split("/upload")[0] != call.path for call in bq_proxy.requests} == {False, True}
    assert [i["principal"] for i in google.impersonations] == [TARGET]

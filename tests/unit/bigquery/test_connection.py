"""What a google_cloud_platform connection says about identity, read as the google provider reads it.

The credentials themselves are exercised against fake token, STS and IAM endpoints and the local
BigQuery server in tests/integration/test_identity.py.
"""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_revcent.bigquery import connection
from airflow_revcent.bigquery.connection import DEFAULT_SCOPES, BigQuerySettings, make_client, make_credentials
from airflow_revcent.exceptions import RevCentConfigError

PREFIX = "extra__google_cloud_platform__"


@pytest.fixture(scope="module")
def keyfile() -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "key-project", "private_key_id": "abc", "private_key": pem,
            "client_email": "loader@key-project.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}


@pytest.fixture
def google_auth_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build credentials with google-auth even where the google provider is installed."""
    monkeypatch.setattr(connection, "google_base_hook_class", lambda: None)


@pytest.fixture
def no_adc(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No application default credentials on this machine, and no metadata server to ask."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")


def settings(**extras: object) -> BigQuerySettings:
    return BigQuerySettings.from_extras(dict(extras), conn_id="gcp")


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_extras_are_read_with_or_without_the_google_prefix(prefix, keyfile):
    read = BigQuerySettings.from_extras(
        {f"{prefix}project": "p", f"{prefix}location": "EU", f"{prefix}keyfile_dict": json.dumps(keyfile),
         f"{prefix}api_endpoint": "http://127.0.0.1:1", f"{prefix}scope": "a, b",
         f"{prefix}impersonation_chain": "x@p.iam.gserviceaccount.com", f"{prefix}quota_project_id": "quota-1"},
        conn_id="gcp")
    assert (read.project, read.location, read.api_endpoint) == ("p", "EU", "http://127.0.0.1:1")
    assert read.keyfile_dict == keyfile
    assert (read.scopes, read.impersonation_chain, read.quota_project_id) == (
        ("a", "b"), ("x@p.iam.gserviceaccount.com",), "quota-1")
    assert keyfile["private_key"] not in repr(read)


def test_the_short_name_wins_over_the_prefixed_one_and_empty_means_unset():
    read = settings(project="short", **{f"{PREFIX}project": "long", "location": "", f"{PREFIX}scope": ""})
    assert (read.project, read.location, read.scopes) == ("short", None, DEFAULT_SCOPES)


@pytest.mark.parametrize("extras", [
    {"key_path": "/k.json", "keyfile_dict": {"type": "service_account"}},
    {"key_path": "/k.json", "credential_config_file": "/wif.json"},
    {"keyfile_dict": {"type": "service_account"}, "key_secret_name": "sa-key"},
    {"credential_config_file": {"type": "external_account"}, "is_anonymous": True},
])
def test_the_key_options_are_mutually_exclusive_as_in_the_google_provider(extras):
    with pytest.raises(RevCentConfigError, match="mutually exclusive") as info:
        settings(**extras)
    for name in extras:
        assert name in str(info.value)


@pytest.mark.parametrize(("extra", "value"), [
    ("impersonation_chain", "x@p.iam.gserviceaccount.com"), ("quota_project_id", "quota-1"), ("scope", "a"),
    ("idp_issuer_url", "https://idp.example.com"),
])
def test_anonymous_refuses_what_it_cannot_apply(extra, value):
    with pytest.raises(RevCentConfigError, match=rf"is_anonymous sends no credentials, so {extra}"):
        settings(is_anonymous=True, **{extra: value})


@pytest.mark.parametrize(("value", "anonymous"), [(True, True), (False, False), ("true", True), ("", False)])
def test_is_anonymous_is_a_boolean(value, anonymous):
    assert settings(is_anonymous=value).is_anonymous is anonymous


@pytest.mark.parametrize("value", ["false", "0", "yes", 1])
def test_is_anonymous_refuses_values_the_google_provider_would_read_otherwise(value):
    with pytest.raises(RevCentConfigError, match="is_anonymous must be the JSON boolean"):
        settings(is_anonymous=value)


def test_impersonation_chain_forms_and_the_operator_argument_winning():
    a, b, c = (f"{n}@p.iam.gserviceaccount.com" for n in "abc")
    assert settings(impersonation_chain=f"{a}, {b},{c}").impersonation_chain == (a, b, c)
    assert settings(impersonation_chain=[a, b]).impersonation_chain == (a, b)
    read = BigQuerySettings.from_extras({"impersonation_chain": a}, conn_id="gcp", impersonation_chain=[b, c])
    assert read.impersonation_chain == (b, c)
    assert read.identity == f"application default credentials, impersonating {c} through 1 delegate(s)"
    with pytest.raises(RevCentConfigError, match="impersonation_chain: every entry must be a service account"):
        settings(impersonation_chain="not-an-email")


@pytest.mark.parametrize(("extras", "message"), [
    ({"key_path": "/keys/sa.p12"}, "legacy P12"),
    ({"key_path": "/keys/sa.pem"}, "ending in .json"),
    ({"key_secret_project_id": "p"}, "key_secret_project_id is set without key_secret_name"),
    ({"quota_project_id": "Not_A_Project"}, "quota_project_id must be a project id"),
    ({"scope": ["a"]}, "scope must be a string"),
    ({"scope": "a,,b"}, "scope must list OAuth scopes"),
    ({"credential_config_file": 3}, "credential_config_file must be a file path"),
])
def test_settings_that_cannot_apply_are_errors_naming_them(extras, message):
    with pytest.raises(RevCentConfigError, match=message):
        settings(**extras)


def test_a_bad_keyfile_is_refused_without_echoing_it():
    with pytest.raises(RevCentConfigError, match="keyfile_dict is not valid JSON") as info:
        settings(keyfile_dict="-----BEGIN PRIVATE KEY----- secret")
    assert "secret" not in str(info.value)


def test_a_secret_name_is_never_in_repr_or_identity():
    read = settings(key_secret_name="projects/p/secrets/very-private-name")
    assert "very-private-name" not in repr(read)
    assert read.identity == "key_secret_name"


@pytest.mark.usefixtures("google_auth_only")
@pytest.mark.parametrize("extras", [
    {"key_secret_name": "sa-key"},
    {"credential_config_file": {"type": "external_account"}, "idp_issuer_url": "https://idp.example.com",
     "client_id": "id", "client_secret": "shh"},
])
def test_without_the_google_provider_its_own_settings_are_errors_saying_how_to_fix(extras):
    with pytest.raises(RevCentConfigError, match=r"without the google provider; install the google provider") as info:
        make_credentials(settings(**extras))
    assert "sa-key" not in str(info.value) and "shh" not in str(info.value)
    assert ("key_secret_name" if "key_secret_name" in extras else "idp_issuer_url, client_id, client_secret") in str(
        info.value)


@pytest.mark.usefixtures("google_auth_only")
def test_a_service_account_key_builds_its_credentials_and_names_the_project(keyfile, tmp_path):
    client = make_client(settings(keyfile_dict=keyfile))
    assert client.project == "key-project"
    assert client._credentials.service_account_email == keyfile["client_email"]
    assert tuple(client._credentials.scopes) == DEFAULT_SCOPES
    path = tmp_path / "key.json"
    path.write_text(json.dumps(keyfile))
    from_file = make_client(settings(key_path=str(path), project="billing", location="EU", scope="s1,s2"))
    assert (from_file.project, from_file.location) == ("billing", "EU")
    assert from_file._credentials.scopes == ["s1", "s2"]


@pytest.mark.usefixtures("google_auth_only")
def test_escaped_newlines_in_a_pasted_key_are_accepted_as_the_provider_accepts_them(keyfile):
    pasted = {**keyfile, "private_key": keyfile["private_key"].replace("\n", "\\n")}
    credentials, project = make_credentials(settings(keyfile_dict=pasted))
    assert (credentials.service_account_email, project) == (keyfile["client_email"], "key-project")


@pytest.mark.usefixtures("google_auth_only")
def test_impersonation_wraps_the_source_and_bills_the_target_project(keyfile):
    chain = "first@mid-project.iam.gserviceaccount.com,loader@target-project.iam.gserviceaccount.com"
    credentials, project = make_credentials(settings(keyfile_dict=keyfile, impersonation_chain=chain,
                                                     quota_project_id="quota-project"))
    assert type(credentials).__name__ == "Credentials" and credentials.__module__.endswith("impersonated_credentials")
    assert credentials._target_principal == "loader@target-project.iam.gserviceaccount.com"
    assert credentials._delegates == ["first@mid-project.iam.gserviceaccount.com"]
    assert credentials._source_credentials.service_account_email == keyfile["client_email"]
    assert (project, credentials.quota_project_id) == ("target-project", "quota-project")


@pytest.mark.usefixtures("google_auth_only")
def test_is_anonymous_uses_anonymous_credentials():
    client = make_client(settings(project="demo", api_endpoint="http://127.0.0.1:9", is_anonymous=True))
    assert type(client._credentials).__name__ == "AnonymousCredentials"


@pytest.mark.usefixtures("google_auth_only", "no_adc")
def test_an_api_endpoint_alone_keeps_credentials_on_and_the_error_says_is_anonymous():
    with pytest.raises(RevCentConfigError, match=r'application default credentials are not set up.*"is_anonymous"'):
        make_client(settings(project="demo", api_endpoint="https://bigquery.europe-west3.rep.googleapis.com"))

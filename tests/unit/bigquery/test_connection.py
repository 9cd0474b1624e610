from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from airflow_revcent.bigquery.connection import BigQuerySettings, make_client
from airflow_revcent.exceptions import RevCentConfigError


@pytest.fixture(scope="module")
def keyfile() -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return {"type": "service_account", "project_id": "key-project", "private_key_id": "abc", "private_key": pem,
            "client_email": "loader@key-project.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token"}


@pytest.mark.parametrize("prefix", ["", "extra__google_cloud_platform__"])
def test_extras_are_read_with_or_without_the_google_prefix(prefix, keyfile):
    settings = BigQuerySettings.from_extras(
        {f"{prefix}project": "p", f"{prefix}location": "EU", f"{prefix}keyfile_dict": json.dumps(keyfile),
         f"{prefix}api_endpoint": "http://127.0.0.1:1"}, conn_id="gcp")
    assert (settings.project, settings.location, settings.api_endpoint) == ("p", "EU", "http://127.0.0.1:1")
    assert settings.keyfile_dict == keyfile
    assert keyfile["private_key"] not in repr(settings)


def test_a_service_account_key_builds_its_credentials_and_names_the_project(keyfile, tmp_path):
    client = make_client(BigQuerySettings(keyfile_dict=keyfile))
    assert client.project == "key-project"
    assert client._credentials.service_account_email == keyfile["client_email"]
    path = tmp_path / "key.json"
    path.write_text(json.dumps(keyfile))
    from_file = make_client(BigQuerySettings(key_path=str(path), project="billing", location="EU"))
    assert (from_file.project, from_file.location) == ("billing", "EU")


def test_api_endpoint_without_a_key_uses_anonymous_credentials():
    client = make_client(BigQuerySettings(project="demo", api_endpoint="http://127.0.0.1:9"))
    assert type(client._credentials).__name__ == "AnonymousCredentials"


def test_a_bad_keyfile_is_refused_without_echoing_it():
    with pytest.raises(RevCentConfigError, match="keyfile_dict is not valid JSON") as info:
        BigQuerySettings.from_extras({"keyfile_dict": "-----BEGIN PRIVATE KEY----- secret"}, conn_id="gcp")
    assert "secret" not in str(info.value)

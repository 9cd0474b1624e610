"""RevCent's OpenAPI document without Airflow: where it comes from, whose host gets the key, what an answer
must be, and customers from the packaged operation when there is no document."""

from __future__ import annotations

import json

import pytest

from airflow_revcent.api.documents import (
    parse_document,
    read_document_file,
    resource_from_document,
    same_origin,
    spec_location,
)
from airflow_revcent.exceptions import (
    RevCentAPIError,
    RevCentAuthError,
    RevCentConfigError,
    RevCentRequestError,
    RevCentTransientError,
)
from airflow_revcent.spec import load_spec


@pytest.mark.parametrize(("spec", "expected"), [
    ("https://api.revcent.com/v2/openapi.json", ("url", "https://api.revcent.com/v2/openapi.json")),
    ("http://127.0.0.1:8080/openapi.json", ("url", "http://127.0.0.1:8080/openapi.json")),
    ("/srv/revcent/openapi.json", ("file", "/srv/revcent/openapi.json")),
    ("openapi.json", ("file", "openapi.json")),
    ("file:///srv/my%20docs/openapi.json", ("file", "/srv/my docs/openapi.json")),
])
def test_openapi_spec_names_a_url_or_a_file(spec, expected):
    assert spec_location(spec) == expected


@pytest.mark.parametrize("spec", ["", "  ", "ftp://host/openapi.json", "s3://bucket/openapi.json"])
def test_anything_else_is_refused_naming_it(spec):
    with pytest.raises(RevCentConfigError, match="openapi_spec"):
        spec_location(spec)


@pytest.mark.parametrize(("url", "same"), [
    ("https://api.revcent.com/v2/openapi.json", True),
    ("https://API.revcent.com:443/pinned.json", True),
    ("http://api.revcent.com/v2/openapi.json", False),  # another scheme: the key would travel in clear text
    ("https://api.revcent.com:8443/v2/openapi.json", False),
    ("https://api.revcent.com.evil.test/v2/openapi.json", False),
    ("https://docs.revcent.com/openapi.json", False),
])
def test_only_the_apis_own_origin_gets_the_key(url, same):
    assert same_origin(url, "https://api.revcent.com") is same


def test_an_answer_is_a_document_or_the_error_that_decides_what_happens_next():
    assert parse_document(200, b'{"openapi": "3.1.0"}', what="d", url="/v2/openapi.json") == {"openapi": "3.1.0"}
    cases = [(200, b'{"openapi": ', RevCentTransientError, "not JSON"), (503, b"", RevCentTransientError, "503"),
             (429, b"", RevCentTransientError, "throttled"), (401, b"", RevCentAuthError, "API key"),
             (404, b"", RevCentRequestError, "/v2/openapi.json"), (200, b"[]", RevCentAPIError, "not an OpenAPI")]
    for status, body, error, text in cases:
        with pytest.raises(error, match=text):
            parse_document(status, body, what="OpenAPI document request", url="/v2/openapi.json")


def test_a_document_file_is_a_json_object_or_a_clear_error(tmp_path):
    good = tmp_path / "openapi.json"
    good.write_text(json.dumps({"openapi": "3.1.0"}))
    assert read_document_file(str(good)) == {"openapi": "3.1.0"}
    (tmp_path / "cut.json").write_text('{"openapi": ')
    (tmp_path / "list.json").write_text("[]")
    for name, text in (("cut.json", "not valid JSON"), ("list.json", "not an object"),
                       ("absent.json", "Cannot read")):
        with pytest.raises(RevCentConfigError, match=text) as info:
            read_document_file(str(tmp_path / name))
        assert name in str(info.value)


def test_a_resource_comes_from_the_document_when_there_is_one():
    resource = resource_from_document("GetCustomers", load_spec(), source="a copy")
    assert resource.path == "/v2/customers"
    with pytest.raises(RevCentConfigError, match="list resources it offers: customers"):
        resource_from_document("sales", load_spec(), source="a copy")


def test_without_a_document_only_customers_comes_from_the_packaged_operation():
    assert resource_from_document("customers", None).operation_id == "GetCustomers"
    assert resource_from_document(" GetCustomers ", None, key_field="id").key_field == "id"
    with pytest.raises(RevCentConfigError, match=r"'sales' needs .*\(HTTP 404\).*openapi_spec"):
        resource_from_document("sales", None, unavailable="HTTP 404")


def test_the_worker_keeps_the_last_few_documents_by_their_bytes():
    from airflow_revcent.api import documents

    documents.clear_document_cache()
    parsed: list[bytes] = []

    def parse(content: bytes) -> dict:
        parsed.append(content)
        return json.loads(content)

    versions = [json.dumps({"openapi": "3.1.0", "info": {"version": str(n)}}).encode()
                for n in range(documents.DOCUMENT_CACHE_SIZE + 1)]
    first = documents.cached_document(versions[0], parse)
    assert documents.cached_document(versions[0], parse) is first and len(parsed) == 1
    assert first.digest == documents.document_digest(versions[0]) and first.body["info"]["version"] == "0"
    for content in versions[1:]:
        documents.cached_document(content, parse)
    assert len(parsed) == len(versions)
    documents.cached_document(versions[0], parse)  # the oldest was let go: parsed again
    assert len(parsed) == len(versions) + 1
    for _ in range(2):  # nothing is kept for bytes that are not a document: they fail each time
        with pytest.raises(json.JSONDecodeError):
            documents.cached_document(b"not json", parse)
    documents.clear_document_cache()


def test_a_cached_document_finds_each_resource_once():
    from airflow_revcent.api import documents

    entry = documents.CachedDocument("d", load_spec())
    found = entry.resource("customers", source="a copy")
    assert entry.resource("customers", source="a copy") is found and found.operation_id == "GetCustomers"
    assert entry.resource("customers", source="a copy", key_field="email").key_field == "email"

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from airflow_revcent.exceptions import RevCentConfigError
from airflow_revcent.rows.columns import customer_columns, find_column
from airflow_revcent.rows.pii import PiiSettings, apply_pii, check_paths


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exclude_fields": ("id",)}, "'id' cannot be excluded or hashed"),
        ({"hash_fields": ("created_date_unix",), "hash_key_conn_id": "k"}, "'created_date_unix' cannot be"),
        ({"hash_fields": ("email",)}, "hash_fields needs hash_key_conn_id"),
        ({"exclude_fields": "email"}, "exclude_fields='email' must be a list of dotted field paths"),
        ({"hash_fields": [1], "hash_key_conn_id": "k"}, "hash_fields=\\[1\\] must be a list"),
        ({"exclude_fields": ("email",), "hash_fields": ("email",), "hash_key_conn_id": "k"},
         "email is both excluded and hashed"),
        ({"hash_key_conn_id": ""}, "hash_key_conn_id='' must be a connection id"),
    ],
)
def test_settings_are_checked_where_they_are_built(kwargs, message):
    with pytest.raises(RevCentConfigError, match=message):
        PiiSettings(**kwargs)


def test_lists_become_tuples_and_the_key_never_shows():
    pii = PiiSettings(exclude_fields=["address_line_1"], hash_fields=["email"], hash_key_conn_id="pepper")
    assert pii.exclude_fields == ("address_line_1",) and pii.needs_key
    keyed = pii.with_key(b"s3cret-key")
    assert not keyed.needs_key and keyed.hash_key_conn_id == "pepper"
    assert "s3cret" not in repr(keyed)
    assert keyed == pii  # the key is not part of what the settings are


def test_an_empty_key_names_its_connection():
    with pytest.raises(RevCentConfigError, match="Connection 'pepper' has no password"):
        PiiSettings(hash_fields=["email"], hash_key_conn_id="pepper").with_key(b"")


def test_the_one_digest_is_hmac_sha256_of_text_or_canonical_json():
    pii = PiiSettings(hash_fields=["email"], hash_key=b"k")
    assert pii.digest("a@b.c") == hmac.new(b"k", b"a@b.c", hashlib.sha256).hexdigest()
    assert pii.digest(12345) == hmac.new(b"k", b"12345", hashlib.sha256).hexdigest()
    assert pii.digest(Decimal("1.50")) == hmac.new(b"k", b"1.50", hashlib.sha256).hexdigest()
    with pytest.raises(RevCentConfigError, match="no hash key was read"):
        PiiSettings(hash_fields=["email"], hash_key_conn_id="c").digest("x")


def test_unknown_paths_are_named():
    with pytest.raises(RevCentConfigError, match=r"names field 'customer_card\.nope'"):
        check_paths(PiiSettings(exclude_fields=["customer_card.nope"]))
    check_paths(PiiSettings(exclude_fields=["customer_card.first_6"]))


def test_columns_under_the_settings():
    columns = apply_pii(customer_columns(), PiiSettings(exclude_fields=["customer_card.first_6"],
                                                        hash_fields=["sales"], hash_key_conn_id="c"))
    assert find_column(columns, "customer_card.first_6") is None
    sales = find_column(columns, "sales")
    assert sales is not None and (sales.type, sales.mode) == ("STRING", "REPEATED")
    assert "HMAC-SHA256" in sales.description


def test_a_resources_own_key_or_creation_field_cannot_be_excluded_or_hashed():
    from airflow_revcent.exceptions import RevCentConfigError
    from airflow_revcent.rows.columns import customer_columns
    from airflow_revcent.rows.pii import PiiSettings, apply_pii

    with pytest.raises(RevCentConfigError, match="'email' cannot be excluded or hashed: the pipeline needs it"):
        apply_pii(customer_columns(), PiiSettings(exclude_fields=["email"]), keep=("email", "created_date_unix"))
    assert apply_pii(customer_columns(), PiiSettings(exclude_fields=["email"]), keep=("id", "created_date_unix"))

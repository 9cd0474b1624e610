from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from airflow_revcent.exceptions import RevCentConfigError, RevCentDataError
from airflow_revcent.rows.columns import customer_columns, find_column
from airflow_revcent.rows.pii import PiiSettings, apply_pii
from airflow_revcent.rows.records import RecordConverter

ID = "A" * 20


def full_customer() -> dict:
    return {
        "id": ID,
        "created_date_unix": 1735689600,
        "first_name": "Zoë 北京 🚀",
        "address_line_2": "",
        "blocked": False,
        "customer_card": [{"id": "C" * 20, "first_6": "411111", "is_default": True, "created_date_unix": 1}],
        "customer_group": [],
        "lifetime_value": {
            "all": {"amount_gross": Decimal("19.99"), "amount_net": Decimal("0.1"), "amount_refunded": 0},
            "last_sale_date": "2025-03-04T05:06:07.000Z",
            "last_subscription_renewal_date": "2025-03-04T07:06:07+02:00",
        },
        "products_purchased": [{"id": "P" * 20, "purchase_dates": [3, 1, 2], "price": 123456.78}],
        "sales": ["S" * 20, "T" * 20],
        "metadata": [{"name": "source", "value": "fb"}],
    }


def test_values_arrive_unchanged_and_timestamps_are_normalised():
    row = RecordConverter(customer_columns()).convert(full_customer())
    assert row["first_name"] == "Zoë 北京 🚀"
    assert row["address_line_2"] == ""  # empty strings stay empty
    assert row["blocked"] is False
    assert row["customer_group"] == []
    assert row["products_purchased"][0]["purchase_dates"] == [3, 1, 2]  # API order kept
    assert row["lifetime_value"]["all"] == {"amount_gross": Decimal("19.99"), "amount_net": Decimal("0.1"),
                                          "amount_refunded": 0}
    assert row["lifetime_value"]["last_sale_date"] == "2025-03-04T05:06:07.000000Z"
    assert row["lifetime_value"]["last_subscription_renewal_date"] == "2025-03-04T05:06:07.000000Z"
    assert "_unknown_fields" not in row


def test_null_fields_stay_null_arrays_become_empty_and_empty_date_times_become_null():
    customer = {"id": ID, "created_date_unix": 1, "company": None, "notes": None,
                "lifetime_value": {"last_sale_date": ""}}
    row = RecordConverter(customer_columns()).convert(customer)
    # NULL in the table either way; a null array is an empty one (BigQuery has no NULL arrays).
    assert row == {"id": ID, "created_date_unix": 1, "company": None, "notes": [],
                   "lifetime_value": {"last_sale_date": None}}


def test_unknown_fields_are_kept_by_path_mirroring_the_api_structure():
    converter = RecordConverter(customer_columns())
    customer = full_customer() | {"loyalty_tier": "gold"}
    customer["customer_card"] = [{"id": "C" * 20, "network": "visa"}, {"id": "D" * 20}]
    customer["lifetime_value"]["all"]["amount_tax"] = 1.5
    row = converter.convert(customer)
    assert row["_unknown_fields"] == {
        "loyalty_tier": "gold",
        "customer_card": [{"network": "visa"}, {}],
        "lifetime_value": {"all": {"amount_tax": 1.5}},
    }
    assert row["customer_card"] == [{"id": "C" * 20}, {"id": "D" * 20}]
    assert converter.unknown_paths == {
        "loyalty_tier": 1, "customer_card[].network": 1, "lifetime_value.all.amount_tax": 1,
    }


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"blocked": "no"}, "blocked"),
        ({"created_date_unix": True}, "created_date_unix"),
        ({"email": 5}, "email"),
        ({"customer_card": {"id": "x"}}, "customer_card"),
        ({"customer_card": [{"is_default": "yes"}]}, r"customer_card\[\]\.is_default"),
        ({"lifetime_value": {"all": {"amount_gross": "12.5"}}}, r"lifetime_value\.all\.amount_gross"),
        ({"lifetime_value": {"last_sale_date": "not a date"}}, r"lifetime_value\.last_sale_date"),
        ({"sales": [1]}, r"sales\[\]"),
        ({"products_purchased": [{"purchase_dates": [1, "2"]}]}, r"products_purchased\[\]\.purchase_dates\[\]"),
    ],
)
def test_wrong_types_fail_with_customer_id_and_path_or_are_kept(patch, path):
    customer = full_customer() | patch
    with pytest.raises(RevCentDataError, match=rf"Customer '{ID}': field {path} is"):
        RecordConverter(customer_columns()).convert(customer)
    lenient = RecordConverter(customer_columns(), on_invalid_record="keep")
    row = lenient.convert(customer)
    assert "_unknown_fields" in row and lenient.invalid_paths


def test_pii_exclusion_and_keyed_hashing_reach_nested_fields_and_the_schema():
    pii = PiiSettings(exclude_fields=("address_line_2", "customer_card.first_6"),
                      hash_fields=("first_name", "sales"), hash_key=b"secret")
    columns = apply_pii(customer_columns(), pii)
    assert find_column(columns, "address_line_2") is None
    assert find_column(columns, "customer_card.first_6") is None
    assert find_column(columns, "customer_card.id") is not None
    assert find_column(columns, "sales").mode == "REPEATED"
    row = RecordConverter(columns, pii=pii).convert(full_customer())
    assert "address_line_2" not in row and "first_6" not in row["customer_card"][0]
    assert "_unknown_fields" not in row  # excluded fields are dropped, not kept
    expected = hmac.new(b"secret", "Zoë 北京 🚀".encode(), hashlib.sha256).hexdigest()
    assert row["first_name"] == expected
    assert row["sales"] == [hmac.new(b"secret", s.encode(), hashlib.sha256).hexdigest() for s in ("S" * 20, "T" * 20)]


def test_bad_policy_is_refused():
    with pytest.raises(RevCentConfigError, match="on_invalid_record"):
        RecordConverter(customer_columns(), on_invalid_record="ignore")  # type: ignore[arg-type]  # an invalid value on purpose


def test_pii_never_leaks_through_a_type_conflict():
    pii = PiiSettings(exclude_fields=("customer_card.first_6",), hash_fields=("customer_card.last_4", "email"),
                      hash_key=b"k")
    columns = apply_pii(customer_columns(), pii)
    customer = {"id": ID, "created_date_unix": 1, "email": 12345,
                "customer_card": {"first_6": "411111", "last_4": "4242", "type": "Visa"}}  # object, not array
    with pytest.raises(RevCentDataError) as info:
        RecordConverter(columns, pii=pii).convert(dict(customer))
    assert "411111" not in str(info.value) and "4242" not in str(info.value)
    row = RecordConverter(columns, pii=pii, on_invalid_record="keep").convert(dict(customer))
    kept = row["_unknown_fields"]
    assert kept["customer_card"] == {"last_4": hmac.new(b"k", b"4242", hashlib.sha256).hexdigest(), "type": "Visa"}
    assert row["email"] == hmac.new(b"k", b"12345", hashlib.sha256).hexdigest()  # hashed whatever its type


def test_hashing_without_a_key_read_fails_before_any_row():
    with pytest.raises(RevCentConfigError, match="no hash key was read"):
        RecordConverter(customer_columns(), pii=PiiSettings(hash_fields=("email",), hash_key_conn_id="pepper"))

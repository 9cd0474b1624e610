"""The table's PII policy, with plain values: comparison, the description line, legacy tables, messages."""

from __future__ import annotations

import pytest

from airflow_revcent.exceptions import RevCentConfigError, RevCentPiiPolicyError
from airflow_revcent.rows.columns import Column, customer_columns
from airflow_revcent.rows.pii import (
    PiiPolicy,
    PiiSettings,
    apply_pii,
    compare_policies,
    description_with_policy,
    infer_policy,
    key_fingerprint,
    policy_error,
    policy_in_description,
)


def policy(exclude=(), hashed=(), key=None):
    return PiiPolicy(frozenset(exclude), frozenset(hashed), key)


def changes(table, run):
    return [(c.path, c.table, c.run, c.weaker) for c in compare_policies(table, run).fields]


@pytest.mark.parametrize(
    ("table", "run", "expected"),
    [
        # The same settings: nothing to say.
        (policy(["address_line_1"], ["email"], "k1"), policy(["address_line_1"], ["email"], "k1"), []),
        # Hashed -> plaintext and excluded -> present: weaker, refused.
        (policy(hashed=["email"]), policy(), [("email", "hashed", "plaintext", True)]),
        (policy(["address_line_1"]), policy(), [("address_line_1", "excluded", "plaintext", True)]),
        (policy(["phone"]), policy(hashed=["phone"]), [("phone", "excluded", "hashed", True)]),
        # Plaintext -> hashed or excluded: stronger, but the column would hold a mix.
        (policy(), policy(hashed=["email"]), [("email", "plaintext", "hashed", False)]),
        (policy(), policy(["company"]), [("company", "plaintext", "excluded", False)]),
        (policy(hashed=["email"]), policy(["email"]), [("email", "hashed", "excluded", False)]),
        # A setting on a record covers the fields inside it, both ways.
        (policy(["customer_card"]), policy(["customer_card.first_6"]),
         [("customer_card", "excluded", "plaintext", True)]),
        (policy(["customer_card.first_6"]), policy(["customer_card"]),
         [("customer_card", "plaintext", "excluded", False)]),
        (policy(["customer_card.first_6"]), policy(hashed=["customer_card"]),
         [("customer_card", "plaintext", "hashed", False), ("customer_card.first_6", "excluded", "hashed", True)]),
        # A change on a record is said once, not again for each field under it.
        (policy(["customer_card", "customer_card.first_6"]), policy(), [("customer_card", "excluded", "plaintext",
                                                                          True)]),
    ],
)
def test_each_field_is_compared_by_how_it_is_held(table, run, expected):
    assert changes(table, run) == expected
    assert compare_policies(table, run).changed == bool(expected)


def test_another_key_is_a_change_an_unknown_key_is_not():
    assert compare_policies(policy(hashed=["email"], key="k1"), policy(hashed=["email"], key="k2")).key_changed
    assert not compare_policies(policy(hashed=["email"]), policy(hashed=["email"], key="k2")).changed
    assert not compare_policies(policy(hashed=["email"], key="k1"), policy(hashed=["email"])).changed
    # No field hashed by both: the key does not matter (the fields say what changed).
    diff = compare_policies(policy(hashed=["email"], key="k1"), policy(hashed=["phone"], key="k2"))
    assert not diff.key_changed and [c.path for c in diff.fields] == ["email", "phone"]


def test_the_policy_of_settings_holds_a_fingerprint_that_tells_keys_apart_and_never_the_key():
    settings = PiiSettings(exclude_fields=["company"], hash_fields=["email"], hash_key_conn_id="pepper")
    one, two = PiiPolicy.of(settings.with_key(b"pepper-1234")), PiiPolicy.of(settings.with_key(b"pepper-5678"))
    assert one.key_fingerprint == key_fingerprint(b"pepper-1234") != two.key_fingerprint
    assert len(one.key_fingerprint) == 16 and "pepper" not in one.to_json()
    assert PiiPolicy.of(settings.with_key(b"pepper-1234")) == one  # stable: the same key, the same fingerprint
    assert PiiPolicy.of(PiiSettings(exclude_fields=["company"])).key_fingerprint is None  # nothing hashed
    assert PiiPolicy.of(settings).key_fingerprint is None  # the key not read yet


def test_the_description_line_round_trips_and_keeps_the_rest_of_the_description():
    recorded = policy(["address_line_1", "customer_card.first_6"], ["phone", "email"], "0123456789abcdef")
    text = description_with_policy("RevCent customers.\nOur team's note.", recorded)
    assert text.startswith("RevCent customers.\nOur team's note.\n\nrevcent-pii-policy: {")
    assert policy_in_description(text) == recorded
    # Recording again replaces the line in place.
    again = description_with_policy(text, policy())
    assert again.count("revcent-pii-policy:") == 1 and policy_in_description(again) == policy()
    assert again.startswith("RevCent customers.\nOur team's note.")
    assert description_with_policy(None, policy()).startswith("revcent-pii-policy: ")
    assert policy_in_description("RevCent customers.") is None and policy_in_description(None) is None
    # Written by hand (the documented way to change a policy): the fingerprint may be left out.
    edited = 'x\nrevcent-pii-policy: {"hash_fields": ["email"]}\ny'
    assert policy_in_description(edited) == policy(hashed=["email"])


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ("revcent-pii-policy: {not json", r"not valid: '\{not json'"),
        ('revcent-pii-policy: {"hash_field": ["email"]}', "not valid"),
        ('revcent-pii-policy: {"hash_fields": "email"}', "not valid"),
        ('revcent-pii-policy: {"hash_key_fingerprint": 5}', "not valid"),
        ('revcent-pii-policy: {"hash_fields": ["emial"]}', "names field 'emial'"),
        ('revcent-pii-policy: {"hash_fields": ["email"], "exclude_fields": ["email"]}', "both excluded and hashed"),
        ("revcent-pii-policy: {}\nrevcent-pii-policy: {}", "has 2 'revcent-pii-policy:' lines"),
    ],
)
def test_a_policy_line_that_cannot_be_read_is_an_error_naming_the_table(description, message):
    with pytest.raises(RevCentPiiPolicyError, match=message) as error:
        policy_in_description(description, table="p.d.customers")
    assert "p.d.customers" in str(error.value) and "Write it as one line" in str(error.value)
    assert isinstance(error.value, RevCentConfigError)  # never retried (a permanent error)


def test_a_table_from_before_policies_were_recorded_tells_its_hashed_columns_only():
    settings = PiiSettings(exclude_fields=["address_line_1"], hash_fields=["email", "notes.username"],
                           hash_key_conn_id="pepper")
    assert infer_policy(apply_pii(customer_columns(), settings)) == policy(hashed=["email", "notes.username"])
    # A missing column may be from an older spec: never read as an exclusion.
    assert infer_policy([Column("id", "STRING"), Column("email", "STRING", description="The customer email.")]) \
        == policy()


def test_the_message_names_the_table_every_field_and_both_ways_on():
    held = policy(["address_line_1"], ["email", "phone"], "0123456789abcdef")
    message = policy_error("p.d.customers", compare_policies(held, policy()), held, inferred=False)
    assert "table p.d.customers:" in message and "Nothing was changed" in message
    assert "email (hashed in the table, plaintext in this run)" in message
    assert "address_line_1 (excluded in the table, plaintext in this run)" in message
    assert ("PiiSettings(exclude_fields=['address_line_1'], hash_fields=['email', 'phone'], hash_key_conn_id="
            in message)
    assert "pii_policy_change='allow'" in message and "'revcent-pii-policy:' line" in message
    stronger = policy_error("t", compare_policies(policy(), policy(hashed=["email"])), policy(), inferred=True)
    assert "the column would hold a mix" in stronger and "no PII settings (pii=None)" in stronger
    assert "inferred from its columns" in stronger
    key = policy_error("t", compare_policies(held, policy(["address_line_1"], ["email", "phone"], "f" * 16)), held,
                       inferred=False)
    assert "another key" in key and "0123456789abcdef" in key

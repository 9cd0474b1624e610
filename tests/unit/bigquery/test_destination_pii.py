"""The destination checks a table's PII policy before any change and records it once the tables exist
(a fake client: plain values, no server)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_revcent.bigquery.destination import CustomersDestination
from airflow_revcent.bigquery.tables import TableRef
from airflow_revcent.exceptions import RevCentPiiPolicyError
from airflow_revcent.rows.pii import PiiPolicy, PiiSettings, description_with_policy, policy_in_description

HASHED = PiiPolicy(hash_fields=frozenset({"email"}))


class _Tables:
    """A client that reads and updates table descriptions; any other call fails the test."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self.tables = tables
        self.calls: list[str] = []

    def get_table(self, ref: str, **kwargs: object) -> Any:
        from google.api_core.exceptions import NotFound

        self.calls.append(f"get_table {ref}")
        if ref not in self.tables:
            raise NotFound(ref)
        return SimpleNamespace(**vars(self.tables[ref]))

    def update_table(self, table: Any, fields: list[str], **kwargs: object) -> None:
        self.calls.append(f"update_table {fields}")
        self.tables[table.ref] = table

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"prepare() called {name}")


def _table(ref: str, description: str | None) -> SimpleNamespace:
    return SimpleNamespace(ref=ref, description=description, schema=[])


def _destination(client: _Tables, pii: PiiSettings, **kwargs: Any) -> CustomersDestination:
    return CustomersDestination(client, TableRef("p", "d", "t"), (), pii=pii, **kwargs)  # type: ignore[arg-type]  # a fake client


@pytest.mark.parametrize("with_history", [False, True])
def test_a_run_that_would_weaken_a_tables_pii_policy_fails_before_any_call_that_changes_something(with_history):
    # The history table hashes email while the destination says plaintext: either table refuses the run.
    client = _Tables({"p.d.t": _table("p.d.t", description_with_policy("Customers.", HASHED if not with_history
                                                                       else PiiPolicy())),
                      "p.d.h": _table("p.d.h", description_with_policy("History.", HASHED))})
    destination = _destination(client, PiiSettings(), history=TableRef("p", "d", "h") if with_history else None)
    with pytest.raises(RevCentPiiPolicyError, match=r"table p\.d\.[th]: .*email \(hashed in the table, plaintext"):
        destination.prepare()
    assert all(call.startswith("get_table") for call in client.calls)
    # Allowed on purpose, the check passes and the run goes on to set the tables up.
    with pytest.raises(AssertionError, match=r"prepare\(\) called get_dataset"):
        _destination(client, PiiSettings(), pii_policy_change="allow").prepare()


def test_a_new_table_records_this_runs_policy_and_a_concurrent_runs_other_policy_is_refused():
    client = _Tables({})
    destination = _destination(client, PiiSettings(exclude_fields=["company"]))
    destination._check_pii_policy()  # the table is missing: it will be created with this run's settings
    client.tables["p.d.t"] = _table("p.d.t", "Customers.")  # created (without a policy line)
    destination._record_pii_policy()
    recorded = client.tables["p.d.t"].description
    assert recorded.startswith("Customers.\n\n")
    assert policy_in_description(recorded) == PiiPolicy(frozenset({"company"}))
    destination._record_pii_policy()  # recorded already: nothing to update
    assert sum(call.startswith("update_table") for call in client.calls) == 1
    # Another run created the table at the same time and recorded other settings first.
    racing = _Tables({})
    late = _destination(racing, PiiSettings(exclude_fields=["company"]))
    late._check_pii_policy()
    racing.tables["p.d.t"] = _table("p.d.t", description_with_policy("Customers.", HASHED))
    with pytest.raises(RevCentPiiPolicyError, match="email"):
        late._record_pii_policy()
    assert not any(call.startswith("update_table") for call in racing.calls)

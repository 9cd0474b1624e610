"""The PII settings of every sample DAG that writes the customers table: one object, so they always agree.

A table keeps the PII settings that first wrote it (its PII policy, recorded in its description): a run
with other settings is refused before it changes anything. Every DAG writing the same table must
therefore use the same settings; the sample DAGs import them from here. To protect fields, change
them here, e.g.::

    CUSTOMERS_PII = PiiSettings(
        exclude_fields=["address_line_1", "address_line_2", "customer_card.first_6"],
        hash_fields=["email", "phone"],
        hash_key_conn_id="revcent_pii_key",  # a connection whose password is the secret HMAC key
    )

and, if the table already exists with other settings, change its policy on purpose once
(README, "PII": ``pii_policy_change="allow"`` on one run, or edit the table's policy line).

This file defines no DAG (the DAG processor reads it and finds none); Airflow puts the DAGs folder on
``sys.path``, so the DAG files import it as ``revcent_pii``.
"""

from __future__ import annotations

from airflow_revcent.rows.pii import PiiSettings

#: Nothing excluded or hashed: the demo needs no key connection. Set your fields here (see above).
CUSTOMERS_PII = PiiSettings()

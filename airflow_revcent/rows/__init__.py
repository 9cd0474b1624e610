"""What shapes a RevCent item into a row (pure: no Airflow, no google).

:mod:`~airflow_revcent.rows.columns` is the column tree a resource's items land in;
:mod:`~airflow_revcent.rows.records` checks and converts each item into a row (with
:mod:`~airflow_revcent.rows.pii` applied and :mod:`~airflow_revcent.rows.drift` promoting unknown fields);
:mod:`~airflow_revcent.rows.ndjson` writes rows to size-capped files; :mod:`~airflow_revcent.rows.jsontext` and
:mod:`~airflow_revcent.rows.timefmt` are the exact text forms of values, which the API side reads and writes too.
Nothing here imports :mod:`airflow_revcent.api`, :mod:`airflow_revcent.resources` or :mod:`airflow_revcent.bigquery`.
"""

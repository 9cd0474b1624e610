"""The RevCent v2 API without Airflow: request options, connection settings, request windows, filters,
pacing, paging, responses, retries, reading.

Nothing in this package imports Airflow or google at module level; :mod:`airflow_revcent.hooks.revcent`
puts it together with an Airflow connection.
"""

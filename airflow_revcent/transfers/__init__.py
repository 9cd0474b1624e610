"""Transfer operators: :class:`~airflow_revcent.transfers.customers_to_bigquery.CustomersToBigQueryOperator`."""

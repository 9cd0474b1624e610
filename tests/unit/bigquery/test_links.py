"""The extra links' console URLs."""

from __future__ import annotations

from airflow_revcent.bigquery.links import job_console_url, table_console_url


def test_the_job_link_opens_the_job_in_the_console():
    url = job_console_url("my-proj", "EU", "revcent_apply_a")
    assert url.endswith("?project=my-proj&j=bq:EU:revcent_apply_a&page=queryresults")


def test_the_table_link_opens_the_table_in_the_console():
    url = table_console_url("my-proj", "revcent", "customers")
    assert url == ("https://console.cloud.google.com/bigquery?project=my-proj"
                   "&ws=!1m5!1m4!4m3!1smy-proj!2srevcent!3scustomers")

# The official Airflow image with this provider installed from the repository.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml README.md /opt/revcent/
COPY --chown=airflow:root airflow_revcent /opt/revcent/airflow_revcent
RUN pip install --no-cache-dir "/opt/revcent" "apache-airflow==${AIRFLOW_VERSION}"

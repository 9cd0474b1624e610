# The official Airflow image with this provider installed from the repository.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root pyproject.toml setup.py README.md /opt/revcent/
COPY --chown=airflow:root airflow_revcent /opt/revcent/airflow_revcent
# The wheel carries the sample DAGs (setup.py); the compose file also mounts them as the DAGs folder.
COPY --chown=airflow:root dags /opt/revcent/dags
RUN pip install --no-cache-dir "/opt/revcent" "apache-airflow==${AIRFLOW_VERSION}"

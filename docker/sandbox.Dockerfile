# The RevCent sandbox (standard library only).
FROM python:3.11-slim

WORKDIR /opt/revcent
COPY revcent_sandbox /opt/revcent/revcent_sandbox
# /v2/openapi.json is built from RevCent's GetCustomers operation, read at the repository's relative path.
COPY airflow_revcent/spec/GetCustomers.openapi.json /opt/revcent/airflow_revcent/spec/GetCustomers.openapi.json
EXPOSE 8089
ENTRYPOINT ["python", "-m", "revcent_sandbox", "--host", "0.0.0.0", "--port", "8089"]

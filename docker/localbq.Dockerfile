# A local BigQuery-API server (PyPI local-bigquery; it needs Python 3.13).
FROM python:3.13-slim

RUN pip install --no-cache-dir "local-bigquery==0.4.0" \
 && pip install --no-cache-dir --no-deps "duckdb==1.5.5" "duckdb-extension-ducklake==1.5.5" \
        "duckdb-extension-icu==1.5.5" "duckdb-extension-spatial==1.5.5"
COPY devtools/_bq_serve.py /opt/localbq/_bq_serve.py
EXPOSE 9050
# Arguments: PORT GRPC_PORT DATA_DIR PROJECT HOST
CMD ["python", "/opt/localbq/_bq_serve.py", "9050", "9051", "/data", "demo", "0.0.0.0"]

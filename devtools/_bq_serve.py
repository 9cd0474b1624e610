"""Entry point run by the local BigQuery venv's Python: register DuckDB's offline extensions, then serve.

Arguments: PORT GRPC_PORT DATA_DIR PROJECT [HOST]. HOST defaults to 127.0.0.1 (a container passes 0.0.0.0).
"""

import glob
import os
import sys

import duckdb

site = os.path.dirname(os.path.dirname(duckdb.__file__))
for path in glob.glob(os.path.join(site, "duckdb_extension_*", "extensions", "*", "*.duckdb_extension")):
    # Without network DuckDB cannot download these; install them from the wheels' files.
    duckdb.connect().execute(f"INSTALL '{path}'")

from local_bigquery.cli import main  # noqa: E402 - only after the extensions are registered

port, grpc_port, data_dir, project = sys.argv[1:5]
host = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"
main(["serve", "--host", host, "--port", port, "--grpc-port", grpc_port, "--data-dir", data_dir,
      "--project", project])

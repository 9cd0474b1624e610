"""Developer tooling: the local BigQuery-API server, the demo. Not part of the provider package."""

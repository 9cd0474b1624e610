"""BigQuery: the client from a connection, the table names, the schema mapping, the load and the applying
transaction, the extra links."""

"""Feature pipelines: the data contract, ingest with validation and quarantine, feature SQL and the graph."""

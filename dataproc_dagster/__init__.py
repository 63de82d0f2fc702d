"""dataproc-dagster."""

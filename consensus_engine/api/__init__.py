"""The HTTP API (FastAPI): a thin layer over the pipeline's use cases and the database."""

"""Tracing across the API, Pub/Sub, the worker, the LLM and the database."""

"""Logs and metrics of the pipeline, kept apart so the worker can tell operators what it does.

:mod:`.logs` writes structured lifecycle events; :mod:`.metrics` defines the
Prometheus metrics and imports ``prometheus_client`` only when first used.
"""

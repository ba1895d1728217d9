"""The pipeline tests use ``make_stack`` and ``stack`` from the root conftest."""

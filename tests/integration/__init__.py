"""Tests against real services: PostgreSQL, the Pub/Sub emulator, HTTP."""

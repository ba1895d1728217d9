"""Persistence: the models, engines and sessions, and the queries built on them."""

"""Integration tests: the service on real SQLite and PostgreSQL, the Flask test client,
quick runs of openssl and lint-imports."""

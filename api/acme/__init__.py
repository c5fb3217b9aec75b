"""The ACME face (RFC 8555): a Flask blueprint under ``/acme/{directory}/``."""

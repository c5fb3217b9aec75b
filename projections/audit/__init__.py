"""Audit history, point-in-time state and compliance reports over the raw log."""

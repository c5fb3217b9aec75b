"""The write side of the private CA: aggregates, events, X.509 building and key custody.

Nothing in this package imports Flask or the read models.
"""

"""The read side: read models that follow the event log, and the queries over them.

Imports the domain, never the API. Queries: :mod:`projections.queries`; running the
projection: :mod:`projections.worker`; design notes: ``docs/READ_MODELS.md``.
"""

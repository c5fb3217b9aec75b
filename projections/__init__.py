"""The read side: read models that follow the event log, and the queries over them.

Imports the domain, never the API. Queries: :mod:`projections.readmodels.queries`; running the
projection: :mod:`projections.readmodels.worker`; design notes: ``docs/READ_MODELS.md``.
"""

"""The web console: server-rendered pages at ``/console`` for operators and audit
reviewers, on the same application layer and read models as the API."""

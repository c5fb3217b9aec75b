"""The rows of each compliance report, streamed from the event log up to a cut.

Every report reads the log twice at most, in batches, filtered by event type in the
database. A first pass (:class:`Context`) reads only CA events, revocations and deletions:
the CA directory and each revoked or deleted certificate's fate, so its memory grows with
CAs and revocations, never with the certificates issued. The second pass streams the
events the report is about and turns each into a row as it goes. Rows come out in log
order (revocations: in the order they were logged), which a fixed cut makes reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from projections.audit import report_activity, report_certificates
from projections.audit.logcut import LogReader
from projections.audit.report_context import Context, Selection, Table


class ReportKind(StrEnum):
    """The compliance reports (``GET /api/v1/reports/{kind}``, ``pca report KIND``)."""

    INVENTORY = "inventory"
    ISSUANCE = "issuance"
    REVOCATIONS = "revocations"
    EXPIRING = "expiring"
    QUOTA_LEDGER = "quota-ledger"
    ACTIVITY = "activity"


def build_table(
    kind: ReportKind, reader: LogReader, context: Context, selection: Selection
) -> Table:
    """The columns of ``kind`` and its rows, read lazily from ``reader``."""
    return _BUILDERS[kind](reader, context, selection)


_BUILDERS: dict[ReportKind, Callable[[LogReader, Context, Selection], Table]] = {
    ReportKind.INVENTORY: report_certificates.inventory,
    ReportKind.ISSUANCE: report_certificates.issuance,
    ReportKind.REVOCATIONS: report_certificates.revocations,
    ReportKind.EXPIRING: report_certificates.expiring,
    ReportKind.QUOTA_LEDGER: report_activity.quota_ledger,
    ReportKind.ACTIVITY: report_activity.activity,
}

"""`pca audit` commands: the event history, chain verification and checkpoints."""

from __future__ import annotations

import argparse

from api.cli_commands import Session
from api.output import Row
from domain.audit import AuditLog
from projections.history import HistoryFilter, read_history


def declare_events(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--after", type=int, default=0, help="log position to continue after")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--type", action="append", default=[], help="event type, repeatable")


def events(session: Session, args: argparse.Namespace) -> list[Row]:
    """Events in log order, with actor, request id and chain hash (payloads with --json)."""
    page = read_history(
        session.service, args.after, args.limit, HistoryFilter(types=tuple(args.type))
    )
    return [
        {
            "position": item.position,
            "recorded_at": item.recorded_at.isoformat(),
            "type": item.type,
            "aggregate_id": str(item.aggregate_id),
            "actor": item.actor,
            "request_id": item.request_id,
            "chain_hash": item.chain_hash,
            "payload": item.payload if args.json else "...",
        }
        for item in page.items
    ]


def verify(session: Session, args: argparse.Namespace) -> list[Row]:
    """Recompute the chain; the first bad position, if any, and the checkpoints' state."""
    del args
    report = AuditLog.of(session.service).verify().to_json()
    checkpoints = report.pop("checkpoints")
    return [
        {
            **report,
            "checkpoints_checked": checkpoints["checked"],
            "checkpoints_ok": checkpoints["ok"],
        }
    ]


def checkpoint(session: Session, args: argparse.Namespace) -> list[Row]:
    """Sign a checkpoint of the chain's head now."""
    del args
    return [AuditLog.of(session.service).create_checkpoint(session.service.clock()).to_json()]


def checkpoints(session: Session, args: argparse.Namespace) -> list[Row]:
    """Every signed checkpoint, with what an outside party needs to verify it."""
    del args
    return list(AuditLog.of(session.service).export_checkpoints())

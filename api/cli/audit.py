"""`pca audit` commands: the event history, chain verification and checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from api.cli.commands import Session
from api.cli.output import CommandFailedError, Row
from domain.audit.verify import AuditLog
from projections.audit.history import HistoryFilter, read_history
from projections.audit.logcut import parse_at
from projections.audit.pointintime import render_json, state_at
from projections.audit.reports import parse_format, parse_kind, parse_parameters, write_report


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
    """Recompute the chain; the first bad position, if any, and the checkpoints' state.
    A failure is printed too, then exits non-zero (CommandFailedError)."""
    del args
    verified = AuditLog.of(session.service).verify()
    report = verified.to_json()
    checkpoints = report.pop("checkpoints")
    rows: list[Row] = [
        {
            **report,
            "checkpoints_checked": checkpoints["checked"],
            "checkpoints_ok": checkpoints["ok"],
        }
    ]
    if verified.ok:
        return rows
    if verified.problem is not None:
        raise CommandFailedError(
            rows,
            f"the audit chain is broken at position {verified.first_bad_position}"
            f" ({verified.problem.value}): {verified.detail}; restore from a backup taken"
            " before it (`pca restore`)",
        )
    failed = next(result for result in verified.checkpoints if not result.ok)
    raise CommandFailedError(
        rows,
        f"the checkpoint at position {failed.checkpoint.position} does not verify:"
        f" {failed.problem}; restore from a backup taken before it (`pca restore`)",
    )


def checkpoint(session: Session, args: argparse.Namespace) -> list[Row]:
    """Sign a checkpoint of the chain's head now."""
    del args
    return [AuditLog.of(session.service).create_checkpoint(session.service.clock()).to_json()]


def checkpoints(session: Session, args: argparse.Namespace) -> list[Row]:
    """Every signed checkpoint, with what an outside party needs to verify it."""
    del args
    return list(AuditLog.of(session.service).export_checkpoints())


def declare_replay(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", help="a log position or an ISO 8601 time (default: now)")


def replay(session: Session, args: argparse.Namespace) -> list[Row]:
    """The state at ``--at``, folded from the log alone; printed as JSON."""
    at = parse_at(args.at) if args.at else None
    sys.stdout.write(render_json(state_at(session.settings, at)).decode("utf-8") + "\n")
    return []


def declare_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind", help="inventory, issuance, revocations, expiring, quota-ledger or activity"
    )
    parser.add_argument("--format", default="csv", choices=["csv", "json"])
    parser.add_argument("--at", help="cut: a log position or an ISO 8601 time")
    parser.add_argument("--from", dest="start", help="period start (ISO 8601)")
    parser.add_argument("--to", dest="end", help="period end (ISO 8601)")
    parser.add_argument("--ca-id")
    parser.add_argument("--days", help="for expiring: within this many days")
    parser.add_argument(
        "--out",
        required=True,
        help="file for the report; the signed manifest goes next to it as FILE.manifest.json",
    )


def report(session: Session, args: argparse.Namespace) -> list[Row]:
    """Write a compliance export and its signed manifest."""
    parameters = parse_parameters(
        at=args.at, start=args.start, end=args.end, ca_id=args.ca_id, days=args.days
    )
    out = Path(args.out)
    with out.open("wb") as handle:
        manifest = write_report(
            session.settings,
            parse_kind(args.kind),
            parse_format(args.format),
            parameters,
            handle,
            keystore=session.service.keystore,
        )
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return [
        {
            "file": str(out),
            "rows": manifest.row_count,
            "sha256": manifest.sha256,
            "at_position": manifest.at_position,
            "manifest": str(manifest_path),
        }
    ]

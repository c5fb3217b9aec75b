"""`pca` commands that list: CAs and certificates from the read models, tokens from the log."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from uuid import UUID

from api.cli.commands import Session
from api.cli.output import Row
from api.cli.runners import fresh_read_models
from api.inputs import certificate_filter
from api.presenters import ca_view_shape, certificate_summary
from domain.application.service import PrivateCA
from domain.model.tokens import ApiToken
from projections.audit.history import MAX_LIMIT, HistoryFilter, read_history
from projections.readmodels.queries import DEFAULT_PAGE_SIZE


def declare_paging(parser: argparse.ArgumentParser) -> None:
    """``--limit`` and ``--cursor``, as every list takes them."""
    parser.add_argument("--limit", type=int, default=DEFAULT_PAGE_SIZE)
    parser.add_argument("--cursor", help="the cursor a previous page printed after 'more:'")


def list_cas(session: Session, args: argparse.Namespace) -> list[Row]:
    """The CAs, oldest first, a page at a time."""
    page = fresh_read_models(session).page_cas(session.service.clock(), args.limit, args.cursor)
    rows: list[Row] = []
    for view in page.items:
        shape = ca_view_shape(view, None)
        rows.append(
            {
                "id": shape["id"],
                "kind": shape["kind"],
                "status": shape["status"],
                "common_name": view.subject.common_name,
                "quota": shape["quota"],
                "certificates": shape["certificates"],
                "not_after": shape["not_after"],
            }
        )
    if page.next_cursor:
        sys.stderr.write(f"more: --cursor {page.next_cursor}\n")
    return rows


def list_certificates(session: Session, args: argparse.Namespace) -> list[Row]:
    narrowed = certificate_filter(args.ca_id, args.status, args.type, args.q)
    page = fresh_read_models(session).list_certificates(
        narrowed, session.service.clock(), args.limit, args.cursor
    )
    rows: list[Row] = []
    for view in page.items:
        shape = certificate_summary(view)
        shape["sans"] = [f"{san.type.value}:{san.value}" for san in view.sans]
        rows.append(shape)
    if page.next_cursor:
        sys.stderr.write(f"more: --cursor {page.next_cursor}\n")
    return rows


def list_tokens(session: Session, args: argparse.Namespace) -> list[Row]:
    """Every API token ever made, oldest first: id (to revoke), name, role and status.

    Read from the log (tokens are few and have no read model); never the token itself,
    which only its creator saw.
    """
    del args
    service, now = session.service, session.service.clock()
    rows: list[Row] = []
    for token_id in _token_ids(service):
        record: object = service.repository.get(token_id)
        assert isinstance(record, ApiToken)
        status = "revoked" if record.revoked else "active" if record.is_current(now) else "expired"
        expires = record.expires_at.isoformat() if record.expires_at else None
        rows.append(
            {
                "id": str(record.id),
                "name": record.name,
                "role": record.role.value,
                "status": status,
                "created_at": record.created_on.isoformat(),
                "expires_at": expires,
            }
        )
    return rows


def _token_ids(service: PrivateCA) -> Iterator[UUID]:
    created = HistoryFilter(types=("TokenCreated",))
    after: int | None = 0
    while after is not None:
        page = read_history(service, after, MAX_LIMIT, created)
        yield from (item.aggregate_id for item in page.items)
        after = page.next_after

"""`pca` commands that list: CAs and certificates from the read models, tokens from the log."""

from __future__ import annotations

import argparse
import sys

from api.cli.commands import Session, generations_text
from api.cli.output import Row
from api.cli.runners import fresh_read_models
from api.inputs import certificate_filter
from api.presenters import ca_view_shape, certificate_summary, token_records, token_shape
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
                "key_generations": generations_text(shape["key_generations"]),
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
    """Every API token ever made, oldest first: id (to revoke), name, role, scope (the
    CAs and profiles it is limited to; empty: all) and status; never the token itself."""
    del args
    now = session.service.clock()
    return [token_shape(record, now) for record in token_records(session.service)]

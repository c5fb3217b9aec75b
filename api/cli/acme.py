"""`pca acme ...`: open ACME directories, mint EAB credentials, see accounts and orders."""

from __future__ import annotations

import argparse
import uuid

from api.cli.commands import Session
from api.cli.output import Row
from api.presenters import acme_account_summary, acme_directory_shape, acme_order_summary
from domain.model.policy import DEFAULT_PROFILE


def declare_directory(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the directory's name: /acme/NAME/directory")
    parser.add_argument("--ca", required=True, type=uuid.UUID, help="the issuing intermediate")
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument(
        "--no-eab",
        dest="eab_required",
        action="store_false",
        help="let accounts register without an external account binding",
    )


def declare_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", help="the directory's name")


def create_directory(session: Session, args: argparse.Namespace) -> list[Row]:
    directory = session.deployment.acme.create_directory(
        session.context, args.name, args.ca, args.profile, eab_required=args.eab_required
    )
    return [acme_directory_shape(directory, session.settings.public_url)]


def create_eab(session: Session, args: argparse.Namespace) -> list[Row]:
    kid, mac_key = session.deployment.acme.create_eab(session.context, args.directory)
    return [{"directory": args.directory, "kid": kid, "hmac_key": mac_key}]


def list_accounts(session: Session, args: argparse.Namespace) -> list[Row]:
    return [
        _flat(acme_account_summary(account))
        for account in session.deployment.acme.accounts(args.directory)
    ]


def list_orders(session: Session, args: argparse.Namespace) -> list[Row]:
    now = session.service.clock()
    return [
        _flat(acme_order_summary(order, now))
        for order in session.deployment.acme.orders(args.directory)
    ]


def _flat(shape: Row) -> Row:
    """Lists as space-separated text, for the table output."""
    return {
        key: " ".join(map(str, value)) if isinstance(value, list) else value
        for key, value in shape.items()
    }

"""`pca acme ...`: open ACME directories, mint EAB credentials, see accounts and orders."""

from __future__ import annotations

import argparse
import uuid

from api.cli.commands import Session
from api.cli.output import Row
from domain.model.acme import DEFAULT_PROFILE


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
    return [
        {
            "name": directory.name,
            "ca_id": str(directory.ca_id),
            "profile": directory.profile,
            "eab_required": directory.eab_required,
            "url": f"{session.settings.public_url}/acme/{directory.name}/directory",
        }
    ]


def create_eab(session: Session, args: argparse.Namespace) -> list[Row]:
    kid, mac_key = session.deployment.acme.create_eab(session.context, args.directory)
    return [{"directory": args.directory, "kid": kid, "hmac_key": mac_key}]


def list_accounts(session: Session, args: argparse.Namespace) -> list[Row]:
    return [
        {
            "id": str(account.id),
            "status": account.status.value,
            "contact": " ".join(account.contact),
            "eab_kid": account.eab_kid,
            "thumbprint": account.thumbprint,
            "created_at": account.created_on.isoformat(),
        }
        for account in session.deployment.acme.accounts(args.directory)
    ]


def list_orders(session: Session, args: argparse.Namespace) -> list[Row]:
    now = session.service.clock()
    return [
        {
            "id": str(order.id),
            "account_id": str(order.account_id),
            "status": order.status(now).value,
            "identifiers": " ".join(order.identifiers),
            "certificate_id": str(order.certificate_id) if order.certificate_id else None,
            "created_at": order.created_on.isoformat(),
        }
        for order in session.deployment.acme.orders(args.directory)
    ]

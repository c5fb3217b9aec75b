"""`pca profile ...`: the certificate profiles of an intermediate (see docs/PROFILES.md)."""

from __future__ import annotations

import argparse
import json
import uuid

from api.cli.commands import Session
from api.cli.output import Row
from api.presenters import profile_shape
from domain.model.errors import ValidationError
from domain.model.policy import IssuancePolicy
from domain.model.policy_form import policy_from


def declare_name(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ca_id", type=uuid.UUID)
    parser.add_argument("name", help="the profile's name, e.g. web-servers")


def declare_policy(parser: argparse.ArgumentParser) -> None:
    declare_name(parser)
    parser.add_argument(
        "--policy",
        type=argparse.FileType("r"),
        help="a JSON file with the policy (as the HTTP API's IssuancePolicy; '-': stdin);"
        " without it the profile allows what the CA allows",
    )


def declare_ca(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ca_id", type=uuid.UUID)


def _policy(args: argparse.Namespace) -> IssuancePolicy:
    if args.policy is None:
        return IssuancePolicy()
    try:
        data = json.load(args.policy)
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"--policy is not valid JSON ({error.msg} at line {error.lineno}).", field="policy"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("--policy must hold a JSON object.", field="policy")
    return policy_from(data)


def _row(session: Session, args: argparse.Namespace) -> list[Row]:
    return [profile_shape(session.service.get_ca(args.ca_id).profile_named(args.name))]


def create(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.create_profile(session.context, args.ca_id, args.name, _policy(args))
    return _row(session, args)


def update(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.update_profile(session.context, args.ca_id, args.name, _policy(args))
    return _row(session, args)


def retire(session: Session, args: argparse.Namespace) -> list[Row]:
    session.service.retire_profile(session.context, args.ca_id, args.name)
    return _row(session, args)


def show(session: Session, args: argparse.Namespace) -> list[Row]:
    return _row(session, args)


def list_profiles(session: Session, args: argparse.Namespace) -> list[Row]:
    return [profile_shape(p) for p in session.service.get_ca(args.ca_id).all_profiles()]

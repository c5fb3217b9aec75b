"""The `pca` command line: operator commands that mirror the reference console's steps.

Commands act on the deployment configured by the ``PCA_*`` environment (see
``domain.adapters.settings``): SQLite in ``PCA_DATA_DIR`` by default.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from api.cli import acme, audit, commands, lists, profiles, runners
from api.cli.output import CommandFailedError, Row, emit
from api.cli.quickstart import run_quickstart
from api.deployment import Deployment
from api.ocsp_serve import serve_ocsp
from api.serve import serve
from domain.adapters.settings import Settings
from domain.application.commands import (
    CA_DEFAULTS,
    DEFAULT_CA_KEY_ALGORITHM,
    DEFAULT_INCLUDED_CERTIFICATES,
    DEFAULT_REVOCATION_REASON,
)
from domain.application.service import utc_now
from domain.model.errors import PCAError
from domain.model.tokens import Role
from domain.model.values import (
    CAKind,
    CertificateType,
    KeyAlgorithm,
    KeyStorage,
    RequestContext,
    RevocationReason,
)
from projections.backup.operations import create_backup, restore_backup

Handler = Callable[[commands.Session, argparse.Namespace], list[Row]]
KEY_ALGORITHMS = [algorithm.value for algorithm in KeyAlgorithm]
REASONS = [reason.value for reason in RevocationReason]


@dataclass(frozen=True)
class Command:
    """One subcommand: its handler and how to declare its arguments."""

    handler: Handler
    declare: Callable[[argparse.ArgumentParser], None]
    help: str
    bare: str | None = None  # print only this field of the single row (unless --json)
    prints: bool = False  # the handler writes its own output (JSON documents)
    publishes: bool = False  # CRLs and audit checkpoints are published while it runs
    creates: bool = False  # may start a new deployment; the others refuse a store with none


def _subject_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cn", "--common-name", dest="common_name", required=True)
    parser.add_argument("--org", dest="organization")
    parser.add_argument("--ou", dest="organizational_unit")
    parser.add_argument("--locality")
    parser.add_argument("--state")
    parser.add_argument("--country", help="two letters, e.g. DE")


def _ca_args(parser: argparse.ArgumentParser, *, root: bool) -> None:
    """Omitted values are None: the application fills in the CA kind's defaults."""
    defaults = CA_DEFAULTS[CAKind.ROOT if root else CAKind.INTERMEDIATE]
    _subject_args(parser)
    parser.add_argument(
        "--key-algorithm",
        choices=KEY_ALGORITHMS,
        help=f"default {DEFAULT_CA_KEY_ALGORITHM.value}",
    )
    parser.add_argument("--validity-years", type=int, help=f"default {defaults.validity_years}")
    parser.add_argument("--service-days", type=int, help=f"default {defaults.service_days}")
    if root:
        parser.add_argument(
            "--included-certificates", type=int, default=DEFAULT_INCLUDED_CERTIFICATES
        )
    else:
        parser.add_argument("--parent", required=True, type=uuid.UUID, help="the root CA's id")
        for flag, what in (("--permit", "permitted"), ("--exclude", "excluded")):
            parser.add_argument(
                flag,
                action="append",
                default=[],
                metavar="TYPE:VALUE",
                help=f"a {what} name-constraint subtree: dns:svc.example, ip:10.0.0.0/8,"
                " email:example.com, uri:.example.com",
            )


def _id_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=uuid.UUID)


def _enable_args(parser: argparse.ArgumentParser) -> None:
    _id_arg(parser)
    parser.add_argument(
        "--key-storage",
        choices=[storage.value for storage in KeyStorage],
        default=KeyStorage.SOFTWARE.value,
        help="where the first enablement makes the CA's key (pkcs11: the configured token)",
    )


def _reason_arg(parser: argparse.ArgumentParser) -> None:
    _id_arg(parser)
    parser.add_argument("--reason", choices=REASONS, default=DEFAULT_REVOCATION_REASON.value)


def _renew_args(parser: argparse.ArgumentParser) -> None:
    _id_arg(parser)
    parser.add_argument("--service-days", type=int, required=True)


def _retire_args(parser: argparse.ArgumentParser) -> None:
    _id_arg(parser)
    parser.add_argument("generation", type=int, help="the key generation to retire")


def _purchase_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root_id", type=uuid.UUID)
    parser.add_argument("--count", type=int, required=True)


def _assign_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root_id", type=uuid.UUID)
    parser.add_argument("--intermediate", type=uuid.UUID, required=True)
    parser.add_argument("--remaining", type=int, required=True)


def _issue_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ca_id", type=uuid.UUID)
    parser.add_argument("--type", choices=[t.value for t in CertificateType], default="server")
    _subject_args(parser)
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="TYPE:VALUE",
        help="dns:www.example.com, ip:10.0.0.1, email:a@b.c, uri:spiffe://x",
    )
    validity = parser.add_mutually_exclusive_group()
    validity.add_argument(
        "--validity-days", type=int, help="required unless the profile has a default"
    )
    validity.add_argument(
        "--not-after", help="an explicit end, ISO 8601 with a zone (2027-01-31T00:00:00Z)"
    )
    parser.add_argument("--key-algorithm", choices=KEY_ALGORITHMS)
    parser.add_argument("--csr", type=argparse.FileType("r"), help="PEM CSR file ('-': stdin)")
    parser.add_argument("--name", help="display name (defaults to the common name)")
    parser.add_argument("--no-crl", dest="include_crl", action="store_false")
    parser.add_argument("--idempotency-key")
    parser.add_argument("--profile", help="the CA's certificate profile to issue under")


def _download_args(parser: argparse.ArgumentParser) -> None:
    _id_arg(parser)
    parser.add_argument(
        "--format",
        default="pem",
        help="pem, der, pkcs8, pkcs12, jks, pkcs7, "
        "nginx, apache, tomcat, iis (key formats read PCA_DOWNLOAD_PASSWORD)",
    )
    parser.add_argument("--out", default=".", help="directory to write the file into")
    parser.add_argument("--no-chain", action="store_true", help="the certificate alone")


def _no_args(parser: argparse.ArgumentParser) -> None:
    del parser


def _list_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ca_id", type=uuid.UUID)
    parser.add_argument("--status", choices=["issued", "revoked", "expired"])
    parser.add_argument("--type", choices=[t.value for t in CertificateType])
    parser.add_argument("--q", help="text in the common name, a SAN, the name or the serial (hex)")
    lists.declare_paging(parser)


def _token_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=[role.value for role in Role], required=True)
    parser.add_argument("--name", required=True, help="who or what uses it, e.g. ci-deployer")
    parser.add_argument(
        "--valid-days", type=int, help="refuse the token after this many days (default: never)"
    )
    parser.add_argument(
        "--ca",
        dest="ca_ids",
        action="append",
        default=[],
        type=uuid.UUID,
        help="limit the token to this CA (repeat for several; default: every CA)",
    )
    parser.add_argument(
        "--profile",
        dest="profiles",
        action="append",
        default=[],
        help="limit the token to this certificate profile (repeat; default: every profile)",
    )


def _quickstart_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="pca-quickstart", help="where to write the files")


GROUPS: dict[str, dict[str, Command]] = {
    "ca": {
        "create-root": Command(
            commands.create_root,
            lambda p: _ca_args(p, root=True),
            "create a pending root CA (the first one starts a deployment)",
            creates=True,
        ),
        "create-intermediate": Command(
            commands.create_intermediate,
            lambda p: _ca_args(p, root=False),
            "create a pending intermediate under an enabled root",
        ),
        "enable": Command(
            commands.enable_ca, _enable_args, "enable (first time: make key and cert)"
        ),
        "disable": Command(commands.disable_ca, _id_arg, "stop a CA from issuing"),
        "renew": Command(commands.renew_ca, _renew_args, "extend the service period"),
        "rollover": Command(
            commands.roll_over_ca_key, _id_arg, "new key and certificate, same name"
        ),
        "retire-key": Command(
            commands.retire_ca_key, _retire_args, "destroy a previous key once it expired"
        ),
        "revoke": Command(commands.revoke_ca, _reason_arg, "revoke an intermediate (final)"),
        "show": Command(commands.show_ca, _id_arg, "show one CA with its quota"),
        "list": Command(lists.list_cas, lists.declare_paging, "every CA with quota and counts"),
    },
    "quota": {
        "purchase": Command(commands.purchase_quota, _purchase_args, "add to a root's pool"),
        "assign": Command(
            commands.assign_quota, _assign_args, "set an intermediate's remaining quota"
        ),
    },
    "profile": {
        "create": Command(profiles.create, profiles.declare_policy, "create a certificate profile"),
        "update": Command(profiles.update, profiles.declare_policy, "replace a profile's policy"),
        "retire": Command(profiles.retire, profiles.declare_name, "stop issuing under a profile"),
        "show": Command(profiles.show, profiles.declare_name, "one profile with its policy"),
        "list": Command(profiles.list_profiles, profiles.declare_ca, "an intermediate's profiles"),
    },
    "cert": {
        "issue": Command(commands.issue_certificate, _issue_args, "request a certificate"),
        "show": Command(commands.show_certificate, _id_arg, "show one certificate"),
        "list": Command(lists.list_certificates, _list_args, "a CA's certificates, newest first"),
        "download": Command(
            commands.download_certificate,
            _download_args,
            "write the certificate in the format a server needs",
        ),
        "revoke": Command(commands.revoke_certificate, _reason_arg, "revoke (final)"),
        "delete": Command(
            commands.delete_certificate,
            _id_arg,
            "delete a revoked or expired certificate and its key",
        ),
    },
    "tokens": {
        "create": Command(
            commands.create_token,
            _token_args,
            "create an API token; prints it once, alone (the first starts a deployment)",
            bare="token",
            creates=True,
        ),
        "revoke": Command(commands.revoke_token, _id_arg, "stop accepting a token"),
        "list": Command(lists.list_tokens, _no_args, "every token: id, name, role, scope, status"),
    },
    "crl": {
        "publish": Command(runners.publish_crl, _id_arg, "publish a new base CRL for a CA now"),
        "show": Command(runners.show_crl, _id_arg, "the CRLs served for a CA"),
    },
    "audit": {
        "events": Command(audit.events, audit.declare_events, "the event history"),
        "verify": Command(audit.verify, _no_args, "recompute the hash chain, check checkpoints"),
        "checkpoint": Command(audit.checkpoint, _no_args, "sign a checkpoint now"),
        "checkpoints": Command(audit.checkpoints, _no_args, "export the signed checkpoints"),
        "replay": Command(
            audit.replay,
            audit.declare_replay,
            "the state at a position or time, from the log alone (JSON)",
            prints=True,
        ),
    },
    "projections": {
        "run": Command(
            runners.run_projections,
            _no_args,
            "keep the read models up to date, publish CRLs and checkpoints",
            publishes=True,
        ),
        "rebuild": Command(
            runners.rebuild_projections,
            _no_args,
            "rebuild the read models from the log (runner stopped)",
        ),
    },
    "acme": {
        "create-directory": Command(
            acme.create_directory,
            acme.declare_directory,
            "open an ACME directory for an intermediate CA",
        ),
        "eab-create": Command(
            acme.create_eab,
            acme.declare_name,
            "mint an external account binding (key id and HMAC key, shown once)",
        ),
        "accounts": Command(acme.list_accounts, acme.declare_name, "a directory's accounts"),
        "orders": Command(acme.list_orders, acme.declare_name, "a directory's orders"),
    },
    "keys": {
        "rotate-master": Command(
            commands.rotate_master_key,
            _no_args,
            "new master key; re-encrypt the key store under it",
        ),
    },
}


def _json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json`` after the subcommand too (``pca ca list --json``); SUPPRESS keeps the
    value given before it when it is not repeated."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every `pca` command."""
    parser = argparse.ArgumentParser(prog="pca", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.set_defaults(bare=None, prints=False, publishes=False, creates=False)
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    quickstart = groups.add_parser("quickstart", help="walk the initial configuration once")
    _json_flag(quickstart)
    _quickstart_args(quickstart)
    quickstart.set_defaults(handler=run_quickstart, creates=True)
    report_parser = groups.add_parser("report", help="a compliance export with a signed manifest")
    _json_flag(report_parser)
    audit.declare_report(report_parser)
    report_parser.set_defaults(handler=audit.report)
    serve_parser = groups.add_parser("serve", help="serve the HTTP API")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8080)
    serve_parser.add_argument("--workers", type=int, default=2, help="worker processes")
    serve_parser.add_argument("--threads", type=int, default=8, help="threads per worker")
    serve_parser.add_argument(
        "--api-only",
        action="store_true",
        help="no read models, CRLs or checkpoints in the workers (also PCA_API_ONLY=1); "
        "run 'pca projections run' apart",
    )
    serve_parser.set_defaults(prints=True)  # the server's log is its output
    ocsp_parser = groups.add_parser(
        "ocsp-serve", help="serve OCSP (and CRLs) alone, read-only, for a responder host"
    )
    ocsp_parser.add_argument("--host", default="127.0.0.1")
    ocsp_parser.add_argument("--port", type=int, default=8081)
    ocsp_parser.add_argument("--workers", type=int, default=2, help="worker processes")
    ocsp_parser.set_defaults(prints=True)
    backup_parser = groups.add_parser("backup", help="a consistent backup, while serving")
    backup_parser.add_argument("path", type=Path, help="the new backup file (mode 0600)")
    restore_parser = groups.add_parser("restore", help="restore a backup into an empty store")
    restore_parser.add_argument("path", type=Path, help="a file written by 'pca backup'")
    for group_name, members in GROUPS.items():
        group = groups.add_parser(group_name, help=f"{group_name} commands")
        actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, command in members.items():
            sub = actions.add_parser(name, help=command.help)
            _json_flag(sub)
            command.declare(sub)
            sub.set_defaults(
                handler=command.handler,
                bare=command.bare,
                prints=command.prints,
                publishes=command.publishes,
                creates=command.creates,
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; domain errors (a bad ``PCA_*`` setting among them) print their
    advice and exit with status 2; a command that reports a failure (`pca audit verify`
    on a broken chain) prints its result and exits with status 1."""
    args = build_parser().parse_args(argv)
    try:
        rows = _execute(Settings.from_env(), args)
    except PCAError as error:
        where = f" [{error.field}]" if error.field else ""
        sys.stderr.write(f"pca: error{where}: {error.detail}\n")
        return 2
    except CommandFailedError as failed:
        emit(failed.rows, as_json=args.json)
        sys.stderr.write(f"pca: {failed.detail}\n")
        return 1
    if args.prints:
        return 0
    if args.bare and not args.json:
        sys.stdout.write(f"{rows[0][args.bare]}\n")
    else:
        emit(rows, as_json=args.json)
    return 0


def _execute(settings: Settings, args: argparse.Namespace) -> list[Row]:
    """The command's rows: run on a deployment opened for it, publishing CRLs meanwhile
    if it asks; `serve`, `ocsp-serve`, `backup` and `restore` open what they need
    themselves."""
    if args.group == "serve":
        serve(settings, args.host, args.port, args.workers, args.threads, api_only=args.api_only)
        return []
    if args.group == "ocsp-serve":
        serve_ocsp(settings, args.host, args.port, args.workers)
        return []
    if args.group in ("backup", "restore"):
        return [_backup_or_restore(settings, args)]
    if not args.creates and not settings.holds_deployment():
        raise settings.missing_deployment()  # a mistyped PCA_DATA_DIR is no new deployment
    context = RequestContext(actor=f"{getpass.getuser()} (cli)", request_id=f"cli-{uuid.uuid4()}")
    with closing(Deployment.open(settings, publish=args.publishes)) as deployment:
        rows: list[Row] = args.handler(commands.Session(deployment, context), args)
        return rows


def _backup_or_restore(settings: Settings, args: argparse.Namespace) -> Row:
    """`pca backup` and `pca restore` act on the stores without opening the deployment,
    which would create a store and a master key where there should be none (see
    docs/BACKUP.md)."""
    if args.group == "backup":
        return create_backup(settings, args.path, utc_now()).to_row()
    return restore_backup(settings, args.path).to_row()


if __name__ == "__main__":
    sys.exit(main())

"""ACME (RFC 8555) use cases over the private CA.

Each request arrives as an :class:`AcmeCall` (where it was posted, the directory's base
URL, its JWS). :meth:`Acme._authenticate` applies RFC 8555 §6.2-6.5 in one place: the
directory exists, the algorithm is one we take, ``jwk`` or ``kid`` as the resource wants,
the ``url`` header is the URL posted to, the signature verifies, and the nonce is one
this deployment issued and nobody used (the shared table of ``Nonces``). Issuing and
revoking go through the same :class:`PrivateCA` use cases as the REST API, with the
account as actor: quota, group commit, idempotency and events are theirs.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from domain.application.acme_policy import check_identifiers
from domain.application.commands import certificate_request
from domain.application.ports import ChallengeChecker, Nonces
from domain.application.service import PrivateCA
from domain.model.acme import (
    DEFAULT_PROFILE,
    AcmeAccount,
    AcmeCertificate,
    AcmeDirectory,
    AcmeError,
    AcmeKeyBinding,
    AcmeOrder,
    EabCredential,
    Status,
    account_id,
    directory_id,
    eab_id,
    key_binding_id,
    link_id,
)
from domain.model.certificate import Certificate
from domain.model.errors import ConflictError, NotFoundError
from domain.model.values import RequestContext, RevocationReason, Subject
from domain.pki.jws import (
    SignedRequest,
    b64url,
    b64url_decode,
    key_authorization,
    public_jwk,
    public_key,
    thumbprint,
)

ORDER_LIFETIME = dt.timedelta(days=7)
CERTIFICATE_DAYS = 90
MAX_IDENTIFIERS = 10
QUERY_PAGE = 500
EAB_SECRET_PREFIX = "acme-eab-"  # noqa: S105 - a key id prefix, not a secret
REASONS = {
    0: RevocationReason.UNSPECIFIED,
    1: RevocationReason.KEY_COMPROMISE,
    3: RevocationReason.AFFILIATION_CHANGED,
    4: RevocationReason.SUPERSEDED,
    5: RevocationReason.CESSATION_OF_OPERATION,
    9: RevocationReason.PRIVILEGE_WITHDRAWN,
}
A = TypeVar("A")


@dataclass(frozen=True)
class AcmeLimits:
    """New orders per account and per identifier in each window (0: no limit)."""

    per_account: int = 300
    per_identifier: int = 50
    window_seconds: int = 3600


@dataclass(frozen=True)
class AcmeCall:
    """One signed ACME request: the directory's name and base URL, the URL posted to,
    the request id, and the JWS."""

    directory: str
    base: str
    url: str
    request_id: str
    signed: SignedRequest

    def account_url(self, account: UUID) -> str:
        return f"{self.base}/acct/{account}"


@dataclass(frozen=True)
class Authenticated:
    """Who signed a call: the directory, the account (None for a new one), the JWK."""

    directory: AcmeDirectory
    account: AcmeAccount | None
    jwk: dict[str, Any]

    @property
    def known(self) -> AcmeAccount:
        assert self.account is not None
        return self.account

    def context(self, request_id: str) -> RequestContext:
        return RequestContext(self.known.actor, request_id)


class Acme:
    """The ACME use cases of one process."""

    def __init__(
        self, service: PrivateCA, nonces: Nonces, checker: ChallengeChecker, limits: AcmeLimits
    ) -> None:
        self._service = service
        self._nonces = nonces
        self._checker = checker
        self._limits = limits

    def close(self) -> None:
        self._nonces.close()

    # --- administration -----------------------------------------------------------------

    def create_directory(
        self,
        ctx: RequestContext,
        name: str,
        ca_id: UUID,
        profile: str = DEFAULT_PROFILE,
        *,
        eab_required: bool = True,
    ) -> AcmeDirectory:
        """Open an ACME directory ``name`` that issues from the intermediate ``ca_id``."""
        self._service.get_ca(ca_id, field="ca_id").check_can_issue(self._service.clock())
        directory = AcmeDirectory.create(ctx, name, ca_id, profile, eab_required=eab_required)
        if self._find(directory.id, AcmeDirectory) is not None:
            raise ConflictError(f"There is already an ACME directory {name!r}.", field="name")
        self._save(directory)
        return directory

    def create_eab(self, ctx: RequestContext, directory_name: str) -> tuple[str, str]:
        """A new EAB key id and its MAC key (base64url), shown once; the MAC key is kept
        encrypted in the key store, the event names the key id only."""
        directory = self.directory(directory_name)
        kid = f"eab-{secrets.token_urlsafe(12)}"
        mac_key = secrets.token_bytes(32)
        self._service.keystore.put_secret(EAB_SECRET_PREFIX + kid, mac_key)
        self._save(EabCredential.create(ctx, kid, directory.id))
        return kid, b64url(mac_key)

    def directory(self, name: str) -> AcmeDirectory:
        """The directory ``name``; 404 if there is none."""
        found = self._find(directory_id(name), AcmeDirectory)
        if found is None:
            raise NotFoundError(f"There is no ACME directory {name!r}.")
        return found

    def new_nonce(self) -> str:
        return self._nonces.issue()

    # --- operator views (from the log: accounts and orders are few next to certificates) -

    def accounts(self, name: str) -> list[AcmeAccount]:
        """The directory's accounts, oldest first."""
        directory = self.directory(name)
        found = self._created(AcmeAccount.AccountRegistered, AcmeAccount)
        return [account for account in found if account.directory_id == directory.id]

    def orders(self, name: str) -> list[AcmeOrder]:
        """The directory's orders, oldest first."""
        directory = self.directory(name)
        found = self._created(AcmeOrder.OrderCreated, AcmeOrder)
        return [order for order in found if order.directory_id == directory.id]

    def _created(self, event: type[object], kind: type[A]) -> Iterator[A]:
        """Each aggregate of ``kind`` whose creation ``event`` the log holds, in log order."""
        topics = [get_topic(event)]
        start = 1
        while True:
            page = self._service.recorder.select_notifications(
                start=start, limit=QUERY_PAGE, topics=topics
            )
            for notification in page:
                found = self._find(UUID(str(notification.originator_id)), kind)
                if found is not None:
                    yield found
            if len(page) < QUERY_PAGE:
                return
            start = page[-1].id + 1

    # --- accounts -----------------------------------------------------------------------

    def new_account(self, call: AcmeCall) -> tuple[AcmeAccount, bool]:
        """The account of the JWS's key, created (True) unless it exists."""
        signer = self._authenticate(call, new_account=True)
        payload = call.signed.json_payload()
        existing = self._account_by_key(signer.directory, thumbprint(signer.jwk))
        if existing is not None:
            return existing, False
        if payload.get("onlyReturnExisting") is True:
            raise AcmeError("accountDoesNotExist", "No account has this key.", 400)
        if payload.get("termsOfServiceAgreed") is False:
            raise AcmeError("malformed", "Agree to the terms of service to register.")
        return self._register(call, signer, payload), True

    def _register(
        self, call: AcmeCall, signer: Authenticated, payload: dict[str, Any]
    ) -> AcmeAccount:
        contact = payload.get("contact", [])
        if not isinstance(contact, list) or not all(
            isinstance(item, str) and item.startswith("mailto:") for item in contact
        ):
            raise AcmeError("invalidContact", "Contacts must be a list of mailto: URLs.")
        binding = self._binding(call, signer, payload.get("externalAccountBinding"))
        account = AcmeAccount.register(
            call.request_id,
            signer.directory.id,
            public_jwk(signer.jwk),
            thumbprint(signer.jwk),
            contact,
            binding.kid if binding else None,
        )
        if binding is not None:
            binding.use(RequestContext(account.actor, call.request_id), account.id)
        self._save(account, binding)
        return account

    def _binding(
        self, call: AcmeCall, signer: Authenticated, document: object
    ) -> EabCredential | None:
        """The EAB credential that signed ``document`` (RFC 8555 §7.3.4), checked."""
        if document is None:
            if signer.directory.eab_required:
                raise AcmeError(
                    "externalAccountRequired", "This directory needs an external account binding."
                )
            return None
        inner = SignedRequest.parse(_as_json_bytes(document))
        kid = str(inner.header.get("kid", ""))
        credential = self._find(eab_id(kid), EabCredential)
        if credential is None or credential.directory_id != signer.directory.id:
            raise AcmeError("unauthorized", "Unknown external account binding key id.")
        if inner.header.get("url") != call.url or "nonce" in inner.header:
            raise AcmeError("malformed", "The binding's url must be newAccount's, with no nonce.")
        inner.verify_mac(self._service.keystore.secret(EAB_SECRET_PREFIX + kid))
        if inner.json_payload() != signer.jwk:
            raise AcmeError("malformed", "The binding must sign the account's own key.")
        return credential

    def account(self, call: AcmeCall, account: UUID) -> AcmeAccount:
        """POST to an account URL: read it, or deactivate it (``status: deactivated``)."""
        signer = self._authenticate(call)
        if signer.known.id != account:
            raise AcmeError("unauthorized", "A request for an account must be signed by it.", 403)
        if call.signed.payload and call.signed.json_payload().get("status") == "deactivated":
            signer.known.deactivate(call.request_id)
            self._save(signer.known)
        return signer.known

    def account_orders(self, call: AcmeCall, account: UUID) -> list[AcmeOrder]:
        """RFC 8555 §7.1.2.1: the orders of the signing account, oldest first."""
        signer = self._authenticate(call)
        if signer.known.id != account:
            raise AcmeError("unauthorized", "Only the account may list its orders.", 403)
        found = self._created(AcmeOrder.OrderCreated, AcmeOrder)
        return [order for order in found if order.account_id == account]

    def change_key(self, call: AcmeCall) -> AcmeAccount:
        """RFC 8555 §7.3.5: the account signs with a new key from now on. The inner JWS,
        signed by the new key, names the account and its old key."""
        signer = self._authenticate(call)
        inner = SignedRequest.parse(call.signed.payload)
        new_jwk, old_jwk = inner.header.get("jwk"), inner.json_payload().get("oldKey")
        if not isinstance(new_jwk, dict) or not isinstance(old_jwk, dict):
            raise AcmeError("malformed", "The inner JWS needs a jwk, its payload an oldKey.")
        if "nonce" in inner.header or "kid" in inner.header or inner.header.get("url") != call.url:
            raise AcmeError("malformed", "The inner JWS needs jwk and this url, no nonce or kid.")
        inner.verify(new_jwk)
        payload = inner.json_payload()
        account = signer.known
        if payload.get("account") != call.account_url(account.id):
            raise AcmeError("malformed", "The inner payload must name the signing account.")
        if thumbprint(old_jwk) != account.thumbprint:
            raise AcmeError("malformed", "oldKey must be the account's current key.")
        new_thumbprint = thumbprint(new_jwk)
        if self._key_taken(signer.directory, new_thumbprint):
            raise AcmeError("conflict", "Another account already has this key.", 409)
        binding = account.change_key(call.request_id, public_jwk(new_jwk), new_thumbprint)
        try:
            self._save(account, binding)
        except IntegrityError:  # another account took the key meanwhile
            raise AcmeError("conflict", "Another account already has this key.", 409) from None
        return account

    def _account_by_key(self, directory: AcmeDirectory, key: str) -> AcmeAccount | None:
        """The account that signs with the key of thumbprint ``key`` now, if any."""
        binding = self._find(key_binding_id(directory.id, key), AcmeKeyBinding)
        found_id = binding.account_id if binding else account_id(directory.id, key)
        account = self._find(found_id, AcmeAccount)
        if account is not None and account.thumbprint != key:
            raise AcmeError("unauthorized", "This key was replaced by a key change.", 401)
        return account

    def _key_taken(self, directory: AcmeDirectory, key: str) -> bool:
        return self._find(key_binding_id(directory.id, key), AcmeKeyBinding) is not None or (
            self._find(account_id(directory.id, key), AcmeAccount) is not None
        )

    # --- orders -------------------------------------------------------------------------

    def new_order(self, call: AcmeCall) -> AcmeOrder:
        """An order for the payload's identifiers, each allowed by the directory's policy
        before any challenge is offered."""
        signer = self._authenticate(call)
        payload = call.signed.json_payload()
        identifiers = _identifiers(payload.get("identifiers"))
        check_identifiers(signer.directory, identifiers)
        replaces = self._replaced(signer, payload.get("replaces"))
        self._charge(signer.known, identifiers)
        order = AcmeOrder.create(
            signer.context(call.request_id),
            signer.known,
            identifiers,
            [secrets.token_urlsafe(32) for _ in identifiers],
            self._service.clock() + ORDER_LIFETIME,
            replaces,
        )
        self._save(order)
        return order

    def _charge(self, account: AcmeAccount, identifiers: list[str]) -> None:
        """Count the order against the account's and each identifier's limit."""
        limits = self._limits
        charges = [(f"account:{account.id}", limits.per_account)]
        charges += [(f"identifier:{name}", limits.per_identifier) for name in identifiers]
        for key, limit in charges:
            if limit:
                wait = self._nonces.hit(key, limits.window_seconds, limit)
                if wait is not None:
                    raise RateLimitedError(
                        f"Too many new orders for {key.partition(':')[0]} "
                        f"{key.partition(':')[2]}; try again in {round(wait)} s.",
                        wait,
                    )

    def _replaced(self, signer: Authenticated, cert_id: object) -> str | None:
        """The ARI certificate id an order replaces; it must be one of this account's."""
        if cert_id is None:
            return None
        certificate = self.certificate_of(signer.directory, str(cert_id))
        link = self._find(link_id(certificate.id), AcmeCertificate)
        if link is None or link.account_id != signer.known.id:
            raise AcmeError("malformed", "replaces must name a certificate of this account.")
        return str(cert_id)

    def order(self, call: AcmeCall, order_id: UUID) -> AcmeOrder:
        """POST-as-GET of an order."""
        signer = self._authenticate(call)
        return self._owned_order(signer, order_id)

    def authorization(self, call: AcmeCall, order_id: UUID, index: int) -> AcmeOrder:
        """POST-as-GET of authorization ``index`` of an order (the order holds it)."""
        order = self.order(call, order_id)
        _check_index(order, index)
        return order

    def _owned_order(self, signer: Authenticated, order_id: UUID) -> AcmeOrder:
        order = self._find(order_id, AcmeOrder)
        if order is None or order.directory_id != signer.directory.id:
            raise AcmeError("malformed", "There is no such order.", 404)
        order.check_owner(signer.known)
        return order

    def challenge(self, call: AcmeCall, order_id: UUID, index: int, challenge: str) -> AcmeOrder:
        """Validate authorization ``index`` of the order with ``challenge`` now; a
        POST-as-GET only reads. The outcome is an event either way."""
        signer = self._authenticate(call)
        order = self._owned_order(signer, order_id)
        _check_index(order, index)
        if not call.signed.payload:
            return order
        now = self._service.clock()
        if order.authz_status[index] is not Status.PENDING:
            return order
        order.check_challengeable(index, challenge, now)
        answer = key_authorization(order.tokens[index], signer.known.jwk)
        problem = self._checker.check(
            challenge, order.identifiers[index], order.tokens[index], answer
        )
        ctx = signer.context(call.request_id)
        if problem is None:
            order.validate(ctx, index, challenge, now)
        else:
            order.fail(ctx, index, challenge, problem)
        return self._save_order(order)

    def finalize(self, call: AcmeCall, order_id: UUID) -> AcmeOrder:
        """Issue the certificate for a ready order from the payload's CSR, through the
        same issuance as the REST API (quota, group commit, idempotent per order)."""
        signer = self._authenticate(call)
        order = self._owned_order(signer, order_id)
        order.check_ready(self._service.clock())
        csr_der = b64url_decode(call.signed.json_payload().get("csr"), "csr")
        csr_pem = _csr_pem(csr_der, order.identifiers)
        ctx = signer.context(call.request_id)
        request = certificate_request(
            "server",
            Subject(common_name=order.identifiers[0]),
            CERTIFICATE_DAYS,
            sans=[("dns", name) for name in order.identifiers],
            csr_pem=csr_pem,
            idempotency_key=f"acme-order-{order.id}",
        )
        issued = self._service.issue_certificate(ctx, signer.directory.ca_id, request)
        certificate_id = issued.certificate.id
        order.finalize(ctx, certificate_id)
        try:
            self._save(order, AcmeCertificate.record(ctx, certificate_id, order))
        except IntegrityError:  # a concurrent finalize of the same order recorded it
            return self._owned_order(signer, order_id)
        return order

    def certificate(self, call: AcmeCall, certificate_id: UUID) -> tuple[bytes, ...]:
        """The certificate and the CAs above it (not the root), DER, for its account."""
        signer = self._authenticate(call)
        link = self._find(link_id(certificate_id), AcmeCertificate)
        if link is None or link.account_id != signer.known.id:
            raise AcmeError("unauthorized", "This certificate was not issued to you.", 403)
        certificate = self._service.get_certificate(certificate_id)
        chain = self._service.chain_der(certificate.ca_id)
        return (certificate.certificate_der, *chain[:-1])

    # --- revocation and renewal information --------------------------------------------

    def revoke(self, call: AcmeCall) -> None:
        """Revoke a certificate the signer holds: by its account, or by its own key."""
        signer = self._authenticate(call, jwk_allowed=True)
        payload = call.signed.json_payload()
        der = b64url_decode(payload.get("certificate"), "certificate")
        certificate = self._issued_by(signer.directory, der)
        reason = REASONS.get(_reason_code(payload.get("reason", 0)))
        if reason is None:
            raise AcmeError("badRevocationReason", "Use a reason code of RFC 5280 §5.3.1.")
        if certificate.status.value != "issued":
            raise AcmeError("alreadyRevoked", "This certificate is already revoked.")
        actor = self._revoker(signer, certificate, der)
        self._service.revoke_certificate(
            RequestContext(actor, call.request_id), certificate.id, reason
        )

    def _revoker(self, signer: Authenticated, certificate: Certificate, der: bytes) -> str:
        """The actor of a revocation: the ordering account, or the certificate's key."""
        if signer.account is None:
            presented = x509.load_der_x509_certificate(der).public_key()
            if presented.public_bytes(*_SPKI) != _jwk_spki(signer.jwk):
                raise AcmeError("unauthorized", "The JWS key is not the certificate's key.", 403)
            return f"acme certificate key {thumbprint(signer.jwk)}"
        link = self._find(link_id(certificate.id), AcmeCertificate)
        if link is None or link.account_id != signer.known.id:
            raise AcmeError("unauthorized", "This certificate was not issued to you.", 403)
        return signer.known.actor

    def _issued_by(self, directory: AcmeDirectory, der: bytes) -> Certificate:
        try:
            serial = x509.load_der_x509_certificate(der).serial_number
        except ValueError:
            raise AcmeError("malformed", "The certificate is not DER.") from None
        found = self._service.find_certificate(directory.ca_id, format(serial, "x"))
        if found is None or found.certificate_der != der:
            raise AcmeError("malformed", "This directory's CA did not issue that certificate.", 404)
        return found

    def certificate_of(self, directory: AcmeDirectory, cert_id: str) -> Certificate:
        """The certificate an ARI id (``base64url(AKI).base64url(serial)``) names."""
        _, _, serial_part = cert_id.partition(".")
        serial = int.from_bytes(b64url_decode(serial_part, "certificate id"))
        found = self._service.find_certificate(directory.ca_id, format(serial, "x"))
        if found is None:
            raise AcmeError("malformed", "No certificate of this directory has that id.", 404)
        return found

    def renewal_info(self, name: str, cert_id: str) -> tuple[dt.datetime, dt.datetime]:
        """RFC 9773: when to renew; at once for a revoked certificate, else in the
        window from two thirds to five sixths of its lifetime."""
        certificate = self.certificate_of(self.directory(name), cert_id)
        if certificate.status.value != "issued":
            now = self._service.clock()
            return now - dt.timedelta(hours=1), now
        lifetime = certificate.not_after - certificate.not_before
        return (
            certificate.not_before + lifetime * 2 / 3,
            certificate.not_before + lifetime * 5 / 6,
        )

    # --- authentication -----------------------------------------------------------------

    def _authenticate(
        self, call: AcmeCall, *, new_account: bool = False, jwk_allowed: bool = False
    ) -> Authenticated:
        """RFC 8555 §6.2-6.5, in one place; see the module docstring."""
        directory = self.directory(call.directory)
        header = call.signed.header
        if ("jwk" in header) == ("kid" in header):
            raise AcmeError("malformed", "The protected header needs exactly one of jwk and kid.")
        if new_account and "jwk" not in header:
            raise AcmeError("malformed", "newAccount must be signed with a jwk, not a kid.")
        if header.get("url") != call.url:
            raise AcmeError("unauthorized", f"The url header must be {call.url}.", 401)
        account = None
        if "kid" in header:
            account = self._account_of(call, directory, str(header["kid"]))
            jwk = account.jwk
        elif new_account or jwk_allowed:
            jwk = header["jwk"]
        else:
            raise AcmeError("malformed", "Sign with your account's kid, not a jwk.")
        call.signed.verify(jwk)
        if not self._nonces.consume(str(header.get("nonce", ""))):
            raise AcmeError("badNonce", "The nonce is unknown, used or expired; get a new one.")
        return Authenticated(directory, account, jwk)

    def _account_of(self, call: AcmeCall, directory: AcmeDirectory, kid: str) -> AcmeAccount:
        prefix = f"{call.base}/acct/"
        try:
            account_uuid = UUID(kid.removeprefix(prefix)) if kid.startswith(prefix) else None
        except ValueError:
            account_uuid = None
        account = self._find(account_uuid, AcmeAccount) if account_uuid else None
        if account is None or account.directory_id != directory.id:
            raise AcmeError("accountDoesNotExist", "No account has this kid.", 400)
        account.check_valid()
        return account

    # --- storage ------------------------------------------------------------------------

    def _find(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        try:
            found: object = self._service.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    def _save(self, *aggregates: object) -> None:
        self._service.save(*[aggregate for aggregate in aggregates if aggregate is not None])  # type: ignore[arg-type]

    def _save_order(self, order: AcmeOrder) -> AcmeOrder:
        try:
            self._save(order)
        except IntegrityError:  # another request changed the order first: theirs stands
            reloaded = self._find(order.id, AcmeOrder)
            assert reloaded is not None
            return reloaded
        return order


class RateLimitedError(AcmeError):
    """Raised when an account or identifier placed too many orders; ``retry_after`` in s."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__("rateLimited", detail, 429)
        self.retry_after = max(1, round(retry_after))


_SPKI = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _identifiers(value: object) -> list[str]:
    if not isinstance(value, list) or not 0 < len(value) <= MAX_IDENTIFIERS:
        raise AcmeError("malformed", f"identifiers must list 1 to {MAX_IDENTIFIERS} entries.")
    names: list[str] = []
    for item in value:
        if not isinstance(item, dict) or item.get("type") != "dns":
            raise AcmeError("unsupportedIdentifier", "Only dns identifiers are supported.")
        names.append(str(item.get("value", "")))
    return names


def _check_index(order: AcmeOrder, index: int) -> None:
    if not 0 <= index < len(order.identifiers):
        raise AcmeError("malformed", "There is no such authorization.", 404)


def _reason_code(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _as_json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


def _csr_pem(csr_der: bytes, identifiers: list[str]) -> str:
    """The CSR as PEM, if it asks for exactly the order's identifiers (badCSR if not)."""
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError:
        raise AcmeError("badCSR", "The CSR is not a DER PKCS#10 request.") from None
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        names = set()
    names |= {
        str(attribute.value).lower()
        for attribute in csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    }
    if names != {name.lower() for name in identifiers}:
        raise AcmeError("badCSR", "The CSR must name exactly the order's identifiers.")
    return csr.public_bytes(Encoding.PEM).decode()


def _jwk_spki(jwk: dict[str, Any]) -> bytes:
    return public_key(jwk).public_bytes(*_SPKI)

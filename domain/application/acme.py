"""ACME (RFC 8555) use cases over the private CA.

Each request arrives as an :class:`AcmeCall` (where it was posted, the directory's base
URL, its JWS) and passes :meth:`Gate.authenticate` (domain.application.acme_gate), which
applies RFC 8555 §6.2-6.5 in one place. Issuing and revoking go through the same
:class:`PrivateCA` use cases as the REST API, with the account as actor: quota, group
commit, idempotency and events are theirs. Certificate download, revocation and renewal
information are in domain.application.acme_certificates.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from eventsourcing.persistence import IntegrityError

from domain.application.acme_certificates import AcmeCertificates
from domain.application.acme_gate import AcmeCall, Authenticated, Gate
from domain.application.acme_policy import check_identifiers, validity_days
from domain.application.commands import certificate_request
from domain.application.ports import ChallengeChecker, Nonces
from domain.application.service import PrivateCA
from domain.model.acme import (
    AcmeAccount,
    AcmeCertificate,
    AcmeDirectory,
    AcmeError,
    AcmeKeyBinding,
    AcmeOrder,
    EabCredential,
    Status,
    account_id,
    eab_id,
    key_binding_id,
    link_id,
)
from domain.model.errors import ConflictError
from domain.model.policy import DEFAULT_PROFILE
from domain.model.values import RequestContext, Subject
from domain.pki.jws import (
    SignedRequest,
    b64url,
    b64url_decode,
    key_authorization,
    public_jwk,
    thumbprint,
)

ORDER_LIFETIME = dt.timedelta(days=7)
MAX_IDENTIFIERS = 10
EAB_SECRET_PREFIX = "acme-eab-"  # noqa: S105 - a key id prefix, not a secret


@dataclass(frozen=True)
class AcmeLimits:
    """New orders per account and per identifier in each window (0: no limit)."""

    per_account: int = 300
    per_identifier: int = 50
    window_seconds: int = 3600


class Acme:
    """The ACME use cases of one process."""

    def __init__(
        self, service: PrivateCA, nonces: Nonces, checker: ChallengeChecker, limits: AcmeLimits
    ) -> None:
        self._service = service
        self._nonces = nonces
        self._checker = checker
        self._limits = limits
        self._gate = Gate(service, nonces)
        self._certificates = AcmeCertificates(service, self._gate)

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
        ca = self._service.get_ca(ca_id, field="ca_id")
        ca.check_can_issue(self._service.clock())
        ca.issuing_profile(profile)  # a profile the CA has and still issues under
        directory = AcmeDirectory.create(ctx, name, ca_id, profile, eab_required=eab_required)
        if self._gate.find(directory.id, AcmeDirectory) is not None:
            raise ConflictError(f"There is already an ACME directory {name!r}.", field="name")
        self._gate.save(directory)
        return directory

    def create_eab(self, ctx: RequestContext, directory_name: str) -> tuple[str, str]:
        """A new EAB key id and its MAC key (base64url), shown once; the MAC key is kept
        encrypted in the key store, the event names the key id only."""
        directory = self.directory(directory_name)
        kid = f"eab-{secrets.token_urlsafe(12)}"
        mac_key = secrets.token_bytes(32)
        self._service.keystore.put_secret(EAB_SECRET_PREFIX + kid, mac_key)
        self._gate.save(EabCredential.create(ctx, kid, directory.id))
        return kid, b64url(mac_key)

    def directory(self, name: str) -> AcmeDirectory:
        """The directory ``name``; NotFoundError if there is none."""
        return self._gate.directory(name)

    def new_nonce(self) -> str:
        return self._gate.new_nonce()

    # --- operator views (from the log: accounts and orders are few next to certificates) -

    def accounts(self, name: str) -> list[AcmeAccount]:
        """The directory's accounts, oldest first."""
        directory = self.directory(name)
        found = self._gate.created(AcmeAccount.AccountRegistered, AcmeAccount)
        return [account for account in found if account.directory_id == directory.id]

    def orders(self, name: str) -> list[AcmeOrder]:
        """The directory's orders, oldest first."""
        directory = self.directory(name)
        found = self._gate.created(AcmeOrder.OrderCreated, AcmeOrder)
        return [order for order in found if order.directory_id == directory.id]

    # --- accounts -----------------------------------------------------------------------

    def new_account(self, call: AcmeCall) -> tuple[AcmeAccount, bool]:
        """The account of the JWS's key, created (True) unless it exists."""
        signer = self._gate.authenticate(call, new_account=True)
        payload = call.signed.json_payload()
        existing = self._gate.account_by_key(signer.directory, thumbprint(signer.jwk))
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
        self._gate.save(account, binding)
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
        credential = self._gate.find(eab_id(kid), EabCredential)
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
        signer = self._gate.authenticate(call)
        if signer.known.id != account:
            raise AcmeError("unauthorized", "A request for an account must be signed by it.", 403)
        if call.signed.payload and call.signed.json_payload().get("status") == "deactivated":
            signer.known.deactivate(call.request_id)
            self._gate.save(signer.known)
        return signer.known

    def account_orders(self, call: AcmeCall, account: UUID) -> list[AcmeOrder]:
        """RFC 8555 §7.1.2.1: the orders of the signing account, oldest first."""
        signer = self._gate.authenticate(call)
        if signer.known.id != account:
            raise AcmeError("unauthorized", "Only the account may list its orders.", 403)
        found = self._gate.created(AcmeOrder.OrderCreated, AcmeOrder)
        return [order for order in found if order.account_id == account]

    def change_key(self, call: AcmeCall) -> AcmeAccount:
        """RFC 8555 §7.3.5: the account signs with a new key from now on. The inner JWS,
        signed by the new key, names the account and its old key."""
        signer = self._gate.authenticate(call)
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
            self._gate.save(account, binding)
        except IntegrityError:  # another account took the key meanwhile
            raise AcmeError("conflict", "Another account already has this key.", 409) from None
        return account

    def _key_taken(self, directory: AcmeDirectory, key: str) -> bool:
        return self._gate.find(key_binding_id(directory.id, key), AcmeKeyBinding) is not None or (
            self._gate.find(account_id(directory.id, key), AcmeAccount) is not None
        )

    # --- orders -------------------------------------------------------------------------

    def new_order(self, call: AcmeCall) -> AcmeOrder:
        """An order for the payload's identifiers, each allowed by the directory's policy
        before any challenge is offered."""
        signer = self._gate.authenticate(call)
        payload = call.signed.json_payload()
        identifiers = _identifiers(payload.get("identifiers"))
        check_identifiers(self._service, signer.directory, identifiers)
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
        self._gate.save(order)
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
        certificate = self._certificates.certificate_of(signer.directory, str(cert_id))
        link = self._gate.find(link_id(certificate.id), AcmeCertificate)
        if link is None or link.account_id != signer.known.id:
            raise AcmeError("malformed", "replaces must name a certificate of this account.")
        return str(cert_id)

    def order(self, call: AcmeCall, order_id: UUID) -> AcmeOrder:
        """POST-as-GET of an order."""
        signer = self._gate.authenticate(call)
        return self._owned_order(signer, order_id)

    def authorization(self, call: AcmeCall, order_id: UUID, index: int) -> AcmeOrder:
        """POST-as-GET of authorization ``index`` of an order (the order holds it)."""
        order = self.order(call, order_id)
        _check_index(order, index)
        return order

    def _owned_order(self, signer: Authenticated, order_id: UUID) -> AcmeOrder:
        order = self._gate.find(order_id, AcmeOrder)
        if order is None or order.directory_id != signer.directory.id:
            raise AcmeError("malformed", "There is no such order.", 404)
        order.check_owner(signer.known)
        return order

    def challenge(self, call: AcmeCall, order_id: UUID, index: int, challenge: str) -> AcmeOrder:
        """Validate authorization ``index`` of the order with ``challenge`` now; a
        POST-as-GET only reads. The outcome is an event either way."""
        signer = self._gate.authenticate(call)
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
        signer = self._gate.authenticate(call)
        order = self._owned_order(signer, order_id)
        order.check_ready(self._service.clock())
        csr_der = b64url_decode(call.signed.json_payload().get("csr"), "csr")
        csr_pem = _csr_pem(csr_der, order.identifiers)
        ctx = signer.context(call.request_id)
        request = certificate_request(
            "server",
            Subject(common_name=order.identifiers[0]),
            validity_days(self._service, signer.directory),
            sans=[("dns", name) for name in order.identifiers],
            csr_pem=csr_pem,
            idempotency_key=f"acme-order-{order.id}",
            profile=signer.directory.profile,
        )
        issued = self._service.issue_certificate(ctx, signer.directory.ca_id, request)
        certificate_id = issued.certificate.id
        order.finalize(ctx, certificate_id)
        try:
            self._gate.save(order, AcmeCertificate.record(ctx, certificate_id, order))
        except IntegrityError:  # a concurrent finalize of the same order recorded it
            return self._owned_order(signer, order_id)
        return order

    # --- certificates (see domain.application.acme_certificates) ------------------------

    def certificate(self, call: AcmeCall, certificate_id: UUID) -> tuple[bytes, ...]:
        """The certificate and the CAs above it (not the root), DER, for its account."""
        return self._certificates.certificate(call, certificate_id)

    def revoke(self, call: AcmeCall) -> None:
        """Revoke a certificate the signer holds: by its account, or by its own key."""
        self._certificates.revoke(call)

    def renewal_info(self, name: str, cert_id: str) -> tuple[dt.datetime, dt.datetime]:
        """RFC 9773's suggested renewal window for the certificate ``cert_id`` names."""
        return self._certificates.renewal_info(name, cert_id)

    def _save_order(self, order: AcmeOrder) -> AcmeOrder:
        try:
            self._gate.save(order)
        except IntegrityError:  # another request changed the order first: theirs stands
            reloaded = self._gate.find(order.id, AcmeOrder)
            assert reloaded is not None
            return reloaded
        return order


class RateLimitedError(AcmeError):
    """Raised when an account or identifier placed too many orders; ``retry_after`` in s."""

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__("rateLimited", detail, 429)
        self.retry_after = max(1, round(retry_after))


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

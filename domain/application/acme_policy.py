"""The one answer to "may this identifier be requested from this ACME directory?", and
the validity its certificates get.

An identifier must be a DNS name in its normal form (IDNA, wildcards only as the leftmost
label) that the directory's certificate profile allows inside the intermediate's name
constraints (:meth:`PrivateCA.check_identifier`, the same policy every REST, CLI and batch
request meets). It is asked before any challenge is offered.
"""

from __future__ import annotations

from domain.application.service import PrivateCA
from domain.model.acme import AcmeDirectory, AcmeError
from domain.model.errors import PCAError, ValidationError
from domain.model.validation import normalize_sans
from domain.model.values import SAN, CertificateType, SANType

CERTIFICATE_DAYS = 90  # when the directory's profile gives no default validity


def check_identifiers(service: PrivateCA, directory: AcmeDirectory, names: list[str]) -> None:
    """Refuse (rejectedIdentifier, naming it and the rule) an identifier the directory's
    CA and profile (``directory.ca_id``, ``directory.profile``) would not put in a
    certificate; names must come in their normal form."""
    for name in names:
        try:
            (normal,) = normalize_sans(CertificateType.SERVER, [SAN(SANType.DNS, name)])
        except ValidationError as error:
            raise AcmeError(
                "rejectedIdentifier", f"{name!r} cannot be certified here: {error.detail}"
            ) from None
        if normal.value != name:
            raise AcmeError(
                "rejectedIdentifier", f"Ask for {normal.value!r}, the normal form of {name!r}."
            )
        try:
            service.check_identifier(directory.ca_id, directory.profile, normal)
        except PCAError as error:
            raise AcmeError("rejectedIdentifier", error.detail) from None
    if len(set(names)) != len(names):
        raise AcmeError("malformed", "The identifiers repeat a name.")


def validity_days(service: PrivateCA, directory: AcmeDirectory) -> int | None:
    """The validity to ask for: None (the profile's default) when the directory's profile
    has one, else CERTIFICATE_DAYS."""
    profile = service.get_ca(directory.ca_id).issuing_profile(directory.profile)
    return None if profile.policy.default_validity_days else CERTIFICATE_DAYS

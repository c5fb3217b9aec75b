"""The one answer to "may this identifier be requested from this ACME directory?".

Today it applies the rules every REST request meets (domain.model.validation: a DNS
SAN of a server certificate, IDNA, wildcards only as the leftmost label, at most
MAX_SANS names); a certificate profile's policy takes its place here, and only here,
once directories issue through profiles.
"""

from __future__ import annotations

from domain.model.acme import AcmeDirectory, AcmeError
from domain.model.errors import ValidationError
from domain.model.validation import normalize_sans
from domain.model.values import SAN, CertificateType, SANType


def check_identifiers(directory: AcmeDirectory, names: list[str]) -> None:
    """Refuse (rejectedIdentifier, naming it) an identifier the directory's CA and
    profile (``directory.ca_id``, ``directory.profile``) would not put in a
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
    if len(set(names)) != len(names):
        raise AcmeError("malformed", "The identifiers repeat a name.")

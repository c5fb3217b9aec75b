"""Name constraints of an intermediate CA (RFC 5280 §4.2.1.10): permitted and excluded
subtrees, written critical into its certificate and enforced before anything is signed.

Subtrees are given as SAN-typed values, with RFC 5280's meaning:

- ``dns``: ``example.com`` is that name and every name below it;
- ``ip``: a network in CIDR form, ``10.0.0.0/8``;
- ``email``: ``user@example.com`` one mailbox, ``example.com`` every mailbox on that host,
  ``.example.com`` every mailbox on a host below it;
- ``uri``: ``example.com`` URIs whose host is exactly that, ``.example.com`` below it.

A name of a type with permitted subtrees must fall in one of them; a name in an excluded
subtree is refused whatever the permitted ones say. Relying parties (``openssl verify``)
check the same, so a certificate signed outside the service cannot escape them either.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from domain.model.errors import PolicyError, SANError, ValidationError
from domain.model.policy import IssuancePolicy, parsed_address, parsed_networks
from domain.model.san_values import normalize_san_value
from domain.model.text import show
from domain.model.values import SAN, SANType

MAX_SUBTREES = 50


@dataclass(frozen=True)
class NameConstraints:
    """An intermediate's permitted and excluded subtrees; empty: no constraint."""

    permitted: tuple[SAN, ...] = ()
    excluded: tuple[SAN, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.permitted or self.excluded)


UNCONSTRAINED = NameConstraints()
"""No subtree: the CA may sign any name its rules allow (every CA before this feature)."""


def name_constraints(
    permitted: Sequence[tuple[str, str]], excluded: Sequence[tuple[str, str]]
) -> NameConstraints:
    """Checked, normalised constraints from ``(type, value)`` pairs; ValidationError names
    the entry (``name_constraints.permitted[2].value``) and what to change."""
    return NameConstraints(
        _subtrees(permitted, "name_constraints.permitted"),
        _subtrees(excluded, "name_constraints.excluded"),
    )


def check_names(constraints: NameConstraints, sans: Sequence[SAN], common_name: str) -> None:
    """PolicyError unless every name is inside the constraints. The common name counts as
    a DNS name when no DNS SAN is present and it looks like one, as OpenSSL checks it."""
    for index, san in enumerate(sans):
        _check(constraints, san, f"sans[{index}].value")
    if constraints and not any(san.type is SANType.DNS for san in sans):
        as_dns = _as_host_name(common_name)
        if as_dns is not None:
            _check(constraints, SAN(SANType.DNS, as_dns), "common_name")


def within(constraints: NameConstraints, san: SAN) -> bool:
    """Whether ``san`` falls inside the permitted subtrees of its type (True if none)."""
    permitted = [tree for tree in constraints.permitted if tree.type is san.type]
    return not permitted or any(_MATCHES[san.type](san.value, tree.value) for tree in permitted)


def check_policy_within(constraints: NameConstraints, policy: IssuancePolicy) -> None:
    """ValidationError if a profile's allowed DNS names, IP networks, e-mail domains or URI
    prefixes reach outside the permitted subtrees: a profile may only narrow its CA's
    constraints."""
    allowed = [
        *((SANType.DNS, value, index) for index, value in enumerate(policy.dns.allow)),
        *((SANType.IP, value, index) for index, value in enumerate(policy.ip.allow)),
        *((SANType.EMAIL, value, index) for index, value in enumerate(policy.email.allow)),
        *((SANType.URI, value, index) for index, value in enumerate(policy.uri.allow)),
    ]
    for san_type, value, index in allowed:
        if not [tree for tree in constraints.permitted if tree.type is san_type]:
            continue
        field = f"policy.{san_type.value}.allow[{index}]"
        host = _uri_prefix_host(value) if san_type is SANType.URI else value
        if host is None:
            raise ValidationError(
                f"{field} {show(value)} does not fix a host, so it cannot be held inside the"
                f" CA's permitted uri subtrees ({_listed(constraints, san_type)}); give a"
                " prefix up to the path, such as 'https://svc.example.com/'.",
                field=field,
            )
        if not _allow_within(constraints, san_type, host):
            raise ValidationError(
                f"{field} {show(value)} reaches outside the CA's permitted {san_type.value}"
                f" subtrees ({_listed(constraints, san_type)}); a profile may only narrow them.",
                field=field,
            )


def _allow_within(constraints: NameConstraints, san_type: SANType, value: str) -> bool:
    """Whether every name a profile's allow entry admits is inside the permitted subtrees
    of its type (a DNS or e-mail entry ``*.base`` admits the names below ``base``)."""
    if san_type is SANType.DNS or san_type is SANType.IP:
        return within(constraints, SAN(san_type, value.removeprefix("*.")))
    trees = [tree.value for tree in constraints.permitted if tree.type is san_type]
    if san_type is SANType.EMAIL and value.startswith("*."):
        below = "." + value.removeprefix("*.")
        return any(tree.startswith(".") and below.endswith(tree) for tree in trees)
    return any("@" not in tree and _host_within(value, tree) for tree in trees)


def _uri_prefix_host(prefix: str) -> str | None:
    """The host every URI starting with ``prefix`` has, or None if the prefix leaves it
    open (no host, or the authority not closed by a path: ``https://a.example`` also
    starts ``https://a.example.evil``)."""
    parts = urlsplit(prefix)
    closed = parts.netloc and prefix.find("/", len(parts.scheme) + 3) != -1
    return parts.hostname if closed else None


def _listed(constraints: NameConstraints, san_type: SANType) -> str:
    return ", ".join(f'"{t.value}"' for t in constraints.permitted if t.type is san_type)


def _check(constraints: NameConstraints, san: SAN, field: str) -> None:
    match = _MATCHES[san.type]
    for tree in constraints.excluded:
        if tree.type is san.type and match(san.value, tree.value):
            raise PolicyError(
                f'"{san.value}" is in the excluded subtree "{tree.value}" of the issuing CA\'s'
                " name constraints; relying parties would reject the certificate.",
                field=field,
            )
    if not within(constraints, san):
        raise PolicyError(
            f'"{san.value}" is outside the permitted {san.type.value} subtrees of the issuing'
            f" CA's name constraints: permitted are {_listed(constraints, san.type)}.",
            field=field,
        )


def _dns_within(name: str, base: str) -> bool:
    return name == base or name.endswith("." + base)


def _ip_within(address: str, network: str) -> bool:
    (net,) = parsed_networks((network,))
    if "/" in address:  # a network (a profile's allow entry) inside a subtree
        inner = ipaddress.ip_network(address)
        return inner.version == net.version and inner.subnet_of(net)  # type: ignore[arg-type]
    return parsed_address(address) in net


def _email_within(address: str, constraint: str) -> bool:
    if "@" in constraint:
        return address == constraint
    return _host_within(address.rpartition("@")[2], constraint)


def _uri_within(uri: str, constraint: str) -> bool:
    host = urlsplit(uri).hostname
    return host is not None and _host_within(host, constraint)


def _host_within(host: str, constraint: str) -> bool:
    if constraint.startswith("."):
        return host.endswith(constraint)
    return host == constraint


_MATCHES: dict[SANType, Callable[[str, str], bool]] = {
    SANType.DNS: _dns_within,
    SANType.IP: _ip_within,
    SANType.EMAIL: _email_within,
    SANType.URI: _uri_within,
}


def _as_host_name(common_name: str) -> str | None:
    if "." not in common_name:
        return None
    try:
        return normalize_san_value(SANType.DNS, common_name, "common_name")
    except SANError:
        return None


def _subtrees(pairs: Sequence[tuple[str, str]], path: str) -> tuple[SAN, ...]:
    if len(pairs) > MAX_SUBTREES:
        raise ValidationError(f"{path} takes at most {MAX_SUBTREES} subtrees.", field=path)
    found: list[SAN] = []
    for index, (kind, value) in enumerate(pairs):
        try:
            san_type = SANType(kind)
        except ValueError:
            types = ", ".join(t.value for t in SANType)
            raise ValidationError(
                f"{path}[{index}].type {show(kind)} is not one of {types}.",
                field=f"{path}[{index}].type",
            ) from None
        found.append(SAN(san_type, _subtree(san_type, value, f"{path}[{index}].value")))
    return tuple(found)


def _subtree(san_type: SANType, value: str, field: str) -> str:
    """One subtree's value in normal form (lower-case hosts, networks in CIDR form)."""
    try:
        if san_type is SANType.IP:  # host bits dropped, as the certificate holds it
            return str(ipaddress.ip_network(value, strict=False))
        host = value.lstrip(".")
        if "*" in host:
            raise ValueError("a subtree has no wildcard: 'example.com' covers every name below")
        if san_type is SANType.EMAIL and "@" in value:
            return normalize_san_value(SANType.EMAIL, value, field)
        dot = "." if value.startswith(".") and san_type is not SANType.DNS else ""
        return dot + normalize_san_value(SANType.DNS, host, field)
    except (ValueError, SANError):
        raise ValidationError(
            f"{field} {show(value)} is not a {san_type.value} subtree: give a host such as"
            " 'example.com' (email and uri also '.example.com', email a mailbox), or an"
            " IP network such as '10.0.0.0/8'.",
            field=field,
        ) from None

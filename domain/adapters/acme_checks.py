"""Challenge validation over the network: http-01 (RFC 8555 §8.3) and dns-01 (§8.4).

Names are resolved with the resolver the settings name (``PCA_ACME_RESOLVER``, host:port),
else the system's; http-01 connects to the port the settings name (``PCA_ACME_HTTP_PORT``,
80 by default), so a test can run both on loopback. Redirects are not followed.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

import dns.exception
import dns.resolver

from domain.pki.jws import dns01_value

TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class NetworkChecker:
    """A :class:`~domain.application.ports.ChallengeChecker` that asks the network."""

    http_port: int = 80
    resolver: tuple[str, int] | None = None

    def check(self, challenge: str, domain: str, token: str, key_authorization: str) -> str | None:
        try:
            if challenge == "http-01":
                return self._http01(domain, token, key_authorization)
            return self._dns01(domain, key_authorization)
        except (OSError, dns.exception.DNSException, http.client.HTTPException) as error:
            return f"{challenge} for {domain} failed: {type(error).__name__}: {error}"

    def _resolver(self) -> dns.resolver.Resolver:
        if self.resolver is None:
            return dns.resolver.Resolver()
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.resolver[0]]
        resolver.port = self.resolver[1]
        resolver.lifetime = TIMEOUT_S
        return resolver

    def _http01(self, domain: str, token: str, key_authorization: str) -> str | None:
        address = str(self._resolver().resolve(domain, "A")[0])
        connection = http.client.HTTPConnection(address, self.http_port, timeout=TIMEOUT_S)
        try:
            connection.request(
                "GET", f"/.well-known/acme-challenge/{token}", headers={"Host": domain}
            )
            response = connection.getresponse()
            body = response.read(MAX_ANSWER_BYTES).decode("ascii", "replace").strip()
        finally:
            connection.close()
        if response.status != 200:
            return f"http-01 for {domain}: {address}:{self.http_port} answered {response.status}."
        if body != key_authorization:
            return f"http-01 for {domain}: the answer is not the key authorization."
        return None

    def _dns01(self, domain: str, key_authorization: str) -> str | None:
        name = "_acme-challenge." + domain.removeprefix("*.")
        expected = dns01_value(key_authorization)
        answers = self._resolver().resolve(name, "TXT")
        found = {b"".join(record.strings).decode("ascii", "replace") for record in answers}
        if expected not in found:
            return f"dns-01 for {domain}: no TXT record at {name} holds the expected value."
        return None

"""A small ACME client (RFC 8555) written with cryptography, for protocol tests and the
benchmark; and the two things a client needs on loopback: a DNS server that answers A
127.0.0.1 for every name and the TXT records it is told, and an http-01 answer server.

The client talks through a ``Transport`` (a Flask test client or real HTTP), so the same
flows run in-process and against `pca serve`.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dnslib
import dnslib.server
from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.live import AnswerHeaders

JOSE = "application/jose+json"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem_type(self) -> str:
        return str(self.json().get("type", "")).removeprefix("urn:ietf:params:acme:error:")


Transport = Callable[[str, str, bytes | None, dict[str, str]], Answer]


def http_transport(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Answer:
    """Real HTTP with urllib."""
    request = urllib.request.Request(url, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, AnswerHeaders(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, AnswerHeaders(error.headers), error.read())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(value: int, size: int) -> str:
    return b64(value.to_bytes(size, "big"))


@dataclass
class AcmeClient:
    """An ES256 account on one ACME directory."""

    transport: Transport
    directory_url: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    kid: str | None = None
    directory: dict[str, Any] = field(default_factory=dict)
    nonce: str | None = None

    def __post_init__(self) -> None:
        self.directory = self.transport("GET", self.directory_url, None, {}).json()

    @property
    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {
            "crv": "P-256",
            "kty": "EC",
            "x": _int_b64(numbers.x, 32),
            "y": _int_b64(numbers.y, 32),
        }

    def thumbprint(self) -> str:
        canonical = json.dumps(self.jwk, sort_keys=True, separators=(",", ":")).encode()
        return b64(hashlib.sha256(canonical).digest())

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint()}"

    def fresh_nonce(self) -> str:
        answer = self.transport("HEAD", self.directory["newNonce"], None, {})
        return answer.headers["Replay-Nonce"]

    def signed(
        self,
        url: str,
        payload: Any,
        *,
        nonce: str | None = None,
        use_jwk: bool = False,
        header_url: str | None = None,
    ) -> bytes:
        header: dict[str, Any] = {
            "alg": "ES256",
            "nonce": nonce or self.nonce or self.fresh_nonce(),
            "url": header_url or url,
        }
        self.nonce = None
        if use_jwk or self.kid is None:
            header["jwk"] = self.jwk
        else:
            header["kid"] = self.kid
        return self.sign(header, "" if payload is None else b64(json.dumps(payload).encode()))

    def sign(self, header: dict[str, Any], body: str) -> bytes:
        """The flattened JWS of ``header`` and the encoded ``body``, signed ES256."""
        protected = b64(json.dumps(header).encode())
        der = self.key.sign(f"{protected}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return json.dumps(
            {"protected": protected, "payload": body, "signature": signature}
        ).encode()

    def post(self, url: str, payload: Any, **options: Any) -> Answer:
        """POST a JWS (``payload`` None: POST-as-GET); keeps the answer's nonce."""
        answer = self.transport(
            "POST", url, self.signed(url, payload, **options), {"Content-Type": JOSE}
        )
        self.nonce = answer.headers.get("Replay-Nonce")
        return answer

    def eab(self, kid: str, mac_key: str, url: str | None = None) -> dict[str, str]:
        """An external account binding for this account's key."""
        protected = b64(
            json.dumps(
                {"alg": "HS256", "kid": kid, "url": url or self.directory["newAccount"]}
            ).encode()
        )
        payload = b64(json.dumps(self.jwk).encode())
        mac = hmac.HMAC(
            base64.urlsafe_b64decode(mac_key + "=" * (-len(mac_key) % 4)), hashes.SHA256()
        )
        mac.update(f"{protected}.{payload}".encode())
        return {"protected": protected, "payload": payload, "signature": b64(mac.finalize())}

    def change_key(self, new_key: ec.EllipticCurvePrivateKey) -> Answer:
        """RFC 8555 §7.3.5: the inner JWS by ``new_key``, the outer by the current key."""
        url = self.directory["keyChange"]
        successor = AcmeClient(self.transport, self.directory_url, new_key)
        body = b64(json.dumps({"account": self.kid, "oldKey": self.jwk}).encode())
        inner = successor.sign({"alg": "ES256", "jwk": successor.jwk, "url": url}, body)
        answer = self.post(url, json.loads(inner))
        if answer.status == 200:
            self.key = new_key
        return answer

    def register(self, eab: dict[str, str] | None = None) -> Answer:
        payload: dict[str, Any] = {
            "termsOfServiceAgreed": True,
            "contact": ["mailto:ops@example.com"],
        }
        if eab is not None:
            payload["externalAccountBinding"] = eab
        answer = self.post(self.directory["newAccount"], payload, use_jwk=True)
        if answer.status in (200, 201):
            self.kid = answer.headers["Location"]
        return answer

    def order(self, *names: str) -> Answer:
        identifiers = [{"type": "dns", "value": name} for name in names]
        return self.post(self.directory["newOrder"], {"identifiers": identifiers})

    def answer_challenges(self, order: dict[str, Any], kind: str, answers: dict[str, str]) -> None:
        """Put each authorization's answer in ``answers`` (token -> key authorization for
        http-01, name -> TXT value for dns-01) and ask the server to validate."""
        for url in order["authorizations"]:
            authz = self.post(url, None).json()
            challenge = next(c for c in authz["challenges"] if c["type"] == kind)
            key_authz = self.key_authorization(challenge["token"])
            if kind == "http-01":
                answers[challenge["token"]] = key_authz
            else:
                digest = b64(hashlib.sha256(key_authz.encode()).digest())
                answers["_acme-challenge." + authz["identifier"]["value"]] = digest
            self.post(challenge["url"], {})

    def finalize(self, order_url: str, csr_der: bytes) -> Answer:
        order = self.post(order_url, None).json()
        return self.post(order["finalize"], {"csr": b64(csr_der)})


def csr_for(*names: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.DER)


class LoopbackDNS(dnslib.server.BaseResolver):  # type: ignore[misc]
    """A DNS server on 127.0.0.1 (UDP): A 127.0.0.1 for every name, and the TXT
    records in ``records`` or in files of ``record_dir`` (named by the record's name), so
    certbot's and lego's hooks can publish with a shell one-liner."""

    def __init__(self, record_dir: Path) -> None:
        self.records: dict[str, str] = {}
        self.record_dir = record_dir
        record_dir.mkdir(parents=True, exist_ok=True)
        quiet = dnslib.server.DNSLogger("-recv,-send,-request,-reply,-truncated,-error,-data")
        self._server = dnslib.server.DNSServer(self, port=0, address="127.0.0.1", logger=quiet)
        self.port: int = self._server.server.server_address[1]

    def resolve(self, request: dnslib.DNSRecord, handler: object) -> dnslib.DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if request.q.qtype == dnslib.QTYPE.A:
            reply.add_answer(dnslib.RR(name, dnslib.QTYPE.A, rdata=dnslib.A("127.0.0.1"), ttl=1))
        elif request.q.qtype == dnslib.QTYPE.TXT:
            for value in self._txt(name):
                reply.add_answer(dnslib.RR(name, dnslib.QTYPE.TXT, rdata=dnslib.TXT(value), ttl=1))
        return reply

    def _txt(self, name: str) -> list[str]:
        values = [self.records[name]] if name in self.records else []
        path = self.record_dir / name
        if path.is_file():
            values += path.read_text().split()
        return values

    def __enter__(self) -> LoopbackDNS:
        self._server.start_thread()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class ChallengeServer:
    """Answers http-01 challenges on 127.0.0.1 from ``answers`` (token -> text)."""

    def __init__(self) -> None:
        answers: dict[str, str] = {}
        self.answers = answers

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                body = answers.get(token, "").encode()
                self.send_response(200 if body else 404)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]

    def __enter__(self) -> ChallengeServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Domain errors. Each class is raised for one reason and says what to change.

The tree (the API maps each branch to one HTTP status)::

    PCAError
    ├── ValidationError            bad input: a field's value cannot be used   (422)
    │   ├── SubjectError           the subject is missing its CN or has a bad field
    │   ├── SANError               a subjectAltName entry is invalid or not allowed
    │   ├── CSRError               the CSR is malformed, badly signed or has a weak key
    │   ├── PolicyError            the request breaks a rule of the certificate profile
    │   └── MalformedOCSPRequest   (domain/pki/ocsp.py) answered with malformedRequest, not 422
    ├── OutOfScopeError            the token's scope excludes the CA or profile  (403)
    ├── NotFoundError              the CA, certificate or key does not exist     (404)
    ├── ConflictError              the request is valid but the state forbids it (409)
    │   ├── CANotEnabledError      the CA must be enabled first
    │   ├── CAStateError           the CA is in a state that forbids the action
    │   ├── ServicePeriodError     the CA's service period has ended
    │   ├── QuotaError             not enough quota
    │   ├── LifetimeError          the certificate would outlive the CA that signs it
    │   ├── CertificateStateError  already revoked, not yet revoked, already deleted
    │   ├── IdempotencyKeyReusedError  the key was used with other parameters
    │   └── AuditChainError        (domain/audit/chain.py) the log cannot be chained safely
    ├── KeyCustodyError            a key cannot be read (wrong or missing master key)
    ├── LogTamperedError           the event log failed its audit chain: commands refused (503)
    └── StorageNotDurableError     the service was asked to run on memory only
"""

from __future__ import annotations


class PCAError(Exception):
    """Base of every error this service raises on purpose."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class ValidationError(PCAError):
    """Raised when a field's value cannot be used; ``field`` names it."""


class SubjectError(ValidationError):
    """Raised when the subject lacks a common name or has an invalid attribute."""


class SANError(ValidationError):
    """Raised when a subjectAltName entry is invalid or not allowed for the type."""


class CSRError(ValidationError):
    """Raised when a CSR is malformed, not self-signed correctly, or has a weak key."""


class PolicyError(ValidationError):
    """Raised when a request breaks a rule of the profile it names; the message names
    the rule, the value and what the profile allows."""


class OutOfScopeError(PCAError):
    """Raised when a token limited to some CAs and profiles asks for another."""


class NotFoundError(PCAError):
    """Raised when a CA, certificate or key does not exist."""


class ConflictError(PCAError):
    """Raised when the request is valid but the current state forbids it."""


class CANotEnabledError(ConflictError):
    """Raised when an action needs an enabled CA."""


class CAStateError(ConflictError):
    """Raised when the CA's kind or status forbids the action."""


class ServicePeriodError(ConflictError):
    """Raised when the CA's service period has ended or is too short."""


class QuotaError(ConflictError):
    """Raised when there is not enough quota for the action."""


class LifetimeError(ConflictError):
    """Raised when a requested validity would outlive the signing CA's certificate or
    service period: valid input, refused for the CA it meets."""


class CertificateStateError(ConflictError):
    """Raised when a certificate's status forbids the action."""


class IdempotencyKeyReusedError(ConflictError):
    """Raised when an idempotency key comes back with different parameters."""


class KeyCustodyError(PCAError):
    """Raised when a stored key cannot be decrypted or is missing."""


class LogTamperedError(PCAError):
    """Raised for every command once the event log failed its audit chain; ``position``
    names the first bad position (see domain/application/integrity.py)."""

    def __init__(self, detail: str, *, position: int) -> None:
        super().__init__(detail)
        self.position = position


class StorageNotDurableError(PCAError):
    """Raised when the service is configured to keep its events in memory only."""

"""JSON transcodings for what events carry beyond eventsourcing's defaults (DESIGN §5)."""

from __future__ import annotations

import base64
from enum import Enum
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from domain.model import topics
from domain.model.constraints import NameConstraints
from domain.model.policy import CertificateProfile, IssuancePolicy
from domain.model.policy_form import policy_data, policy_from
from domain.model.tokens import Role
from domain.model.values import (
    SAN,
    CAKind,
    CAStatus,
    CertificateStatus,
    CertificateType,
    KeyAlgorithm,
    KeyGeneration,
    KeyRef,
    KeyStorage,
    RevocationReason,
    SANType,
    Subject,
)

_ENUMS: tuple[type[Enum], ...] = (
    Role,
    CAKind,
    CAStatus,
    CertificateStatus,
    CertificateType,
    KeyAlgorithm,
    KeyStorage,
    RevocationReason,
    SANType,
)


class BytesAsBase64(Transcoding):
    type = bytes
    name = "b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode("ascii")

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)


class SubjectAsDict(Transcoding):
    type = Subject
    name = "subject"

    def encode(self, obj: Subject) -> dict[str, str | None]:
        return {
            "common_name": obj.common_name,
            "organization": obj.organization,
            "organizational_unit": obj.organizational_unit,
            "locality": obj.locality,
            "state": obj.state,
            "country": obj.country,
        }

    def decode(self, data: dict[str, Any]) -> Subject:
        return Subject(**data)


class SANAsPair(Transcoding):
    type = SAN
    name = "san"

    def encode(self, obj: SAN) -> list[str]:
        return [obj.type.value, obj.value]

    def decode(self, data: list[str]) -> SAN:
        return SAN(SANType(data[0]), data[1])


class KeyGenerationAsDict(Transcoding):
    type = KeyGeneration
    name = "key_generation"

    def encode(self, obj: KeyGeneration) -> dict[str, Any]:
        return {
            "number": obj.number,
            "key_id": obj.key.key_id,
            "key_storage": obj.key.storage.value,
            "certificate_der": obj.certificate_der,
        }

    def decode(self, data: dict[str, Any]) -> KeyGeneration:
        key = KeyRef(data["key_id"], KeyStorage(data["key_storage"]))
        return KeyGeneration(data["number"], key, data["certificate_der"])


class PolicyAsDict(Transcoding):
    type = IssuancePolicy
    name = "policy"

    def encode(self, obj: IssuancePolicy) -> dict[str, Any]:
        return policy_data(obj)

    def decode(self, data: dict[str, Any]) -> IssuancePolicy:
        return policy_from(data)


class ProfileAsDict(Transcoding):
    """A CA snapshot's profiles."""

    type = CertificateProfile
    name = "profile"

    def encode(self, obj: CertificateProfile) -> dict[str, Any]:
        return {
            "name": obj.name,
            "version": obj.version,
            "policy": obj.policy,
            "retired": obj.retired,
        }

    def decode(self, data: dict[str, Any]) -> CertificateProfile:
        return CertificateProfile(**data)


class ConstraintsAsDict(Transcoding):
    type = NameConstraints
    name = "name_constraints"

    def encode(self, obj: NameConstraints) -> dict[str, Any]:
        return {"permitted": list(obj.permitted), "excluded": list(obj.excluded)}

    def decode(self, data: dict[str, Any]) -> NameConstraints:
        return NameConstraints(tuple(data["permitted"]), tuple(data["excluded"]))


def _enum_transcoding(enum_class: type[Enum]) -> Transcoding:
    class EnumAsValue(Transcoding):
        type = enum_class
        name = enum_class.__name__

        def encode(self, obj: Enum) -> Any:
            return obj.value

        def decode(self, data: Any) -> Enum:
            return enum_class(data)

    return EnumAsValue()


def register_all(transcoder: JSONTranscoder) -> None:
    """Teach ``transcoder`` every value type our events and snapshots carry."""
    topics.register_moved_modules()
    transcoder.register(BytesAsBase64())
    transcoder.register(SubjectAsDict())
    transcoder.register(SANAsPair())
    transcoder.register(KeyGenerationAsDict())
    transcoder.register(PolicyAsDict())
    transcoder.register(ProfileAsDict())
    transcoder.register(ConstraintsAsDict())
    for enum_class in _ENUMS:
        transcoder.register(_enum_transcoding(enum_class))

"""The audit chain's maths: the canonical bytes each link hashes, and the genesis value."""

from __future__ import annotations

import hashlib
from uuid import UUID

from domain.audit.chain import GENESIS, canonical_bytes


def test_canonical_bytes_are_length_prefixed_big_endian_fields() -> None:
    originator = UUID("12345678-1234-5678-1234-567812345678")
    assert canonical_bytes(7, originator, 2, "t", b"\x00\x01") == (
        (7).to_bytes(8, "big")
        + (36).to_bytes(8, "big")
        + b"12345678-1234-5678-1234-567812345678"
        + (2).to_bytes(8, "big")
        + (1).to_bytes(8, "big")
        + b"t"
        + (2).to_bytes(8, "big")
        + b"\x00\x01"
    )
    assert hashlib.sha256(b"pca-audit-chain/v1 genesis").digest() == GENESIS

"""Tamper evidence: the hash chain written with every event, its verification, and signed
checkpoints, against real SQLite and PostgreSQL files and tables edited behind the service's
back, and checked with real openssl."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import sqlite3
import struct
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from domain.adapters.keystore import KeyStore
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.audit import chain as audit_chain
from domain.audit.chain import GENESIS, AuditChainError
from domain.audit.guard import ChainGuard
from domain.audit.verify import AuditLog, ChainProblem, ChainReport, verify_chain
from domain.model.tokens import Role
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue
from tests.conftest import PUBLIC_URL, SettableClock

SMALL_BATCH = 3  # pages of three rows, so every scenario crosses page boundaries


@dataclass(frozen=True)
class RawStore:
    """The event store's tables, edited directly: what someone with database access sees.

    Query templates use ``{events}``, ``{id}`` (the notification id column), ``{chain}``,
    ``{checkpoints}`` and ``%s`` placeholders, rendered for the backend.
    """

    settings: Settings

    def run(self, template: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.settings.database_url is None:
            query = template.format(
                events="stored_events",
                id="rowid",
                chain="pca_audit_chain",
                checkpoints="pca_audit_checkpoints",
            ).replace("%s", "?")
            with sqlite3.connect(self.settings.data_dir / "events.db") as conn:
                return conn.execute(query, params).fetchall()
        schema = self.settings.database_schema
        query = template.format(
            events=f'"{schema}".pca_events',
            id="notification_id",
            chain=f'"{schema}".pca_audit_chain',
            checkpoints=f'"{schema}".pca_audit_checkpoints',
        )
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            cursor = conn.execute(query.encode(), params)
            return cursor.fetchall() if cursor.description else []

    def positions(self) -> list[int]:
        return [row[0] for row in self.run("SELECT {id} FROM {events} ORDER BY {id}")]

    def state(self, position: int) -> bytes:
        return bytes(self.run("SELECT state FROM {events} WHERE {id} = %s", (position,))[0][0])

    def set_state(self, position: int, state: bytes) -> None:
        self.run("UPDATE {events} SET state = %s WHERE {id} = %s", (state, position))

    def alter_state(self, position: int) -> None:
        self.set_state(position, self.state(position).replace(b'"', b"'", 1))

    def delete_event(self, position: int) -> None:
        self.run("DELETE FROM {events} WHERE {id} = %s", (position,))

    def delete_link(self, position: int) -> None:
        self.run("DELETE FROM {chain} WHERE position = %s", (position,))

    def forge_copy(self, position: int) -> int:
        """Insert a copy of the event at ``position`` as a later version; its position."""
        self.run(
            "INSERT INTO {events} (originator_id, originator_version, topic, state)"
            " SELECT originator_id, originator_version + 1000, topic, state FROM {events}"
            " WHERE {id} = %s",
            (position,),
        )
        return self.positions()[-1]

    def swap_states(self, first: int, second: int) -> None:
        first_state, second_state = self.state(first), self.state(second)
        self.set_state(first, second_state)
        self.set_state(second, first_state)

    def swap_rows(self, first: int, second: int) -> None:
        for old, new in ((first, -1), (second, first), (-1, second)):
            self.run("UPDATE {events} SET {id} = %s WHERE {id} = %s", (new, old))

    def alter_link(self, position: int) -> None:
        self.run("UPDATE {chain} SET link = %s WHERE position = %s", (b"\x00" * 32, position))

    def links(self) -> list[tuple[int, bytes]]:
        rows = self.run("SELECT position, link FROM {chain} ORDER BY position")
        return [(row[0], bytes(row[1])) for row in rows]


@pytest.fixture
def raw(settings: Settings) -> RawStore:
    return RawStore(settings)


@pytest.fixture
def populated(service: PrivateCA) -> PrivateCA:
    """A root, an intermediate and two certificates: 11 events, some saved together."""
    ca_id = enabled_intermediate(service, enabled_root(service), remaining=5)
    issue(service, ca_id)
    issue(service, ca_id)
    return service


def audit_log(service: PrivateCA) -> AuditLog:
    """The service's audit log, reading in small pages."""
    return AuditLog.of(service, batch_size=SMALL_BATCH)


def verify(service: PrivateCA) -> ChainReport:
    return audit_log(service).verify()


# --- the chain ------------------------------------------------------------------------------


def test_every_event_is_stored_with_the_documented_link(
    populated: PrivateCA, raw: RawStore
) -> None:
    rows = raw.run(
        "SELECT {id}, originator_id, originator_version, topic, state FROM {events} ORDER BY {id}"
    )
    expected, link = [], GENESIS
    for position, originator_id, version, topic, state in rows:
        originator = str(UUID(str(originator_id)))
        canonical = b"".join(
            (
                struct.pack(">q", position),
                struct.pack(">q", len(originator)) + originator.encode(),
                struct.pack(">q", version),
                struct.pack(">q", len(topic.encode())) + topic.encode(),
                struct.pack(">q", len(state)) + bytes(state),
            )
        )
        link = hashlib.sha256(link + canonical).digest()
        expected.append((position, link))
    assert len(expected) == 11
    assert raw.links() == expected


def test_a_clean_log_verifies(populated: PrivateCA, raw: RawStore) -> None:
    report = verify_chain(populated)
    assert report.ok
    assert (report.checked, report.position) == (11, raw.positions()[-1])
    assert report.head == raw.links()[-1][1]
    assert report.to_json()["problem"] is None
    assert verify(populated) == report


def test_an_altered_event_is_reported_at_its_position(populated: PrivateCA, raw: RawStore) -> None:
    position = raw.positions()[4]
    raw.alter_state(position)
    report = verify(populated)
    assert not report.ok
    assert (report.first_bad_position, report.problem) == (position, ChainProblem.ALTERED)


def test_a_deleted_event_is_reported_as_removed(populated: PrivateCA, raw: RawStore) -> None:
    position = raw.positions()[5]
    raw.delete_event(position)
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (position, ChainProblem.REMOVED)


def test_an_event_deleted_with_its_link_is_reported_as_removed(
    populated: PrivateCA, raw: RawStore
) -> None:
    position = raw.positions()[5]
    raw.delete_event(position)
    raw.delete_link(position)
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (position, ChainProblem.REMOVED)


def test_deleting_the_last_event_is_reported_as_removed(
    populated: PrivateCA, raw: RawStore
) -> None:
    position = raw.positions()[-1]
    raw.delete_event(position)
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (position, ChainProblem.REMOVED)


def test_a_forged_copy_of_an_event_is_reported_as_inserted(
    populated: PrivateCA, raw: RawStore
) -> None:
    forged = raw.forge_copy(raw.positions()[3])
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (forged, ChainProblem.INSERTED)


def test_an_event_whose_link_was_deleted_is_reported_as_inserted(
    populated: PrivateCA, raw: RawStore
) -> None:
    position = raw.positions()[2]
    raw.delete_link(position)
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (position, ChainProblem.INSERTED)


def test_swapped_states_are_reported_at_the_first_of_the_two(
    populated: PrivateCA, raw: RawStore
) -> None:
    positions = raw.positions()
    raw.swap_states(positions[7], positions[3])
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (positions[3], ChainProblem.REORDERED)
    assert f"now sits at position {positions[7]}" in (report.detail or "")


def test_swapped_rows_are_reported_as_reordered(populated: PrivateCA, raw: RawStore) -> None:
    positions = raw.positions()
    raw.swap_rows(positions[2], positions[8])
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (positions[2], ChainProblem.REORDERED)


def test_an_altered_link_is_reported_with_its_event_intact(
    populated: PrivateCA, raw: RawStore
) -> None:
    position = raw.positions()[6]
    raw.alter_link(position)
    report = verify(populated)
    assert (report.first_bad_position, report.problem) == (position, ChainProblem.LINK_ALTERED)


def test_an_event_is_never_committed_without_its_link(
    service: PrivateCA, raw: RawStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.create_token(ADMIN, "kept", Role.AUDITOR)

    def fail(*_: object) -> None:
        raise RuntimeError("the link could not be computed")

    monkeypatch.setattr(audit_chain, "canonical_bytes", fail)
    with pytest.raises(RuntimeError, match="could not be computed"):
        service.create_token(ADMIN, "lost", Role.AUDITOR)
    monkeypatch.undo()

    assert len(raw.positions()) == 1
    service.create_token(ADMIN, "next", Role.AUDITOR)
    assert (verify(service).ok, len(raw.positions())) == (True, 2)


def test_the_chain_keeps_growing_after_a_restart(
    settings: Settings, clock: SettableClock, raw: RawStore
) -> None:
    for _ in range(2):
        service = open_service(settings, clock=clock)
        try:
            service.create_token(ADMIN, "ci", Role.AUDITOR)
            service.create_token(ADMIN, "ops", Role.OPERATOR)
            report = verify(service)
        finally:
            service.close()
            service.keystore.close()
    assert report.ok
    assert report.checked == 4
    assert [p for p, _ in raw.links()] == raw.positions()


def test_events_recorded_before_the_chain_existed_are_bound_when_it_is_created(
    settings: Settings, raw: RawStore
) -> None:
    settings.prepare_data_dir()
    env = settings.eventsourcing_env()
    del env["APPLICATION_RECORDER_TOPIC"]
    keystore = settings.open_keystore()
    unchained = PrivateCA(env, keystore=keystore, public_url=PUBLIC_URL)
    for name in ("a", "b", "c"):
        unchained.create_token(ADMIN, name, Role.AUDITOR)
    unchained.close()
    keystore.close()

    service = open_service(settings)
    try:
        service.create_token(ADMIN, "d", Role.AUDITOR)
        report = verify(service)
    finally:
        service.close()
        service.keystore.close()
    assert (report.ok, report.checked) == (True, 4)


def test_sqlite_refuses_to_write_after_the_last_event_was_deleted(
    sqlite_settings: Settings, clock: SettableClock
) -> None:
    service = open_service(sqlite_settings, clock=clock)
    try:
        service.create_token(ADMIN, "a", Role.AUDITOR)
        raw = RawStore(sqlite_settings)
        raw.delete_event(raw.positions()[-1])
        with pytest.raises(AuditChainError, match="deleted from the end of the log"):
            service.create_token(ADMIN, "b", Role.AUDITOR)
    finally:
        service.close()
        service.keystore.close()


def test_a_service_without_a_chain_is_refused(keystore_only: KeyStore) -> None:
    service = PrivateCA(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        keystore=keystore_only,
        public_url="",
        allow_memory=True,
    )
    with pytest.raises(AuditChainError, match="keeps no audit chain"):
        AuditLog.of(service)


@pytest.fixture
def keystore_only(sqlite_settings: Settings) -> Iterator[KeyStore]:
    sqlite_settings.prepare_data_dir()
    keystore = sqlite_settings.open_keystore()
    yield keystore
    keystore.close()


# --- concurrency ----------------------------------------------------------------------------


def test_verification_ignores_events_committed_while_it_runs(service: PrivateCA) -> None:
    service.create_token(ADMIN, "first", Role.AUDITOR)
    done = threading.Event()

    def write() -> None:
        for n in range(150):
            service.create_token(ADMIN, f"t{n}", Role.AUDITOR)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reports = []
    while not done.is_set():
        reports.append(verify(service))
    writer.join()
    assert reports
    assert [r.detail for r in reports if not r.ok] == []


# --- checkpoints ----------------------------------------------------------------------------


def test_a_checkpoint_verifies_until_an_event_before_it_is_altered(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    log = audit_log(populated)
    checkpoint = log.create_checkpoint(clock.now)
    assert checkpoint.position == raw.positions()[-1]
    assert checkpoint.head_hex == raw.links()[-1][1].hex()
    assert [r.ok for r in log.verify_checkpoints()] == [True]

    raw.alter_state(raw.positions()[2])
    report = log.verify()
    assert not report.checkpoints_ok
    assert "no longer hashes to the signed head" in (report.checkpoints[0].problem or "")


def test_a_checkpoint_still_verifies_after_a_change_beyond_its_position(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    log = audit_log(populated)
    log.create_checkpoint(clock.now)
    populated.create_token(ADMIN, "later", Role.AUDITOR)
    raw.alter_state(raw.positions()[-1])
    report = log.verify()
    assert report.problem is ChainProblem.ALTERED
    assert report.checkpoints_ok


def test_a_checkpoint_fails_when_the_log_is_cut_before_its_position(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    log = audit_log(populated)
    log.create_checkpoint(clock.now)
    last = raw.positions()[-1]
    raw.delete_event(last)
    raw.delete_link(last)  # the chain alone cannot see this; the checkpoint can
    report = log.verify()
    assert report.chain_ok
    assert not report.ok
    assert "events were removed from its end" in (report.checkpoints[0].problem or "")


def test_an_altered_checkpoint_row_fails_its_signature(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    log = audit_log(populated)
    log.create_checkpoint(clock.now)
    raw.run("UPDATE {checkpoints} SET time = %s", ("2001-01-01T00:00:00Z",))
    assert "signature does not verify" in (log.verify().checkpoints[0].problem or "")
    populated.create_token(ADMIN, "later", Role.AUDITOR)
    with pytest.raises(AuditChainError, match="cannot be trusted"):
        log.create_checkpoint(clock.now)


def test_no_checkpoint_is_signed_over_a_broken_chain(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    log = audit_log(populated)
    log.create_checkpoint(clock.now)
    populated.create_token(ADMIN, "later", Role.AUDITOR)
    raw.alter_state(raw.positions()[-1])
    with pytest.raises(AuditChainError, match="refusing to sign"):
        log.create_checkpoint(clock.now)
    assert len(log.checkpoints()) == 1


def test_a_checkpoint_recomputes_the_chain_only_from_the_link_the_guard_verified(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    """What the guard verified is not walked again (so the first checkpoint of a long log
    costs no second walk); an alteration before that link was there to be found by it."""
    guard = ChainGuard.of(populated)
    assert guard.verify_new() is None
    raw.alter_state(raw.positions()[0])
    log = audit_log(populated)
    with pytest.raises(AuditChainError, match="refusing to sign"):
        log.create_checkpoint(clock.now)  # without the guard's link: walked from the start
    signed = log.create_checkpoint(clock.now, verified=guard.verified)
    assert signed.position == raw.positions()[-1]


def test_a_checkpoint_still_verifies_what_was_appended_after_the_guards_link(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    guard = ChainGuard.of(populated)
    assert guard.verify_new() is None
    populated.create_token(ADMIN, "later", Role.AUDITOR)
    raw.alter_state(raw.positions()[-1])
    with pytest.raises(AuditChainError, match="refusing to sign"):
        audit_log(populated).create_checkpoint(clock.now, verified=guard.verified)


def test_checkpoints_are_published_when_due_and_the_log_moved(
    populated: PrivateCA, clock: SettableClock
) -> None:
    log = audit_log(populated)
    first = log.publish_checkpoint_if_due(300, clock.now)
    assert first is not None
    assert log.publish_checkpoint_if_due(300, clock.now) is None  # not due yet
    clock.advance(minutes=10)
    assert log.publish_checkpoint_if_due(300, clock.now) is None  # nothing new to sign
    populated.create_token(ADMIN, "later", Role.AUDITOR)
    second = log.publish_checkpoint_if_due(300, clock.now)
    assert second is not None
    assert second.position > first.position
    assert second.time == clock.now
    assert [c.position for c in log.checkpoints()] == [first.position, second.position]
    assert log.create_checkpoint(clock.now) == second  # nothing new: the same checkpoint


def test_checkpoints_are_signed_with_the_audit_key_kept_in_the_key_store(
    populated: PrivateCA, raw: RawStore, clock: SettableClock
) -> None:
    log = audit_log(populated)
    checkpoint = log.create_checkpoint(clock.now)
    key = populated.keystore.get("audit-signing-key")
    assert isinstance(key, Ed25519PrivateKey)
    key.public_key().verify(checkpoint.signature, checkpoint.message)
    assert log.export_checkpoints()[0]["public_key_pem"] == log.public_key_pem()
    private = key.private_bytes_raw()
    states = b"".join(bytes(row[0]) for row in raw.run("SELECT state FROM {events}"))
    assert private not in states
    assert base64.b64encode(private) not in states


def test_an_exported_checkpoint_verifies_with_openssl(
    populated: PrivateCA, clock: SettableClock, tmp_path: Path
) -> None:
    log = audit_log(populated)
    log.create_checkpoint(clock.now)
    exported = log.export_checkpoints()[0]
    (tmp_path / "pub.pem").write_text(exported["public_key_pem"])
    (tmp_path / "msg").write_bytes(exported["message"].encode("ascii"))
    (tmp_path / "sig").write_bytes(base64.b64decode(exported["signature"]))
    assert _openssl_verify(tmp_path).returncode == 0

    (tmp_path / "msg").write_bytes(exported["message"].replace("position=", "position=1").encode())
    assert _openssl_verify(tmp_path).returncode != 0


def _openssl_verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-rawin",
            "-in",
            "msg",
            "-sigfile",
            "sig",
        ],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )


def test_checkpoint_times_must_be_timezone_aware(populated: PrivateCA) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        audit_log(populated).create_checkpoint(dt.datetime(2030, 1, 1))

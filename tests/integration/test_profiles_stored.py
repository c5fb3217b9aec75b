"""Logs written before profiles existed still load: their certificates were issued under
the default profile's first version, and their intermediates have only that profile."""

from __future__ import annotations

import contextlib
import json
import sqlite3

from domain.adapters.settings import EVENTS_FILE, Settings, open_service
from domain.model.policy import DEFAULT_PROFILE, IssuancePolicy
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock


def _strip_profile_fields(settings: Settings) -> int:
    """Rewrite each stored CertificateIssued as it was stored before profiles existed."""
    stripped = 0
    with contextlib.closing(sqlite3.connect(settings.data_dir / EVENTS_FILE)) as db:
        (table,) = db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%events'"
        ).fetchone()
        rows = db.execute(
            f"SELECT rowid, state FROM {table} WHERE topic LIKE '%CertificateIssued'"  # noqa: S608
        ).fetchall()
        for rowid, state in rows:
            data = json.loads(state)
            del data["profile"], data["profile_version"]
            db.execute(
                f"UPDATE {table} SET state = ? WHERE rowid = ?",  # noqa: S608
                (json.dumps(data).encode(), rowid),
            )
            stripped += 1
        db.commit()
    return stripped


def test_certificates_stored_before_profiles_load_under_the_default_profile(
    sqlite_settings: Settings, clock: SettableClock
) -> None:
    writer = open_service(sqlite_settings, clock=clock)
    ca_id = enabled_intermediate(writer, enabled_root(writer, quota=5), remaining=3)
    issued = issue(writer, ca_id).certificate.id
    writer.close()
    writer.keystore.close()
    assert _strip_profile_fields(sqlite_settings) == 1

    reader = open_service(sqlite_settings, clock=clock)
    try:
        certificate = reader.get_certificate(issued)
        assert (certificate.profile, certificate.profile_version) == (DEFAULT_PROFILE, 1)
        ca = reader.get_ca(ca_id)
        assert [profile.name for profile in ca.all_profiles()] == [DEFAULT_PROFILE]
        reader.update_profile(ADMIN, ca_id, DEFAULT_PROFILE, IssuancePolicy(max_validity_days=30))
        assert reader.get_ca(ca_id).profile_named(DEFAULT_PROFILE).version == 2
    finally:
        reader.close()
        reader.keystore.close()

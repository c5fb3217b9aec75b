"""Logs written before profiles, name constraints and token scopes existed still load:
their certificates were issued under the default profile's first version, their CAs are
unconstrained with only the default profile, and their tokens are not limited."""

from __future__ import annotations

import contextlib
import json
import sqlite3

from domain.adapters.settings import EVENTS_FILE, Settings, open_service
from domain.model.constraints import UNCONSTRAINED
from domain.model.policy import DEFAULT_PROFILE, IssuancePolicy
from domain.model.tokens import Role
from domain.model.values import UNSCOPED
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock

NEW_FIELDS = {
    "CertificateIssued": ("profile", "profile_version"),
    "CACreated": ("name_constraints",),
    "TokenCreated": ("ca_ids", "profiles"),
}


def _store_as_before(settings: Settings) -> int:
    """Rewrite each stored event of NEW_FIELDS without the fields added since."""
    stripped = 0
    with contextlib.closing(sqlite3.connect(settings.data_dir / EVENTS_FILE)) as db:
        (table,) = db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%events'"
        ).fetchone()
        for event_type, fields in NEW_FIELDS.items():
            rows = db.execute(
                f"SELECT rowid, state FROM {table} WHERE topic LIKE ?",  # noqa: S608
                (f"%.{event_type}",),
            ).fetchall()
            for rowid, state in rows:
                data = json.loads(state)
                for name in fields:
                    del data[name]
                db.execute(
                    f"UPDATE {table} SET state = ? WHERE rowid = ?",  # noqa: S608
                    (json.dumps(data).encode(), rowid),
                )
                stripped += 1
        db.commit()
    return stripped


def test_events_stored_before_profiles_load_with_todays_behaviour(
    sqlite_settings: Settings, clock: SettableClock
) -> None:
    writer = open_service(sqlite_settings, clock=clock)
    ca_id = enabled_intermediate(writer, enabled_root(writer, quota=5), remaining=3)
    issued = issue(writer, ca_id).certificate.id
    token, _ = writer.create_token(ADMIN, "old-ci", Role.OPERATOR)
    writer.close()
    writer.keystore.close()
    assert _store_as_before(sqlite_settings) == 4  # a certificate, two CAs, a token

    reader = open_service(sqlite_settings, clock=clock)
    try:
        certificate = reader.get_certificate(issued)
        assert (certificate.profile, certificate.profile_version) == (DEFAULT_PROFILE, 1)
        ca = reader.get_ca(ca_id)
        assert ca.name_constraints == UNCONSTRAINED
        assert [profile.name for profile in ca.all_profiles()] == [DEFAULT_PROFILE]
        record = reader.authenticate(token)
        assert record is not None
        assert record.scope == UNSCOPED
        reader.update_profile(ADMIN, ca_id, DEFAULT_PROFILE, IssuancePolicy(max_validity_days=30))
        assert reader.get_ca(ca_id).profile_named(DEFAULT_PROFILE).version == 2
    finally:
        reader.close()
        reader.keystore.close()

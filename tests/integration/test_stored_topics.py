"""Logs written before the model moved to ``domain.model`` still load and filter by type."""

from __future__ import annotations

import contextlib
import sqlite3

from domain.adapters.settings import EVENTS_FILE, Settings, open_service
from domain.model.authority import CertificateAuthority
from domain.model.topics import MOVED_MODULES
from domain.model.values import CAStatus
from projections.audit.history import HistoryFilter, read_history
from projections.audit.logcut import LogReader
from tests.builders import enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock


def _store_under_old_topics(settings: Settings) -> int:
    """Rewrite every stored topic to the module name it had before the move."""
    changed = 0
    with contextlib.closing(sqlite3.connect(settings.data_dir / EVENTS_FILE)) as db:
        (table,) = db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name LIKE '%events'"
        ).fetchone()
        for old_name, module in MOVED_MODULES.items():
            changed += db.execute(
                f"UPDATE {table} SET topic = replace(topic, ?, ?)",  # noqa: S608
                (f"{module.__name__}:", f"{old_name}:"),
            ).rowcount
        db.commit()
    return changed


def test_events_stored_under_old_module_names_load_and_filter(
    sqlite_settings: Settings, clock: SettableClock
) -> None:
    writer = open_service(sqlite_settings, clock=clock)
    root_id = enabled_root(writer, quota=5)
    ca_id = enabled_intermediate(writer, root_id, remaining=2)
    issued = issue(writer, ca_id).certificate.id
    writer.close()
    writer.keystore.close()
    assert _store_under_old_topics(sqlite_settings) > 0

    reader = open_service(sqlite_settings, clock=clock)
    try:
        ca = reader.get_ca(ca_id)
        assert ca.status is CAStatus.ENABLED
        assert ca.quota_remaining == 1
        assert reader.get_certificate(issued).ca_id == ca_id

        page = read_history(reader, 0, 100, HistoryFilter(types=("CAEnabled",)))
        assert {item.aggregate_id for item in page.items} == {root_id, ca_id}

        with LogReader.open(sqlite_settings) as log:
            enabled = list(log.events(log.cut(None), (CertificateAuthority.CAEnabled,)))
        assert len(enabled) == 2
    finally:
        reader.close()
        reader.keystore.close()

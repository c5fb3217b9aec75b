"""Where the read models live, derived from the service's
:class:`~domain.adapters.settings.Settings`.

SQLite (the embedded default): a file ``readmodels.db`` (mode 0600, WAL) next to the event
store. PostgreSQL: ``rm_*`` tables in the event store's database and schema.
"""

from __future__ import annotations

from pathlib import Path

from eventsourcing.persistence import InfrastructureFactory, TrackingRecorder
from eventsourcing.utils import Environment

from domain.adapters.settings import Settings, prepare_sqlite_file
from projections.readmodels.projection import EventLog, ReadModelProjection
from projections.readmodels.view import PostgresReadModelView, ReadModelView, SQLiteReadModelView

READ_MODELS_FILE = "readmodels.db"
RUNNER_LOCK_FILE = "readmodels.lock"
_PREFIX = ReadModelProjection.name.upper() + "_"


def read_models_path(settings: Settings) -> Path:
    """The SQLite file of the read models (unused with PostgreSQL)."""
    return settings.data_dir / READ_MODELS_FILE


def projection_env(settings: Settings, *, pool_size: int = 2) -> dict[str, str]:
    """One eventsourcing environment for both sides of the projection.

    Unprefixed keys open the event log; ``RM_``-prefixed keys override them for the view,
    the way eventsourcing's ``ProjectionRunner`` reads its environment. ``pool_size`` is
    the view's PostgreSQL connection pool (the log keeps two connections).
    """
    env = settings.eventsourcing_env()
    if settings.uses_postgres:
        env["POSTGRES_POOL_SIZE"] = "2"
        env["POSTGRES_MAX_OVERFLOW"] = "2"
        env[_PREFIX + "POSTGRES_POOL_SIZE"] = str(pool_size)
        env[_PREFIX + "POSTGRES_MAX_OVERFLOW"] = str(pool_size * 2)
    else:
        env[_PREFIX + "SQLITE_DBNAME"] = str(read_models_path(settings))
    return env


def open_view(settings: Settings, *, pool_size: int = 2) -> ReadModelView:
    """The read-model view for ``settings``, its tables created if missing."""
    _prepare_files(settings)
    view_class: type[TrackingRecorder] = (
        PostgresReadModelView if settings.uses_postgres else SQLiteReadModelView
    )
    env = Environment(ReadModelProjection.name, projection_env(settings, pool_size=pool_size))
    view = InfrastructureFactory[TrackingRecorder].construct(env).tracking_recorder(view_class)
    if not isinstance(view, ReadModelView):
        raise TypeError(f"{env.get('PERSISTENCE_MODULE')} built a {type(view).__name__}")
    return view


def open_event_log(settings: Settings) -> EventLog:
    """The service's event log, for reading its notifications."""
    _prepare_files(settings)
    return EventLog(projection_env(settings))


def _prepare_files(settings: Settings) -> None:
    settings.prepare_data_dir()
    if not settings.uses_postgres:
        prepare_sqlite_file(read_models_path(settings))

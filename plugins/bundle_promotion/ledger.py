"""The ledger: the system of record for releases and where they are deployed.

A database of its own, never Airflow's: a SQLite file by default, Postgres when workers
share no disk. Several task processes write at once, so every write is idempotent and
SQLite runs in WAL mode with writers queueing on a busy timeout.

The schema grows through ``MIGRATIONS``; see there how to add a step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar, cast, get_args

from sqlalchemy import (
    DateTime,
    Dialect,
    ForeignKey,
    Select,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker
from sqlalchemy.types import TypeDecorator

from bundle_promotion.errors import BundlePromotionError, ReleaseError
from bundle_promotion.release import Artifact, Release

DeploymentState = Literal["deploying", "succeeded", "failed"]
FinishedState = Literal["succeeded", "failed"]

_SQLITE_BUSY_TIMEOUT_MS = 30_000
_READ_ONLY = "bundle_promotion_read_only"
_MIGRATION_LOCK_KEY = 0x6275_6E64_6C65  # any constant shared by every process; "bundle" in hex
_T = TypeVar("_T")


@dataclass(frozen=True)
class DeploymentRecord:
    """One attempt to put a release into an environment, from one DAG run."""

    id: int
    bundle: str
    environment: str
    target: str
    release_id: int
    version: str
    commit: str
    state: DeploymentState
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    detail: str | None


class _UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC both ways, also on SQLite, which keeps no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"the ledger stores timezone-aware datetimes only, got {value}")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: _UtcDateTime}


class _SchemaVersionRow(_Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime]


class _ReleaseRow(_Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("bundle", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    commit: Mapped[str] = mapped_column("commit_sha", String(64))
    config_digest: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    recorded_at: Mapped[datetime]
    artifacts: Mapped[list[_ArtifactRow]] = relationship(order_by="_ArtifactRow.position", lazy="selectin")


class _ArtifactRow(_Base):
    __tablename__ = "release_artifacts"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(255))
    relative_path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))


class _DeploymentRow(_Base):
    __tablename__ = "deployments"
    # Also the index behind every lookup by bundle and environment.
    __table_args__ = (UniqueConstraint("bundle", "environment", "release_id", "run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bundle: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(200))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    run_id: Mapped[str] = mapped_column(String(250))
    target: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)
    release: Mapped[_ReleaseRow] = relationship(lazy="joined")


def _create_tables(connection: Connection, *models: type[_Base]) -> None:
    tables = [_Base.metadata.tables[model.__tablename__] for model in models]
    _Base.metadata.create_all(connection, tables=tables)


def _create_releases_and_deployments(connection: Connection) -> None:
    _create_tables(connection, _ReleaseRow, _ArtifactRow, _DeploymentRow)


# Schema version N means the first N steps have run. Append a step to change the schema;
# never edit or reorder one. A step that adds a table creates it from its model. Since
# tables are created from the models as they stand, a step that changes an existing table
# must tolerate a fresh database that already has the change (add a column only if missing).
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_create_releases_and_deployments,)


class Ledger:
    """Releases and deployments in the database at ``url`` (any SQLAlchemy URL)."""

    def __init__(self, url: str) -> None:
        self._url = make_url(url).render_as_string(hide_password=True)
        self._engine = _create_engine(url)
        self._writes = sessionmaker(self._engine, expire_on_commit=False)
        self._reads = sessionmaker(self._engine.execution_options(**{_READ_ONLY: True}))

    def migrate(self) -> None:
        """Bring the schema up to date; a no-op when it is, and safe when processes race."""
        with self._engine.begin() as connection:
            _serialize_migrations(connection)
            _create_tables(connection, _SchemaVersionRow)
            current = connection.scalar(select(func.max(_SchemaVersionRow.version))) or 0
            if current > len(MIGRATIONS):
                raise BundlePromotionError(
                    f"the ledger at {self._url} has schema version {current}, but this bundle-promotion "
                    f"knows versions up to {len(MIGRATIONS)}; upgrade bundle-promotion on this worker"
                )
            for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
                step(connection)
                connection.execute(insert(_SchemaVersionRow).values(version=version, applied_at=_now()))

    def record_release(self, release: Release) -> int:
        """The release's id; recording the same release again returns the first id."""
        return _retry_once_on_conflict(lambda: self._record_release(release))

    def release(self, release_id: int) -> Release:
        with self._reads() as session:
            return _to_release(self._release_row(session, release_id))

    def release_by_version(self, bundle: str, version: str) -> tuple[int, Release] | None:
        """The id and content of the bundle's recorded version, if any: lets a retry skip the build."""
        with self._reads() as session:
            row = session.scalar(_release_query(bundle, version))
            return (row.id, _to_release(row)) if row is not None else None

    def start_deployment(
        self, *, bundle: str, environment: str, target: str, release_id: int, run_id: str
    ) -> int:
        """The deployment's id, in state ``deploying``; a retried task gets its first row back."""
        return _retry_once_on_conflict(
            lambda: self._start_deployment(bundle, environment, target, release_id, run_id)
        )

    def finish_deployment(self, deployment_id: int, state: FinishedState, detail: str | None = None) -> None:
        if state not in get_args(FinishedState):
            raise ValueError(f"a deployment finishes as one of {get_args(FinishedState)}, not {state!r}")
        with self._writes.begin() as session:
            row = session.get(_DeploymentRow, deployment_id)
            if row is None:
                raise BundlePromotionError(self._missing("deployment", deployment_id))
            row.state = state
            row.finished_at = _now()
            row.detail = detail

    def current_release(self, bundle: str, environment: str) -> tuple[Release, DeploymentRecord] | None:
        """The release of the last deployment that succeeded in the environment, if any."""
        query = (
            _deployments_query(bundle, environment)
            .where(_DeploymentRow.state == "succeeded")
            .order_by(_DeploymentRow.finished_at.desc(), _DeploymentRow.id.desc())
            .limit(1)
        )
        with self._reads() as session:
            row = session.scalar(query)
            return (_to_release(row.release), _to_record(row)) if row is not None else None

    def deployments(self, bundle: str, environment: str | None = None) -> list[DeploymentRecord]:
        """Newest first."""
        query = _deployments_query(bundle, environment).order_by(
            _DeploymentRow.started_at.desc(), _DeploymentRow.id.desc()
        )
        with self._reads() as session:
            return [_to_record(row) for row in session.scalars(query)]

    def _record_release(self, release: Release) -> int:
        with self._writes.begin() as session:
            recorded = session.scalar(_release_query(release.bundle, release.version))
            if recorded is not None:
                _check_same_release(recorded, release)
                return recorded.id
            row = _to_row(release)
            session.add(row)
            session.flush()
            return row.id

    def _start_deployment(
        self, bundle: str, environment: str, target: str, release_id: int, run_id: str
    ) -> int:
        with self._writes.begin() as session:
            self._release_row(session, release_id)
            row = session.scalar(
                select(_DeploymentRow).filter_by(
                    bundle=bundle, environment=environment, release_id=release_id, run_id=run_id
                )
            )
            if row is None:
                row = _DeploymentRow(
                    bundle=bundle, environment=environment, release_id=release_id, run_id=run_id
                )
                session.add(row)
            row.target = target
            row.state = "deploying"
            row.started_at = _now()
            row.finished_at = None
            row.detail = None
            session.flush()
            return row.id

    def _release_row(self, session: Session, release_id: int) -> _ReleaseRow:
        row = session.get(_ReleaseRow, release_id)
        if row is None:
            raise ReleaseError(self._missing("release", release_id))
        return row

    def _missing(self, kind: str, row_id: int) -> str:
        return (
            f"no {kind} with id {row_id} in the ledger at {self._url}; tasks that run on different "
            "machines must share one ledger (a Postgres URL in the bundle_promotion_ledger connection)"
        )


def _create_engine(url: str) -> Engine:
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy sends BEGIN itself, see below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the write lock up front: a transaction that read first and then writes
        # fails with "database is locked" at once instead of waiting out the busy timeout.
        # Readers need no lock in WAL mode.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _serialize_migrations(connection: Connection) -> None:
    """Make a second migrating process wait, then find the work done. On SQLite, BEGIN IMMEDIATE does it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})


def _retry_once_on_conflict(write: Callable[[], _T]) -> _T:
    # Writes look their row up before inserting it. When a concurrent transaction inserts the
    # same row in between (Postgres' read committed allows it), ours hits the unique
    # constraint; the second try finds that row.
    try:
        return write()
    except IntegrityError:
        return write()


def _check_same_release(recorded: _ReleaseRow, release: Release) -> None:
    if recorded.digest == release.digest:
        return
    if recorded.commit != release.commit:
        raise ReleaseError(
            f"{release.version} of {release.bundle} was recorded from commit {recorded.commit}, "
            f"but the tag now points to {release.commit}; tags are immutable: cut a new version"
        )
    raise ReleaseError(
        f"{release.version} of {release.bundle} (commit {release.commit}) was recorded with release "
        f"digest {recorded.digest}, but building it again gave {release.digest}: the build or the "
        "config is not reproducible. Make the build reproducible, or cut a new version"
    )


def _release_query(bundle: str, version: str) -> Select[_ReleaseRow]:
    return select(_ReleaseRow).where(_ReleaseRow.bundle == bundle, _ReleaseRow.version == version)


def _deployments_query(bundle: str, environment: str | None) -> Select[_DeploymentRow]:
    query = select(_DeploymentRow).where(_DeploymentRow.bundle == bundle)
    return query if environment is None else query.where(_DeploymentRow.environment == environment)


def _to_row(release: Release) -> _ReleaseRow:
    return _ReleaseRow(
        bundle=release.bundle,
        version=release.version,
        commit=release.commit,
        config_digest=release.config_digest,
        digest=release.digest,
        recorded_at=_now(),
        artifacts=[
            _ArtifactRow(position=position, name=a.name, relative_path=a.relative_path, sha256=a.sha256)
            for position, a in enumerate(release.artifacts)
        ],
    )


def _to_release(row: _ReleaseRow) -> Release:
    return Release(
        bundle=row.bundle,
        version=row.version,
        commit=row.commit,
        artifacts=tuple(Artifact(a.name, a.relative_path, a.sha256) for a in row.artifacts),
        config_digest=row.config_digest,
    )


def _to_record(row: _DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        id=row.id,
        bundle=row.bundle,
        environment=row.environment,
        target=row.target,
        release_id=row.release_id,
        version=row.release.version,
        commit=row.release.commit,
        state=cast(DeploymentState, row.state),
        run_id=row.run_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        detail=row.detail,
    )


def _now() -> datetime:
    return datetime.now(UTC)

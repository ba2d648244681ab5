"""Releases: recorded once per bundle version, with their artifacts, and never changed."""

from __future__ import annotations

from sqlalchemy import Select, select

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger.audit import SYSTEM_ACTOR, append_event
from bundle_promotion.ledger.database import LedgerDatabase, retry_once_on_conflict
from bundle_promotion.ledger.models import ArtifactRow, ReleaseRow, now
from bundle_promotion.ledger.records import Artifact, Release


class ReleasesMixin(LedgerDatabase):
    """``Ledger`` methods for releases."""

    def record_release(self, release: Release, *, actor: str = SYSTEM_ACTOR) -> int:
        """The release's id; recording the same release again returns the first id."""
        return retry_once_on_conflict(lambda: self._record_release(release, actor))

    def release(self, release_id: int) -> Release:
        with self._reads() as session:
            return to_release(self._release_row(session, release_id))

    def release_by_version(self, bundle: str, version: str) -> tuple[int, Release] | None:
        """The id and content of the bundle's recorded version, if any: lets a retry skip the build."""
        with self._reads() as session:
            row = session.scalar(_release_query(bundle, version))
            return (row.id, to_release(row)) if row is not None else None

    def _record_release(self, release: Release, actor: str) -> int:
        with self._writes.begin() as session:
            recorded = session.scalar(_release_query(release.bundle, release.version))
            if recorded is not None:
                _check_same_release(recorded, release)
                return recorded.id
            row = _to_row(release)
            session.add(row)
            session.flush()
            append_event(
                session,
                actor=actor,
                action="release.recorded",
                subject=f"{release.bundle}@{release.version}",
                details={
                    "bundle": release.bundle,
                    "version": release.version,
                    "commit": release.commit,
                    "release_digest": release.digest,
                    "release_id": row.id,
                },
                record=row,
            )
            return row.id


def to_release(row: ReleaseRow) -> Release:
    return Release(
        bundle=row.bundle,
        version=row.version,
        commit=row.commit,
        artifacts=tuple(Artifact(a.name, a.relative_path, a.sha256) for a in row.artifacts),
        config_digest=row.config_digest,
    )


def _check_same_release(recorded: ReleaseRow, release: Release) -> None:
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


def _release_query(bundle: str, version: str) -> Select[ReleaseRow]:
    return select(ReleaseRow).where(ReleaseRow.bundle == bundle, ReleaseRow.version == version)


def _to_row(release: Release) -> ReleaseRow:
    return ReleaseRow(
        bundle=release.bundle,
        version=release.version,
        commit=release.commit,
        config_digest=release.config_digest,
        digest=release.digest,
        recorded_at=now(),
        artifacts=[
            ArtifactRow(position=position, name=a.name, relative_path=a.relative_path, sha256=a.sha256)
            for position, a in enumerate(release.artifacts)
        ],
    )

"""The artifact store: a release's built files, kept by release digest where every worker reads them.

Tasks of one run may land on machines sharing no disk, so the release task puts the built
files here and later tasks fetch them, checking each sha256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from bundle_promotion.errors import ReleaseError
from bundle_promotion.ledger.records import Artifact


class StoragePath(Protocol):
    """What the store needs of its root: ``pathlib.Path`` and Airflow's ``ObjectStoragePath`` fit."""

    def __truediv__(self, key: str) -> StoragePath: ...
    def exists(self) -> bool: ...
    def mkdir(self, *, parents: bool = ..., exist_ok: bool = ...) -> None: ...
    def read_bytes(self) -> bytes: ...
    def write_bytes(self, data: bytes) -> int: ...


class ArtifactStore:
    """Release artifacts at ``<root>/<release digest>/<file name>``.

    Keying by release digest makes a stored file immutable in effect: other bytes would
    be another release. Files are read and written whole; wheels are small.
    """

    def __init__(self, root: StoragePath) -> None:
        self._root = root

    def put(self, release_digest: str, bundle_dir: Path, artifacts: Sequence[Artifact]) -> None:
        """Store the built files; a retry skips the files already there intact."""
        folder = self._root / release_digest
        folder.mkdir(parents=True, exist_ok=True)
        for artifact in artifacts:
            built = bundle_dir / artifact.relative_path
            data = built.read_bytes()
            _verify(artifact, data, location=str(built))
            stored = folder / artifact.name
            # Anything else there is a write cut short; writing again repairs it.
            if not (stored.exists() and stored.read_bytes() == data):
                stored.write_bytes(data)

    def witness_audit_head(self, head: Mapping[str, Any]) -> None:
        """Add the audit chain's head to ``audit/head.json``, keeping every head before it: a copy
        outside the ledger database that truncating or re-hashing the chain cannot match."""
        heads = self.audit_heads()
        if heads and heads[-1]["seq"] >= head["seq"]:
            return  # witnessed already
        folder = self._root / "audit"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "head.json").write_bytes(json.dumps({"heads": [*heads, dict(head)]}, indent=1).encode())

    def audit_heads(self) -> list[dict[str, Any]]:
        """The chain heads witnessed so far, oldest first."""
        witness = self._root / "audit" / "head.json"
        if not witness.exists():
            return []
        return list(json.loads(witness.read_bytes())["heads"])

    def fetch(self, release_digest: str, artifacts: Sequence[Artifact], bundle_dir: Path) -> None:
        """Write each file to ``bundle_dir/<relative_path>``, where the build had put it."""
        for artifact in artifacts:
            stored = self._root / release_digest / artifact.name
            if not stored.exists():
                raise ReleaseError(
                    f"{stored} is missing: the artifact store has no {artifact.name} for release "
                    f"{release_digest}. Rerun the release task; when workers share no disk, point the "
                    "store at an s3://, gs:// or abfs:// URL every worker can reach"
                )
            data = stored.read_bytes()
            _verify(artifact, data, location=str(stored))
            destination = bundle_dir / artifact.relative_path
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)


def _verify(artifact: Artifact, data: bytes, *, location: str) -> None:
    actual = hashlib.sha256(data).hexdigest()
    if actual != artifact.sha256:
        raise ReleaseError(
            f"{location} has sha256 {actual}, but the release recorded {artifact.sha256} for "
            f"{artifact.name}: the file changed after the build; rerun the release task"
        )

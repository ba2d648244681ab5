"""The artifact store as the audit chain's witness: ``audit/head.json`` keeps every head it was given."""

from __future__ import annotations

from pathlib import Path

from bundle_promotion.release.store import ArtifactStore


def test_heads_are_appended_and_earlier_ones_kept(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)

    store.witness_audit_head({"seq": 4, "hash": "a" * 64, "mac": None})
    store.witness_audit_head({"seq": 9, "hash": "b" * 64, "mac": None})

    assert [head["seq"] for head in store.audit_heads()] == [4, 9]
    assert (tmp_path / "audit" / "head.json").is_file()


def test_a_head_no_newer_than_the_last_witnessed_is_not_added(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    store.witness_audit_head({"seq": 9, "hash": "b" * 64, "mac": None})

    store.witness_audit_head({"seq": 3, "hash": "c" * 64, "mac": None})

    assert store.audit_heads() == [{"seq": 9, "hash": "b" * 64, "mac": None}]


def test_a_store_that_witnessed_nothing_has_no_heads(tmp_path: Path) -> None:
    assert ArtifactStore(tmp_path).audit_heads() == []

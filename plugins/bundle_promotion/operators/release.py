"""The first task of a promotion: cut the release every environment will get."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Context

from bundle_promotion import settings
from bundle_promotion.operators.base import FromBundleSource, PromotionOperator


class BuildReleaseOperator(FromBundleSource, PromotionOperator):
    """Resolve ``version`` to a commit, check the bundle for every target, build its artifacts once.

    ``targets`` lists each environment's target. They are checked without asking their
    workspaces, so one workspace's outage blocks no environment but its own; each deploy
    resolves its target as the user behind its connection.

    Returns the ledger's release id; later tasks fetch the source by commit and the artifacts by
    digest, so they may run on any worker. Running it again for a recorded version builds nothing.

    :param version: the release tag to build, for example ``v1.2.0`` (templated)
    :param targets: every environment's bundle target, each checked before anything is built
    :param test_jobs: bundle keys of the jobs the spec's test suites run, checked to exist
    """

    template_fields: Sequence[str] = ("version", "repo")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        version: str,
        targets: Sequence[str],
        test_jobs: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.targets = list(targets)
        self.test_jobs = list(test_jobs)

    def execute(self, context: Context) -> int:
        from bundle_promotion.lifecycle.promotion import cut_release

        release_id = cut_release(
            self.source(),
            self.version,
            targets=self.targets,
            test_jobs=self.test_jobs,
            ledger=settings.ledger(),
            store=settings.artifact_store(),
            checkouts=settings.checkouts(),
        )
        self.log.info("Release %s of %s is ledger release %s", self.version, self.bundle, release_id)
        return release_id

"""The first task of a promotion: cut the release every environment will get."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from bundle_promotion import settings


class BuildReleaseOperator(BaseOperator):
    """Resolve ``version`` to a commit, check the bundle for every target, build its artifacts once.

    ``deployers`` lists each environment's ``(target, databricks_conn_id)``: a target is resolved
    as the user behind its connection, the one who will deploy it, would see it.

    Returns the ledger's release id; later tasks fetch the source by commit and the artifacts by
    digest, so they may run on any worker. Running it again for a recorded version builds nothing.
    """

    template_fields: Sequence[str] = ("version", "repo")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        bundle: str,
        repo: str,
        bundle_path: str = ".",
        version: str,
        deployers: Sequence[tuple[str, str]],
        test_jobs: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.repo = repo
        self.bundle_path = bundle_path
        self.version = version
        self.deployers = [tuple(pair) for pair in deployers]
        self.test_jobs = list(test_jobs)

    def execute(self, context: Context) -> int:
        from bundle_promotion.lifecycle.promotion import BundleSource, cut_release

        release_id = cut_release(
            BundleSource(self.bundle, self.repo, self.bundle_path),
            self.version,
            targets=self._targets_with_their_deployers(),
            test_jobs=self.test_jobs,
            ledger=settings.ledger(),
            store=settings.artifact_store(),
            checkouts=settings.checkouts(),
        )
        self.log.info("Release %s of %s is ledger release %s", self.version, self.bundle, release_id)
        return release_id

    def _targets_with_their_deployers(self) -> list[tuple[str, dict[str, Any]]]:
        """Each target with the user its environment's connection deploys as."""
        from bundle_promotion.hooks.workspace import WorkspaceHook

        users = {
            conn_id: WorkspaceHook(databricks_conn_id=conn_id, caller=type(self).__name__).call(
                "GET", "2.0/preview/scim/v2/Me"
            )
            for conn_id in {conn_id for _, conn_id in self.deployers}
        }
        return [(target, users[conn_id]) for target, conn_id in self.deployers]

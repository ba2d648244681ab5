"""The base of the promotion's operators: a final error fails the task at once; others retry.

Airflow retries a failed task up to its ``retries``, whatever the error. Retrying a wrong
config or a failed verification only delays the rollback, and a retry must never hide a
verdict, so an error that ``errors.is_final`` judges final becomes ``AirflowFailException``,
which Airflow never retries. Transient errors (5xx, 429, no answer, a held lock) keep the
task's retries, with their backoff.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator, Context

from bundle_promotion.errors import is_final

if TYPE_CHECKING:
    from bundle_promotion.hooks.workspace import WorkspaceHook
    from bundle_promotion.lifecycle.promotion import BundleSource

_F = TypeVar("_F", bound=Callable[..., Any])

# The generated DAGs' tasks retry a transient failure with backoff, 30 s then 1 and 2 min, before
# the failure counts: only a task that has finally failed starts the automatic rollback, whose
# first step waits for ONE_FAILED (a try that will be retried is UP_FOR_RETRY, not FAILED).
RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


def actor_of(context: Context) -> str:
    """Who a step acts for in the audit trail: the person who triggered the run, else the one
    system actor the ledger records for writes no person asked for."""
    from bundle_promotion.ledger.audit import SYSTEM_ACTOR

    user = getattr(context.get("dag_run"), "triggering_user_name", None)
    return str(user) if user else SYSTEM_ACTOR


@contextmanager
def failing_fast() -> Iterator[None]:
    """Turn a final error, or a wait past its deadline, into ``AirflowFailException``.

    The message stays the same and the error becomes its cause. A deferral's timeout counts
    as final: waiting again as long would hold off the rollback for nothing.
    """
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferralTimeout

    try:
        yield
    except TaskDeferralTimeout as timeout:
        raise AirflowFailException(f"the task waited past its timeout ({timeout})") from timeout
    except Exception as error:
        if is_final(error):
            raise AirflowFailException(str(error)) from error
        raise


def _failing_fast(method: _F) -> _F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with failing_fast():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class PromotionOperator(BaseOperator):
    """A task of a promotion or rollback. Its ``execute``, and whatever a deferral resumes
    (``execute_complete``, a timeout), fail at once on a final error and retry the rest."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "execute" in vars(cls):
            cls.execute = _failing_fast(vars(cls)["execute"])  # type: ignore[method-assign]

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        from airflow.sdk.exceptions import TaskDeferralTimeout

        with failing_fast():
            try:
                return super().resume_execution(next_method, next_kwargs, context)
            except TaskDeferralTimeout:
                self.on_deferral_timeout(context)
                raise

    def on_deferral_timeout(self, context: Context) -> None:
        """A deferral ran out of time and the task is about to fail: stop what it started.

        May raise a final error that says more than Airflow's "Trigger timeout".
        """


class FromBundleSource:
    """Mixed into a task that reads the bundle's git source.

    :param bundle: the bundle's name, as in its promotion spec
    :param repo: the git repository holding the bundle: a URL, or a local path
    :param bundle_path: the bundle's folder inside the repository
    """

    def __init__(self, *, bundle: str, repo: str, bundle_path: str = ".", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bundle = bundle
        self.repo = repo
        self.bundle_path = bundle_path

    def source(self) -> BundleSource:
        from bundle_promotion.lifecycle.promotion import BundleSource

        return BundleSource(self.bundle, self.repo, self.bundle_path)


class OnWorkspace:
    """Mixed into a task that acts on one Databricks workspace.

    :param databricks_conn_id: the Airflow connection to the environment's workspace (templated)
    """

    def __init__(self, *, databricks_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.databricks_conn_id = databricks_conn_id

    def workspace(self, **options: Any) -> WorkspaceHook:
        """The workspace client, its caller the task's class; ``options`` go to the hook."""
        from bundle_promotion.hooks.workspace import WorkspaceHook

        return WorkspaceHook(
            databricks_conn_id=self.databricks_conn_id, caller=type(self).__name__, **options
        )

"""The web tests share the approvals API's fixtures: a ledger, the API server's app, a run waiting in prod."""

from tests.web.test_approvals_api import client, ledger, spec, waiting_in_prod  # noqa: F401

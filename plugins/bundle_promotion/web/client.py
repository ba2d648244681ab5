"""A client of the approvals API, for the ``approve`` command and the demo.

It talks HTTP to Airflow's API server, so the server's auth manager decides who the
caller is; nothing here can claim another identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from bundle_promotion.errors import ApprovalRefused, BundlePromotionError
from bundle_promotion.spec.dag_ids import promotion_dag_id

_TIMEOUT_SECONDS = 30


def login(api_url: str, username: str, password: str) -> str:
    """A JWT from Airflow's ``/auth/token`` (SimpleAuthManager and FAB both offer it)."""
    response = requests.post(
        f"{api_url.rstrip('/')}/auth/token",
        json={"username": username, "password": password},
        timeout=_TIMEOUT_SECONDS,
    )
    if response.status_code >= 400:
        raise BundlePromotionError(
            f"login as {username} at {api_url} failed with HTTP {response.status_code}"
        )
    return str(response.json()["access_token"])


@dataclass(frozen=True)
class ApprovalsClient:
    api_url: str
    token: str

    def pending_gates(self, bundle: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"dags/{promotion_dag_id(bundle)}/gates"))

    def release_digest(self, bundle: str, environment: str, version: str) -> str:
        """The digest of ``version`` as it waits at ``environment``: what an approval must name."""
        for pending in self.pending_gates(bundle):
            if (pending["environment"], pending["version"]) == (environment, version):
                return str(pending["release_digest"])
        raise BundlePromotionError(
            f"{version} of {bundle} is not waiting at {environment}; pass --digest to approve it ahead"
        )

    def submit(self, bundle: str, environment: str, decision: dict[str, Any]) -> dict[str, Any]:
        """Post an approval or rejection; ``ApprovalRefused`` carries the server's reason."""
        return dict(
            self._call(
                "POST", f"dags/{promotion_dag_id(bundle)}/environments/{environment}/approvals", decision
            )
        )

    def clear_hold(self, bundle: str, environment: str, reason: str) -> dict[str, Any] | None:
        """Clear a rollback's hold as the token's user; None when the environment was not held."""
        cleared = self._call(
            "POST",
            f"dags/{promotion_dag_id(bundle)}/environments/{environment}/hold/clear",
            {"reason": reason},
        )
        return dict(cleared) if cleared is not None else None

    def lift_signature_lockout(self, signer: str, reason: str) -> bool:
        """Let a locked-out signer sign again, as the token's user (an administrator); False if not locked."""
        lifted = self._call("POST", f"signers/{quote(signer, safe='')}/lockout/lift", {"reason": reason})
        return bool(lifted["lifted"])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.request(
            method,
            f"{self.api_url.rstrip('/')}/bundle-promotion/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=_TIMEOUT_SECONDS,
        )
        if response.status_code == 403:
            raise ApprovalRefused(_detail(response))
        if response.status_code >= 400:
            raise BundlePromotionError(
                f"{method} {path} failed with HTTP {response.status_code}: {_detail(response)}"
            )
        return response.json()


def _detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text

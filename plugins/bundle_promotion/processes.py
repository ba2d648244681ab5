"""What a child process we start may see: an allow-listed environment, and output scrubbed of secrets.

A worker's environment holds every environment's secrets (``AIRFLOW_CONN_*`` tokens, database
URLs, cloud keys). A child gets what any process needs to run (search path, home, locale,
temp folder, proxies, CA bundles) and only the settings its caller names: the build tools'
own, or one workspace's credentials.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

_ANY_PROCESS = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        *(f"{name}_PROXY" for name in ("HTTP", "HTTPS", "ALL", "NO")),
        *(f"{name}_proxy" for name in ("http", "https", "all", "no")),
    }
)
_ANY_PROCESS_PREFIXES = ("LC_",)
# Named like a secret: its value never leaves a child's output. URL credentials (`user:pw@`) neither.
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|_KEY$|_AUTH$", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
SCRUBBED = "***"


def child_environment(
    *, prefixes: Iterable[str] = (), source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables of ``source`` (the worker's environment) any process needs, plus those
    starting with one of ``prefixes``, e.g. ``("UV_", "PIP_")`` for a build."""
    allowed = (*_ANY_PROCESS_PREFIXES, *prefixes)
    variables = os.environ if source is None else source
    return {
        name: value for name, value in variables.items() if name in _ANY_PROCESS or name.startswith(allowed)
    }


def secrets_in(environment: Mapping[str, str]) -> list[str]:
    """The values of ``environment``'s variables named like secrets."""
    return [value for name, value in environment.items() if value and _SECRET_NAME.search(name)]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret and every URL's credentials replaced, fit for a log or an error."""
    for secret in sorted(secrets, key=len, reverse=True):  # a secret holding another goes whole
        text = text.replace(secret, SCRUBBED)
    return _URL_CREDENTIALS.sub("", text)

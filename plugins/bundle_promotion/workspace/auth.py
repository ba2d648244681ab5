"""The Databricks CLI's authentication, for the `bundle-promotion bundle` commands.

As `databricks` resolves it (databricks-sdk's unified auth): `-p/--profile` or
`DATABRICKS_CONFIG_PROFILE` names a profile of `~/.databrickscfg` (or `DATABRICKS_CONFIG_FILE`);
without one, `DATABRICKS_HOST` and the other `DATABRICKS_*` variables; without those, the
bundle target's `workspace.profile`, or the profile whose host is its `workspace.host`; else
the file's `DEFAULT` profile. A host with a personal access token and no `auth_type` is used as
it is: that is most users, and it keeps a validate fast. Every other method (OAuth, Azure,
Google, ..., or any explicit `auth_type`) is delegated to databricks-sdk's `Config`, imported
only then since it takes seconds to load.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bundle_promotion.errors import BundlePromotionError

if TYPE_CHECKING:
    from bundle_promotion.workspace.rest import Headers, RestWorkspace

DEFAULT_PROFILE = "DEFAULT"
# Variables that configure an auth method other than a token (databricks-sdk's `Config` attributes).
_OTHER_AUTH_VARIABLES = (
    "DATABRICKS_AUTH_TYPE",
    "DATABRICKS_CLIENT_ID",
    "DATABRICKS_USERNAME",
    "DATABRICKS_AZURE_CLIENT_ID",
    "ARM_CLIENT_ID",
    "DATABRICKS_GOOGLE_SERVICE_ACCOUNT",
    "DATABRICKS_TOKEN_FEDERATION_ENABLED",
)


class AuthError(BundlePromotionError):
    """The CLI's authentication could not be resolved: a profile or host is missing or unusable."""


@dataclass(frozen=True)
class CliAuth:
    """Where the credentials came from, the workspace they reach and the headers that prove them."""

    source: str  # e.g. "DATABRICKS_HOST and DATABRICKS_TOKEN", "profile dev of ~/.databrickscfg"
    host: str
    headers: Headers

    def workspace(self) -> RestWorkspace:
        from bundle_promotion.workspace.rest import RestWorkspace

        return RestWorkspace(self.host, self.headers)


def resolve_cli_auth(
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    bundle_workspace: Callable[[], Mapping[str, str]] | None = None,
) -> CliAuth | None:
    """The credentials the Databricks CLI would use, or None when nothing is configured.

    `bundle_workspace` gives the bundle target's `workspace.profile` and `workspace.host`; it is
    asked only when neither `-p` nor the environment decides, as the CLI consults them then:
    the profile it names, else the one profile whose host is the bundle's.
    """
    environ = os.environ if environ is None else environ
    profile = profile or environ.get("DATABRICKS_CONFIG_PROFILE")
    config_file = Path(environ.get("DATABRICKS_CONFIG_FILE") or Path.home() / ".databrickscfg").expanduser()
    if profile:
        return _from_profile(profile, _profile(config_file, profile, required=True), config_file)
    host = environ.get("DATABRICKS_HOST")
    if host:
        token = environ.get("DATABRICKS_TOKEN")
        if token and not any(environ.get(name) for name in _OTHER_AUTH_VARIABLES):
            return CliAuth("DATABRICKS_HOST and DATABRICKS_TOKEN", _https(host), _bearer(token))
        return _through_sdk("the DATABRICKS_* environment variables", host=host)
    workspace = bundle_workspace() if bundle_workspace else {}
    if workspace.get("profile"):
        name = workspace["profile"]
        return _from_profile(name, _profile(config_file, name, required=True), config_file)
    if workspace.get("host"):
        return _profile_of_host(config_file, workspace["host"])
    default = _profile(config_file, DEFAULT_PROFILE, required=False)
    return _from_profile(DEFAULT_PROFILE, default, config_file) if default else None


def _profile_of_host(config_file: Path, host: str) -> CliAuth | None:
    """The one profile whose host is `host`; several are an error, as in the CLI."""
    parser = _parsed(config_file)
    matching = [name for name in parser.sections() if _https(parser[name].get("host", "")) == _https(host)]
    if len(matching) > 1:
        raise AuthError(
            f"multiple profiles of {config_file} match the bundle's workspace.host {host}: "
            f"{', '.join(matching)}; pick one with -p or workspace.profile"
        )
    if not matching:
        return None
    return _from_profile(matching[0], dict(parser[matching[0]]), config_file)


def _parsed(config_file: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(default_section="__no_defaults__", interpolation=None)
    try:
        parser.read(config_file, encoding="utf-8")
    except configparser.Error as error:
        raise AuthError(f"{config_file}: cannot read it: {error}") from None
    return parser


def _profile(config_file: Path, name: str, *, required: bool) -> dict[str, str] | None:
    parser = _parsed(config_file)
    if parser.has_section(name):
        return dict(parser[name])
    if required:
        known = ", ".join(parser.sections()) or "none"
        raise AuthError(
            f"{config_file} has no {name} profile configured (profiles: {known}); "
            f"run `databricks auth login --profile {name}` or pick another with -p"
        )
    return None


def _from_profile(name: str, settings: dict[str, str] | None, config_file: Path) -> CliAuth:
    settings = settings or {}
    source = f"profile {name} of {config_file}"
    if not settings.get("host"):
        raise AuthError(f"{source} has no host; add `host = https://<workspace>` to it")
    if settings.get("token") and not settings.get("auth_type"):
        return CliAuth(source, _https(settings["host"]), _bearer(settings["token"]))
    return _through_sdk(source, profile=name, config_file=str(config_file))


def _through_sdk(
    source: str, *, host: str | None = None, profile: str | None = None, config_file: str | None = None
) -> CliAuth:
    """Any unified-auth method databricks-sdk knows: OAuth M2M and U2M, Azure, Google, OIDC, ..."""
    from databricks.sdk.config import Config

    try:
        config = Config(host=host, profile=profile, config_file=config_file)
    except ValueError as error:  # the SDK's own message names what is missing
        raise AuthError(f"{source}: {error}") from None
    return CliAuth(f"{source} ({config.auth_type} through databricks-sdk)", config.host, config.authenticate)


def _bearer(token: str) -> Headers:
    headers = {"Authorization": f"Bearer {token}"}
    return lambda: dict(headers)


def _https(host: str) -> str:
    host = host.rstrip("/")
    return host if "://" in host else f"https://{host}"

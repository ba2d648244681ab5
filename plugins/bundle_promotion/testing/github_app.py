"""The FastAPI app that answers as GitHub Enterprise's REST API under ``/api/v3``.

Answers have GitHub's shapes (PyGithub parses them), with ``url`` fields pointing back at
the emulator. Every request passes the gateway first: an injected fault, then the token.
The gateway records each request, whatever the answer. Handlers are ``async`` so that they,
and the emulator's seeding, all run on the server's event loop: state needs no lock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bundle_promotion.testing.github_state import (
    CheckRun,
    Commit,
    Deployment,
    DeploymentStatus,
    GitHubState,
    Pull,
    RecordedRequest,
    Repository,
    Review,
    now,
)

API_PREFIX = "/api/v3"
_DOCS = "https://docs.github.com/rest"
_DEFAULT_PER_PAGE = 30
_MAX_PER_PAGE = 100
_DEPLOYMENT_STATES = frozenset(
    {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
)


class GitHubError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def create_app(state: GitHubState) -> FastAPI:
    app = FastAPI(title="GitHub emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.github = state
    app.middleware("http")(_through_gateway)
    app.add_exception_handler(GitHubError, _github_error)
    app.add_exception_handler(StarletteHTTPException, _not_found)
    app.include_router(api, prefix=API_PREFIX)
    return app


async def _through_gateway(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    state: GitHubState = request.app.state.github
    body = await request.body()
    response: Response
    if state.faults:
        response = _error_response(_fault(state.faults.pop(0)))
    elif _token(request) != state.token:
        response = _error_response(GitHubError(401, "Bad credentials"))
    else:
        response = await call_next(request)
    parsed = json.loads(body) if body else None
    state.log.append(
        RecordedRequest(
            request.method, request.url.path, dict(request.query_params), parsed, response.status_code
        )
    )
    return response


def _token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() in ("token", "bearer") else None


def _fault(status: int) -> GitHubError:
    if status == 403:  # GitHub's primary rate limit: 403 with the limit's headers
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time()) + 1),
            "retry-after": "1",
        }
        return GitHubError(403, "API rate limit exceeded for user ID 1.", headers)
    return GitHubError(status, "Server Error" if status >= 500 else "Injected fault")


def _error_response(error: GitHubError) -> JSONResponse:
    body = {"message": error.message, "documentation_url": _DOCS, "status": str(error.status)}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


async def _github_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, GitHubError)
    return _error_response(error)


async def _not_found(_request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    return _error_response(GitHubError(error.status_code, "Not Found"))


api = APIRouter()


class _Urls:
    """The emulator's own addresses, as GitHub Enterprise spells them."""

    def __init__(self, request: Request, repo: Repository | None = None) -> None:
        root = str(request.base_url).rstrip("/")
        self.web = root
        self.api = root + API_PREFIX
        self.repo = f"{self.api}/repos/{repo.full_name}" if repo else ""
        self.repo_web = f"{root}/{repo.full_name}" if repo else ""


def _state(request: Request) -> GitHubState:
    state: GitHubState = request.app.state.github
    return state


def _repo(request: Request, owner: str, name: str) -> Repository:
    repo = _state(request).repos.get(f"{owner}/{name}")
    if repo is None:
        raise GitHubError(404, "Not Found")
    return repo


def _page(request: Request, response: Response, items: Sequence[Any]) -> list[Any]:
    """One page of ``items``, with GitHub's ``Link`` header pointing at the next and last pages."""
    per_page = min(int(request.query_params.get("per_page", _DEFAULT_PER_PAGE)), _MAX_PER_PAGE)
    page = max(int(request.query_params.get("page", 1)), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    links = {"next": page + 1} if page < last else {}
    if links:
        links["last"] = last
        response.headers["Link"] = ", ".join(
            f'<{_with_page(request, number)}>; rel="{rel}"' for rel, number in links.items()
        )
    return list(items[(page - 1) * per_page : page * per_page])


def _with_page(request: Request, page: int) -> str:
    query = {**request.query_params, "page": str(page)}
    return f"{str(request.url).split('?')[0]}?{urlencode(query)}"


def _time(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def _user(urls: _Urls, login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": sum(login.encode()),
        "type": "User",
        "site_admin": False,
        "url": f"{urls.api}/users/{login}",
        "html_url": f"{urls.web}/{login}",
    }


# Users and repositories -------------------------------------------------------------------


@api.get("/user")
async def authenticated_user(request: Request) -> dict[str, Any]:
    return _user(_Urls(request), _state(request).user)


@api.get("/repos/{owner}/{name}")
async def repository(request: Request, owner: str, name: str) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    return _repository(_Urls(request, repo), repo)


def _repository(urls: _Urls, repo: Repository) -> dict[str, Any]:
    owner, name = repo.full_name.split("/")
    return {
        "id": repo.id,
        "name": name,
        "full_name": repo.full_name,
        "owner": _user(urls, owner),
        "private": True,
        "default_branch": repo.default_branch,
        "url": urls.repo,
        "html_url": urls.repo_web,
    }


# Git refs, tags, commits and contents -----------------------------------------------------


@api.get("/repos/{owner}/{name}/git/ref/{ref:path}")
async def git_ref(request: Request, owner: str, name: str, ref: str) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    target = repo.refs.get(f"refs/{ref}")
    if target is None:
        raise GitHubError(404, "Not Found")
    urls = _Urls(request, repo)
    kind = "tag" if target in repo.tag_objects else "commit"
    return {
        "ref": f"refs/{ref}",
        "url": f"{urls.repo}/git/refs/{quote(ref)}",
        "object": {"type": kind, "sha": target, "url": f"{urls.repo}/git/{kind}s/{target}"},
    }


@api.get("/repos/{owner}/{name}/git/tags/{sha}")
async def git_tag(request: Request, owner: str, name: str, sha: str) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    tag = repo.tag_objects.get(sha)
    if tag is None:
        raise GitHubError(404, "Not Found")
    urls = _Urls(request, repo)
    commit = repo.commits[tag.commit]
    return {
        "sha": tag.sha,
        "tag": tag.name,
        "message": tag.message,
        "url": f"{urls.repo}/git/tags/{tag.sha}",
        "tagger": _signature(commit),
        "object": {"type": "commit", "sha": tag.commit, "url": f"{urls.repo}/git/commits/{tag.commit}"},
    }


@api.get("/repos/{owner}/{name}/tags")
async def tags(request: Request, response: Response, owner: str, name: str) -> list[dict[str, Any]]:
    repo = _repo(request, owner, name)
    urls = _Urls(request, repo)
    named = sorted(
        (ref.removeprefix("refs/tags/"), repo.commit_of(ref))
        for ref in repo.refs
        if ref.startswith("refs/tags/")
    )
    return _page(
        request,
        response,
        [
            {
                "name": tag,
                "commit": {"sha": commit.sha, "url": f"{urls.repo}/commits/{commit.sha}"},
                "zipball_url": f"{urls.repo}/zipball/refs/tags/{tag}",
                "tarball_url": f"{urls.repo}/tarball/refs/tags/{tag}",
            }
            for tag, commit in named
            if commit is not None
        ],
    )


@api.get("/repos/{owner}/{name}/commits/{ref}")
async def commit(request: Request, owner: str, name: str, ref: str) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    return _commit(_Urls(request, repo), _commit_of(repo, ref))


def _commit_of(repo: Repository, ref: str) -> Commit:
    found = repo.commit_of(ref)
    if found is None:
        raise GitHubError(422, f"No commit found for SHA: {ref}")
    return found


def _commit(urls: _Urls, commit: Commit) -> dict[str, Any]:
    return {
        "sha": commit.sha,
        "url": f"{urls.repo}/commits/{commit.sha}",
        "html_url": f"{urls.repo_web}/commit/{commit.sha}",
        "commit": {
            "message": commit.message,
            "author": _signature(commit),
            "committer": _signature(commit),
            "url": f"{urls.repo}/git/commits/{commit.sha}",
        },
        "author": _user(urls, commit.author),
        "committer": _user(urls, commit.author),
        "parents": [{"sha": parent, "url": f"{urls.repo}/commits/{parent}"} for parent in commit.parents],
        "files": [],
    }


def _signature(commit: Commit) -> dict[str, Any]:
    return {"name": commit.author, "email": f"{commit.author}@example.com", "date": _time(commit.date)}


@api.get("/repos/{owner}/{name}/contents/{path:path}")
async def contents(request: Request, owner: str, name: str, path: str) -> Any:
    repo = _repo(request, owner, name)
    commit = _commit_of(repo, request.query_params.get("ref", repo.default_branch))
    urls = _Urls(request, repo)
    path = path.strip("/")
    if path in commit.files:
        return _content(urls, commit, path, with_content=True)
    inside = sorted({_child_of(path, file) for file in commit.files if file.startswith(f"{path}/")})
    if not inside:
        raise GitHubError(404, "Not Found")
    return [_content(urls, commit, child, with_content=False) for child in inside]


def _child_of(folder: str, file: str) -> str:
    return f"{folder}/{file[len(folder) + 1 :].split('/')[0]}"


def _content(urls: _Urls, commit: Commit, path: str, *, with_content: bool) -> dict[str, Any]:
    is_file = path in commit.files
    data = commit.files[path].encode() if is_file else b""
    entry = {
        "type": "file" if is_file else "dir",
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "size": len(data),
        "sha": _blob_sha(data),
        "url": f"{urls.repo}/contents/{quote(path)}?ref={commit.sha}",
        "html_url": f"{urls.repo_web}/blob/{commit.sha}/{quote(path)}",
        "download_url": None,
    }
    if with_content:
        entry |= {"encoding": "base64", "content": base64.encodebytes(data).decode()}
    return entry


def _blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


# Check runs -------------------------------------------------------------------------------


@api.get("/repos/{owner}/{name}/commits/{ref}/check-runs")
async def check_runs(request: Request, response: Response, owner: str, name: str, ref: str) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    sha = _commit_of(repo, ref).sha
    runs = [run for run in repo.check_runs if run.head_sha == sha]
    if request.query_params.get("filter", "latest") == "latest":
        latest = {run.name: run for run in sorted(runs, key=lambda run: run.id)}
        runs = list(latest.values())
    if check_name := request.query_params.get("check_name"):
        runs = [run for run in runs if run.name == check_name]
    if status := request.query_params.get("status"):
        runs = [run for run in runs if run.status == status]
    urls = _Urls(request, repo)
    runs.sort(key=lambda run: run.id, reverse=True)
    return {
        "total_count": len(runs),
        "check_runs": [_check_run(urls, run) for run in _page(request, response, runs)],
    }


def _check_run(urls: _Urls, run: CheckRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "head_sha": run.head_sha,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": _time(run.started_at),
        "completed_at": _time(run.completed_at),
        "url": f"{urls.repo}/check-runs/{run.id}",
        "html_url": f"{urls.repo_web}/runs/{run.id}",
        "details_url": f"{urls.repo_web}/runs/{run.id}",
        "external_id": "",
        "output": {"title": None, "summary": None, "text": None, "annotations_count": 0},
        "pull_requests": [],
    }


# Pull requests and reviews ----------------------------------------------------------------


@api.get("/repos/{owner}/{name}/commits/{sha}/pulls")
async def commit_pulls(request: Request, response: Response, owner: str, name: str, sha: str) -> list[Any]:
    repo = _repo(request, owner, name)
    urls = _Urls(request, repo)
    found = repo.pulls_containing(_commit_of(repo, sha).sha)
    return [_pull(urls, repo, pull) for pull in _page(request, response, found)]


@api.get("/repos/{owner}/{name}/pulls")
async def pulls(request: Request, response: Response, owner: str, name: str) -> list[Any]:
    repo = _repo(request, owner, name)
    urls = _Urls(request, repo)
    return [_pull(urls, repo, pull) for pull in _page(request, response, list(repo.pulls.values()))]


@api.get("/repos/{owner}/{name}/pulls/{number}")
async def pull(request: Request, owner: str, name: str, number: int) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    if number not in repo.pulls:
        raise GitHubError(404, "Not Found")
    return _pull(_Urls(request, repo), repo, repo.pulls[number])


def _pull(urls: _Urls, repo: Repository, pull: Pull) -> dict[str, Any]:
    repository = _repository(urls, repo)
    return {
        "id": pull.number,
        "number": pull.number,
        "state": "open",
        "title": pull.title,
        "user": _user(urls, pull.author),
        "created_at": _time(pull.created_at),
        "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": repository},
        "base": {
            "ref": pull.base_ref,
            "sha": repo.refs.get(f"refs/heads/{pull.base_ref}"),
            "repo": repository,
        },
        "draft": False,
        "merged": False,
        "url": f"{urls.repo}/pulls/{pull.number}",
        "html_url": f"{urls.repo_web}/pull/{pull.number}",
    }


@api.get("/repos/{owner}/{name}/pulls/{number}/reviews")
async def reviews(request: Request, response: Response, owner: str, name: str, number: int) -> list[Any]:
    repo = _repo(request, owner, name)
    if number not in repo.pulls:
        raise GitHubError(404, "Not Found")
    urls = _Urls(request, repo)
    found = [review for review in repo.reviews if review.pull_number == number]
    return [_review(urls, review) for review in _page(request, response, found)]


def _review(urls: _Urls, review: Review) -> dict[str, Any]:
    return {
        "id": review.id,
        "user": _user(urls, review.reviewer),
        "body": review.body,
        "state": review.state,
        "commit_id": review.commit_id,
        "submitted_at": _time(review.submitted_at),
        "author_association": "MEMBER",
        "html_url": f"{urls.repo_web}/pull/{review.pull_number}#pullrequestreview-{review.id}",
        "pull_request_url": f"{urls.repo}/pulls/{review.pull_number}",
    }


# Deployments and their statuses -----------------------------------------------------------


@api.get("/repos/{owner}/{name}/deployments")
async def deployments(request: Request, response: Response, owner: str, name: str) -> list[Any]:
    repo = _repo(request, owner, name)
    query = request.query_params
    found = [
        deployment
        for deployment in reversed(repo.deployments)
        if all(
            query.get(key) in (None, value)
            for key, value in (
                ("sha", deployment.sha),
                ("ref", deployment.ref),
                ("environment", deployment.environment),
                ("task", deployment.task),
            )
        )
    ]
    urls = _Urls(request, repo)
    return [_deployment(urls, deployment) for deployment in _page(request, response, found)]


@api.post("/repos/{owner}/{name}/deployments", status_code=201)
async def create_deployment(request: Request, owner: str, name: str) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    body = await _json_object(request)
    ref = body.get("ref")
    if not isinstance(ref, str) or not ref:
        raise GitHubError(422, "Invalid request. ref is required.")
    state = _state(request)
    deployment = Deployment(
        id=state.new_id(),
        sha=_commit_of(repo, ref).sha,
        ref=ref,
        environment=str(body.get("environment", "production")),
        task=str(body.get("task", "deploy")),
        description=str(body.get("description") or ""),
        payload=body.get("payload", {}),
        creator=state.user,
        created_at=now(),
    )
    repo.deployments.append(deployment)
    return _deployment(_Urls(request, repo), deployment)


@api.get("/repos/{owner}/{name}/deployments/{deployment_id}")
async def deployment(request: Request, owner: str, name: str, deployment_id: int) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    return _deployment(_Urls(request, repo), _deployment_of(repo, deployment_id))


def _deployment_of(repo: Repository, deployment_id: int) -> Deployment:
    for candidate in repo.deployments:
        if candidate.id == deployment_id:
            return candidate
    raise GitHubError(404, "Not Found")


def _deployment(urls: _Urls, deployment: Deployment) -> dict[str, Any]:
    url = f"{urls.repo}/deployments/{deployment.id}"
    return {
        "id": deployment.id,
        "sha": deployment.sha,
        "ref": deployment.ref,
        "task": deployment.task,
        "payload": deployment.payload,
        "environment": deployment.environment,
        "original_environment": deployment.environment,
        "description": deployment.description,
        "creator": _user(urls, deployment.creator),
        "created_at": _time(deployment.created_at),
        "updated_at": _time(
            deployment.statuses[-1].created_at if deployment.statuses else deployment.created_at
        ),
        "transient_environment": False,
        "production_environment": deployment.environment in ("prod", "production"),
        "url": url,
        "statuses_url": f"{url}/statuses",
        "repository_url": urls.repo,
    }


@api.get("/repos/{owner}/{name}/deployments/{deployment_id}/statuses")
async def deployment_statuses(
    request: Request, response: Response, owner: str, name: str, deployment_id: int
) -> list[Any]:
    repo = _repo(request, owner, name)
    found = _deployment_of(repo, deployment_id)
    urls = _Urls(request, repo)
    newest_first = list(reversed(found.statuses))
    return [_status(urls, found, status) for status in _page(request, response, newest_first)]


@api.post("/repos/{owner}/{name}/deployments/{deployment_id}/statuses", status_code=201)
async def create_deployment_status(
    request: Request, owner: str, name: str, deployment_id: int
) -> dict[str, Any]:
    repo = _repo(request, owner, name)
    found = _deployment_of(repo, deployment_id)
    body = await _json_object(request)
    if body.get("state") not in _DEPLOYMENT_STATES:
        raise GitHubError(422, f"state must be one of {', '.join(sorted(_DEPLOYMENT_STATES))}")
    state = _state(request)
    status = DeploymentStatus(
        id=state.new_id(),
        state=body["state"],
        description=str(body.get("description") or ""),
        log_url=str(body.get("log_url") or body.get("target_url") or ""),
        environment_url=str(body.get("environment_url") or ""),
        creator=state.user,
        created_at=now(),
    )
    found.statuses.append(status)
    if status.state == "success" and body.get("auto_inactive", True):
        _deactivate_others(repo, found, state)
    return _status(_Urls(request, repo), found, status)


def _deactivate_others(repo: Repository, current: Deployment, state: GitHubState) -> None:
    """What GitHub does on a success: earlier active deployments of the environment become inactive."""
    for other in repo.deployments:
        active = other.statuses and other.statuses[-1].state == "success"
        if active and other is not current and other.environment == current.environment:
            other.statuses.append(DeploymentStatus(state.new_id(), "inactive", "", "", "", state.user, now()))


def _status(urls: _Urls, deployment: Deployment, status: DeploymentStatus) -> dict[str, Any]:
    deployment_url = f"{urls.repo}/deployments/{deployment.id}"
    return {
        "id": status.id,
        "state": status.state,
        "description": status.description,
        "environment": deployment.environment,
        "target_url": status.log_url,
        "log_url": status.log_url,
        "environment_url": status.environment_url,
        "creator": _user(urls, status.creator),
        "created_at": _time(status.created_at),
        "updated_at": _time(status.created_at),
        "url": f"{deployment_url}/statuses/{status.id}",
        "deployment_url": deployment_url,
        "repository_url": urls.repo,
    }


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise GitHubError(400, "Problems parsing JSON")
    return body

"""Pushing a project to GitHub: one commit per version, later versions pushed incrementally.

The server builds the history itself, in a git repository of its own in the data dir
(`github/<project id>`), from the stored versions: author, committer and dates are the
version's, so the same versions always make the same commits and a lost local copy is
rebuilt exactly. It pushes over HTTPS with GITHUB_TOKEN, which goes to git in its
environment (never its arguments, a sandbox, a log line or a page).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..errors import Conflict, SandforgeError
from ..store.github_links import GitHubLinks
from ..store.records import VersionRecord
from ..store.repo import Store
from .export import NoVersionYet

REPO_PATTERN = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/)?[A-Za-z0-9._-]{1,100}$"
API_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 300.0
AUTHOR = ("sandforge", "sandforge@users.noreply.github.com")


class GitHubPush(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    repo: str = Field(pattern=REPO_PATTERN)
    """`owner/name` (a user or an organization), or `name` for one of the token's user."""
    private: bool = True
    """For a repository sandforge creates; an existing one keeps its visibility."""


class GitHubNotConfigured(Conflict):
    """Not a failure of the server's: it needs a token before it can push."""

    code = "github_not_configured"


class GitHubFailed(SandforgeError):
    code = "github_failed"
    http_status = 502


class GitHubRejected(Conflict):
    code = "github_rejected"


@dataclass(frozen=True)
class PushResult:
    repo: str
    url: str
    created: bool
    pushed_versions: list[int]
    commit: str


class GitHubPusher:
    _locks: ClassVar[defaultdict[str, asyncio.Lock]] = defaultdict(asyncio.Lock)
    """One push per project at a time (its local repository is shared)."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.links = GitHubLinks(store)

    def _token(self) -> str:
        if self.settings.github_token is None:
            raise GitHubNotConfigured(
                "Pushing to GitHub needs a token: set GITHUB_TOKEN (a token that may create "
                "and push to repositories) and restart the sandforge server."
            )
        return self.settings.github_token.get_secret_value()

    async def push(self, project_id: str, request: GitHubPush) -> PushResult:
        token = self._token()
        project = await self.store.get_project(project_id)
        versions = await self.store.list_versions(project_id)
        if not versions:
            raise NoVersionYet(f"Project {project_id} has no saved version to push yet.")
        async with self._locks[project_id]:
            api = _GitHubApi(self.settings.github_api_url, token)
            repo, created = await api.repository(request, f"Built with sandforge: {project.name}")
            full_name = str(repo["full_name"])
            local = self.settings.data_dir / "github" / project_id
            git = _Git(local, token)
            head = await git.commit_versions(self.store, project_id, versions)
            link = await self.links.get(project_id)
            pushed = 0 if link is None or link.repo != full_name else link.pushed_version
            await git.push(str(repo["clone_url"]), full_name)
            await self.links.save(project_id, full_name, versions[-1].number, head)
            return PushResult(
                repo=full_name,
                url=str(repo.get("html_url") or ""),
                created=created,
                pushed_versions=[v.number for v in versions if v.number > pushed],
                commit=head,
            )


class _GitHubApi:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {
            "authorization": f"Bearer {token}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
        }

    async def repository(
        self, request: GitHubPush, description: str
    ) -> tuple[dict[str, Any], bool]:
        """The repository, created first if it does not exist; and whether it was created."""
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=API_TIMEOUT_S
        ) as client:
            owner, _, name = request.repo.rpartition("/")
            login = str((await self._call(client, "GET", "/user"))["login"])
            owner = owner or login
            found = await self._call(client, "GET", f"/repos/{owner}/{name}", missing_ok=True)
            if found is not None:
                return found, False
            path = "/user/repos" if owner.lower() == login.lower() else f"/orgs/{owner}/repos"
            body = {"name": name, "private": request.private, "description": description}
            created = await self._call(client, "POST", path, json=body)
            return created, True

    async def _call(
        self,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        json: dict[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        try:
            response = await client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise GitHubFailed(
                f"GitHub's API at {self.base_url} did not answer ({type(exc).__name__}); "
                "check SANDFORGE_GITHUB_API_URL and the network."
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise GitHubRejected(
                f"GitHub refused {method} {path} ({response.status_code}): "
                f"{_message(response)}. Check that GITHUB_TOKEN is valid and may create and "
                "push to repositories."
            )
        if response.status_code >= 400:
            raise GitHubRejected(
                f"GitHub answered {method} {path} with {response.status_code}: "
                f"{_message(response)}."
            )
        return response.json()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    details = "; ".join(str(e.get("message", e)) for e in body.get("errors", []) or [])
    return str(body.get("message", "")) + (f" ({details})" if details else "")


class _Git:
    """The project's own repository on this machine, and git run over it."""

    def __init__(self, directory: Path, token: str) -> None:
        self.directory = directory
        self._token = token

    def _env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            # The token as an HTTP header from the environment: never in argv or a URL.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            **(extra or {}),
        }

    async def _run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0
    ) -> str:
        process = await asyncio.create_subprocess_exec(
            "git",
            *args,
            cwd=self.directory,
            env=self._env(env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise GitHubFailed(f"git {args[0]} took longer than {timeout:.0f}s.") from None
        if process.returncode != 0:
            text = err.decode(errors="replace").replace(self._token, "***").strip()
            raise GitHubRejected(f"git {args[0]} failed: {text[-1500:]}")
        return out.decode().strip()

    async def commit_versions(
        self, store: Store, project_id: str, versions: list[VersionRecord]
    ) -> str:
        """Commit the versions the local repository does not have yet (one commit each);
        the head commit."""
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        if not await asyncio.to_thread((self.directory / ".git").exists):
            await self._run("init", "-q", "-b", "main")
        have = int(await self._run("rev-list", "--count", "--all") or 0)
        if have > len(versions):
            # Versions are never removed, so this copy is not ours: start it again.
            await asyncio.to_thread(shutil.rmtree, self.directory)
            return await self.commit_versions(store, project_id, versions)
        for version in versions[have:]:
            files = await store.version_files(project_id, version.number)
            await asyncio.to_thread(_replace_tree, self.directory, files)
            await self._run("add", "-A")
            stamp = f"@{int(version.created_at)} +0000"
            name, email = AUTHOR
            await self._run(
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                f"{version.message}\n\nsandforge version {version.number}",
                env={
                    "GIT_AUTHOR_NAME": name,
                    "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": name,
                    "GIT_COMMITTER_EMAIL": email,
                    "GIT_AUTHOR_DATE": stamp,
                    "GIT_COMMITTER_DATE": stamp,
                },
            )
        return await self._run("rev-parse", "HEAD")

    async def push(self, clone_url: str, full_name: str) -> None:
        if not clone_url.startswith(("https://", "http://")):
            raise GitHubFailed(f"GitHub gave {full_name} no HTTP clone URL.")
        await self._run("push", "-q", clone_url, "HEAD:refs/heads/main", timeout=PUSH_TIMEOUT_S)


_SAFE_PATH = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))(?!\.git(/|$)).+$")


def _replace_tree(directory: Path, files: dict[str, bytes]) -> None:
    """Make the work tree exactly `files` (the .git directory aside)."""
    for entry in directory.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for path, content in files.items():
        if not _SAFE_PATH.match(path) or PurePosixPath(path).is_absolute():
            continue
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

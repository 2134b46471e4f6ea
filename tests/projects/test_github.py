"""Pushing to GitHub: a stand-in for its REST API and a real `git http-backend` receiving."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.conftest import LiveServer
from tests.fakes.github_api import FakeGitHub
from tests.projects.test_export import offline_project, sandforge_cli


@pytest.fixture
def github(tmp_path: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(tmp_path / "github") as fake:
        yield fake


async def github_server(make_server: Any, github: FakeGitHub) -> LiveServer:
    server: LiveServer = await make_server(
        github_token=SecretStr(github.token), github_api_url=github.api_url
    )
    return server


def files_at(github: FakeGitHub, full_name: str, ref: str = "main") -> dict[str, bytes]:
    bare = str(github.bare(full_name))
    names = subprocess.run(
        ["git", "--git-dir", bare, "ls-tree", "-r", "--name-only", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        name: subprocess.run(
            ["git", "--git-dir", bare, "show", f"{ref}:{name}"], capture_output=True, check=True
        ).stdout
        for name in names
    }


async def test_push_creates_the_repo_then_pushes_new_versions_incrementally(
    make_server: Any, github: FakeGitHub, tmp_path: Path
) -> None:
    server = await github_server(make_server, github)
    project_id = await offline_project(server)
    store = server.services.store
    first = await store.version_files(project_id, 1)
    await store.save_version(
        project_id, {**first, "about.html": b"<p>About</p>"}, message="Add about"
    )

    pushed = await server.client.post(
        f"/api/projects/{project_id}/github", json={"repo": "todo-app", "private": True}
    )
    assert pushed.status_code == 200, pushed.text
    result = pushed.json()
    assert (result["repo"], result["created"], result["pushedVersions"]) == (
        "octo/todo-app",
        True,
        [1, 2],
    )
    created = next(r for r in github.requests if r.method == "POST")
    assert created.path == "/api/user/repos" and created.body["private"] is True
    assert await asyncio.to_thread(github.log, "octo/todo-app") == ["Add about", "A todo list"]
    assert await asyncio.to_thread(files_at, github, "octo/todo-app") == await store.version_files(
        project_id, 2
    )

    # A new version: only it goes out, as one more commit on top.
    receive_packs_before = sum("git-receive-pack" in r.path for r in github.requests)
    await store.save_version(
        project_id, {**first, "index.html": b"<h1>Third</h1>"}, message="Third"
    )
    again = await asyncio.to_thread(
        sandforge_cli, server, tmp_path, "github", project_id, "octo/todo-app"
    )
    assert again.returncode == 0, again.stderr
    assert "pushed octo/todo-app: versions 3" in again.stdout
    assert await asyncio.to_thread(github.log, "octo/todo-app") == [
        "Third",
        "Add about",
        "A todo list",
    ]
    assert sum("git-receive-pack" in r.path for r in github.requests) > receive_packs_before
    assert [
        r.path for r in github.requests if r.method == "POST" and r.path.startswith("/api/")
    ] == ["/api/user/repos"]  # the repository was created once
    assert (await asyncio.to_thread(files_at, github, "octo/todo-app"))[
        "index.html"
    ] == b"<h1>Third</h1>"

    up_to_date = await server.client.post(
        f"/api/projects/{project_id}/github", json={"repo": "octo/todo-app"}
    )
    assert up_to_date.json()["pushedVersions"] == []

    # The token went only to GitHub: not in the server's answers or the project's files.
    assert github.token not in pushed.text + again.stdout + again.stderr
    assert github.token not in json.dumps(await store.version_files(project_id, 3), default=str)


async def test_push_to_an_organization_and_the_failures(
    make_server: Any, github: FakeGitHub
) -> None:
    server = await github_server(make_server, github)
    project_id = await offline_project(server)
    org = await server.client.post(
        f"/api/projects/{project_id}/github", json={"repo": "acme/site", "private": False}
    )
    assert org.status_code == 200, org.text
    assert any(r.path == "/api/orgs/acme/repos" for r in github.requests)

    bad_name = await server.client.post(
        f"/api/projects/{project_id}/github", json={"repo": "a/b/c"}
    )
    assert bad_name.status_code == 400
    github.token = "ghp_rotated"  # the server's token is no longer valid
    refused = await server.client.post(
        f"/api/projects/{project_id}/github", json={"repo": "acme/site"}
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "github_rejected"
    assert "GITHUB_TOKEN" in refused.json()["error"]["message"]


async def test_without_a_token_it_says_what_to_set(server: LiveServer) -> None:
    project_id = await offline_project(server)
    answer = await server.client.post(f"/api/projects/{project_id}/github", json={"repo": "todo"})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "github_not_configured"
    assert "GITHUB_TOKEN" in answer.json()["error"]["message"]

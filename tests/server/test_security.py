"""Who may use the API, and from where: trusted hosts, same-origin changes, sign-in, shares."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright
from pydantic import SecretStr

from sandforge.config import Settings
from sandforge.server.app import create_app
from sandforge.server.security import InsecureBind
from tests.conftest import LiveServer

PACED = "factory:tests.reliability.models:paced"
PROMPT = {"messages": [{"role": "user", "content": "Create a calculator"}]}
CHROMIUM = Path("/usr/bin/chromium")


async def first_app(server: LiveServer) -> dict[str, Any]:
    events = await server.stream("/api/agent/stream-daytona", PROMPT)
    complete: dict[str, Any] = events[-1][1].data.model_dump()
    return complete


async def test_a_host_the_server_does_not_answer_to_is_refused(make_server: Any) -> None:
    server: LiveServer = await make_server()
    rebound = await server.client.get("/api/projects", headers={"host": "rebind.attacker.example"})
    assert rebound.status_code == 400
    assert rebound.json()["error"]["code"] == "untrusted_host"
    assert "SANDFORGE_ALLOWED_HOSTS" in rebound.json()["error"]["message"]
    named: LiveServer = await make_server(allowed_hosts=["forge.example.com"])
    ok = await named.client.get("/api/projects", headers={"host": "forge.example.com:443"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://3000-pj0123456789ab.localhost:8000"},
        {"sec-fetch-site": "same-site"},
        {"sec-fetch-site": "cross-site", "origin": "https://evil.example"},
    ],
    ids=["preview origin", "same-site fetch", "cross-site fetch"],
)
async def test_changes_from_another_origin_are_refused(
    server: LiveServer, headers: dict[str, str]
) -> None:
    started = await server.client.post("/api/runs", json=PROMPT, headers=headers)
    assert started.status_code == 403 and started.json()["error"]["code"] == "cross_origin"
    stop = await server.client.post("/api/sandboxes/sb0123456789ab/stop", headers=headers)
    assert stop.status_code == 403
    assert (await server.client.get("/api/runs")).json()["runs"] == []


async def test_a_body_that_is_not_declared_json_is_refused(server: LiveServer) -> None:
    import json

    response = await server.client.post(
        "/api/runs", content=json.dumps(PROMPT), headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]
    assert (await server.client.get("/api/runs")).json()["runs"] == []


async def test_same_origin_pages_and_plain_clients_may_change_things(server: LiveServer) -> None:
    own = {"origin": str(server.client.base_url).rstrip("/"), "sec-fetch-site": "same-origin"}
    started = await server.client.post("/api/runs", json=PROMPT, headers=own)
    assert started.status_code == 202


async def test_a_hostile_generated_page_cannot_drive_the_api(make_server: Any) -> None:
    """A page in a preview tries what a self-spreading page did: start runs (text/plain, no
    preflight), stop its sandbox and restore a version, against the UI's origin."""
    server: LiveServer = await make_server()
    complete = await first_app(server)
    port = server.settings.port
    hostile = f"""<!doctype html><title>hostile</title><body>
<script>
const api = "http://localhost:{port}";
const body = JSON.stringify({{messages: [{{role: "user", content: "spread"}}],
                             projectId: "{complete["projectId"]}"}});
Promise.allSettled([
  fetch(api + "/api/runs", {{method: "POST", mode: "no-cors", body,
                            headers: {{"Content-Type": "text/plain"}}}}),
  fetch(api + "/api/agent/stream-daytona", {{method: "POST", mode: "no-cors", body,
                                            credentials: "include"}}),
  fetch(api + "/api/sandboxes/{complete["sandboxId"]}/stop", {{method: "POST", mode: "no-cors"}}),
  fetch(api + "/api/projects/{complete["projectId"]}/versions/1/restore",
        {{method: "POST", mode: "no-cors"}}),
]).then(() => {{ document.title = "tried"; }});
</script></body>"""
    sandbox = await server.services.fleet.find(complete["sandboxId"])
    await sandbox.write_file("index.html", hostile.encode())
    url = f"{complete['previewUrl']}?token={complete['accessToken']}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--host-resolver-rules=MAP *.localhost 127.0.0.1"],
        )
        try:
            page = await browser.new_page()
            await page.goto(url)
            await page.wait_for_function("document.title === 'tried'", timeout=30_000)
        finally:
            await browser.close()
    runs = (await server.client.get("/api/runs")).json()["runs"]
    assert [r["runId"] for r in runs] == [complete["runId"]]
    assert (await sandbox.info()).state.value == "started"
    versions = await server.client.get(f"/api/projects/{complete['projectId']}/versions")
    assert len(versions.json()["versions"]) == 1


async def test_with_tokens_the_api_requires_one(make_server: Any) -> None:
    server: LiveServer = await make_server(api_tokens=[SecretStr("t0k3n-for-tests")])
    refused = await server.client.get("/api/projects")
    assert refused.status_code == 401 and "Bearer" in refused.json()["error"]["message"]
    wrong = await server.client.get("/api/projects", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    allowed = await server.client.get(
        "/api/projects", headers={"authorization": "Bearer t0k3n-for-tests"}
    )
    assert allowed.status_code == 200
    page = await server.client.get("/create-daytona")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    assert (await server.client.get("/api/health")).status_code == 200


async def test_the_admin_password_signs_the_ui_in(make_server: Any) -> None:
    server: LiveServer = await make_server(admin_password=SecretStr("correct horse"))
    assert (await server.client.get("/login")).status_code == 200
    wrong = await server.client.post("/api/login", json={"password": "battery"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_password"
    signed = await server.client.post("/api/login", json={"password": "correct horse"})
    assert signed.status_code == 204
    assert (
        "HttpOnly" in signed.headers["set-cookie"]
        and "SameSite=Strict" in signed.headers["set-cookie"]
    )
    assert (await server.client.get("/api/projects")).status_code == 200  # the cookie jar
    assert (await server.client.get("/create-daytona")).status_code == 200
    await server.client.post("/api/logout")
    server.client.cookies.clear()
    assert (await server.client.get("/api/projects")).status_code == 401


def test_the_server_will_not_listen_beyond_loopback_without_authentication(
    tmp_path: Path,
) -> None:
    with pytest.raises(InsecureBind, match="SANDFORGE_ADMIN_PASSWORD"):
        create_app(Settings(data_dir=tmp_path, host="0.0.0.0"))
    create_app(Settings(data_dir=tmp_path, host="0.0.0.0", api_tokens=[SecretStr("x" * 20)]))
    cli = subprocess.run(
        [sys.executable, "-m", "sandforge.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SANDFORGE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert cli.returncode == 2
    assert "SANDFORGE_ADMIN_PASSWORD" in cli.stderr


async def test_share_links_expire_and_can_be_revoked(server: LiveServer) -> None:
    complete = await first_app(server)
    project_id = complete["projectId"]
    host = {"host": server.preview_host(project_id)}
    forever = (await server.client.post(f"/api/projects/{project_id}/shares", json={})).json()
    brief = (
        await server.client.post(f"/api/projects/{project_id}/shares", json={"expiresInSeconds": 1})
    ).json()
    token_of = {s["id"]: s["url"].split("?token=")[1] for s in (forever, brief)}

    async def opens(share_id: str) -> int:
        headers = {**host, "x-sandforge-preview-token": token_of[share_id]}
        return (await server.client.get("/", headers=headers)).status_code

    assert await opens(forever["id"]) == 200 and await opens(brief["id"]) == 200
    await asyncio.sleep(1.2)
    assert await opens(brief["id"]) == 401
    revoked = await server.client.delete(f"/api/projects/{project_id}/shares/{forever['id']}")
    assert revoked.json()["live"] is False
    assert await opens(forever["id"]) == 401
    # The project's own token (the owner's preview) is untouched.
    own = {**host, "x-sandforge-preview-token": complete["accessToken"]}
    assert (await server.client.get("/", headers=own)).status_code == 200
    listed = (await server.client.get(f"/api/projects/{project_id}/shares")).json()["shares"]
    assert [s["live"] for s in listed] == [False, False]


async def test_at_the_sandbox_limit_the_longest_idle_one_stops_and_busy_ones_refuse(
    make_server: Any, tmp_path: Path
) -> None:
    server: LiveServer = await make_server(max_sandboxes=1, allowed_models=[PACED])
    first = await first_app(server)
    second = await first_app(server)
    states = {
        s["id"]: s["state"] for s in (await server.client.get("/api/sandboxes")).json()["sandboxes"]
    }
    assert states == {first["sandboxId"]: "stopped", second["sandboxId"]: "started"}
    # The stopped one's preview still opens: its sandbox starts again, in place of the other.
    reopened = await server.preview_get(first["projectId"], token=first["accessToken"])
    assert reopened.status_code == 200, reopened.text
    status = await server.client.get(f"/api/projects/{second['projectId']}/preview")
    assert status.json()["status"] == "stopped", status.text

    release = tmp_path / "release"
    paced = {"messages": [{"role": "user", "content": f"Build release:{release}"}], "model": PACED}
    async with server.client.stream("POST", "/api/agent/stream-daytona", json=paced) as busy:
        async for _ in busy.aiter_lines():
            if server.services.supervisor.busy_sandboxes():
                break
        refused = await server.client.post("/api/agent/stream-daytona", json=PROMPT)
        release.touch()
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "too_many_sandboxes" and "SANDFORGE_MAX_SANDBOXES" in error["message"]
    assert "in use" in error["message"]

"""Self-test: the REAL ``daytona.AsyncDaytona`` SDK against ``tests.fakes.daytona_api``."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from daytona import (
    AsyncDaytona,
    CreateSandboxFromImageParams,
    CreateSandboxFromSnapshotParams,
    DaytonaAuthenticationError,
    DaytonaConfig,
    DaytonaError,
    DaytonaNotFoundError,
    DaytonaProcessExecutionTimeoutError,
    DaytonaTimeoutError,
    FileUpload,
    ListSandboxesQuery,
    Resources,
    SessionExecuteRequest,
)

from tests.fakes.daytona_api import HOME_DIR, WARNING_TITLE, FakeDaytona

API_KEY = "test-key"
PROJECT = f"{HOME_DIR}/project"
INDEX_HTML = b"<!doctype html><h1>hello from the fake sandbox</h1>\n"


@pytest.fixture
def fake() -> Iterator[FakeDaytona]:
    with FakeDaytona(api_key=API_KEY) as server:
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def _wait_for_http(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> httpx.Response:
    deadline = time.monotonic() + 15
    while True:
        response = await client.get(url, headers=headers)
        if response.status_code == 200 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_full_flow_with_real_sdk(fake: FakeDaytona) -> None:
    port = _free_port()
    async with AsyncDaytona(DaytonaConfig(api_key=API_KEY, api_url=fake.url, target="us")) as d:
        sandbox = await d.create(
            CreateSandboxFromImageParams(
                image="python:3.12-slim",
                resources=Resources(cpu=2, memory=4, disk=10),
                labels={"app": "sandforge", "project": "p1"},
                env_vars={"GREETING": "hi", "PYTHONUNBUFFERED": "1"},
                public=False,
                auto_stop_interval=30,
                auto_archive_interval=60,
                auto_delete_interval=120,
            ),
            timeout=30,
        )
        assert sandbox.state == "started"

        # What the SDK sent, and what the fake stored.
        create = fake.find_requests("POST", r"^/api/sandbox$")[0].json
        assert create["labels"] == {
            "app": "sandforge",
            "project": "p1",
            "code-toolbox-language": "python",
        }
        assert create["env"] == {"GREETING": "hi", "PYTHONUNBUFFERED": "1"}
        assert (create["cpu"], create["memory"], create["disk"]) == (2, 4, 10)
        assert create["autoStopInterval"] == 30
        assert create["buildInfo"]["dockerfileContent"].startswith("FROM python:3.12-slim")
        stored = fake.sandboxes[sandbox.id]
        assert (stored.cpu, stored.memory, stored.disk, stored.public) == (2, 4, 10, False)
        assert (stored.auto_stop_interval, stored.auto_archive_interval) == (30, 60)
        assert stored.auto_delete_interval == 120
        assert sandbox.auto_stop_interval == 30 and sandbox.env == {
            "GREETING": "hi",
            "PYTHONUNBUFFERED": "1",
        }

        got = await d.get(sandbox.id)
        assert got.id == sandbox.id and got.labels["project"] == "p1"
        listed = [s.id async for s in d.list(ListSandboxesQuery(labels={"project": "p1"}))]
        assert listed == [sandbox.id]
        assert [s async for s in d.list(ListSandboxesQuery(labels={"project": "nope"}))] == []

        # Files: absolute and relative paths both land in the fake home.
        await sandbox.fs.upload_files(
            [
                FileUpload(INDEX_HTML, f"{PROJECT}/index.html"),
                FileUpload(b"print('x')\n", "project/src/app.py"),
            ]
        )
        assert (fake.host_path(sandbox.id, PROJECT) / "index.html").read_bytes() == INDEX_HTML
        assert await sandbox.fs.download_file(f"{PROJECT}/index.html") == INDEX_HTML
        assert await sandbox.fs.download_file("project/src/app.py") == b"print('x')\n"
        names = {f.name: f.is_dir for f in await sandbox.fs.list_files(PROJECT)}
        assert names == {"index.html": False, "src": True}
        with pytest.raises(DaytonaError):
            await sandbox.fs.download_file(f"{PROJECT}/missing.txt")

        result = await sandbox.process.exec("echo hi")
        assert (result.exit_code, result.result) == (0, "hi\n")
        result = await sandbox.process.exec(
            "echo $GREETING-$EXTRA && pwd", cwd=PROJECT, env={"EXTRA": "x"}
        )
        assert result.result == f"hi-x\n{PROJECT}\n"
        assert (await sandbox.process.exec("exit 3")).exit_code == 3

        # A dev server in a session, reachable through the preview URL.
        await sandbox.process.create_session("dev")
        cd = await sandbox.process.execute_session_command(
            "dev", SessionExecuteRequest(command=f"cd {PROJECT}")
        )
        assert cd.exit_code == 0
        started = await sandbox.process.execute_session_command(
            "dev",
            SessionExecuteRequest(command=f"python3 -m http.server {port}", run_async=True),
        )
        assert started.cmd_id
        preview = await sandbox.get_preview_link(port)
        assert preview.token == stored.preview_token
        async with httpx.AsyncClient(timeout=10) as client:
            page = await _wait_for_http(
                client, preview.url, {"x-daytona-preview-token": preview.token}
            )
            assert page.status_code == 200 and page.content == INDEX_HTML
            # ?token= works too, and sets a cookie so follow-up requests need no token.
            page = await client.get(f"{preview.url}/index.html?token={preview.token}")
            assert page.content == INDEX_HTML
            assert (await client.get(f"{preview.url}/index.html")).status_code == 200
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(preview.url)).status_code == 401
        logs = await sandbox.process.get_session_command_logs("dev", started.cmd_id)
        assert f"port {port}" in logs.stdout  # "Serving HTTP on 0.0.0.0 port ..."
        assert "GET /index.html" in logs.stderr
        command = await sandbox.process.get_session_command("dev", started.cmd_id)
        assert command.exit_code is None

        await sandbox.stop()
        assert sandbox.state == "stopped" and stored.state == "stopped"
        async with httpx.AsyncClient(timeout=5) as client:
            gone = await client.get(preview.url, headers={"x-daytona-preview-token": preview.token})
            assert gone.status_code == 502
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

        await sandbox.start()
        assert sandbox.state == "started"
        assert await sandbox.fs.download_file(f"{PROJECT}/index.html") == INDEX_HTML

        root = stored.base_dir
        await sandbox.delete()
        assert not root.exists()
        with pytest.raises(DaytonaNotFoundError):
            await d.get(sandbox.id)


@pytest.mark.asyncio
async def test_wrong_api_key_is_401(fake: FakeDaytona) -> None:
    config = DaytonaConfig(api_key="wrong", api_url=fake.url, target="us")
    async with AsyncDaytona(config) as d:
        with pytest.raises(DaytonaAuthenticationError) as info:
            await d.create()
    assert info.value.status_code == 401
    assert "Unauthorized" in str(info.value)
    assert fake.find_requests("POST", r"^/api/sandbox$")[0].status == 401
    assert fake.sandboxes == {}


@pytest.mark.asyncio
async def test_always_unauthorized_knob(fake: FakeDaytona) -> None:
    async with AsyncDaytona(fake.sdk_config()) as d:
        sandbox = await d.create()
        fake.always_unauthorized = True
        with pytest.raises(DaytonaAuthenticationError):
            await d.get(sandbox.id)
        with pytest.raises(DaytonaAuthenticationError):
            await sandbox.process.exec("true")
        fake.always_unauthorized = False
        assert (await d.get(sandbox.id)).id == sandbox.id


@pytest.mark.asyncio
async def test_deleted_and_expired_sandboxes_are_not_found(fake: FakeDaytona) -> None:
    async with AsyncDaytona(fake.sdk_config()) as d:
        first = await d.create()
        await d.delete(first)
        with pytest.raises(DaytonaNotFoundError):
            await d.get(first.id)

        second = await d.create(CreateSandboxFromSnapshotParams(name="expiring"))
        assert (await d.get("expiring")).id == second.id  # lookup by name works too
        fake.expire(second.id)
        with pytest.raises(DaytonaNotFoundError):
            await d.get(second.id)
        with pytest.raises(DaytonaNotFoundError):
            await second.process.exec("true")


@pytest.mark.asyncio
async def test_create_timeout_leaves_orphan(fake: FakeDaytona) -> None:
    fake.create_delay = 2.0
    async with AsyncDaytona(fake.sdk_config()) as d:
        with pytest.raises(DaytonaTimeoutError):
            await d.create(timeout=1)
        fake.create_delay = 0
        for _ in range(100):
            if fake.sandboxes:
                break
            await asyncio.sleep(0.05)
        assert len(fake.sandboxes) == 1  # the server finished the create after the client gave up


@pytest.mark.asyncio
async def test_error_state_and_injected_failures(fake: FakeDaytona) -> None:
    async with AsyncDaytona(fake.sdk_config()) as d:
        fake.create_error_reason = "no runner available"
        with pytest.raises(DaytonaError, match="no runner available"):
            await d.create(timeout=10)
        fake.create_error_reason = None

        fake.fail_next(500, method="POST", path=r"/sandbox$", message="boom")
        with pytest.raises(DaytonaError, match="boom") as info:
            await d.create()
        assert info.value.status_code == 500
        sandbox = await d.create()
        assert sandbox.state == "started"


@pytest.mark.asyncio
async def test_exec_timeout_sessions_state_and_paths(fake: FakeDaytona) -> None:
    async with AsyncDaytona(fake.sdk_config()) as d:
        sandbox = await d.create()
        with pytest.raises(DaytonaProcessExecutionTimeoutError):
            await sandbox.process.exec("sleep 30", timeout=1)

        assert (await sandbox.process.exec("pwd")).result == f"{HOME_DIR}\n"
        assert (await sandbox.process.exec("echo ~")).result == f"{HOME_DIR}\n"
        missing = await sandbox.process.exec("true", cwd="/nope")
        assert missing.exit_code == -1

        await sandbox.process.create_session("s")
        run = sandbox.process.execute_session_command
        await run("s", SessionExecuteRequest(command="mkdir -p work && cd work && export FOO=bar"))
        out = await run("s", SessionExecuteRequest(command="pwd; echo $FOO; echo oops >&2; exit 4"))
        assert (out.exit_code, out.stdout, out.stderr) == (4, f"{HOME_DIR}/work\nbar\n", "oops\n")
        session = await sandbox.process.get_session("s")
        assert [c.exit_code for c in session.commands] == [0, 4]

        # Log streaming over the WebSocket follow endpoint.
        cmd = await run(
            "s", SessionExecuteRequest(command="echo a; sleep 0.3; echo b >&2", run_async=True)
        )
        stdout: list[str] = []
        stderr: list[str] = []
        await sandbox.process.get_session_command_logs_async(
            "s", cmd.cmd_id, stdout.append, stderr.append
        )
        assert ("".join(stdout), "".join(stderr)) == ("a\n", "b\n")
        assert (await sandbox.process.get_session_command("s", cmd.cmd_id)).exit_code == 0

        await sandbox.process.delete_session("s")
        with pytest.raises(DaytonaNotFoundError):
            await sandbox.process.get_session("s")

        await sandbox.fs.create_folder("a/b", "755")
        await sandbox.fs.upload_file(b"x", "a/b/f.txt")
        info = await sandbox.fs.get_file_info("a/b/f.txt")
        assert (info.size, info.is_dir, info.path) == (1, False, f"{HOME_DIR}/a/b/f.txt")
        with pytest.raises(DaytonaError):
            await sandbox.fs.delete_file("a")  # not empty, not recursive
        await sandbox.fs.delete_file("a", recursive=True)
        assert not fake.host_path(sandbox.id, "a").exists()
        # ".." cannot escape the fake root
        await sandbox.fs.upload_file(b"y", "/../../etc/escaped.txt")
        assert fake.sandboxes[sandbox.id].host_path("/etc/escaped.txt").read_bytes() == b"y"


@pytest.mark.asyncio
async def test_preview_public_and_signed(fake: FakeDaytona) -> None:
    port = _free_port()
    async with AsyncDaytona(fake.sdk_config()) as d:
        sandbox = await d.create(CreateSandboxFromSnapshotParams(public=True))
        await sandbox.fs.upload_file(INDEX_HTML, "site/index.html")
        await sandbox.process.exec(
            f"python3 -m http.server {port} --directory site > /dev/null 2>&1 &"
        )
        preview = await sandbox.get_preview_link(port)
        signed = await sandbox.create_signed_preview_url(port, expires_in_seconds=60)
        async with httpx.AsyncClient(timeout=10) as client:
            page = await _wait_for_http(client, preview.url, {})
            assert page.content == INDEX_HTML
            assert (await client.get(signed.url)).content == INDEX_HTML
            await sandbox.expire_signed_preview_url(port, signed.token)
            assert (await client.get(signed.url)).status_code == 404
            await sandbox.set_public(False)
            assert (await client.get(preview.url)).status_code == 401
            bearer = {"Authorization": f"Bearer {API_KEY}"}
            assert (await client.get(preview.url, headers=bearer)).content == INDEX_HTML


def test_close_kills_processes_and_removes_dirs() -> None:
    fake = FakeDaytona(api_key=API_KEY).start()

    async def scenario() -> tuple[int, int]:
        async with AsyncDaytona(fake.sdk_config()) as d:
            sandbox = await d.create()
            # setsid detaches from the process group; the env marker still finds it.
            bg = await sandbox.process.exec("setsid sleep 300 > /dev/null 2>&1 & echo $!")
            await sandbox.process.create_session("s")
            started = await sandbox.process.execute_session_command(
                "s", SessionExecuteRequest(command="exec sleep 300", run_async=True)
            )
            proc = fake.sandboxes[sandbox.id].sessions["s"].commands[started.cmd_id].proc
            assert proc is not None
            return int(bg.result.strip()), proc.pid

    detached, session_cmd = asyncio.run(scenario())
    assert _pid_alive(detached) and _pid_alive(session_cmd)
    base = fake.base_dir
    fake.close()
    assert not _pid_alive(detached) and not _pid_alive(session_cmd)
    assert not base.exists()
    marker = f"FAKE_DAYTONA_SANDBOX={fake._instance}:".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as fh:
                    assert marker not in fh.read()
            except OSError:
                pass


@pytest.mark.asyncio
async def test_preview_proxy_websocket_post_and_host_style(fake: FakeDaytona) -> None:
    """The preview proxies to whatever listens on 127.0.0.1:<port> (here: an app in this test)."""
    from aiohttp import WSMsgType, web

    async def echo_ws(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(f"echo:{msg.data}")
        return ws

    async def echo_post(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {"body": body.decode(), "host": request.host, "query": dict(request.query)}
        )

    app = web.Application()
    app.router.add_get("/ws", echo_ws)
    app.router.add_post("/echo", echo_post)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with AsyncDaytona(fake.sdk_config()) as d:
            sandbox = await d.create()
            preview = await sandbox.get_preview_link(port)
            auth = {"x-daytona-preview-token": preview.token}
            async with httpx.AsyncClient(timeout=10) as client:
                echoed = await client.post(
                    f"{preview.url}/echo?a=1", content=b"payload", headers=auth
                )
                assert echoed.json() == {
                    "body": "payload",
                    "host": f"localhost:{port}",
                    "query": {"a": "1"},
                }
                # Host-style routing: "{port}-{sandboxId}.localhost" reaches the same upstream.
                host = f"{port}-{sandbox.id}.localhost:{fake.port}"
                routed = await client.post(
                    f"{fake.base_url}/echo", content=b"x", headers={**auth, "Host": host}
                )
                assert routed.json()["body"] == "x"
            import aiohttp

            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(
                    preview.url.replace("http://", "ws://") + "/ws", headers=auth
                ) as ws,
            ):
                await ws.send_str("ping")
                reply = await ws.receive(timeout=5)
                assert reply.data == "echo:ping"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_list_pagination_code_run_and_ephemeral(fake: FakeDaytona) -> None:
    async with AsyncDaytona(fake.sdk_config()) as d:
        ids = {
            (await d.create(CreateSandboxFromSnapshotParams(labels={"k": "v"}))).id for _ in "abc"
        }
        pages = [s.id async for s in d.list(ListSandboxesQuery(labels={"k": "v"}, limit=1))]
        assert set(pages) == ids and len(pages) == 3
        assert len(fake.find_requests("GET", r"^/api/sandbox$")) == 3  # one request per page

        sandbox = await d.get(next(iter(ids)))
        ran = await sandbox.process.code_run("import sys; print(sum(map(int, sys.argv[1:])))")
        assert (ran.exit_code, ran.result) == (0, "0\n")

        ephemeral = await d.create(CreateSandboxFromSnapshotParams(ephemeral=True))
        assert fake.sandboxes[ephemeral.id].auto_delete_interval == 0
        await ephemeral.stop()
        assert ephemeral.state == "destroyed"
        with pytest.raises(DaytonaNotFoundError):
            await d.get(ephemeral.id)


BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.mark.asyncio
async def test_browsers_get_daytonas_warning_page_unless_they_skip_it(fake: FakeDaytona) -> None:
    port = _free_port()
    async with AsyncDaytona(fake.sdk_config()) as d:
        sandbox = await d.create()
        await sandbox.fs.upload_file(INDEX_HTML, "site/index.html")
        await sandbox.process.exec(
            f"python3 -m http.server {port} --directory site > /dev/null 2>&1 &"
        )
        preview = await sandbox.get_preview_link(port)
        token = {"x-daytona-preview-token": preview.token}
        browser = {**token, "User-Agent": BROWSER_UA}
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await _wait_for_http(client, preview.url, token)).content == INDEX_HTML
            warned = await client.get(preview.url, headers=browser)
            assert warned.status_code == 200
            assert warned.headers["content-type"].startswith("text/html")
            assert WARNING_TITLE in warned.text and INDEX_HTML not in warned.content
            # Before any auth check: even without the token a browser sees the warning.
            assert (
                WARNING_TITLE
                in (await client.get(preview.url, headers={"User-Agent": BROWSER_UA})).text
            )

            skipped = await client.get(
                preview.url, headers={**browser, "X-Daytona-Skip-Preview-Warning": "true"}
            )
            assert skipped.content == INDEX_HTML
            headless = {**token, "User-Agent": BROWSER_UA.replace("Chrome/", "HeadlessChrome/")}
            assert (await client.get(preview.url, headers=headless)).content == INDEX_HTML

            accepted = await client.post(
                f"{fake.base_url}/accept-daytona-preview-warning",
                params={"redirect": preview.url},
                headers=browser,
            )
            assert accepted.status_code == 302 and accepted.headers["location"] == preview.url
            assert (await client.get(preview.url, headers=browser)).content == INDEX_HTML


@pytest.mark.asyncio
async def test_a_restart_issues_a_new_preview_token(fake: FakeDaytona) -> None:
    async with AsyncDaytona(fake.sdk_config()) as d:
        sandbox = await d.create()
        before = await sandbox.get_preview_link(3000)
        assert before.token == (await sandbox.get_preview_link(3000)).token  # stable while up
        await sandbox.stop()
        await sandbox.start()
        after = await sandbox.get_preview_link(3000)
        assert after.token and after.token != before.token
        async with httpx.AsyncClient(timeout=10) as client:
            stale = await client.get(before.url, headers={"x-daytona-preview-token": before.token})
            assert stale.status_code == 401
            fresh = await client.get(after.url, headers={"x-daytona-preview-token": after.token})
            assert fresh.status_code == 502  # authorized; nothing listens on the port

"""What only the Daytona provider does: create parameters, tokens, previews, failures, cleanup.

The official SDK runs unchanged against tests/fakes/daytona_api.py, which records every request.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from daytona import AsyncDaytona, CreateSandboxFromSnapshotParams
from pydantic import SecretStr

from sandforge.config import Settings
from sandforge.sandbox import (
    PathEscapeError,
    SandboxError,
    SandboxFileNotFound,
    SandboxNotFound,
    SandboxSpec,
    SandboxState,
    SandboxStopped,
    SandboxUnavailable,
    providers,
)
from sandforge.sandbox.daytona import (
    LABEL_CREATE,
    LABEL_PREVIEW,
    PREVIEW_TOKEN_HEADER,
    SKIP_PREVIEW_WARNING_HEADER,
    DaytonaAuthError,
    DaytonaProvider,
    DaytonaSandbox,
)
from sandforge.sandbox.http import upstream_client, wait_until_ready
from sandforge.sandbox.local import BwrapLauncher
from tests.fakes.daytona_api import WARNING_TITLE, FakeDaytona
from tests.providers.conftest import PROJECT_DIR, daytona_options, free_port

LABELS = {"sandforge": "1", "run": "run0123456789abcdef", "project": "calc"}
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@pytest.fixture
async def sandbox(daytona_provider: DaytonaProvider) -> AsyncIterator[DaytonaSandbox]:
    made = await daytona_provider.create(SandboxSpec(labels=LABELS))
    yield made
    with contextlib.suppress(SandboxError):
        await made.delete()


def create_body(fake: FakeDaytona) -> dict[str, object]:
    creates = fake.find_requests("POST", r"^/api/sandbox$")
    assert len(creates) == 1
    body = creates[0].json
    assert isinstance(body, dict)
    return body


async def serve(sandbox: DaytonaSandbox, body: bytes = b"<h1>preview</h1>") -> int:
    await sandbox.write_file("index.html", body)
    port = free_port()
    await sandbox.start_process("dev", f"python3 -m http.server {port} --bind 127.0.0.1")
    readiness = await wait_until_ready(sandbox, port, "dev", 30)
    assert readiness.ready, readiness.log_tail
    return port


# -- create ----------------------------------------------------------------------------------


async def test_create_from_a_snapshot_sends_the_spec(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    spec = SandboxSpec(
        labels=LABELS,
        env={"GREETING": "hi"},
        public=True,
        auto_stop_minutes=45,
        auto_archive_minutes=90,
        auto_delete_minutes=600,
        snapshot="sandforge-node",
        memory_mb=4096,
    )
    sandbox = await daytona_provider.create(spec)
    body = create_body(fake_daytona)
    labels = body["labels"]
    assert isinstance(labels, dict)
    assert {k: v for k, v in labels.items() if k in LABELS} == LABELS
    assert set(labels) == {*LABELS, LABEL_CREATE, LABEL_PREVIEW, "code-toolbox-language"}
    assert body["env"] == {"GREETING": "hi"}  # the spec's env and nothing else
    assert body["snapshot"] == "sandforge-node"
    assert body["public"] is True
    # Minutes, as Daytona counts them: 45 minutes is 45, not 2700 (seconds) or 0.75 (hours).
    assert (body["autoStopInterval"], body["autoArchiveInterval"]) == (45, 90)
    assert body["autoDeleteInterval"] == 600
    assert body["networkBlockAll"] is True
    # A snapshot fixes its own resources; none are sent with it.
    assert all(body.get(key) is None for key in ("cpu", "memory", "disk", "buildInfo"))

    stored = fake_daytona.sandboxes[sandbox.id]
    assert stored.env == {"GREETING": "hi"}
    assert (stored.auto_stop_interval, stored.auto_archive_interval) == (45, 90)
    assert stored.public is True
    # The project dir exists from the start, so listing a fresh sandbox works.
    assert fake_daytona.host_path(sandbox.id, PROJECT_DIR).is_dir()
    assert await sandbox.list_files() == []
    assert sandbox.project_dir == PROJECT_DIR

    info = await sandbox.info()
    assert info.labels == LABELS  # our own labels and the SDK's stay out of sight
    assert info.preview_token == labels[LABEL_PREVIEW]
    assert info.preview_token != stored.preview_token  # Daytona's token stays server-side


async def test_create_from_an_image_sends_resources(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    spec = SandboxSpec(image="python:3.12-slim", cpu_weight=200, memory_mb=2048, disk_mb=5000)
    sandbox = await daytona_provider.create(spec)
    body = create_body(fake_daytona)
    assert (body["cpu"], body["memory"], body["disk"]) == (2, 2, 5)
    build = body["buildInfo"]
    assert isinstance(build, dict)
    assert str(build["dockerfileContent"]).startswith("FROM python:3.12-slim")
    stored = fake_daytona.sandboxes[sandbox.id]
    assert (stored.cpu, stored.memory, stored.disk) == (2, 2, 5)


async def test_the_configured_image_is_the_default(fake_daytona: FakeDaytona) -> None:
    provider = DaytonaProvider(daytona_options(fake_daytona, image="node:22-slim"))
    try:
        await provider.create(SandboxSpec())
        body = create_body(fake_daytona)
        build = body["buildInfo"]
        assert isinstance(build, dict)
        assert str(build["dockerfileContent"]).startswith("FROM node:22-slim")
        assert (body["cpu"], body["memory"], body["disk"]) == (1, 1, 1)
    finally:
        await provider.aclose()


async def test_the_default_spec_uses_daytonas_snapshot_with_the_default_intervals(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    await daytona_provider.create(SandboxSpec())
    body = create_body(fake_daytona)
    defaults = SandboxSpec()
    assert body.get("snapshot") is None and body.get("buildInfo") is None
    assert body["autoStopInterval"] == defaults.auto_stop_minutes == 30
    assert body["autoArchiveInterval"] == defaults.auto_archive_minutes
    assert body["autoDeleteInterval"] == -1  # off
    assert body["env"] == {}


async def test_negative_stop_and_archive_intervals_turn_them_off(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    # The SDK refuses negative stop/archive intervals; the spec's "off" is 0 there.
    await daytona_provider.create(SandboxSpec(auto_stop_minutes=-1, auto_archive_minutes=-5))
    body = create_body(fake_daytona)
    assert (body["autoStopInterval"], body["autoArchiveInterval"]) == (0, 0)


async def test_reserved_labels_and_bad_env_names_are_refused_before_any_request(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    with pytest.raises(SandboxError, match="reserved"):
        await daytona_provider.create(SandboxSpec(labels={LABEL_PREVIEW: "mine"}))
    with pytest.raises(SandboxError, match="environment variable"):
        await daytona_provider.create(SandboxSpec(env={"NOT VALID": "x"}))
    assert fake_daytona.requests == []


async def test_made_from_settings(fake_daytona: FakeDaytona, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        daytona_api_key=SecretStr(fake_daytona.api_key),
        daytona_api_url=fake_daytona.url,
        daytona_target="us",
        daytona_project_dir="/home/daytona/app/",
    )
    provider = providers.make_provider("daytona", settings, BwrapLauncher())
    assert isinstance(provider, DaytonaProvider)
    try:
        sandbox = await provider.create(SandboxSpec())
        assert sandbox.project_dir == "/home/daytona/app"
        await sandbox.write_file("x.txt", b"x")
        assert fake_daytona.host_path(sandbox.id, "/home/daytona/app/x.txt").read_bytes() == b"x"
        assert create_body(fake_daytona)["target"] == "us"
    finally:
        await provider.aclose()

    with pytest.raises(SandboxUnavailable, match="DAYTONA_API_KEY not configured"):
        providers.make_provider("daytona", Settings(data_dir=tmp_path), BwrapLauncher())
    with pytest.raises(SandboxUnavailable, match="DAYTONA_API_KEY not configured"):
        providers.daytona_options(Settings(data_dir=tmp_path))


# -- paths and commands ----------------------------------------------------------------------


async def test_relative_paths_land_in_the_project_dir(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    await sandbox.write_file("src/app.js", b"let x = 1;\n")
    host = fake_daytona.host_path(sandbox.id, f"{PROJECT_DIR}/src/app.js")
    assert host.read_bytes() == b"let x = 1;\n"
    uploads = fake_daytona.find_requests("POST", r"/files/bulk-upload$")
    assert uploads[-1].form == {"paths": [f"{PROJECT_DIR}/src/app.js"]}


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "src/../../x", "../project2/x"])
async def test_escaping_paths_fail_before_any_request(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox, path: str
) -> None:
    before = len(fake_daytona.requests)
    for call in (
        lambda: sandbox.read_file(path),
        lambda: sandbox.write_file(path, b"x"),
        lambda: sandbox.delete_file(path),
        lambda: sandbox.list_files(path),
        lambda: sandbox.exec("pwd", cwd=path),
        lambda: sandbox.start_process("dev", "true", cwd=path),
    ):
        with pytest.raises(PathEscapeError):
            await call()
    assert len(fake_daytona.requests) == before


async def test_exec_passes_its_timeout_and_cwd_to_daytona(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    await sandbox.write_file("sub/f", b"")
    await sandbox.exec("true", cwd="sub", timeout=7.2)
    execute = fake_daytona.find_requests("POST", r"/process/execute$")[-1].json
    assert execute["cwd"] == f"{PROJECT_DIR}/sub"
    assert execute["timeout"] == 8  # whole seconds, rounded up
    result = await sandbox.exec("sleep 20", timeout=1)
    assert result.timed_out and result.exit_code == 137
    assert fake_daytona.find_requests("POST", r"/process/execute$")[-1].status == 408


async def test_exec_output_is_capped(fake_daytona: FakeDaytona) -> None:
    provider = DaytonaProvider(daytona_options(fake_daytona))
    try:
        sandbox = await provider.create(SandboxSpec(output_cap_bytes=100))
        result = await sandbox.exec("head -c 5000 /dev/zero | tr '\\0' a; echo err >&2")
        assert result.stdout == "a" * 100
        assert result.stderr == "err\n"
        assert result.truncated
    finally:
        await provider.aclose()


async def test_a_missing_cwd_is_an_error(sandbox: DaytonaSandbox) -> None:
    with pytest.raises(SandboxError, match="no such file"):
        await sandbox.exec("pwd", cwd="not-there")


async def test_a_process_is_a_session_command(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    await sandbox.start_process("dev", "echo up; sleep 60")
    session = fake_daytona.sandboxes[sandbox.id].sessions["sandforge-dev"]
    [command] = session.commands.values()
    assert command.run_async
    status = await sandbox.process_status("dev")
    assert status.running
    with pytest.raises(SandboxError, match="not a valid process name"):
        await sandbox.start_process("../dev", "true")


async def test_oversized_files_are_refused(fake_daytona: FakeDaytona) -> None:
    provider = DaytonaProvider(daytona_options(fake_daytona))
    try:
        sandbox = await provider.create(SandboxSpec(max_file_bytes=10))
        with pytest.raises(SandboxError, match="limit"):
            await sandbox.write_file("big.bin", b"x" * 11)
    finally:
        await provider.aclose()


# -- previews --------------------------------------------------------------------------------


async def test_upstream_adds_the_daytona_token_server_side(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    port = await serve(sandbox)
    stored = fake_daytona.sandboxes[sandbox.id]
    upstream = await sandbox.upstream(port)
    assert upstream.uds is None
    assert upstream.base_url.endswith(f"/preview/{sandbox.id}/{port}")
    assert upstream.headers == {
        PREVIEW_TOKEN_HEADER: stored.preview_token,
        SKIP_PREVIEW_WARNING_HEADER: "true",
    }

    link = await sandbox.preview_link(port)
    assert (link.url, link.token) == (upstream.base_url, stored.preview_token)
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(link.url)).status_code == 401  # private without the token
        page = await client.get(link.url, headers={PREVIEW_TOKEN_HEADER: stored.preview_token})
        assert page.content == b"<h1>preview</h1>"


async def test_a_browser_gets_the_app_not_daytonas_warning_page(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    port = await serve(sandbox)
    link = await sandbox.preview_link(port)
    assert link.token is not None
    async with httpx.AsyncClient(timeout=10) as client:
        direct = await client.get(
            link.url, headers={"User-Agent": BROWSER_UA, PREVIEW_TOKEN_HEADER: link.token}
        )
    assert WARNING_TITLE in direct.text  # what a browser sees without the skip header
    async with upstream_client(await sandbox.upstream(port), timeout=10) as client:
        page = await client.get("/", headers={"User-Agent": BROWSER_UA})
    assert (page.status_code, page.content) == (200, b"<h1>preview</h1>")


async def test_after_a_restart_the_new_token_is_used_and_the_preview_still_loads(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    port = await serve(sandbox, b"<h1>before</h1>")
    before = fake_daytona.sandboxes[sandbox.id].preview_token
    # A client made before the restart, as the preview proxy keeps one per sandbox and port.
    async with upstream_client(await sandbox.upstream(port), timeout=10) as client:
        assert (await client.get("/")).content == b"<h1>before</h1>"
        await sandbox.stop()
        await sandbox.start()
        after = fake_daytona.sandboxes[sandbox.id].preview_token
        assert after != before  # Daytona issued a new token
        await sandbox.write_file("index.html", b"<h1>after</h1>")
        await sandbox.start_process("dev", f"python3 -m http.server {port} --bind 127.0.0.1")
        assert (await wait_until_ready(sandbox, port, "dev", 30)).ready

        page = await client.get("/", headers={"User-Agent": BROWSER_UA})
        assert (page.status_code, page.content) == (200, b"<h1>after</h1>")
    assert (await sandbox.upstream(port)).headers[PREVIEW_TOKEN_HEADER] == after
    previews = fake_daytona.find_requests(path=rf"^/preview/{sandbox.id}/{port}")
    assert [r.headers.get(PREVIEW_TOKEN_HEADER) for r in previews if r.status == 401] == [before]


async def test_signed_preview_urls_need_no_headers(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    port = await serve(sandbox, b"<h1>signed</h1>")
    signed = await sandbox.signed_preview(port, expires_s=120)
    assert signed.token
    assert fake_daytona.find_requests("GET", r"/signed-preview-url$")[-1].query == {
        "expiresInSeconds": ["120"]
    }
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(signed.url)
        assert (page.status_code, page.content) == (200, b"<h1>signed</h1>")
    with pytest.raises(SandboxError):
        await sandbox.signed_preview(port, expires_s=0)
    with pytest.raises(SandboxError):
        await sandbox.preview_link(70000)


# -- failures --------------------------------------------------------------------------------


async def test_a_wrong_key_names_the_fix(fake_daytona: FakeDaytona) -> None:
    provider = DaytonaProvider(daytona_options(fake_daytona, api_key="wrong-key"))
    try:
        with pytest.raises(DaytonaAuthError) as info:
            await provider.create(SandboxSpec(labels=LABELS))
        assert isinstance(info.value, SandboxUnavailable)
        assert "401" in str(info.value) and "DAYTONA_API_KEY" in str(info.value)
        assert info.value.code == "daytona_unauthorized"
        with pytest.raises(DaytonaAuthError, match="DAYTONA_API_KEY"):
            await provider.list({"run": LABELS["run"]})
        with pytest.raises(DaytonaAuthError, match="DAYTONA_API_KEY"):
            await provider.get(str(uuid.uuid4()))
    finally:
        await provider.aclose()
    assert fake_daytona.sandboxes == {}
    assert {r.status for r in fake_daytona.requests} == {401}


async def test_a_revoked_key_fails_sandbox_calls_clearly(
    fake_daytona: FakeDaytona, sandbox: DaytonaSandbox
) -> None:
    fake_daytona.always_unauthorized = True
    with pytest.raises(DaytonaAuthError, match="DAYTONA_API_KEY"):
        await sandbox.exec("true")
    with pytest.raises(DaytonaAuthError, match="DAYTONA_API_KEY"):
        await sandbox.read_file("index.html")
    fake_daytona.always_unauthorized = False


async def test_a_create_that_times_out_leaves_nothing_behind(fake_daytona: FakeDaytona) -> None:
    provider = DaytonaProvider(
        daytona_options(fake_daytona, create_timeout_s=1.0, cleanup_grace_s=15.0)
    )
    fake_daytona.create_delay = 2.5
    started = time.monotonic()
    try:
        with pytest.raises(SandboxError, match="did not create the sandbox within 1s"):
            await provider.create(SandboxSpec(labels=LABELS))
    finally:
        await provider.aclose()
    assert time.monotonic() - started < 15
    # The fake finished the create after the client gave up; the provider found that orphan by
    # its create label and deleted it before reporting the error.
    assert fake_daytona.sandboxes == {}
    [create] = fake_daytona.find_requests("POST", r"^/api/sandbox$")
    assert create.status == 200
    assert len(fake_daytona.find_requests("DELETE", r"^/api/sandbox/")) == 1


async def test_a_create_that_fails_server_side_is_cleaned_up(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    fake_daytona.create_error_reason = "no runner available"
    with pytest.raises(SandboxError, match="no runner available"):
        await daytona_provider.create(SandboxSpec(labels=LABELS))
    assert fake_daytona.sandboxes == {}

    fake_daytona.create_error_reason = None
    fake_daytona.fail_next(500, method="POST", path=r"/sandbox$", message="boom")
    with pytest.raises(SandboxError, match="boom"):
        await daytona_provider.create(SandboxSpec(labels=LABELS))
    assert fake_daytona.sandboxes == {}
    assert (await daytona_provider.create(SandboxSpec())).id in fake_daytona.sandboxes


async def test_a_failed_project_dir_setup_deletes_the_sandbox(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    fake_daytona.fail_next(500, method="POST", path=r"/files/folder$", message="disk full")
    with pytest.raises(SandboxError, match="disk full"):
        await daytona_provider.create(SandboxSpec())
    assert fake_daytona.sandboxes == {}


async def test_an_expired_sandbox_is_not_found(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    fake_daytona.expire(sandbox.id)
    with pytest.raises(SandboxNotFound):
        await daytona_provider.get(sandbox.id)
    with pytest.raises(SandboxNotFound):
        await sandbox.exec("true")
    with pytest.raises(SandboxNotFound):
        await sandbox.delete()


async def test_a_stopped_sandbox_says_to_start_it(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider, sandbox: DaytonaSandbox
) -> None:
    await sandbox.write_file("a.txt", b"a")
    fake_daytona.stop_sandbox(sandbox.id)  # as auto-stop would
    again = await daytona_provider.get(sandbox.id)
    assert (await again.info()).state == SandboxState.STOPPED
    with pytest.raises(SandboxStopped, match="start"):
        await again.exec("true")
    await again.start()
    assert await again.read_file("a.txt") == b"a"


async def test_missing_file_is_file_not_found_not_sandbox_not_found(
    sandbox: DaytonaSandbox,
) -> None:
    with pytest.raises(SandboxFileNotFound) as info:
        await sandbox.read_file("nope.txt")
    assert not isinstance(info.value, SandboxNotFound)


async def test_sandboxes_sandforge_did_not_make_are_not_listed_and_stay_private(
    fake_daytona: FakeDaytona, daytona_provider: DaytonaProvider
) -> None:
    async with AsyncDaytona(fake_daytona.sdk_config()) as daytona:
        foreign = await daytona.create(CreateSandboxFromSnapshotParams(labels={"run": "theirs"}))
    assert await daytona_provider.list({"run": "theirs"}) == []
    found = await daytona_provider.get(foreign.id)
    first, second = await found.info(), await found.info()
    # No token of ours: an unguessable one, so the preview proxy serves it to nobody.
    assert len(first.preview_token) >= 16 and first.preview_token != second.preview_token

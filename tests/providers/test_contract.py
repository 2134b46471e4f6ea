"""One contract over the Sandbox protocol: every provider must pass all of it.

Each test runs on the embedded local provider (bwrap) and on the Daytona provider (the
official SDK against tests/fakes/daytona_api.py).
"""

from __future__ import annotations

import time
import uuid

import pytest

from sandforge.sandbox import (
    SKIPPED_DIRS,
    FileEntry,
    PathEscapeError,
    SandboxError,
    SandboxFileNotFound,
    SandboxNotFound,
    SandboxProvider,
    SandboxSpec,
    SandboxState,
)
from sandforge.sandbox.http import upstream_client, wait_until_ready
from tests.providers.conftest import MakeSandbox, free_port, wait_for_process

BINARY = bytes(range(256)) * 3 + b"\x00\xff\r\n"
ESCAPES = ["../x", "/etc/passwd", "a/../../x", "..", ""]


def run_labels() -> dict[str, str]:
    return {"sandforge": "1", "run": "run" + uuid.uuid4().hex[:16]}


# -- exec ------------------------------------------------------------------------------------


async def test_exec_exit_codes_and_separate_streams(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    ok = await sandbox.exec("true")
    assert (ok.exit_code, ok.stdout, ok.stderr, ok.timed_out) == (0, "", "", False)

    result = await sandbox.exec("echo out; echo err >&2; printf 'no newline'; exit 3")
    assert result.exit_code == 3
    assert result.stdout == "out\nno newline"
    assert result.stderr == "err\n"
    assert not result.timed_out

    quoted = await sandbox.exec("""echo "it's \\"quoted\\"" '$HOME stays'; exit 7""")
    assert (quoted.exit_code, quoted.stdout) == (7, 'it\'s "quoted" $HOME stays\n')


async def test_exec_runs_in_the_project_dir_or_a_relative_cwd(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    await sandbox.write_file("sub/dir/file.txt", b"here\n")
    assert (await sandbox.exec("pwd")).stdout == f"{sandbox.project_dir}\n"
    nested = await sandbox.exec("pwd; cat file.txt", cwd="sub/dir")
    assert nested.stdout == f"{sandbox.project_dir}/sub/dir\nhere\n"
    made = await sandbox.exec("mkdir -p out && echo made > out/new.txt")
    assert made.exit_code == 0
    assert await sandbox.read_file("out/new.txt") == b"made\n"


async def test_exec_env_comes_from_the_spec_and_the_call(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(SandboxSpec(env={"GREETING": "hi", "SHARED": "spec"}))
    result = await sandbox.exec(
        'echo "$GREETING-$EXTRA-$SHARED"', env={"EXTRA": "call", "SHARED": "call"}
    )
    assert result.stdout == "hi-call-call\n"
    assert (await sandbox.exec('echo "${EXTRA:-unset}"')).stdout == "unset\n"


async def test_exec_timeout_reports_timed_out(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    started = time.monotonic()
    result = await sandbox.exec("echo before; sleep 30", timeout=1)
    assert result.timed_out
    assert result.exit_code == 137  # 128 + SIGKILL, as a shell reports it
    assert time.monotonic() - started < 15
    # The sandbox still works afterwards.
    assert (await sandbox.exec("echo after")).stdout == "after\n"


@pytest.mark.parametrize("cwd", ESCAPES[:3])
async def test_exec_cwd_cannot_escape(make_sandbox: MakeSandbox, cwd: str) -> None:
    sandbox = await make_sandbox()
    with pytest.raises(PathEscapeError):
        await sandbox.exec("pwd", cwd=cwd)


# -- files -----------------------------------------------------------------------------------


async def test_files_write_read_list_delete(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    await sandbox.write_file("index.html", b"<h1>hi</h1>")
    await sandbox.write_file("assets/img/logo.bin", BINARY)
    await sandbox.write_file("assets/app.js", b"console.log(1)\n")
    await sandbox.write_file("./index.html", b"<h1>hello</h1>")  # overwrite, normalised

    assert await sandbox.read_file("index.html") == b"<h1>hello</h1>"
    assert await sandbox.read_file("assets/img/logo.bin") == BINARY
    assert await sandbox.read_file("assets/img/../app.js") == b"console.log(1)\n"

    listed = {e.path: e for e in await sandbox.list_files()}
    assert listed == {
        "assets": FileEntry("assets", 0, True),
        "assets/img": FileEntry("assets/img", 0, True),
        "assets/img/logo.bin": FileEntry("assets/img/logo.bin", len(BINARY), False),
        "assets/app.js": FileEntry("assets/app.js", 15, False),
        "index.html": FileEntry("index.html", 14, False),
    }
    below = sorted(e.path for e in await sandbox.list_files("assets/img"))
    assert below == ["assets/img/logo.bin"]

    await sandbox.delete_file("index.html")
    with pytest.raises(SandboxFileNotFound):
        await sandbox.read_file("index.html")
    await sandbox.delete_file("assets")  # a directory goes with everything in it
    assert await sandbox.list_files() == []


async def test_listing_skips_the_one_skip_list(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    for skipped in SKIPPED_DIRS:  # installed packages, build output, caches
        await sandbox.write_file(f"{skipped}/inside.txt", b"x")
    await sandbox.write_file("src/main.js", b"y")
    assert sorted(e.path for e in await sandbox.list_files()) == ["src", "src/main.js"]


async def test_missing_files_are_file_not_found(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    with pytest.raises(SandboxFileNotFound):
        await sandbox.read_file("missing.txt")
    with pytest.raises(SandboxFileNotFound):
        await sandbox.read_file("no/such/dir/file.txt")
    with pytest.raises(SandboxFileNotFound):
        await sandbox.delete_file("missing.txt")
    with pytest.raises(SandboxFileNotFound):
        await sandbox.list_files("nowhere")


@pytest.mark.parametrize("path", ESCAPES)
async def test_paths_cannot_escape_the_project_dir(make_sandbox: MakeSandbox, path: str) -> None:
    sandbox = await make_sandbox()
    with pytest.raises(PathEscapeError):
        await sandbox.read_file(path)
    with pytest.raises(PathEscapeError):
        await sandbox.write_file(path, b"x")
    with pytest.raises(PathEscapeError):
        await sandbox.delete_file(path)
    with pytest.raises(PathEscapeError):
        await sandbox.list_files(path)


async def test_the_project_dir_itself_is_not_a_file(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    for op in (sandbox.read_file("."), sandbox.write_file(".", b"x"), sandbox.delete_file(".")):
        with pytest.raises(SandboxError):
            await op


# -- processes -------------------------------------------------------------------------------


async def test_a_process_runs_in_the_background_with_readable_logs(
    make_sandbox: MakeSandbox,
) -> None:
    sandbox = await make_sandbox(SandboxSpec(env={"FROM_SPEC": "spec"}))
    await sandbox.write_file("work/.keep", b"")
    await sandbox.start_process(
        "srv",
        'pwd; echo "$FROM_SPEC $FOO"; echo to-stderr >&2; echo started; sleep 60',
        cwd="work",
        env={"FOO": "bar"},
    )
    status = await wait_for_process(sandbox, "srv", lambda s: "started" in s.log_tail)
    assert status.running and status.exit_code is None and status.name == "srv"
    assert f"{sandbox.project_dir}/work\n" in status.log_tail
    assert "spec bar\n" in status.log_tail
    assert "to-stderr\n" in status.log_tail

    # Starting it again under the same name replaces the old run.
    await sandbox.start_process("srv", "echo second; sleep 60")
    status = await wait_for_process(sandbox, "srv", lambda s: "second" in s.log_tail)
    assert status.running
    assert "started" not in status.log_tail


async def test_a_crashing_process_reports_its_exit_code(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    await sandbox.start_process("bad", "echo boom >&2; exit 3")
    status = await wait_for_process(sandbox, "bad", lambda s: not s.running)
    assert status.exit_code == 3
    assert "boom" in status.log_tail


async def test_an_unknown_process_is_an_error(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    with pytest.raises(SandboxError):
        await sandbox.process_status("never-started")


async def test_upstream_serves_the_dev_server(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    await sandbox.write_file("index.html", b"<h1>served</h1>")
    await sandbox.write_file("nested/page.html", b"<p>nested</p>")
    port = free_port()
    await sandbox.start_process("dev", f"python3 -m http.server {port} --bind 127.0.0.1")
    readiness = await wait_until_ready(sandbox, port, "dev", 30)
    assert readiness.ready, readiness.log_tail
    async with upstream_client(await sandbox.upstream(port), timeout=10) as client:
        index = await client.get("/")
        assert (index.status_code, index.content) == (200, b"<h1>served</h1>")
        nested = await client.get("/nested/page.html")
        assert nested.content == b"<p>nested</p>"
        assert (await client.get("/missing.html")).status_code == 404


# -- lifecycle -------------------------------------------------------------------------------


async def test_info_describes_the_sandbox(
    provider: SandboxProvider, make_sandbox: MakeSandbox
) -> None:
    labels = {**run_labels(), "project": "calc"}
    before = time.time()
    private = await make_sandbox(SandboxSpec(labels=labels))
    info = await private.info()
    assert info.id == private.id
    assert info.provider == provider.name == private.provider
    assert info.state == SandboxState.STARTED
    assert info.labels == labels
    assert info.public is False
    assert len(info.preview_token) >= 16
    assert before - 5 <= info.created_at <= time.time() + 5

    public = await make_sandbox(SandboxSpec(public=True))
    assert (await public.info()).public is True
    assert (await public.info()).preview_token != info.preview_token


async def test_stop_and_start_keep_the_files(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    await sandbox.write_file("keep/me.txt", b"still here")
    await sandbox.stop()
    assert (await sandbox.info()).state == SandboxState.STOPPED
    await sandbox.start()
    assert (await sandbox.info()).state == SandboxState.STARTED
    assert await sandbox.read_file("keep/me.txt") == b"still here"
    assert (await sandbox.exec("cat keep/me.txt")).stdout == "still here"


async def test_get_finds_the_sandbox_and_delete_removes_it(
    provider: SandboxProvider, make_sandbox: MakeSandbox
) -> None:
    labels = run_labels()
    sandbox = await make_sandbox(SandboxSpec(labels=labels))
    await sandbox.write_file("a.txt", b"a")
    again = await provider.get(sandbox.id)
    assert again.id == sandbox.id
    assert await again.read_file("a.txt") == b"a"
    assert (await again.info()).labels == labels

    await again.delete()
    with pytest.raises(SandboxNotFound):
        await provider.get(sandbox.id)
    assert await provider.list({"run": labels["run"]}) == []


@pytest.mark.parametrize("sandbox_id", ["sb0123456789ab", str(uuid.uuid4()), "../etc", ""])
async def test_an_unknown_sandbox_is_not_found(provider: SandboxProvider, sandbox_id: str) -> None:
    with pytest.raises(SandboxNotFound):
        await provider.get(sandbox_id)


async def test_list_filters_by_labels(provider: SandboxProvider, make_sandbox: MakeSandbox) -> None:
    first_labels, second_labels = run_labels(), run_labels()
    first = await make_sandbox(SandboxSpec(labels=first_labels))
    second = await make_sandbox(SandboxSpec(labels={**second_labels, "project": "p"}))

    found = await provider.list({"run": first_labels["run"]})
    assert [i.id for i in found] == [first.id]
    assert found[0].labels == first_labels
    assert found[0].state == SandboxState.STARTED
    both = await provider.list({"sandforge": "1"})
    assert {first.id, second.id} <= {i.id for i in both}
    assert [i.id for i in await provider.list({"run": second_labels["run"], "project": "p"})] == [
        second.id
    ]
    assert await provider.list({"run": "no-such-run"}) == []
    assert {first.id, second.id} <= {i.id for i in await provider.list()}

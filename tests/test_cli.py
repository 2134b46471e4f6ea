"""The `sandforge` command as a user runs it: a real process, real sandboxes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import SCRUBBED_ENV, free_socket
from tests.runs.test_generation import bwrap_pids_under


def run_cli(
    tmp_path: Path, *args: str, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    child_env.update(SANDFORGE_DATA_DIR=str(tmp_path / "data"), SANDFORGE_RENDER_CHECK="false")
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sandforge.cli", *args],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_generate_without_a_model_ends_with_a_preview_url(tmp_path: Path) -> None:
    with free_socket() as sock:
        port = sock.getsockname()[1]
    result = run_cli(
        tmp_path,
        "generate",
        "Create a calculator with a modern design",
        "--port",
        str(port),
        "--no-serve",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "No AI model is configured" in out
    # Nothing to restart: the command starts its own server each time.
    assert "restart" not in out
    for step, status in enumerate(["creating", "initializing", "generating", "writing"], 1):
        assert f"[{step}/7] {status}" in out
    assert "create  index.html" in out
    url = re.search(r"Preview: (http://3000-(pj[0-9a-f]+)\.localhost:\d+/\?token=(\S+))", out)
    assert url is not None, out


def test_generate_serves_the_preview_until_interrupted(tmp_path: Path) -> None:
    with free_socket() as sock:
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(SANDFORGE_DATA_DIR=str(tmp_path / "data"), SANDFORGE_RENDER_CHECK="false")
    process = subprocess.Popen(
        [sys.executable, "-m", "sandforge.cli", "generate", "Build a timer", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        preview = None
        for line in process.stdout:
            match = re.search(
                r"Preview: http://3000-(pj[0-9a-f]+)\.localhost:\d+/\?token=(\S+)", line
            )
            if match:
                preview = match
            if "press Ctrl-C" in line:
                break
        assert preview is not None
        page = httpx.get(
            f"http://127.0.0.1:{port}/",
            headers={
                "host": f"3000-{preview[1]}.localhost:{port}",
                "x-sandforge-preview-token": preview[2],
            },
        )
        assert page.status_code == 200 and "<h1>Timer</h1>" in page.text
        check_sandboxes_list(tmp_path, port, preview[1])
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        # 130 is the shell's code for "ended by Ctrl-C"; a clean stop prints no traceback.
        assert process.wait(60) in (0, 130)
        assert process.stderr is not None and "Traceback" not in process.stderr.read()
    # Ctrl-C stopped every sandbox process the command started.
    assert bwrap_pids_under(str(tmp_path / "data")) == []


def test_serve_binds_to_loopback_by_default() -> None:
    from sandforge.config import Settings

    assert Settings(_env_file=None).host == "127.0.0.1"  # type: ignore[call-arg]


def check_sandboxes_list(tmp_path: Path, port: int, project_id: str) -> None:
    """`sandboxes list` against a running server, found from the environment or --host/--port:
    the project's whole stable URL (not the sandbox's), and ages a person reads."""
    stable = f"http://3000-{project_id}.localhost:{port}/"
    from_env = run_cli(
        tmp_path, "sandboxes", "list", env={"SANDFORGE_SERVER_URL": f"http://127.0.0.1:{port}"}
    )
    by_option = run_cli(tmp_path, "sandboxes", "list", "--host", "127.0.0.1", "--port", str(port))
    for result in (from_env, by_option):
        assert result.returncode == 0, result.stderr
        header, row = result.stdout.splitlines()
        assert header.split() == ["ID", "PROVIDER", "STATE", "AGE", "PREVIEW"]
        cells = row.split()
        assert cells[1:3] == ["local", "started"]
        assert re.fullmatch(r"\d+s|\d+m", cells[3]), row
        assert row.endswith(stable), row
    unreachable = run_cli(
        tmp_path, "sandboxes", "list", env={"SANDFORGE_SERVER_URL": "http://127.0.0.1:9"}
    )
    assert unreachable.returncode == 1
    assert "No sandforge server at http://127.0.0.1:9" in unreachable.stderr


def test_every_sandboxes_option_says_what_it_is(tmp_path: Path) -> None:
    for command in ("list", "stop", "start", "delete"):
        result = run_cli(tmp_path, "sandboxes", command, "--help", env={"COLUMNS": "200"})
        assert result.returncode == 0, result.stderr
        for option in ("--host", "--port"):
            line = next(ln for ln in result.stdout.splitlines() if option in ln)
            assert "The server's" in line, (command, line)

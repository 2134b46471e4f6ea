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


def run_cli(tmp_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(SANDFORGE_DATA_DIR=str(tmp_path / "data"), SANDFORGE_RENDER_CHECK="false")
    return subprocess.run(
        [sys.executable, "-m", "sandforge.cli", *args],
        env=env,
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

"""The README's snippets keep working: its Python client runs against a live server."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path
from typing import Any

from tests.conftest import LiveServer

README = (Path(__file__).parent.parent / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def test_the_set_up_commands_exist_and_ci_runs_the_test_command() -> None:
    commands = [line.strip() for block in code_blocks("bash") for line in block.splitlines()]
    assert "./scripts/serve" in commands and "./scripts/test" in commands
    root = Path(__file__).parent.parent
    for script in ("scripts/serve", "scripts/test", "scripts/bootstrap", ".ci/run"):
        assert (root / script).stat().st_mode & stat.S_IXUSR, script
    assert "./scripts/test" in (root / ".ci/run").read_text()


async def test_the_python_client_snippet_generates_an_app(server: LiveServer) -> None:
    (snippet,) = code_blocks("python")
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    base_url = f"http://127.0.0.1:{server.settings.port}"
    data = await asyncio.to_thread(namespace["generate"], base_url, "Create a calculator")
    assert data["previewUrl"].startswith("http://3000-")
    page = await server.preview_get(data["projectId"], token=data["accessToken"])
    assert page.status_code == 200 and "<h1>Calculator</h1>" in page.text


async def test_the_shipping_snippet_runs(server: LiveServer, tmp_path: Path) -> None:
    (snippet,) = code_blocks("sh")
    events = await server.stream(
        "/api/agent/stream", {"messages": [{"role": "user", "content": "A todo list"}]}
    )
    project_id = events[-1][1].data.projectId  # type: ignore[union-attr]
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        snippet,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "SANDFORGE": f"http://127.0.0.1:{server.settings.port}",
            "PROJECT": str(project_id),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert '"API_BASE"' in out.decode() and '"url"' in out.decode()
    assert (await asyncio.to_thread((tmp_path / "app.zip").read_bytes))[:2] == b"PK"
    settings = (await server.client.get(f"/api/projects/{project_id}/settings")).json()
    assert settings["env"] == ["API_BASE"]
